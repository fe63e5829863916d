"""CompDemo (complementary demonstrations): two teacher passes over complementary mask halves.

The masked positions are split at random into parts A and B (ratio ``rho`` goes to A). Pass 1 masks
only B (A is revealed to the teacher as a demonstration), pass 2 masks only A. The teacher logits
used for distillation come from the pass in which a position is masked: pass 2 on A, pass 1
everywhere else. Only the teacher input changes; the student input is untouched.
Token level (Pipeline B and non-aligned modes): :func:`compdemo_split` on ``masked [B, L]``.
Chunk level (Pipeline A): :func:`compdemo_split_chunks` on ``has_masked [B, C]``, then
:func:`expand_chunks` maps each part to teacher tokens through ``A_T [B, L_T, C]``. Both read the
passes through :func:`compdemo_combine`.
"""

from __future__ import annotations

import torch

DEFAULT_DEMO_RATIO = 0.5


def _split(
    selected: torch.Tensor, ratio: float, generator: torch.Generator | None, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(selected & (r < ratio), selected & ~(r < ratio))`` with ``r ~ U[0,1)`` iid per element."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name}: ratio must be in [0, 1], got {ratio}")
    selected = selected.bool()
    draw_device = generator.device if generator is not None else selected.device
    r = torch.rand(selected.shape, generator=generator, device=draw_device).to(selected.device)
    to_a = r < ratio
    return selected & to_a, selected & ~to_a


def compdemo_split(
    masked: torch.Tensor, ratio: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split masked positions ``[B, L]`` bool into ``(part_a, part_b)``, a partition of ``masked``.

    ``part_a = masked & (r < ratio)``, ``part_b = masked & ~(r < ratio)``, one ``U[0,1)`` draw per
    position (shape ``[B, L]``, on the generator's device).
    """
    return _split(masked, ratio, generator, "compdemo_split")


def compdemo_split_chunks(
    has_masked: torch.Tensor, ratio: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-level split of ``has_masked [B, C]`` bool into ``(chunk_a, chunk_b)`` (same rule)."""
    return _split(has_masked, ratio, generator, "compdemo_split_chunks")


def expand_chunks(chunk_sel: torch.Tensor, A_T: torch.Tensor) -> torch.Tensor:
    """Teacher tokens ``[B, L_T]`` covered by a selected chunk.

    ``chunk_sel [B, C]`` bool, ``A_T [B, L_T, C]`` bool (teacher token k lies in chunk c):
    ``out[b, k] = any_c (A_T[b, k, c] & chunk_sel[b, c])``.
    """
    if A_T.dim() != 3 or chunk_sel.shape != (
        A_T.shape[0],
        A_T.shape[2],
    ):
        raise ValueError(
            f"expand_chunks: chunk_sel {tuple(chunk_sel.shape)} must be [B, C] for A_T "
            f"{tuple(A_T.shape)} = [B, L_T, C]"
        )
    return (A_T.bool() & chunk_sel.bool()[:, None, :]).any(dim=-1)


def compdemo_combine(
    pass1: torch.Tensor,
    pass2: torch.Tensor,
    part_a: torch.Tensor,
    *,
    inplace: bool = False,
) -> torch.Tensor:
    """What the teacher said at each position: pass 2 at ``part_a [B, L]``, pass 1 elsewhere.

    ``pass1``, ``pass2``: the two passes' outputs per teacher position, ``[B, L]`` (token
    log-likelihoods, chunk level) or ``[B, L, V]`` (logits, token level). Pass 1 masked part B
    (revealing A), pass 2 masked part A, so every distilled position is read from the pass in which
    it was masked. ``inplace=True`` writes into ``pass1`` (saves one copy; only for no-grad
    teacher outputs).
    """
    if pass1.shape != pass2.shape or pass1.shape[: part_a.dim()] != part_a.shape:
        raise ValueError(
            f"compdemo_combine: pass1 {tuple(pass1.shape)}, pass2 {tuple(pass2.shape)} and "
            f"part_a {tuple(part_a.shape)} do not match"
        )
    part_a = part_a.bool()
    if inplace:
        pass1[part_a] = pass2[part_a]
        return pass1
    trailing = (1,) * (pass1.dim() - part_a.dim())
    return torch.where(part_a.view(*part_a.shape, *trailing), pass2, pass1)
