"""What every result file carries: config, seed, package versions, git sha, host."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from tide.config import REPO_ROOT
from tide.outputs import replace_text

PACKAGES = ("torch", "transformers", "tokenizers", "accelerate", "lm_eval", "tide")


def git_sha(root: Path = REPO_ROOT) -> str:
    """The checked-out commit, with ``-dirty`` when tracked files changed; ``unknown`` outside git.

    ``TIDE_GIT_SHA`` overrides it, for copies of the tree without ``.git`` (a remote GPU machine)."""
    if os.environ.get("TIDE_GIT_SHA"):
        return os.environ["TIDE_GIT_SHA"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def torch_threads() -> int | None:
    """Torch's intra-op threads in this process (CPU sums are reduced in another order with another
    count, so results are reproduced bit for bit with the same one); ``None`` if torch is not loaded."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def record(config: dict | None = None, seed: int | None = None, **extra) -> dict:
    """A provenance record to store beside (or inside) a result."""
    return {
        "config": config,
        "seed": seed,
        "torch_threads": torch_threads(),
        "versions": versions(),
        "git_sha": git_sha(),
        "host": platform.node(),
        "platform": platform.platform(),
        **extra,
    }


def write_record(path: str | Path, config: dict | None = None, seed: int | None = None, **extra):
    """Write :func:`record` as pretty JSON to ``path`` (replacing the file, :func:`replace_text`)."""
    return replace_text(path, json.dumps(record(config, seed, **extra), indent=2, sort_keys=True) + "\n")


def config_record(config: Mapping, **extra) -> dict:
    """The ``config`` part of a stage's provenance record: the values the stage may read (the
    :class:`tide.config.ConfigView` of its declared keys that ``tide.cli`` hands it) as plain
    nested dicts, with ``extra`` (stage-specific facts, e.g. a distillation's objective) beside."""

    def plain(node):
        return {k: plain(v) for k, v in node.items()} if isinstance(node, Mapping) else node

    return plain(config) | extra
