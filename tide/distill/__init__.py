"""Distillation helpers that need no trainer: CompDemo split/combine (token and chunk level)."""

from tide.distill.compdemo import (
    DEFAULT_DEMO_RATIO,
    compdemo_combine,
    compdemo_split,
    compdemo_split_chunks,
    expand_chunks,
)

__all__ = [
    "DEFAULT_DEMO_RATIO",
    "compdemo_combine",
    "compdemo_split",
    "compdemo_split_chunks",
    "expand_chunks",
]
