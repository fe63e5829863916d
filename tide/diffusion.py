"""BD3LM block diffusion: masking noise, the two-half block attention mask, the student objective.

The student sees ``[xt ; x0]`` (noised copy first, clean copy second, length ``2L``) with position
ids ``[0..L-1, 0..L-1]`` and a block attention mask: a noisy block attends to itself
bidirectionally and to the clean copies of earlier blocks; the clean copy is block-causal; clean
tokens never see noisy ones. Teachers use the same rule with the halves swapped (``[x0 ; xt]``).

Noise (linear schedule ``alpha(t) = 1 - t``): one ``t`` per sequence, ``t = eps + (1 - eps) U``;
a position is masked when it is maskable (label != -100) and an iid ``U[0,1)`` draw is below
``t``. RNG order: the ``[B]`` draw for ``t`` first, then the ``[B, L]`` draw for the mask, both
from the same generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tide.losses import IGNORE_INDEX, bd3lm_ce, loss_weight

__all__ = [
    "Corruption",
    "bd3lm_inputs",
    "bd3lm_loss",
    "block_diffusion_mask",
    "corrupt",
    "draw_mask",
    "loss_weight",
    "mask_slot_loss",
    "masked_diffusion_loss",
    "noise",
    "sample_mask",
    "sample_timesteps",
    "score",
]

DEFAULT_EPS = 1e-3


def block_diffusion_mask(seq_len: int, block_size: int, clean_first: bool) -> torch.Tensor:
    """Boolean attention mask ``[2L, 2L]`` over two concatenated halves (True = may attend).

    ``clean_first=False``: order ``[xt ; x0]`` (student); ``True``: ``[x0 ; xt]`` (teachers).
    With ``h(q)`` the half of index ``q``, ``blk(q) = (q - h(q) L) // block_size`` and ``c(q)``
    its clean flag: ``A[q,k] = (blk_q == blk_k and c_q == c_k)
    or (not c_q and c_k and blk_k < blk_q) or (c_q and c_k and blk_k <= blk_q)``.
    ``seq_len`` need not be a multiple of ``block_size``.
    """
    if seq_len < 1 or block_size < 1:
        raise ValueError(
            f"block_diffusion_mask: seq_len ({seq_len}) and block_size ({block_size}) must be >= 1"
        )
    idx = torch.arange(2 * seq_len)
    second_half = idx >= seq_len
    block = (idx - second_half.long() * seq_len) // block_size
    clean = second_half if not clean_first else ~second_half

    c_q, c_k = clean[:, None], clean[None, :]
    b_q, b_k = block[:, None], block[None, :]
    same_block_same_half = (b_q == b_k) & (c_q == c_k)
    noisy_sees_earlier_clean = ~c_q & c_k & (b_k < b_q)
    clean_block_causal = c_q & c_k & (b_k <= b_q)
    return same_block_same_half | noisy_sees_earlier_clean | clean_block_causal


def _generator_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def sample_timesteps(
    batch: int,
    generator: torch.Generator | None,
    eps: float = DEFAULT_EPS,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """One diffusion time per sequence ``[B]`` (float32): ``t = eps + (1 - eps) U``, ``U ~ U[0,1)``.

    The draw happens on the generator's device (CPU without a generator), then moves to ``device``.
    """
    draw_device = _generator_device(generator, torch.device(device or "cpu"))
    u = torch.rand(batch, generator=generator, device=draw_device, dtype=torch.float32)
    t = eps + (1.0 - eps) * u
    return t if device is None else t.to(device)


def sample_mask(
    maskable: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Masked positions ``[B, L]`` bool: ``(U[b,i] < t[b]) & maskable[b,i]``, fresh ``[B, L]`` draw.

    ``maskable [B, L]`` bool, ``t [B]``. The draw is made on the generator's device.
    """
    if maskable.dim() != 2 or t.shape != maskable.shape[:1]:
        raise ValueError(
            f"sample_mask: expected maskable [B, L] and t [B], got {tuple(maskable.shape)} "
            f"and {tuple(t.shape)}"
        )
    draw_device = _generator_device(generator, maskable.device)
    u = torch.rand(maskable.shape, generator=generator, device=draw_device, dtype=torch.float32)
    u = u.to(maskable.device)
    return (u < t.to(maskable.device, torch.float32)[:, None]) & maskable.bool()


