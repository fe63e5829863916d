"""KV-cached BD3LM samplers: `cached_generate` (exact) and `threshold_generate` (Fast-dLLM style).

Same entry point and keywords as `tide.sampling.reference.reference_generate` (the ground truth);
registered as ``generate(..., method="cached")`` and ``method="threshold"``.

Why caching is exact. Under the sampler's block-causal mask a column only attends to valid columns
of its own and earlier blocks, and its position is the number of valid columns before it. Once a
block is final, its keys/values therefore no longer change: the reference re-encodes the whole
prefix at every block and gets the same keys/values as one forward of the finished block against
the cached earlier blocks. So per block this sampler runs

1. the denoising steps: one forward of the block's ``L`` tokens against the cached prefix
   (keys written into the cache's scratch window, overwritten by the next step), the same queries,
   keys, positions and mask rows as the reference's step;
2. one "commit" forward of the finished block (its final tokens, validity and positions, exactly
   as the reference's next prefix forward sees them: a generated PAD becomes invisible), which
   makes its keys/values final; with ``right_shift_logits`` its last output scores the next
   block's first slot (the reference's ``prefix.logits[:, -1]``).

The cached keys come from other matrix shapes than the reference's prefix forward, so in general
logits agree to rounding; measured on CPU in fp32 they are bitwise equal at every step (trained
tiny student, batch 8 of mixed lengths, right shift), and the tiny evaluations give identical
samples. On other kernels (CUDA, bf16) a token can differ only where two candidates tie to
rounding; tests/sampling/test_cached.py checks tokens and per-step logits.

No deep copies (`tide.sampling.kv_cache.BlockKVCache` is preallocated) and no host syncs inside a
block: the commit schedule is the same for every row (every block starts with ``L`` masks) and is
computed on the host once; the choice of slots is a batched ``topk`` on the device. The early exit
of the reference's step loop ("no mask left") can never fire before the schedule ends (a step
commits its quota or every mask left), so the loop runs the schedule. One host sync per block
remains: the EOS stop (only when ``eos_id`` is set).

`threshold_generate`: per step, commit every masked slot of the active block whose confidence
exceeds ``threshold``, and at least the most confident one (Fast-dLLM's parallel decoding), with
the same cache. It ignores ``steps``; a block takes at most ``L`` steps (a slot whose argmax is
MASK stays masked, as in the reference). Deciding that a block is finished is one host sync per
step. With ``threshold >= 1`` it commits exactly one slot per step, i.e. it equals
`cached_generate` with a one-token-per-step schedule (``steps`` = blocks · block_size).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tide.diffusion import uses_right_shift
from tide.sampling.kv_cache import BlockKVCache, block_cache_for
from tide.sampling.reference import (
    block_aligned_prompts,
    candidate_tokens,
    canvas_validity,
    confidences,
    mask_pos,
)
from tide.sampling.schedule import num_transfer_tokens

NEG_INF = -math.inf


# ------------------------------------------------------------------------------ masks, positions


def token_validity(tokens: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """BoolTensor like ``tokens`` [N, L]: False on PAD tokens (all True when pad_id is None)."""
    if pad_id is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    return tokens != pad_id


def block_rows(
    prefix_valid: torch.Tensor, block_valid: torch.Tensor, prefix_count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's `mask_pos` rows of one block appended to a prefix.

    prefix_valid: BoolTensor[N, T] (cached columns); block_valid: BoolTensor[N, L];
    prefix_count: LongTensor[N], valid columns in the prefix. Every prefix column is in an earlier
    block, so query q sees key k iff both are valid; an invalid query sees only itself.
    Returns (attn BoolTensor[N, 1, L, T + L], pos LongTensor[N, L]).
    """
    width, length = prefix_valid.shape[1], block_valid.shape[1]
    keys = torch.cat([prefix_valid, block_valid], dim=1)
    attn = block_valid[:, :, None] & keys[:, None, :]
    own = torch.zeros(length, width + length, dtype=torch.bool, device=keys.device)
    own[:, width:] = torch.eye(length, dtype=torch.bool, device=keys.device)
    attn = attn | (own[None] & ~block_valid[:, :, None])
    pos = prefix_count[:, None] + block_valid.long().cumsum(dim=1) - 1
    return attn[:, None], torch.where(block_valid, pos, 0)


# ------------------------------------------------------------------------------ model calls


