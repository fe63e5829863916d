"""The paper's tables regenerated from our evaluation results, with the published numbers beside.

``make_tables(config, eval_dir, curves_dir, signal_dir, tables_dir, figures_dir, profile_dir)``
reads the
per-item scores of every evaluated model (``results/eval/<model>/<task>/<task>.json``), the
distilled students' loss curves (``results/curves/<model>/loss.csv``), every model's teacher
signal (``results/signal/<pipeline>/<model>.json``), the profiles of the student and the teachers
(``results/profile/<model>.json``) and the published numbers
(``published/*.csv``), and writes, each as CSV and Markdown:

- ``main_results``: mean, std over seeds, the paper's value, and the paired deltas vs the BD3LM
  baseline and vs the same pipeline's CE-only control, per system and benchmark (+ Avg);
- ``strategy_swap``: native vs swapped strategy per pipeline, beside the paper's +0.37 / +2.76;
- ``ablations``: each ablation vs its parent variant, same seed;
- ``claims``: each headline claim of the paper with its verdict read off our interval;
- ``teacher_signal``: each model's KL to its teacher, gold NLL and top-1 on unseen rows, and the
  teacher's lead over BD3LM per benchmark (:mod:`tide.tables.signal`);
- ``efficiency``: peak memory and time to generate tokens, student vs each teacher, with the ratios
  beside the paper's 22x / 5.2x (``results/profile/``, :mod:`tide.tables.efficiency`);

and the figures (:mod:`tide.tables.figures`). It reads nothing else: rebuilding the tables from
pulled evaluation results trains and evaluates nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tide.outputs import replace_text
from tide.tables import build, render
from tide.tables.efficiency import efficiency_table
from tide.tables.scores import Study, System, TablesError, load_study, seed_of
from tide.tables.signal import signal_systems, signal_table

TABLES = ("main_results", "strategy_swap", "ablations", "claims", "teacher_signal", "efficiency")
FIGURES = ("delta_vs_bd3lm", "loss_curves", "teachers_vs_student")
RENDERERS = {
    "main_results": render.main_table, "strategy_swap": render.strategy_table,
    "ablations": render.ablation_table, "claims": render.claims_table,
    "teacher_signal": render.signal_table, "efficiency": render.efficiency_table,
}  # fmt: skip

__all__ = ["FIGURES", "TABLES", "TablesError", "make_tables", "read_curves"]


def read_curves(curves_dir: str | Path, systems: dict[System, list[str]]) -> pd.DataFrame:
    """The loss curves of every distilled model (``<curves_dir>/<model>/loss.csv``) as one long
    frame: pipeline, variant, seed, step, loss."""
    frames = []
    for system, models in systems.items():
        if not system.distilled:
            continue
        for model in models:
            path = Path(curves_dir) / model / "loss.csv"
            if not path.is_file():
                raise TablesError(f"{path}: loss curve missing (run its loss_curve job first)")
            try:
                curve = pd.read_csv(path, usecols=["step", "loss"])
            except (ValueError, pd.errors.ParserError) as err:
                raise TablesError(f"{path}: not a loss curve with step and loss ({err})") from None
            curve.insert(0, "seed", seed_of(model))
            curve.insert(0, "variant", system.variant)
            curve.insert(0, "pipeline", system.pipeline)
            frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["pipeline", "variant", "seed", "step", "loss"])


def _meta(config: dict[str, Any], study: Study) -> dict[str, Any]:
    counts = sorted({len(keys) for keys in study.items.values()})
    seeds = config["distill"]["seeds"]
    return {
        "scale": config["scale"],
        "git_shas": sorted(study.git_shas),
        "items": f"{'/'.join(map(str, counts))} held-out items per benchmark",
        "seeds": f"seeds {', '.join(map(str, seeds))} per distilled variant",
        **{k: config["tables"][k] for k in ("n_boot", "level", "seed", "avg_excluding")},
    }


def make_tables(config: dict[str, Any], eval_dir: str | Path, curves_dir: str | Path,
                signal_dir: str | Path, tables_dir: str | Path, figures_dir: str | Path,
                profile_dir: str | Path | None = None) -> dict[str, Path]:
    """Write every table (CSV + Markdown) and figure; returns their paths by name. Without
    ``profile_dir`` the efficiency table holds the paper's rows only and its claims stay
    unresolved."""
    from tide.tables.figures import all_figures

    systems, ablation_models = build.study_models(config)
    study = load_study(eval_dir, list(config["eval"]["tasks"]), systems, ablation_models,
                       config["distill"]["ablations"]["runs"])
    curves = read_curves(curves_dir, systems)
    section = config["tables"]
    cmp = build.Comparer(section["n_boot"], section["level"], section["seed"],
                         section["avg_excluding"])
    meta = _meta(config, study)
    efficiency = efficiency_table(profile_dir, config)
    frames = {
        "main_results": build.main_results(study, cmp),
        "strategy_swap": build.strategy_swap(study, cmp),
        "ablations": build.ablations(study, cmp),
        "claims": build.claims(study, cmp, efficiency if profile_dir is not None else None),
    }
    layout = signal_systems(systems, ablation_models, config["distill"]["ablations"]["runs"])
    frames["teacher_signal"] = signal_table(signal_dir, layout, frames["main_results"])
    frames["efficiency"] = efficiency
    tables_dir, paths = Path(tables_dir), {}
    for name, frame in frames.items():
        paths[f"{name}.csv"] = replace_text(tables_dir / f"{name}.csv",
                                      frame.to_csv(index=False, float_format="%.4f"))
        paths[f"{name}.md"] = replace_text(tables_dir / f"{name}.md", RENDERERS[name](frame, meta))
    for path in all_figures(frames["main_results"], curves, Path(figures_dir)):
        paths[path.name] = path
    return paths
