"""The figures (matplotlib, PNG): each variant's delta vs the BD3LM baseline beside the paper's,
the training loss curves (seeds as a band), and the teachers vs the students per benchmark.
PNGs carry no time stamp or version text, so the same inputs give the same bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tide.tables.published import PAPER_COLUMNS, system_label
from tide.tables.render import bench_label
from tide.tables.scores import System

PNG = {"dpi": 110, "metadata": {"Software": None}}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", **PNG)
    plt.close(fig)
    return path


def delta_figure(main: pd.DataFrame, path: Path) -> Path:
    """Per benchmark: every distilled variant's delta vs BD3LM (ours: bar with CI; paper: ◆)."""
    distilled = main[(main["pipeline"] != "none") & (main["variant"] != "teacher")]
    systems = [System(p, v) for p, v in dict.fromkeys(zip(distilled["pipeline"],
                                                          distilled["variant"]))]
    benches = list(dict.fromkeys(distilled["benchmark"]))
    paper_base = main[(main["pipeline"] == "none") & (main["variant"] == "bd3lm")]
    paper_base = dict(zip(paper_base["benchmark"], paper_base["paper"]))
    cols = 3
    rows = -(-len(benches) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.42 * len(systems) * rows + 1.2),
                             sharey=True, squeeze=False)
    y = np.arange(len(systems))
    cells = distilled.set_index(["pipeline", "variant", "benchmark"])
    for ax, bench in zip(axes.flat, benches):
        ours = [cells.loc[(s.pipeline, s.variant, bench)] for s in systems]
        vals = np.array([c["delta_vs_bd3lm"] for c in ours])
        err = np.array([[v - c["delta_vs_bd3lm_ci_low"], c["delta_vs_bd3lm_ci_high"] - v]
                        for v, c in zip(vals, ours)]).T
        ax.barh(y, vals, xerr=err, color="tab:blue", alpha=0.75, capsize=2, label="ours (95% CI)")
        paper = [c["paper"] - paper_base.get(bench, np.nan) if s in PAPER_COLUMNS else np.nan
                 for s, c in zip(systems, ours)]
        ax.scatter(paper, y, marker="D", color="tab:orange", zorder=3, label="paper")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(bench_label(bench))
        ax.set_yticks(y, [system_label(s) for s in systems])
    for ax in list(axes.flat)[len(benches):]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower right", fontsize=7)
    fig.suptitle("Δ vs the BD3LM baseline (points)")
    return _save(fig, path)


def loss_figure(curves: pd.DataFrame, path: Path) -> Path:
    """Training loss per variant and pipeline: the mean over seeds, min-max over seeds as a band.
    ``curves``: long frame with pipeline, variant, seed, step, loss."""
    pipelines = list(dict.fromkeys(curves["pipeline"]))
    fig, axes = plt.subplots(1, len(pipelines), figsize=(6 * len(pipelines), 4), squeeze=False)
    for ax, pipeline in zip(axes.flat, pipelines):
        part = curves[curves["pipeline"] == pipeline]
        for variant in dict.fromkeys(part["variant"]):
            stats = part[part["variant"] == variant].groupby("step")["loss"].agg(
                ["mean", "min", "max"])
            line = ax.plot(stats.index, stats["mean"], label=variant)[0]
            ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(),
                            alpha=0.2)
        ax.set_title(system_label(System(pipeline, "teacher")).replace("Teacher", "Pipeline"))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (objective + CE)")
        ax.legend(fontsize=7)
    return _save(fig, path)


def teacher_figure(main: pd.DataFrame, path: Path) -> Path:
    """Per benchmark: the students' baselines and the teachers (mean score, percent)."""
    wanted = [("none", "ar"), ("none", "bd3lm"), ("cross", "teacher"), ("shared", "teacher")]
    present = [w for w in wanted if ((main["pipeline"] == w[0]) & (main["variant"] == w[1])).any()]
    benches = list(dict.fromkeys(main["benchmark"]))
    cells = main.set_index(["pipeline", "variant", "benchmark"])
    x = np.arange(len(benches))
    width = 0.8 / max(len(present), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(benches) + 2, 4))
    for i, (pipeline, variant) in enumerate(present):
        vals = [cells.loc[(pipeline, variant, b)]["mean"] for b in benches]
        ax.bar(x + (i - (len(present) - 1) / 2) * width, vals, width,
               label=system_label(System(pipeline, variant)))
    ax.set_xticks(x, [bench_label(b) for b in benches])
    ax.set_ylabel("score (%)")
    ax.set_title("Teachers vs the student baselines")
    ax.legend(fontsize=8)
    return _save(fig, path)


def all_figures(main: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [delta_figure(main, out_dir / "delta_vs_bd3lm.png"),
            loss_figure(curves, out_dir / "loss_curves.png"),
            teacher_figure(main, out_dir / "teachers_vs_student.png")]

