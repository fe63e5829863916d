"""The names that tie teachers, tokenizers and the two distillation pipelines together, in one place.

Pipeline A (``cross``) distils teacher ``a`` (LLaDA2-MoE, its own tokenizer) through byte-aligned
chunks; Pipeline B (``shared``) distils teacher ``b`` (WeDLM, the student's vocabulary) position by
position.
"""

from __future__ import annotations

TEACHER_TOKENIZER = {"a": "teacher_a", "b": "teacher_b"}  # teacher kind -> tokenizer name
PIPELINE_TEACHER = {"cross": "a", "shared": "b"}  # pipeline -> teacher kind
PIPELINE_ALIGNMENT = {"cross": "A", "shared": "B"}  # pipeline -> tide.align's pipeline letter


def pipeline_train(distill: dict, pipeline: str) -> dict:
    """The trainer settings of a distillation run in ``pipeline``: ``distill.train`` (the config's
    ``distill`` section) with the pipeline's own ``train`` overrides over it."""
    return distill["train"] | distill["pipelines"][pipeline]["train"]


def pipeline_tokenizer(pipeline: str) -> str:
    """The tokenizer name of ``pipeline``'s teacher; ``ValueError`` names an unknown pipeline."""
    if pipeline not in PIPELINE_TEACHER:
        raise ValueError(f"unknown pipeline {pipeline!r} (known: {', '.join(PIPELINE_TEACHER)})")
    return TEACHER_TOKENIZER[PIPELINE_TEACHER[pipeline]]
