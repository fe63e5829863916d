"""How many masked tokens the BD3LM sampler commits at each denoising step of a block.

Transcribes dllm's `get_num_transfer_tokens` (linear schedule α(t) = 1 − t evaluated in float32)
so that the split matches the reference sampler token for token, e.g. 32 masks over 10 steps
give 3,3,3,3,3,3,3,4,3,4 (not 4,4,3,...).
"""

from __future__ import annotations

import torch


def _f32(value: float) -> float:
    """Round a Python float to float32 and back (emulates a float32 tensor op + .item())."""
    return torch.tensor(value, dtype=torch.float32).item()


def _unmask_ratios(steps: int) -> list[float]:
    """Per step j, the fraction r_j of remaining masks that stay masked: (1 − α_s)/(1 − α_t) in fp32.

    t = (S − j)/S, s = (S − j − 1)/S, α(u) = 1 − u; r_j ≈ s/t, so ≈ rem/(S − j) tokens get committed.
    """
    ratios = []
    for j in range(steps):
        t = _f32((steps - j) / steps)
        s = _f32((steps - j - 1) / steps)
        alpha_t = _f32(1.0 - t)
        alpha_s = _f32(1.0 - s)
        ratios.append(_f32(_f32(1.0 - alpha_s) / _f32(1.0 - alpha_t)))
    return ratios


def _row_schedule(mask_count: int, ratios: list[float]) -> list[int]:
    """Tokens committed per step for one row; zero entries dropped."""
    remaining = mask_count
    counts = []
    for ratio in ratios:
        if remaining == 0:
            break
        # Python's round() is round-half-to-even on float64, as torch.round in the reference.
        count = min(remaining, round(float(remaining) * (1.0 - ratio)))
        remaining -= count
        if count > 0:
            counts.append(count)
    return counts


def num_transfer_tokens(mask_counts: torch.Tensor, steps: int) -> torch.Tensor:
    """Number of tokens to commit per step, per row.

    mask_counts: LongTensor[B], masked tokens per row in the current block.
    steps: denoising steps available for the block (≥ 1).
    Returns: LongTensor[B, S'] on mask_counts' device, S' = the longest row schedule; zero entries are
    dropped per row and rows are right-padded with 0. Each row sums to its mask count (the last step
    has ratio 0 and so commits everything left).
    """
    if steps < 1:
        raise ValueError(f"num_transfer_tokens: steps must be >= 1, got {steps}")
    if mask_counts.dim() != 1:
        raise ValueError(
            f"num_transfer_tokens: mask_counts must be 1-D [B], got shape {tuple(mask_counts.shape)}"
        )
    counts = [int(c) for c in mask_counts.tolist()]
    if any(c < 0 for c in counts):
        raise ValueError(f"num_transfer_tokens: negative mask count in {counts}")
    ratios = _unmask_ratios(steps)
    rows = [_row_schedule(c, ratios) for c in counts]
    width = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(mask_counts.device)
