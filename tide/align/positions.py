"""Pipeline B: token-position alignment of two chat templates over a shared vocabulary (spec §c.6, §f).

Both templates are rendered and tokenized, each assistant content is located on both sides
(:mod:`tide.align.ranges`), and the tokens lying fully inside the content are paired. Pairing is
by equal byte offsets relative to the content start: wherever the two tokenizations agree (the
normal case, same vocabulary and same bytes) this is exactly the official "k-th with k-th" pairing,
and where they diverge locally the tokens there stay unpaired instead of shifting every later pair.
A pair whose ids differ is dropped and counted (never happens with a truly shared vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tide.align.ranges import ByteSpan, content_byte_spans
from tide.align.tokens import (
    byte_ends,
    check_messages,
    encode_chat,
    prompt_labels,
    prompt_length,
    token_bytes,
)

Inner = list[tuple[int, int, int]]  # (start, end) relative to the content start, token index


def inner_tokens(ends: Sequence[int], span: ByteSpan) -> Inner:
    """Tokens fully inside the byte ``span``: ``(rel_start, rel_end, index)`` in order."""
    lo, hi = span
    out = []
    start = 0
    for i, end in enumerate(ends):
        if start >= lo and end <= hi and end > start:
            out.append((start - lo, end - lo, i))
        start = end
        if start >= hi:
            break
    return out


def pair_by_offsets(student: Inner, teacher: Inner) -> list[tuple[int, int]]:
    """``(student index, teacher index)`` of the tokens covering identical relative byte ranges."""
    pairs = []
    i = j = 0
    while i < len(student) and j < len(teacher):
        (s0, s1, si), (t0, t1, ti) = student[i], teacher[j]
        if (s0, s1) == (t0, t1):
            pairs.append((si, ti))
        if s1 <= t1:
            i += 1
        if t1 <= s1:
            j += 1
    return pairs


def align_positions(
    student_tok,
    teacher_tok,
    messages: list[dict],
    *,
    max_student_len: int,
    max_teacher_len: int | None = None,
) -> dict | None:
    """Student/teacher ids, student labels and paired positions of one conversation (Pipeline B).

    Returns None when the student prompt alone has ``>= max_student_len`` tokens (dropped sample).
    Otherwise a dict with ``input_ids``/``labels`` (student template, cut to ``max_student_len``,
    ``-100`` on the prompt), ``teacher_input_ids`` (teacher template cut to ``max(align_teacher) + 1``;
    when there is no pair, the whole sequence), equal-length ``align_student``/``align_teacher`` (pairs
    of assistant-content positions with equal ids; pairs past either cut are dropped) and ``stats``
    (``content_tokens`` student tokens inside assistant contents, ``pairs``, ``id_mismatch``,
    ``pairs_cut_by_truncation``). ``max_teacher_len`` (optional) caps the teacher like the student.
    """
    check_messages(messages)
    s_ids = encode_chat(student_tok, messages)
    s_pieces = token_bytes(student_tok, s_ids)
    n_prompt = prompt_length(student_tok, messages, s_pieces)
    if n_prompt >= max_student_len:
        return None
    t_ids = encode_chat(teacher_tok, messages)
    t_pieces = token_bytes(teacher_tok, t_ids)
    roles = ("assistant",)
    s_spans = content_byte_spans(student_tok, messages, s_pieces, roles=roles)
    t_spans = content_byte_spans(teacher_tok, messages, t_pieces, roles=roles)
    s_ends, t_ends = byte_ends(s_pieces), byte_ends(t_pieces)
    pairs: list[tuple[int, int]] = []
    content_tokens = 0
    for s_span, t_span in zip(s_spans, t_spans):
        if s_span is None:
            continue
        s_inner = inner_tokens(s_ends, s_span)
        content_tokens += len(s_inner)
        if t_span is not None:
            pairs += pair_by_offsets(s_inner, inner_tokens(t_ends, t_span))
    same = [(i, j) for i, j in pairs if s_ids[i] == t_ids[j]]
    t_cap = len(t_ids) if max_teacher_len is None else max_teacher_len
    kept = [(i, j) for i, j in same if i < max_student_len and j < t_cap]
    t_len = max(j for _, j in kept) + 1 if kept else min(len(t_ids), t_cap)
    return {
        "input_ids": s_ids[:max_student_len],
        "labels": prompt_labels(s_ids, n_prompt)[:max_student_len],
        "teacher_input_ids": t_ids[:t_len],
        "align_student": [i for i, _ in kept],
        "align_teacher": [j for _, j in kept],
        "stats": {
            "content_tokens": content_tokens,
            "pairs": len(kept),
            "id_mismatch": len(pairs) - len(same),
            "pairs_cut_by_truncation": len(same) - len(kept),
        },
    }


def collate_positions(
    align_student: Sequence[Sequence[int]], align_teacher: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad per-example index lists to ``[B, max_n]`` (``max_n >= 1``, padding index 0).

    Returns ``(student_idx [B, max_n] long, teacher_idx [B, max_n] long, valid [B, max_n] bool)``,
    ``valid[b, n] = n < n_aligned[b]``.
    """
    if len(align_student) != len(align_teacher):
        raise ValueError(
            f"collate_positions: {len(align_student)} student lists vs {len(align_teacher)} teacher lists"
        )
    lengths = []
    for b, (s, t) in enumerate(zip(align_student, align_teacher)):
        if len(s) != len(t):
            raise ValueError(
                f"collate_positions: example {b} has {len(s)} student vs {len(t)} teacher indices"
            )
        lengths.append(len(s))
    max_n = max(lengths + [1])
    student_idx = torch.zeros(len(lengths), max_n, dtype=torch.long)
    teacher_idx = torch.zeros(len(lengths), max_n, dtype=torch.long)
    for b, n in enumerate(lengths):
        if n:
            student_idx[b, :n] = torch.as_tensor(list(align_student[b]), dtype=torch.long)
            teacher_idx[b, :n] = torch.as_tensor(list(align_teacher[b]), dtype=torch.long)
    valid = torch.arange(max_n)[None, :] < torch.as_tensor(lengths, dtype=torch.long)[:, None]
    return student_idx, teacher_idx, valid
