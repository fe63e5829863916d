"""Markdown of the tables: the main table in the paper's layout (benchmarks as rows, systems as
columns grouped as the paper groups them), the others as plain tables with their intervals."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from tide.pipelines import PIPELINES
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
    def ours(r: pd.Series) -> str:
        ratio = r.get("ours_ratio")
        return _ci(r, "ours_delta") if ratio is None or pd.isna(ratio) else f"{ratio:.2f}x"

    rows = [[r["claim"], r["paper"], r["ours"], ours(r), r["verdict"]]
            for _, r in frame.iterrows()]
    table = _table(["Claim (paper)", "Paper", "Our counterpart", "Ours [CI]", "Verdict"], rows)
    return (
        header("Headline claims", meta)
        + "\nThe verdict is read off the interval: `holds` when it lies above 0 (the paper's "
        "direction), `does not hold` when it lies below, `not resolvable here` when it contains "
        "0 or this scale has no measurement. Magnitudes are not compared: the tiny scale's "
        "models and benchmarks are not the paper's. The efficiency claims read the profiles "
        "(`efficiency` table): a ratio `x` teacher/student; they are judged only from the real "
        "models' sizes on a GPU (see the efficiency table).\n\n" + table + "\n"
    )


def _signal_label(pipeline: str, name: str) -> str:
    if name == "teacher":
        return f"Teacher {PIPELINE_LETTER[pipeline]}"
    if name == "bd3lm":
        return "BD3LM (start of every run)"
    if name.startswith("ablation:"):
        return f"ablation `{name.split(':', 1)[1]}`"
    return system_label(System(pipeline, name))


def _mean_std(row: pd.Series, digits: int) -> str:
    text = _num(row["mean"], digits)
    return text + (f" ± {_num(row['std'], digits)}" if not pd.isna(row["std"]) else "")


def signal_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """Per pipeline: KL to the teacher (and its difference to the CE-only control and to BD3LM),
    gold NLL and top-1 of every model; then the teacher's lead per benchmark."""
    parts = []
    for pipeline in dict.fromkeys(frame["pipeline"]):
        part = frame[frame["pipeline"] == pipeline]
        sig = part[part["measure"] != "lead"]
        means = sig.pivot_table(index="system", columns="measure", values="mean", sort=False)
        unit = "active chunk" if PIPELINES[pipeline].chunk_level else "masked aligned token"
        rows = []
        for name in dict.fromkeys(sig["system"]):
            cells = sig[sig["system"] == name].set_index("measure")
            kl = means.loc[name, "kl"]
            rows.append([
                _signal_label(pipeline, name), str(int(cells.loc["kl", "n_seeds"])),
                _mean_std(cells.loc["kl"], 3),
                _signed(kl - means.loc["ce_only", "kl"], 3) if "ce_only" in means.index else "",
                _signed(kl - means.loc["bd3lm", "kl"], 3),
                _mean_std(cells.loc["gold_nll"], 3),
                _mean_std(cells.loc["top1"], 3),
            ])  # fmt: skip
        table = _table(["Model", "Seeds", "KL(teacher ‖ model)", "KL − CE only", "KL − BD3LM",
                        "Gold NLL", "Top-1"], rows)
        lead = part[part["measure"] == "lead"]
        lead_rows = [[bench_label(r["benchmark"]),
                      f"{_signed(r['mean'])} [{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"]
                     for _, r in lead.iterrows()]
        units = int(sig["units"].iloc[0]) if len(sig) else 0
        parts.append(
            f"## Pipeline {PIPELINE_LETTER[pipeline]} (`{pipeline}`)\n\n"
            f"Per {unit} of the probe rows ({units} units, the same fixed masks for every model); "
            "mean ± std over seeds.\n\n" + table
            + "\n\nThe teacher's lead over BD3LM on the held-out items (points, paired CI):\n\n"
            + _table(["Benchmark", "Teacher − BD3LM [CI]"], lead_rows) + "\n")
    return (
        header("Teacher signal", meta)
        + "\nHow close each model is to its pipeline's teacher on the world's `signal_probe` rows, "
        "which no model trained on (distilled students included), with the noise of distillation "
        "(BD3LM masks at random times, drawn once and shared by every model). Pipeline B: "
        "KL(teacher ‖ model) over the shared vocabulary at temperature 1 per masked response "
        "token with an aligned teacher token; gold NLL and top-1 of the gold token there. "
        "Pipeline A: the KL between the Bernoulli chunk likelihoods exp(L_T) and exp(L_S) (what "
        "CALM's cross-entropy minimises, less the teacher's entropy) per active chunk; gold NLL = "
        "-L per chunk; top-1 = every token of the chunk is its argmax. A teacher signal that "
        "reaches the student puts a KD variant's KL below the CE-only control's (same rows, "
        "steps and seeds, no teacher).\n\n" + "\n".join(parts)
    )


