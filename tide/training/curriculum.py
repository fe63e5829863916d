"""Training curricula: step ranges whose batches come only from some corpus families.

A tiny model learns to answer a multiple-choice question with the option's letter only from batches
of multiple-choice rows: any other family in the batch keeps that skill from forming, while once
formed it survives mixed batches (docs/deviations.md). A curriculum entry such as
``{"families": ["mmlu", "hellaswag"], "start": 1500, "end": 1950}`` gives steps 1500-1949 batches of
those families only; every other step draws from all rows. Each pool (all rows, each entry's
families) is a stream of seeded epochs, so the mixed stream carries on after a focused range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


def check_curriculum(curriculum: Sequence[dict], max_steps: int) -> list[dict]:
    """The entries sorted by ``start``; a range outside ``[0, max_steps]``, empty or overlapping
    another is an error naming it."""
    entries = sorted(curriculum, key=lambda c: c["start"])
    for i, c in enumerate(entries):
        if not 0 <= c["start"] < c["end"] <= max_steps:
            raise ValueError(f"curriculum range [{c['start']}, {c['end']}) is not inside the "
                             f"run's {max_steps} steps (or is empty)")
        if i and c["start"] < entries[i - 1]["end"]:
            raise ValueError(f"curriculum ranges [{entries[i - 1]['start']}, "
                             f"{entries[i - 1]['end']}) and [{c['start']}, {c['end']}) overlap")
        if not c["families"]:
            raise ValueError(f"curriculum range [{c['start']}, {c['end']}) names no family")
    return entries


def _stream(pool: list[int], lengths: list[int], batch_size: int, by_length: bool,
            generator: torch.Generator) -> Iterator[int]:
    """Row indices of ``pool``, one seeded epoch after another (length-grouped if ``by_length``)."""
    while True:
        if by_length:
            order = get_length_grouped_indices([lengths[i] for i in pool], batch_size,
                                               generator=generator)
        else:
            order = torch.randperm(len(pool), generator=generator).tolist()
        yield from (pool[j] for j in order)


def curriculum_order(families: Sequence[str | None], lengths: Sequence[int], *, max_steps: int,
                     batch_size: int, curriculum: Sequence[dict], seed: int,
                     group_by_length: bool = True) -> list[int]:
    """Row indices for ``max_steps * batch_size`` draws following ``curriculum``.

    ``families[i]`` / ``lengths[i]``: the corpus family and token count of row ``i``.
    """
    entries = check_curriculum(curriculum, max_steps)
    present = set(families)
    for c in entries:
        missing = sorted(set(c["families"]) - present)
        if missing:
            raise ValueError(f"curriculum names {missing}, which no training row has "
                             f"(families there: {sorted(f for f in present if f)})")
    lengths = list(lengths)

    def stream(pool: list[int], k: int) -> Iterator[int]:
        return _stream(pool, lengths, batch_size, group_by_length,
                       torch.Generator().manual_seed(seed * 1_000_003 + k))

    mixed = stream(list(range(len(families))), 0)
    order: list[int] = []
    step = 0
    for k, c in enumerate([*entries, {"start": max_steps, "end": max_steps, "families": []}], 1):
        order += [next(mixed) for _ in range((c["start"] - step) * batch_size)]
        wanted = set(c["families"])
        focused = stream([i for i, f in enumerate(families) if f in wanted], k)
        order += [next(focused) for _ in range((c["end"] - c["start"]) * batch_size)]
        step = c["end"]
    return order


class FixedOrderSampler(Sampler[int]):
    """Yields a precomputed list of row indices (one pass = the whole run)."""

    def __init__(self, order: list[int]):
        self.order = order

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
