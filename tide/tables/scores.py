"""Per-item scores of every evaluated model, read from the evaluation result JSONs.

``results/eval/<model>/<task>/<task>.json`` (written by :func:`tide.eval.run.evaluate`) carries the
primary metric of every item under ``items``; this module turns the files of one study into
``(n_seeds, n_items)`` matrices per system and benchmark, checking that every model saw the same
items. A missing, unreadable or incomplete file is a :class:`TablesError` naming it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tide.eval.run import PAPER_TASK_FAMILY
from tide.eval.tasks import FAMILIES
from tide.pipelines import PIPELINES


class TablesError(RuntimeError):
    """Input the tables cannot be made from; the message names the file and what is wrong."""


@dataclass(frozen=True)
class System:
    """One column of the paper's table: a pipeline (``cross``, ``shared``, ``none``) and variant."""

    pipeline: str
    variant: str

    @property
    def key(self) -> str:
        return f"{self.pipeline}/{self.variant}"

    @property
    def distilled(self) -> bool:
        """A student trained by a distillation run (a variant or the CE-only control)."""
        return self.pipeline != "none" and self.variant != "teacher"


AR = System("none", "ar")
BD3LM = System("none", "bd3lm")
TEACHER_MODELS = {name: f"teachers/{p.teacher}" for name, p in PIPELINES.items()}
BASELINE_MODELS = {AR: "students/ar", BD3LM: "students/bd3lm"}


@dataclass
class Study:
    """Scores of a study: ``scores[system][benchmark]`` is ``(n_seeds, n_items)`` in percent, rows
    in ``seeds[system]`` order; ``items[benchmark]`` the shared item keys; ``ablations`` maps an
    ablation name to its scores in the same form and ``ablation_runs`` to its config entry."""

    benchmarks: list[str]
    items: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    scores: dict[System, dict[str, np.ndarray]] = field(default_factory=dict)
    seeds: dict[System, list[int | None]] = field(default_factory=dict)
    ablations: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ablation_seeds: dict[str, list[int]] = field(default_factory=dict)
    ablation_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    git_shas: set[str] = field(default_factory=set)


def family_of(task: str) -> str:
    """The benchmark family of an lm-eval task: ``tiny_gsm8k`` and ``gsm8k_cot`` are ``gsm8k``."""
    if task.startswith("tiny_") and task[5:] in FAMILIES:
        return task[5:]
    if task in PAPER_TASK_FAMILY:
        return PAPER_TASK_FAMILY[task]
    raise TablesError(f"task {task!r} belongs to none of the 8 benchmarks ({', '.join(FAMILIES)})")


def read_items(path: Path) -> tuple[list[tuple[str, int]], np.ndarray, str | None]:
    """(item keys, scores in percent, git sha) of one result JSON; errors name the file."""
    if not path.is_file():
        raise TablesError(f"{path}: evaluation result missing (run its eval_task job first)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        items = record["items"]
        keys = [(str(i["task"]), int(i["doc_id"])) for i in items]
        scores = np.array([float(i["score"]) for i in items]) * 100.0
    except (ValueError, KeyError, TypeError) as err:
        raise TablesError(
            f"{path}: not a readable evaluation result with per-item scores "
            f"({type(err).__name__}: {err}); re-run its evaluation"
        ) from None
    if not keys:
        raise TablesError(f"{path}: no per-item scores (the task has no primary metric?)")
    primary = (record.get("primary") or {}).get("value")
    one_task = len({k[0] for k in keys}) == 1  # a group's metric may weight its subtasks
    if one_task and primary is not None and not math.isclose(
        scores.mean(), 100.0 * primary, abs_tol=1e-6
    ):
        raise TablesError(
            f"{path}: the items' mean {scores.mean():.4f} differs from the reported "
            f"metric {100 * primary:.4f}; the file is inconsistent"
        )
    return keys, scores, (record.get("tide") or {}).get("git_sha")


def seed_of(model: str) -> int | None:
    """The seed of a model directory (``distill/cross/calm/seed0`` -> 0); None for a baseline."""
    match = re.search(r"/seed(\d+)$", model)
    return int(match.group(1)) if match else None


def load_study(eval_dir: str | Path, tasks: list[str], systems: dict[System, list[str]],
               ablations: dict[str, list[str]] | None = None,
               ablation_runs: dict[str, dict[str, Any]] | None = None) -> Study:
    """Read every (model, task) result of the study under ``eval_dir``.

    systems: each system's model directories (relative to results/, e.g.
    ``distill/cross/calm/seed0``; one per seed, or one without a seed for a baseline);
    ablations: each ablation's model directories in the same form.
    """
    eval_dir = Path(eval_dir)
    study = Study(benchmarks=[family_of(t) for t in tasks], ablation_runs=dict(ablation_runs or {}))
    first_reader: dict[str, Path] = {}

    def matrix(models: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for task, bench in zip(tasks, study.benchmarks):
            rows = []
            for model in models:
                path = eval_dir / model / task / f"{task}.json"
                keys, scores, sha = read_items(path)
                if sha:
                    study.git_shas.add(sha)
                if bench not in study.items:
                    study.items[bench], first_reader[bench] = keys, path
                elif keys != study.items[bench]:
                    raise TablesError(
                        f"{path}: its {len(keys)} items are not those of {first_reader[bench]} "
                        f"({len(study.items[bench])}): evaluate every model with the same "
                        "eval.limit and world"
                    )
                rows.append(scores)
            out[bench] = np.stack(rows)
        return out

    for system, models in systems.items():
        study.scores[system] = matrix(models)
        study.seeds[system] = [seed_of(m) for m in models]
    for name, models in (ablations or {}).items():
        study.ablations[name] = matrix(models)
        study.ablation_seeds[name] = [seed_of(m) for m in models]
    return study
