"""How a training stage is started: plain ``python`` on one device, ``accelerate launch`` on several.

The workflow's training rules build their shell command as ``{launcher} -m tide <stage> ...`` with
the launcher from :func:`launcher`, given the GPUs the rule's job gets (its ``gpu`` resource, as
``profiles/slurm/config.yaml`` sets it) and a strategy: ``ddp`` (data parallel, every process holds
the whole student) or ``fsdp`` (the student's Qwen3 decoder layers fully sharded). The strategies'
settings are accelerate config files, ``config/accelerate/<strategy>.yaml``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

STRATEGIES = ("ddp", "fsdp")
CONFIG_DIR = Path("config") / "accelerate"  # relative to the repository root (the workflow's workdir)


def accelerate_config(strategy: str, root: str | Path | None = None) -> Path:
    """The accelerate config file of ``strategy`` (``ddp`` or ``fsdp``), under ``root`` if given."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown launch strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    path = CONFIG_DIR / f"{strategy}.yaml"
    return Path(root) / path if root is not None else path


def launcher(gpus: int | str | None, strategy: str = "ddp", *, bf16: bool | None = None,
             root: str | Path | None = None) -> str:
    """The command that runs ``-m tide ...``: ``python`` for 0 or 1 GPU (or none stated), else
    ``accelerate launch --config_file config/accelerate/<strategy>.yaml --num_processes <gpus>``
    (one process per GPU). ``bf16`` (the run's ``train.bf16``), when given, overrides the config
    file's ``mixed_precision`` so that the run's config decides the precision."""
    n = int(gpus or 0)
    if n < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus!r}")
    config = accelerate_config(strategy, root)  # checks the strategy even for one GPU
    if n <= 1:
        return "python"
    parts = ["accelerate", "launch", "--config_file", str(config), "--num_processes", str(n)]
    if bf16 is not None:
        parts += ["--mixed_precision", "bf16" if bf16 else "no"]
    return shlex.join(parts)
