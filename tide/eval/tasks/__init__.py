"""lm-eval task definitions: the tiny world's 8 families (``tiny/``, group ``tiny_world``) and the
paper-scale tasks stock lm-eval lacks (``paper/``: the fork-only ``mmlu_generative_dream`` and
``hellaswag_gen``, and HumanEval / MBPP scored in our sandbox). Point lm-eval's ``TaskManager`` at
``TASKS_DIR`` (``include_path``); the YAMLs call functions in :mod:`tide.eval.tasks.utils`."""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
TINY_GROUP = "tiny_world"
FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")
TINY_TASKS = tuple(f"tiny_{family}" for family in FAMILIES)
PAPER_LOCAL_TASKS = ("mmlu_generative_dream", "hellaswag_gen", "paper_humaneval", "paper_mbpp")
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
    "mmlu_generative_dream": ("exact_match", "get-answer"),
    "hellaswag_gen": ("exact_match", "get-answer"),
    "paper_humaneval": ("pass@1", "create_test"),
    "paper_mbpp": ("pass@1", "extract_code"),
}