def noise(x0: torch.Tensor, masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Noised ids ``xt [B, L] = where(masked, mask_id, x0)``."""
    return torch.where(masked, torch.full_like(x0, mask_id), x0)


def bd3lm_inputs(
    xt: torch.Tensor, x0: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student forward inputs for ``[xt ; x0]``.

    Returns ``input_ids [B, 2L]``, ``position_ids [B, 2L]`` (``[0..L-1, 0..L-1]``) and a bool
    ``attention_mask [1, 1, 2L, 2L]`` shared over batch and heads (no padding mask: pads fill
    trailing blocks).
    """
    if xt.shape != x0.shape or xt.dim() != 2:
        raise ValueError(
            f"bd3lm_inputs: xt {tuple(xt.shape)} and x0 {tuple(x0.shape)} must both be [B, L]"
        )
    batch, length = x0.shape
    input_ids = torch.cat([xt, x0], dim=1)
    positions = torch.arange(length, device=x0.device).repeat(2)
    position_ids = positions[None, :].expand(batch, 2 * length)
    attention_mask = block_diffusion_mask(length, block_size, clean_first=False).to(x0.device)
    return input_ids, position_ids, attention_mask[None, None]


def uses_right_shift(model: Any) -> bool:
    """Whether a model scores position ``i`` with its output at ``i - 1`` (dllm's
    ``right_shift_logits``; stored in the checkpoint's config: the a2d student's, a tiny teacher's;
    off by default and in the released teachers)."""
    model = getattr(model, "module", model)  # a DDP / FSDP wrapper holds the model as .module
    return bool(getattr(getattr(model, "config", None), "right_shift_logits", False))


def shift_logits_right(logits: torch.Tensor) -> torch.Tensor:
    """``[z0, z0, z1, .., z_{L-2}]`` from ``logits [B, L, V]`` (bd3lm.md, the flag on): position
    ``i`` takes the output of position ``i - 1``; position 0 (always prompt) keeps its own."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def supervised(model: Any, labels: torch.Tensor) -> torch.Tensor:
    """Maskable positions ``[B, L]`` (``labels != -100``), less position 0 when ``model`` shifts its
    logits: no output precedes it (plain-text rows supervise their first token)."""
    maskable = labels != IGNORE_INDEX
    if uses_right_shift(model):
        maskable[:, 0] = False
    return maskable


def student_logits(model: Any, xt: torch.Tensor, x0: torch.Tensor, block_size: int) -> torch.Tensor:
    """The student's logits ``[B, L, V]`` scoring the noisy half of ``[xt ; x0]`` (``[B, L]`` each):
    position ``i`` scored against ``x0[i]``, from output ``i`` (or ``i - 1`` when the model's
    config sets ``right_shift_logits``)."""
    input_ids, position_ids, attention_mask = bd3lm_inputs(xt, x0, block_size)
    out = model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask)
    logits = out.logits[:, : x0.shape[1]]
    return shift_logits_right(logits) if uses_right_shift(model) else logits


def draw_mask(maskable: torch.Tensor, generator: torch.Generator | None,
              eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """One time per row and the positions it masks: ``(t [B], masked [B, L])`` for ``maskable
    [B, L]`` bool (:func:`sample_timesteps`, then :func:`sample_mask`, from one generator)."""
    t = sample_timesteps(maskable.shape[0], generator, eps).to(maskable.device)
    return t, sample_mask(maskable, t, generator)


@dataclass
class Corruption:
    """One batch's BD3LM noise: ``t [B]``, ``maskable``/``masked [B, L]`` bool, the noised ids
    ``xt [B, L]``, and whatever the ``remask`` hook of :func:`corrupt` returned beside the mask."""

    t: torch.Tensor
    maskable: torch.Tensor
    masked: torch.Tensor
    xt: torch.Tensor
    state: tuple = ()


def corrupt(model: Any, x0: torch.Tensor, labels: torch.Tensor, *, mask_id: int,
            generator: torch.Generator | None, eps: float = DEFAULT_EPS,
            remask: Callable[[torch.Tensor], tuple] | None = None) -> Corruption:
    """The noise half of the BD3LM step, shared by SFT, the teachers and distillation.

    ``x0, labels [B, L]``; maskable positions :func:`supervised` (``model`` tells whether it shifts
    its logits); ``t`` and the mask from ``generator`` (:func:`draw_mask`). ``remask(masked)`` may
    change the drawn mask before the noising and returns ``(masked, *state)``: distillation's
    chunk-consistent mask (:func:`tide.align.chunk_consistent_mask`) keeps its teacher-side
    ``state`` in :attr:`Corruption.state`.
    """
    if labels.shape != x0.shape:
        raise ValueError(
            f"corrupt: labels {tuple(labels.shape)} and x0 {tuple(x0.shape)} differ in shape"
        )
    maskable = supervised(model, labels)
    t, masked = draw_mask(maskable, generator, eps)
    state: tuple = ()
    if remask is not None:
        masked, *rest = remask(masked)
        state = tuple(rest)
    return Corruption(t, maskable, masked, noise(x0, masked, mask_id), state)


def score(logits: torch.Tensor, x0: torch.Tensor, noised: Corruption, *, norm: str = "token",
          weight: str = "elbo") -> torch.Tensor:
    """The scoring half: the BD3LM cross-entropy of ``logits [B, L, V]`` (position ``i`` scoring
    ``x0[i]``) at ``noised``'s masked positions (:func:`tide.losses.bd3lm_ce`)."""
    return bd3lm_ce(logits, x0, noised.masked, noised.maskable, noised.t, norm=norm, weight=weight)


def bd3lm_loss(
    model: Any,
    x0: torch.Tensor,
    labels: torch.Tensor,
    *,
    mask_id: int,
    block_size: int,
    generator: torch.Generator | None,
    eps: float = DEFAULT_EPS,
    norm: str = "token",
    weight: str = "elbo",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BD3LM objective of one batch: :func:`corrupt` ``x0``, run ``model`` on ``[xt ; x0]``
    (:func:`student_logits`), :func:`score` ``xt``.

    ``x0, labels [B, L]``; labels are -100 on prompt/pad (maskable: :func:`supervised`); no label
    shift (position ``i`` is scored against ``x0[i]``; see :func:`student_logits` for the logits'
    optional right shift). ``model`` is any HF LM accepting
    ``input_ids``, ``position_ids`` and a 4-D bool ``attention_mask`` (e.g. ``Qwen3ForCausalLM``
    with SDPA). ``norm``/``weight``: see :func:`tide.losses.bd3lm_ce`.
    Returns ``(loss, {"t": [B], "masked": [B, L], "logits": [B, L, V]})``.
    """
    noised = corrupt(model, x0, labels, mask_id=mask_id, generator=generator, eps=eps)
    logits = student_logits(model, noised.xt, x0, block_size)
    loss = score(logits, x0, noised, norm=norm, weight=weight)
    return loss, {"t": noised.t, "masked": noised.masked, "logits": logits}


def masked_diffusion_loss(
    model: Any,
    x0: torch.Tensor,
    labels: torch.Tensor,
    *,
    mask_id: int,
    generator: torch.Generator | None,
    eps: float = DEFAULT_EPS,
    norm: str = "token",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Masked-diffusion (MDLM) objective with full bidirectional attention over ``xt`` alone.

    How Pipeline A queries its teacher (no clean copy, every unmasked token visible); used with
    :func:`bd3lm_loss` to train the tiny teacher-A for both of its attention patterns. Same noise,
    weighting, normalisation and optional right shift of the logits as :func:`bd3lm_loss`.
    ``x0, labels [B, L]``.
    """
    noised = corrupt(model, x0, labels, mask_id=mask_id, generator=generator, eps=eps)
    logits = model(input_ids=noised.xt).logits
    logits = shift_logits_right(logits) if uses_right_shift(model) else logits
    loss = score(logits, x0, noised, norm=norm)
    return loss, {"t": noised.t, "masked": noised.masked, "logits": logits}


def mask_slot_loss(
    model: Any,
    x0: torch.Tensor,
    labels: torch.Tensor,
    *,
    mask_id: int,
    norm: str = "token",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The no-shift next-token objective: BD3LM with block size 1 and every maskable token masked.

    Each mask slot ``i`` sees the clean tokens before it and predicts its own token ``x0[i]`` from
    its own output, the mapping a diffusion model without a logit shift decodes with (LLaDA2.0's
    block-size warm-up starts at block 1). Every maskable token is supervised, as in AR training, so
    a teacher can learn from scratch at AR sample efficiency and later move to larger blocks without
    re-learning which output scores which position. ``x0, labels [B, L]``; weight 1 (``t = 1``).
    Returns ``(loss, {"masked": [B, L], "logits": [B, L, V]})``.
    """
    if labels.shape != x0.shape:
        raise ValueError(
            f"mask_slot_loss: labels {tuple(labels.shape)} and x0 {tuple(x0.shape)} differ in shape"
        )
    maskable = labels != IGNORE_INDEX
    xt = noise(x0, maskable, mask_id)
    input_ids, position_ids, attention_mask = bd3lm_inputs(xt, x0, block_size=1)
    logits = model(input_ids=input_ids, position_ids=position_ids,
                   attention_mask=attention_mask).logits[:, : x0.shape[1]]
    t = torch.ones(x0.shape[0], device=x0.device)
    loss = bd3lm_ce(logits, x0, maskable, maskable, t, norm=norm, weight="uniform")
    return loss, {"masked": maskable, "logits": logits}
