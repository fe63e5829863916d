"""lm-eval task definitions: the tiny world's 8 families (``tiny/``, group ``tiny_world``) and the
paper-scale HumanEval task that runs offline (``paper/``). Point lm-eval's ``TaskManager`` at
``TASKS_DIR`` (``include_path``); the YAMLs call functions in :mod:`tide.eval.tasks.utils`."""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
TINY_GROUP = "tiny_world"
FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")
TINY_TASKS = tuple(f"tiny_{family}" for family in FAMILIES)
# (metric, filter) reported for each task; the average over the 8 is the paper's "Avg".
PRIMARY_METRICS = {
    "tiny_mmlu": ("exact_match", "get-answer"),
    "tiny_mmlu_pro": ("exact_match", "custom-extract"),
    "tiny_hellaswag": ("exact_match", "get-answer"),
    "tiny_gsm8k": ("exact_match", "flexible-extract"),
    "tiny_bbh": ("exact_match", "get-answer"),
    "tiny_math": ("exact_match", "boxed"),
    "tiny_humaneval": ("pass@1", "create_test"),
    "tiny_mbpp": ("pass@1", "extract_code"),
    "paper_humaneval": ("pass@1", "create_test"),
}