def prefill(model, x: torch.Tensor, valid: torch.Tensor, block_size: int, cache: BlockKVCache):
    """Encode the block-aligned prompts into ``cache`` (committed).

    x: LongTensor[N, Lp]; valid: BoolTensor[N, Lp]. Returns the last column's logits [N, 1, V].
    """
    attn, pos = mask_pos(x, valid, block_size)
    out = model(input_ids=x, attention_mask=attn, position_ids=pos, past_key_values=cache,
                use_cache=False)
    cache.commit(x.shape[1])
    return out.logits[:, -1:]


def block_logits(model, block, attn, pos, cache, last, right_shift: bool) -> torch.Tensor:
    """Logits [N, L, V] scoring the block's slots, against the cached prefix (not committed).

    With right_shift, slot i takes output i - 1 and slot 0 the prefix's last output ``last``
    [N, 1, V] (its own output when there is no prefix), as in the reference.
    """
    logits = model(input_ids=block, attention_mask=attn, position_ids=pos, past_key_values=cache,
                   use_cache=False).logits
    if right_shift:
        logits = torch.cat([logits[:, :1] if last is None else last, logits[:, :-1]], dim=1)
    return logits


def commit_block(model, block, attn, pos, cache: BlockKVCache) -> torch.Tensor:
    """Encode a finished block into ``cache`` (committed). Returns its last logits [N, 1, V]."""
    out = model(input_ids=block, attention_mask=attn, position_ids=pos, past_key_values=cache,
                use_cache=False)
    cache.commit(block.shape[1])
    return out.logits[:, -1:]


# ------------------------------------------------------------------------------ commit rules


def commit_top(block, tokens, conf, count: int, mask_id: int) -> torch.Tensor:
    """Commit ``tokens`` at the top-``count`` confident masked slots of each row (all masked slots
    if fewer), on the device.

    block, tokens: LongTensor[N, L]; conf: [N, L]. ``topk`` over the masked slots (others -inf)
    picks the reference's slots: with count <= #masked the same topk, otherwise every masked slot.
    Returns the new block LongTensor[N, L].
    """
    masked = block == mask_id
    conf = torch.where(masked, conf, torch.full_like(conf, NEG_INF))
    top = conf.topk(count, dim=-1)
    chosen = torch.zeros_like(masked).scatter(1, top.indices, top.values > NEG_INF)
    return torch.where(chosen, tokens, block)


def commit_above(block, tokens, conf, threshold: float, mask_id: int) -> torch.Tensor:
    """Commit every masked slot with confidence > ``threshold`` and at least the most confident
    masked slot of each row. block, tokens: LongTensor[N, L]; conf: [N, L]."""
    masked = block == mask_id
    conf = torch.where(masked, conf, torch.full_like(conf, NEG_INF))
    top = conf.topk(1, dim=-1)
    chosen = torch.zeros_like(masked).scatter(1, top.indices, top.values > NEG_INF)
    chosen = chosen | (masked & (conf > threshold))
    return torch.where(chosen, tokens, block)


# ------------------------------------------------------------------------------ block denoisers


BlockDenoiser = Callable[..., torch.Tensor]


def schedule_denoiser(block_steps: int) -> BlockDenoiser:
    """The reference's rule: ``num_transfer_tokens(L, block_steps)`` tokens per step."""

    def denoise(model, block, attn, pos, cache, last, *, mask_id, right_shift, remasking,
                temperature, generator):
        length = block.shape[1]
        counts = num_transfer_tokens(torch.tensor([length]), block_steps)[0].tolist()
        for count in counts:  # host ints: no device sync in the loop
            logits = block_logits(model, block, attn, pos, cache, last, right_shift)
            tokens = candidate_tokens(logits, temperature, generator)
            conf = confidences(logits, tokens, remasking, generator)
            block = commit_top(block, tokens, conf, count, mask_id)
        return block

    return denoise


def threshold_denoiser(threshold: float) -> BlockDenoiser:
    """Fast-dLLM's rule: every masked slot above ``threshold``, at least one, until no mask is
    left (at most L steps)."""

    def denoise(model, block, attn, pos, cache, last, *, mask_id, right_shift, remasking,
                temperature, generator):
        for _ in range(block.shape[1]):
            logits = block_logits(model, block, attn, pos, cache, last, right_shift)
            tokens = candidate_tokens(logits, temperature, generator)
            conf = confidences(logits, tokens, remasking, generator)
            block = commit_above(block, tokens, conf, threshold, mask_id)
            if not bool((block == mask_id).any()):  # one host sync per step: the block's end
                break
        return block

    return denoise


# ------------------------------------------------------------------------------ driver


