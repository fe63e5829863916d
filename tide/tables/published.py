"""The paper's published numbers (``published/*.csv``, copied from the official README; see
``published/README.md``) and how our systems and benchmarks map onto its columns and rows."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from tide.distill.objectives import NATIVE
from tide.pipelines import PIPELINES
from tide.tables.scores import AR, BD3LM, System

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"

# our benchmark family -> the paper's row label, in the paper's row order
BENCHMARK_LABELS = {
    "gsm8k": "GSM8K", "math": "MATH", "bbh": "BBH", "mmlu_pro": "MMLU-Pro",
    "hellaswag": "HellaSwag", "mmlu": "MMLU", "humaneval": "HumanEval", "mbpp": "MBPP",
}  # fmt: skip
AVG = "avg"
AVG_EXCL = "avg_excl"  # the average without the families of ``tables.avg_excluding``
# the score a guesser gets (multiple choice: one over the options; generated answers: none)
CHANCE = {"mmlu": 0.25, "mmlu_pro": 0.10, "hellaswag": 0.25}

# our systems -> the paper's columns (main_results_long.csv `column`), in the paper's order
PAPER_COLUMNS = {
    AR: "qwen3_0.6b__AR",
    BD3LM: "qwen3_0.6b__BD3LM",
    System("shared", "kl"): "shared_tok_B__KL",
    System("shared", "tide_cross"): "shared_tok_B__TIDE-Cross",
    System("shared", "tide_shared"): "shared_tok_B__TIDE-Shared",
    System("cross", "calm"): "cross_tok_A__CALM",
    System("cross", "tide_shared"): "cross_tok_A__TIDE-Shared",
    System("cross", "tide_cross"): "cross_tok_A__TIDE-Cross",
}
PIPELINE_LETTER = {name: p.letter for name, p in PIPELINES.items()}  # the paper's A and B
VARIANT_LABELS = {
    "ar": "AR", "bd3lm": "BD3LM", "kl": "KL", "calm": "CALM", "tide_cross": "TIDE-Cross",
    "tide_shared": "TIDE-Shared", "ce_only": "CE only", "teacher": "Teacher",
}  # fmt: skip
# native strategy per pipeline (tide.distill.objectives) and its swap, the other pipeline's
# native one (strategy_swap.csv)
SWAPPED = {p: next(v for q, v in NATIVE.items() if q != p) for p in NATIVE}


def system_label(system: System) -> str:
    """``AR``, ``BD3LM``, ``B: KL``, ``A: CE only``, ``Teacher A`` ..."""
    if system.pipeline == "none":
        return VARIANT_LABELS[system.variant]
    letter = PIPELINE_LETTER[system.pipeline]
    if system.variant == "teacher":
        return f"Teacher {letter}"
    return f"{letter}: {VARIANT_LABELS.get(system.variant, system.variant)}"


@cache
def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(PUBLISHED_DIR / name, dtype=str, keep_default_na=False)


def paper_score(system: System, benchmark: str) -> float | None:
    """The published score of ``system`` on ``benchmark`` (a family or ``avg``), or None."""
    column = PAPER_COLUMNS.get(system)
    if column is None or benchmark == AVG_EXCL:
        return None
    label = "Avg" if benchmark == AVG else BENCHMARK_LABELS.get(benchmark)
    rows = _csv("main_results_long.csv")
    hit = rows[(rows["column"] == column) & (rows["benchmark"] == label)]
    return float(hit["score"].iloc[0]) if len(hit) else None


def strategy_swap() -> dict[str, dict[str, float]]:
    """Per pipeline (``cross``, ``shared``): the published native and swapped averages and delta."""
    letters = {v: k for k, v in PIPELINE_LETTER.items()}
    return {
        letters[row["pipeline"]]: {
            "native_avg": float(row["native_avg"]),
            "swapped_avg": float(row["swapped_avg"]),
            "delta": float(row["native_minus_swapped"]),
        }
        for _, row in _csv("strategy_swap.csv").iterrows()
    }


def headline_claims() -> list[dict[str, str]]:
    """The paper's headline claims, one dict per row of ``headline_claims.csv``."""
    return _csv("headline_claims.csv").to_dict("records")


def efficiency() -> list[dict[str, object]]:
    """The paper's efficiency rows (``efficiency.csv``): student, LLaDA2.0-mini teacher and their
    ratio; memory in the paper's "GB", which teachers.md §3 reads as GiB (the teacher's bf16
    weights alone are 32.5e9 bytes = 30.3 GiB < 31.3)."""
    def num(text: str) -> float | None:
        return float(text) if text else None

    roles = {"student": "student", "teacher (Pipeline A)": "teacher_a", "ratio": "ratio"}
    return [
        {"model": row["model"], "role": roles.get(row["role"], row["role"]),
         "hardware": row["hardware"], "dtype": row["dtype"],
         "peak_memory_gb": None if row["role"] == "ratio" else num(row["peak_memory_gb"]),
         "time_256_tokens_s": None if row["role"] == "ratio" else num(row["time_256_tokens_s"]),
         "tokens_per_s": None if row["role"] == "ratio" else num(row["tokens_per_s_teaser_figure"]),
         "memory_ratio": num(row["peak_memory_gb"]) if row["role"] == "ratio" else None,
         "time_ratio": num(row["time_256_tokens_s"]) if row["role"] == "ratio" else None,
         "tokens_per_s_ratio": (num(row["tokens_per_s_teaser_figure"])
                                if row["role"] == "ratio" else None)}
        for _, row in _csv("efficiency.csv").iterrows()
    ]
