"""Distillation batches: rows of an alignment cache → the tensors :class:`DistillTrainer` reads.

Student side exactly as BD3LM SFT (:class:`tide.training.data.BlockCollator`: EOS with EOS labels up to a
block multiple, then PAD with label -100 to the batch max). Teacher side (method.md §d, §f):

* Pipeline A (``cross``, chunks): teacher ids right-padded with the teacher pad id to the batch max
  (no block padding), ``teacher_attention`` 1/0, chunk matrices ``align_student [B,L,C]``,
  ``align_teacher [B,L_T,C]`` bool (method.md's ``A_S``, ``A_T``).
* Pipeline B (``shared``, positions): each teacher row first filled with the teacher EOS up to a
  multiple of the block size (attended, as in the reference collator), then the pad id to the batch
  max (attention 0); ``align_student``/``align_teacher [B,N]`` long, ``align_valid [B,N]`` bool.

A malformed row raises :class:`DistillDataError` naming the row (batch index and source line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from tide.align import chunk_matrices, collate_positions
from tide.align.cache import ROW_FIELDS
from tide.pipelines import ALIGN_STUDENT, ALIGN_TEACHER, ALIGN_VALID, get_pipeline
from tide.training.data import BlockCollator

# per alignment kind (tide.pipelines): the keys of an alignment cache's row
ROW_KEYS = {kind: tuple(field for field, _ in fields) for kind, fields in ROW_FIELDS.items()}


class DistillDataError(ValueError):
    """A distillation row that cannot be collated; the message names the row."""


class DistillDataset(Dataset):
    """Map-style view of an alignment cache (or any sequence of row dicts): ``ds[i] = cache[i]``."""

    def __init__(self, cache: Sequence[dict]):
        self.cache = cache
        name = getattr(cache, "pipeline", None)
        self.pipeline: str | None = get_pipeline(name).name if name is not None else None

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict:
        return self.cache[index]


def _row_name(row: dict, index: int) -> str:
    line = row.get("line") if isinstance(row, dict) else None
    return f"row {index} of the batch" + (f" (line {line} of the distill split)" if line else "")


def check_row(row: dict, pipeline: str, index: int = 0) -> None:
    """Raise :class:`DistillDataError` unless ``row`` is a well-formed row of ``pipeline``.

    Checks: the keys are there; ``labels`` as long as ``input_ids``; teacher ids non-empty; every
    chunk ``(t0, t1, s0, s1)`` non-empty and inside both sequences (A); paired index lists of equal
    length, inside both sequences (B).
    """
    where = _row_name(row, index)
    if not isinstance(row, dict):
        raise DistillDataError(f"{where}: expected a dict, got {type(row).__name__}")
    pipe = get_pipeline(pipeline)
    missing = [k for k in ROW_KEYS[pipe.alignment] if k not in row]
    if missing:
        raise DistillDataError(f"{where}: missing key(s) {', '.join(missing)} for pipeline {pipeline}")
    n_s, n_t = len(row["input_ids"]), len(row["teacher_input_ids"])
    if len(row["labels"]) != n_s:
        raise DistillDataError(f"{where}: {len(row['labels'])} labels for {n_s} input_ids")
    if n_s == 0 or n_t == 0:
        raise DistillDataError(f"{where}: empty input_ids or teacher_input_ids")
    if pipe.chunk_level:
        for c, chunk in enumerate(row["chunks"]):
            if len(chunk) != 4:
                raise DistillDataError(f"{where}: chunk {c} = {chunk!r} is not (t0, t1, s0, s1)")
            t0, t1, s0, s1 = chunk
            if not (0 <= t0 < t1 <= n_t and 0 <= s0 < s1 <= n_s):
                raise DistillDataError(
                    f"{where}: chunk {c} = {tuple(chunk)} is empty or outside the student "
                    f"({n_s} tokens) / teacher ({n_t} tokens) sequence"
                )
        return
    a_s, a_t = row["align_student"], row["align_teacher"]
    if len(a_s) != len(a_t):
        raise DistillDataError(
            f"{where}: {len(a_s)} align_student vs {len(a_t)} align_teacher indices"
        )
    for n, (i, k) in enumerate(zip(a_s, a_t)):
        if not (0 <= i < n_s and 0 <= k < n_t):
            raise DistillDataError(
                f"{where}: pair {n} = ({i}, {k}) is outside the student ({n_s} tokens) / "
                f"teacher ({n_t} tokens) sequence"
            )


def pad_teacher(
    rows: Sequence[Sequence[int]], pad_id: int, eos_id: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher ids ``[B, L_T]`` and attention ``[B, L_T]`` (long, 1 = token, 0 = pad).

    Each row is first extended with ``eos_id`` to a multiple of ``block_size`` (these count as
    tokens; ``block_size=1`` adds none), then right-padded with ``pad_id`` to the longest row.
    """
    filled = [list(ids) + [eos_id] * ((-len(ids)) % block_size) for ids in rows]
    width = max(len(ids) for ids in filled)
    ids_out = torch.full((len(filled), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(filled), width), dtype=torch.long)
    for b, ids in enumerate(filled):
        ids_out[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[b, : len(ids)] = 1
    return ids_out, attention


@dataclass
class DistillCollator:
    """Rows of a :class:`DistillDataset` → one distillation batch (see the module docstring).

    Returns ``input_ids, labels [B,L]`` (``L`` a block multiple), ``teacher_ids,
    teacher_attention [B,L_T]``, and ``align_student [B,L,C]``, ``align_teacher [B,L_T,C]`` bool
    (``cross``) or ``align_student, align_teacher [B,N]`` long and ``align_valid [B,N]`` bool
    (``shared``).
    ``teacher_eos_id`` (Pipeline B block fill) defaults to ``teacher_pad_id``.
    """

    pipeline: str
    student_pad_id: int
    student_eos_id: int
    teacher_pad_id: int
    block_size: int
    teacher_eos_id: int | None = None

    def __post_init__(self):
        self.pipeline = get_pipeline(self.pipeline).name
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        self.student = BlockCollator(self.student_pad_id, self.student_eos_id, self.block_size)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise DistillDataError("empty batch")
        for b, row in enumerate(rows):
            check_row(row, self.pipeline, b)
        batch = self.student(rows)
        shared = not get_pipeline(self.pipeline).chunk_level
        eos = self.teacher_pad_id if self.teacher_eos_id is None else self.teacher_eos_id
        batch["teacher_ids"], batch["teacher_attention"] = pad_teacher(
            [row["teacher_input_ids"] for row in rows],
            self.teacher_pad_id,
            eos,
            self.block_size if shared else 1,
        )
        if shared:
            a_s, a_t, valid = collate_positions(
                [row["align_student"] for row in rows], [row["align_teacher"] for row in rows]
            )
            batch |= {ALIGN_STUDENT: a_s, ALIGN_TEACHER: a_t, ALIGN_VALID: valid}
        else:
            batch[ALIGN_STUDENT], batch[ALIGN_TEACHER] = chunk_matrices(
                [row["chunks"] for row in rows],
                batch["input_ids"].shape[1],
                batch["teacher_ids"].shape[1],
            )
        return batch