def _gib(value: Any) -> str:
    return _num(value, 3) if value is not None and not pd.isna(value) and value < 1 else _num(value, 2)


def _ratio(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.2f}x"


def _threads(r: pd.Series) -> str:
    n = r.get("torch_threads")
    return "torch threads unknown" if n is None or pd.isna(n) else f"{int(n)} torch thread(s)"


def efficiency_table(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The student and each teacher: peak memory, best time, tokens/s and the ratios
    teacher/student, per group (checkpoints; real shapes with random weights), then the paper's
    rows; then the efficiency claims' verdicts."""
    from tide.tables.efficiency import MAGNITUDE_SHARE, PAPER, efficiency_claims

    labels = {"student": "Student (BD3LM)", "teacher_a": "Teacher A (LLaDA2-MoE)",
              "teacher_b": "Teacher B (WeDLM)"}
    rows = []
    for _, r in frame.iterrows():
        params = r.get("parameters")
        size = "" if params is None or pd.isna(params) else (
            f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.2f}M")
        layers = r.get("num_hidden_layers")
        depth = "" if layers is None or pd.isna(layers) else f"{int(layers)}"
        if r["random_weights"] and not pd.isna(r.get("full_depth")) and layers != r["full_depth"]:
            depth += f" of {int(r['full_depth'])}"
        rows.append([
            "paper" if r["group"] == PAPER else r["group"], labels.get(r["role"], r["role"]),
            "" if r["group"] == PAPER else f"`{r['model']}`", size, depth,
            "yes" if r["random_weights"] else "no", str(r["device"]), str(r["dtype"]),
            "" if pd.isna(r.get("gen_length")) else str(int(r["gen_length"])),
            _gib(r["peak_memory_gib"]), _num(r["best_time_s"], 2), _num(r.get("tokens_per_s"), 1),
            _ratio(r.get("memory_ratio")), _ratio(r.get("time_ratio")),
        ])  # fmt: skip
    table = _table(["Group", "Model", "Path", "Params", "Layers", "Random weights", "Device",
                    "Dtype", "Tokens", "Peak memory (GiB)", "Best time (s)", "Tokens/s",
                    "Memory teacher/student", "Time teacher/student"], rows)
    claims = [[claim, what, _ratio(value), verdict]
              for claim, (what, value, verdict) in efficiency_claims(frame).items()]
    claim_table = _table(["Claim (paper)", "Our counterpart", "Ours", "Verdict"], claims)
    measured = frame[frame["group"] != PAPER]
    settings = [f"{r['model']}` ({_threads(r)}): `{r['sampler']} {r['sampler_settings']}"
                for _, r in measured.iterrows()]
    return (
        f"# Efficiency\n\nMade by `python -m tide tables` from the profiles in results/profile "
        f"(`python -m tide profile`, scale `{meta['scale']}`).\n\n"
        "Peak memory and the best wall time of `repeats` runs after a warm-up, generating the "
        "`Tokens` column's tokens per prompt (no early stop at EOS), batch 1. On CUDA memory is "
        "`torch.cuda.max_memory_allocated` (weights included); on a CPU it is the process's peak "
        "resident memory during the run above its resident memory before the model was loaded "
        "(weights + activations + allocator slack; for models of a few MB the slack dominates). "
        "Ratios compare runs of the same device, dtype, tokens and batch. The paper's rows: "
        "README Highlights, one H100, bfloat16, best of five, 256 tokens; its \"GB\" is read as "
        "GiB (teachers.md §3). The distilled students share the BD3LM student's architecture, "
        "hence its cost.\n\n" + table
        + "\n\n## The paper's efficiency claims\n\n"
        "Judged only from teacher A (LLaDA2.0-mini) at its real size on a GPU: from the prepared "
        f"checkpoints, `holds` when our ratio reaches {MAGNITUDE_SHARE:.0%} of the paper's and "
        "`does not hold` below; from its real shape with random weights, the same for memory, while "
        "the time ratio is only an upper bound (random weights never reach the teacher's "
        "confidence threshold, so it runs every step) and can only fail. The tiny models' ratios "
        "are measured and shown but do not test the claims: `not resolvable here`.\n\n"
        + claim_table + "\n\nSampler settings per profile: "
        + ("; ".join(f"`{s}`" for s in settings) or "none measured") + "\n"
    )
