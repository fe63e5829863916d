"""The teacher-signal table: how close each model came to its pipeline's teacher on rows no model
trained on (``results/signal/<pipeline>/<model>.json``, :mod:`tide.distill.signal`), beside the
teacher's lead over the BD3LM baseline per benchmark on the held-out items.

A distillation that works moves the KD variants' KL to the teacher below the CE-only control's
(same data, seeds and steps, no teacher) even where a benchmark cannot resolve a difference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tide.tables.scores import BD3LM, TEACHER_MODELS, System, TablesError, seed_of

MEASURES = ("kl", "gold_nll", "top1")
LEAD = "lead"  # the `measure` of the teacher's lead rows


def signal_systems(systems: dict[System, list[str]], ablation_models: dict[str, list[str]],
                   ablation_runs: dict[str, dict]) -> dict[str, list[tuple[str, list[str]]]]:
    """Per pipeline, the measured rows in table order: (row name, model directories). The teacher,
    the BD3LM baseline, every distilled system of the pipeline, then its ablations."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for pipeline, teacher in TEACHER_MODELS.items():
        if System(pipeline, "teacher") not in systems:
            continue
        rows = [("teacher", [teacher]), ("bd3lm", systems[BD3LM])]
        rows += [(s.variant, models) for s, models in systems.items()
                 if s.distilled and s.pipeline == pipeline]
        rows += [(f"ablation:{name}", models) for name, models in ablation_models.items()
                 if ablation_runs[name]["pipeline"] == pipeline]
        out[pipeline] = rows
    return out


def signal_files(layout: dict[str, list[tuple[str, list[str]]]]) -> list[str]:
    """The result files of ``layout`` (relative to the signal directory)."""
    return [f"{p}/{m}.json" for p, rows in layout.items() for _, models in rows for m in models]


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TablesError(f"{path}: teacher-signal result missing (run its teacher_signal job first)")
    try:
        data = json.loads(path.read_text())
        values = {k: float(data[k]) for k in MEASURES}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise TablesError(f"{path}: not a teacher-signal result ({err!r})") from None
    if not all(math.isfinite(v) for v in values.values()):
        raise TablesError(f"{path}: a measure is not finite ({values})")
    return {**values, "units": int(data.get("units", 0))}


def signal_table(signal_dir: str | Path, layout: dict[str, list[tuple[str, list[str]]]],
                 main: pd.DataFrame) -> pd.DataFrame:
    """Long frame: per (pipeline, row, measure) the mean and std over seeds and the seeds; then
    per pipeline and benchmark the teacher's lead over BD3LM (``measure`` = ``lead``, with its
    paired interval from ``main``, the main-results frame)."""
    records = []
    for pipeline, rows in layout.items():
        for name, models in rows:
            values = [_read(Path(signal_dir) / pipeline / f"{m}.json") for m in models]
            seeds = [seed_of(m) for m in models]
            for measure in MEASURES:
                v = np.array([x[measure] for x in values])
                records.append({
                    "pipeline": pipeline, "system": name, "measure": measure,
                    "benchmark": None, "mean": float(v.mean()),
                    "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                    "n_seeds": len(v), "seeds": " ".join(str(s) for s in seeds if s is not None),
                    "units": values[0]["units"], "ci_low": None, "ci_high": None,
                })  # fmt: skip
        lead = main[(main["pipeline"] == pipeline) & (main["variant"] == "teacher")]
        for _, row in lead.iterrows():
            records.append({
                "pipeline": pipeline, "system": "teacher", "measure": LEAD,
                "benchmark": row["benchmark"], "mean": row["delta_vs_bd3lm"], "std": None,
                "n_seeds": 1, "seeds": "", "units": row["n_items"],
                "ci_low": row["delta_vs_bd3lm_ci_low"], "ci_high": row["delta_vs_bd3lm_ci_high"],
            })  # fmt: skip
    return pd.DataFrame.from_records(records)
