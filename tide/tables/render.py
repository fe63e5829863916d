"""Markdown of the tables: the main table in the paper's layout (benchmarks as rows, systems as
columns grouped as the paper groups them), the others as plain tables with their intervals."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from tide.tables.published import AVG, AVG_EXCL, BENCHMARK_LABELS, PIPELINE_LETTER, system_label
from tide.tables.scores import System

CHANCE_MARK = "†"


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _signed(value: float, digits: int = 1) -> str:
    return f"{value:+.{digits}f}"


def _ci(row: pd.Series, prefix: str) -> str:
    if pd.isna(row[prefix]):
        return ""
    return f"{_signed(row[prefix])} [{_signed(row[f'{prefix}_ci_low'])}, " \
           f"{_signed(row[f'{prefix}_ci_high'])}]"


def bench_label(bench: str) -> str:
    if bench == AVG_EXCL:
        return "Avg*"
    return "Avg" if bench == AVG else BENCHMARK_LABELS.get(bench, bench)


def _rows_in_paper_order(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame["benchmark"]))
    averages = [b for b in (AVG, AVG_EXCL) if b in present]
    order = [b for b in BENCHMARK_LABELS if b in present]
    return order + [b for b in present if b not in order and b not in averages] + averages


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def header(title: str, meta: dict[str, Any]) -> str:
    shas = ", ".join(meta["git_shas"]) or "unknown"
    return (
        f"# {title}\n\n"
        f"Made by `python -m tide tables` from the evaluation results of commit {shas} "
        f"(scale `{meta['scale']}`; {meta['items']}; {meta['seeds']}). "
        f"Intervals: {meta['level']:.0%} paired bootstrap over held-out items and seeds "
        f"({meta['n_boot']} resamples, seed {meta['seed']}).\n"
    )


def main_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """``ours ± std (paper)`` per benchmark and system, the paper's columns first; then every
    variant's average delta vs the BD3LM baseline and vs its pipeline's CE-only control."""
    systems = [System(p, v) for p, v in dict.fromkeys(zip(frame["pipeline"], frame["variant"]))]
    cells = frame.set_index(["pipeline", "variant", "benchmark"])
    rows = []
    for bench in _rows_in_paper_order(frame):
        row = [bench_label(bench)]
        for system in systems:
            c = cells.loc[(system.pipeline, system.variant, bench)]
            text = _num(c["mean"]) + (f" ± {_num(c['std'])}" if not pd.isna(c["std"]) else "")
            if not pd.isna(c["paper"]):
                text += f" ({_num(c['paper'], 2)})"
            if c["near_chance"]:
                text += f" {CHANCE_MARK}"
            row.append(text)
        rows.append(row)
    main = _table(["Benchmark", *[system_label(s) for s in systems]], rows)
    averages = [b for b in (AVG, AVG_EXCL) if b in set(frame["benchmark"])]
    deltas = []
    for system in systems:
        if system.pipeline == "none" and system.variant == "bd3lm":
            continue
        row = [system_label(system), str(int(cells.loc[(system.pipeline, system.variant, AVG)]
                                             ["n_seeds"]))]
        for avg in averages:
            c = cells.loc[(system.pipeline, system.variant, avg)]
            row += [_num(c["mean"]), _ci(c, "delta_vs_bd3lm"), _ci(c, "delta_vs_ce_only")]
        deltas.append(row)
    columns = ["System", "Seeds"]
    for avg in averages:
        label = bench_label(avg)
        columns += [label, f"{label}: Δ vs BD3LM [CI]", f"{label}: Δ vs CE only [CI]"]
    delta_table = _table(columns, deltas)
    letters = ", ".join(f"{v} = `{k}`" for k, v in PIPELINE_LETTER.items())
    return (
        header("Main results", meta)
        + "\nBenchmarks as rows, systems as columns in the paper's order (AR, BD3LM | Pipeline B | "
        f"Pipeline A; {letters}), then our CE-only controls (same data, steps and seeds, no "
        "teacher) and the teachers. A cell reads `ours ± std (paper)`: the mean over seeds and "
        "held-out items in percent, the standard deviation over seeds (no ± for a single model), "
        "and the published number where the paper has one.\n\n"
        + main
        + f"\n\n{CHANCE_MARK}: not above chance by two binomial standard errors on these items "
        "(within noise of chance, or below it; chance: 25 for MMLU and HellaSwag, 10 for "
        "MMLU-Pro, 0 for generated answers; the larger of the guesser's and the observed "
        "spread): the cell cannot rank systems." + _excl_note(meta) + "\n\n"
        "## Average deltas\n\n"
        "Paired by item (and by seed against the CE-only control, trained with the same seeds); "
        "an interval that contains 0 does not resolve a difference.\n\n"
        + delta_table + "\n"
    )


def _excl_note(meta: dict[str, Any]) -> str:
    excluded = meta.get("avg_excluding") or []
    if not excluded:
        return ""
    names = ", ".join(BENCHMARK_LABELS.get(b, b) for b in excluded)
    return (f" Avg*: the average without {names} (the paper's column there: the mean of its "
            "numbers on the same benchmarks).")


def strategy_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    rows = [
        [PIPELINE_LETTER[r["pipeline"]], f"{r['native']} vs {r['swapped']}",
         f"{_num(r['native_avg'])} vs {_num(r['swapped_avg'])}", _ci(r, "delta"),
         f"{_num(r['paper_native_avg'], 2)} vs {_num(r['paper_swapped_avg'], 2)}",
         _signed(r["paper_delta"], 2), r["verdict"]]
        for _, r in frame.iterrows()
    ]
    table = _table(["Pipeline", "Native vs swapped", "Avg (ours)", "Δ ours [CI]", "Avg (paper)",
                    "Δ paper", "Verdict"], rows)
    return header("Strategy swap", meta) + "\n" + table + "\n"


def ablation_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    avg = frame[frame["benchmark"] == AVG]
    rows = [
        [r["ablation"], f"{PIPELINE_LETTER[r['pipeline']]}: {r['parent']}", f"`{r['overrides']}`",
         r["seeds"], f"{_num(r['mean'])} vs {_num(r['parent_mean'])}", _ci(r, "delta")]
        for _, r in avg.iterrows()
    ]
    table = _table(["Ablation", "Parent", "Overrides", "Seeds", "Avg vs parent", "Δ [CI]"], rows)
    return (header("Ablations", meta) + "\nEach ablation against its parent variant trained with "
            "the same seed; per-benchmark deltas are in `ablations.csv`.\n\n" + table + "\n")


def claims_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    rows = [[r["claim"], r["paper"], r["ours"], _ci(r, "ours_delta"), r["verdict"]]
            for _, r in frame.iterrows()]
    table = _table(["Claim (paper)", "Paper", "Our counterpart", "Ours [CI]", "Verdict"], rows)
    return (
        header("Headline claims", meta)
        + "\nThe verdict is read off the interval: `holds` when it lies above 0 (the paper's "
        "direction), `does not hold` when it lies below, `not resolvable here` when it contains "
        "0 or this scale has no measurement. Magnitudes are not compared: the tiny scale's "
        "models and benchmarks are not the paper's.\n\n" + table + "\n"
    )