def run_blocks(
    model,
    prompt_ids: torch.Tensor,
    denoise: BlockDenoiser,
    *,
    gen_length: int,
    block_size: int,
    mask_id: int,
    eos_id: int | None,
    pad_id: int | None,
    remasking: str,
    temperature: float,
    generator: torch.Generator | None,
    right_shift_logits: bool | None,
) -> torch.Tensor:
    """Block loop with a KV cache of the clean prefix (module docstring).

    prompt_ids: LongTensor[N, P], left-padded with pad_id. Returns LongTensor[N, gen_length], the
    generated part (blocks skipped by the EOS stop are eos_id), as the reference returns.
    """
    right_shift = uses_right_shift(model) if right_shift_logits is None else right_shift_logits
    device = next(model.parameters()).device
    prompt, left_pad = block_aligned_prompts(prompt_ids.to(device), block_size, pad_id)
    batch, width = prompt.shape
    valid = torch.zeros(batch, width + gen_length, dtype=torch.bool, device=device)
    valid[:, :width] = canvas_validity(prompt, left_pad, pad_id)
    count = valid.long().sum(dim=1)
    out = torch.full((batch, gen_length), mask_id if eos_id is None else eos_id,
                     dtype=torch.long, device=device)
    cache = block_cache_for(model, width + gen_length)
    last = prefill(model, prompt, valid[:, :width], block_size, cache) if width else None
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    num_blocks = math.ceil(gen_length / block_size)
    options = {"mask_id": mask_id, "right_shift": right_shift, "remasking": remasking,
               "temperature": temperature, "generator": generator}
    for k in range(num_blocks):
        start = k * block_size
        length = min(block_size, gen_length - start)
        block = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
        attn, pos = block_rows(valid[:, :width], token_validity(block, pad_id), count)
        block = denoise(model, block, attn, pos, cache, last, **options)
        out[:, start : start + length] = block
        if k == num_blocks - 1:
            break
        if eos_id is not None:
            done |= (block == eos_id).any(dim=1)
            if bool(done.all()):  # one host sync per block: the reference's EOS stop
                break
        block_valid = token_validity(block, pad_id)
        attn, pos = block_rows(valid[:, :width], block_valid, count)
        last = commit_block(model, block, attn, pos, cache)
        valid[:, width : width + length] = block_valid
        count = count + block_valid.long().sum(dim=1)
        width += length
    return out


@torch.no_grad()
def cached_generate(
    model,
    prompt_ids: torch.Tensor,
    *,
    gen_length: int,
    steps: int,
    block_size: int,
    mask_id: int,
    eos_id: int | None = None,
    pad_id: int | None = None,
    remasking: str = "low_confidence",
    temperature: float = 0.0,
    steps_per_block: int | None = None,
    generator: torch.Generator | None = None,
    right_shift_logits: bool | None = None,
) -> torch.Tensor:
    """The reference sampler with a KV cache of the clean blocks (module docstring): the same
    keywords and the same tokens. prompt_ids: LongTensor[N, P] left-padded with pad_id.
    Returns LongTensor[N, gen_length]."""
    num_blocks = math.ceil(gen_length / block_size)
    block_steps = steps_per_block or math.ceil(steps / num_blocks)
    return run_blocks(
        model, prompt_ids, schedule_denoiser(block_steps), gen_length=gen_length,
        block_size=block_size, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id,
        remasking=remasking, temperature=temperature, generator=generator,
        right_shift_logits=right_shift_logits,
    )


@torch.no_grad()
def threshold_generate(
    model,
    prompt_ids: torch.Tensor,
    *,
    gen_length: int,
    steps: int,
    block_size: int,
    mask_id: int,
    eos_id: int | None = None,
    pad_id: int | None = None,
    threshold: float = 0.9,
    remasking: str = "low_confidence",
    temperature: float = 0.0,
    steps_per_block: int | None = None,
    generator: torch.Generator | None = None,
    right_shift_logits: bool | None = None,
) -> torch.Tensor:
    """Confidence-threshold parallel decoding with the KV cache (module docstring).

    threshold: commit every masked slot whose confidence (softmax probability of its proposed
    token) exceeds it, and at least the most confident one per step. ``steps`` and
    ``steps_per_block`` are accepted for the common signature and unused. Returns
    LongTensor[N, gen_length].
    """
    del steps, steps_per_block
    if remasking != "low_confidence":
        raise ValueError(f"threshold sampler: remasking must be 'low_confidence', got {remasking!r}")
    return run_blocks(
        model, prompt_ids, threshold_denoiser(float(threshold)), gen_length=gen_length,
        block_size=block_size, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id,
        remasking=remasking, temperature=temperature, generator=generator,
        right_shift_logits=right_shift_logits,
    )
