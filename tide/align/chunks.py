"""Chunks of two tokenizations of the same bytes, their 0/1 matrices, and chunk-consistent masking.

A chunk ``(t_start, t_end, s_start, s_end)`` is a minimal pair of contiguous token spans, teacher
and student, that cover the same bytes and end on a byte boundary shared by both tokenizations
(1:1, 1:n, n:1 or n:m tokens). Method spec §(d).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Chunk = tuple[int, int, int, int]


def _leading_spaces(tokens: Sequence[bytes]) -> int:
    joined = b"".join(tokens)
    return len(joined) - len(joined.lstrip(b" "))


def equalise_leading_spaces(
    teacher_tokens: Sequence[bytes], student_tokens: Sequence[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """Copies of both lists where the side with fewer leading spaces gets the missing spaces
    (``Ġ``) prefixed to its first token, so a space that one template put inside the content range
    and the other outside it does not shift every boundary."""
    t, s = list(teacher_tokens), list(student_tokens)
    if not t or not s:
        return t, s
    gap = _leading_spaces(t) - _leading_spaces(s)
    if gap > 0:
        s[0] = b" " * gap + s[0]
    elif gap < 0:
        t[0] = b" " * -gap + t[0]
    return t, s


def align_chunks(teacher_tokens: Sequence[bytes], student_tokens: Sequence[bytes]) -> list[Chunk]:
    """Greedy common-boundary walk over two token lists (bytes of each token).

    Both sides advance through their tokens keeping cumulative byte lengths; whenever the lengths
    are equal a chunk ends there on both sides. Tokens after the last common boundary form no chunk.
    Finally every chunk whose concatenated teacher bytes differ from its student bytes is dropped
    (after :func:`equalise_leading_spaces`). Returns ``(t_start, t_end, s_start, s_end)`` in order.
    """
    t, s = equalise_leading_spaces(teacher_tokens, student_tokens)
    n_t, n_s = len(t), len(s)
    chunks: list[Chunk] = []
    if n_t == 0 or n_s == 0:
        return chunks
    i = j = t_start = s_start = 0
    cum_t, cum_s = len(t[0]), len(s[0])  # byte lengths including token i / j
    while True:
        if cum_t == cum_s:
            chunks.append((t_start, i + 1, s_start, j + 1))
            i, j = i + 1, j + 1
            t_start, s_start = i, j
            if i >= n_t or j >= n_s:
                break
            cum_t += len(t[i])
            cum_s += len(s[j])
        elif cum_t < cum_s:
            i += 1
            if i >= n_t:
                break
            cum_t += len(t[i])
        else:
            j += 1
            if j >= n_s:
                break
            cum_s += len(s[j])
    return [c for c in chunks if b"".join(t[c[0] : c[1]]) == b"".join(s[c[2] : c[3]])]


def chunk_matrices(
    chunks_per_example: Sequence[Sequence[Sequence[int]]],
    student_len: int,
    teacher_len: int,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk membership matrices ``A_S [B, L, C]`` and ``A_T [B, L_T, C]`` (bool, padded).

    ``A_S[b, i, c] = s_start <= i < s_end`` and ``A_T[b, k, c] = t_start <= k < t_end`` for chunk
    ``c`` of example ``b``; ``C = max(1, max_b C_b)``, padded chunk columns are all False. A chunk
    reaching past ``student_len`` / ``teacher_len`` raises ValueError (truncate the chunks first).
    """
    n_chunks = max([len(c) for c in chunks_per_example] + [1])
    bounds = torch.zeros(len(chunks_per_example), n_chunks, 4, dtype=torch.long)
    for b, chunks in enumerate(chunks_per_example):
        if len(chunks) == 0:
            continue
        rows = torch.as_tensor(chunks, dtype=torch.long).reshape(-1, 4)
        t0, t1, s0, s1 = rows.unbind(1)
        bad = (
            (t0 < 0) | (t1 <= t0) | (t1 > teacher_len) | (s0 < 0) | (s1 <= s0) | (s1 > student_len)
        )
        if bad.any():
            c = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"chunk_matrices: example {b} chunk {c} = {tuple(rows[c].tolist())} is empty or outside "
                f"student_len={student_len} / teacher_len={teacher_len}"
            )
        bounds[b, : len(rows)] = rows
    bounds = bounds.to(device)
    pos_t = torch.arange(teacher_len, device=bounds.device)[None, :, None]
    pos_s = torch.arange(student_len, device=bounds.device)[None, :, None]
    a_t = (pos_t >= bounds[:, None, :, 0]) & (pos_t < bounds[:, None, :, 1])
    a_s = (pos_s >= bounds[:, None, :, 2]) & (pos_s < bounds[:, None, :, 3])
    return a_s, a_t


def chunk_consistent_mask(
    masked0: torch.Tensor,
    A_S: torch.Tensor,
    A_T: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Enlarge a random student mask to whole chunks and carry it to the teacher (spec §d).

    ``masked0 [B, L]`` bool (initial BD3LM mask), ``A_S [B, L, C]``, ``A_T [B, L_T, C]`` bool,
    ``labels [B, L]``. Returns

    * ``masked [B, L]``: ``masked0 | (any_c has_masked & A_S) & maskable``, maskable = label != -100;
    * ``teacher_masked [B, L_T]``: ``any_c has_masked & A_T``;
    * ``active [B, C]``: ``has_masked & ~has_prompt`` (``has_prompt``: a chunk token has label -100);
    * ``has_masked [B, C]``: ``any_i masked0 & A_S``.
    """
    if masked0.dim() != 2 or A_S.dim() != 3 or A_T.dim() != 3:
        raise ValueError(
            "chunk_consistent_mask: need masked0 [B, L], A_S [B, L, C], A_T [B, L_T, C]"
        )
    if A_S.shape[:2] != masked0.shape or labels.shape != masked0.shape:
        raise ValueError(
            f"chunk_consistent_mask: masked0 {tuple(masked0.shape)}, labels {tuple(labels.shape)} and "
            f"A_S {tuple(A_S.shape)} disagree on [B, L]"
        )
    if A_T.shape[0] != A_S.shape[0] or A_T.shape[2] != A_S.shape[2]:
        raise ValueError(
            f"chunk_consistent_mask: A_T {tuple(A_T.shape)} and A_S {tuple(A_S.shape)} disagree on B or C"
        )
    masked0, A_S, A_T = masked0.bool(), A_S.bool(), A_T.bool()
    prompt = labels == ignore_index
    has_masked = (masked0[:, :, None] & A_S).any(dim=1)
    in_masked_chunk = (has_masked[:, None, :] & A_S).any(dim=2)
    masked = masked0 | (in_masked_chunk & ~prompt)
    teacher_masked = (has_masked[:, None, :] & A_T).any(dim=2)
    has_prompt = (prompt[:, :, None] & A_S).any(dim=1)
    return masked, teacher_masked, has_masked & ~has_prompt, has_masked
