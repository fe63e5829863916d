"""Reference BD3LM sampler: a plain transcription of dllm's `BD3LMSampler.sample`.

Algorithm (per batch of left-padded prompts, block size B, G new tokens):

1. Left-pad every prompt to Lp = ceil(max P_n / B)·B columns, so prompts end on a block boundary.
2. For each of ceil(G / B) blocks: re-encode the whole prefix with `use_cache=True` to get a KV
   cache, append min(B, G − k·B) MASK tokens, then run the block's denoising steps. Each step feeds
   only the block tokens, against a deep copy of the cache, and commits the `num_transfer_tokens`
   most confident masked slots to their argmax tokens.
3. After each finished block, stop the whole batch once every row holds EOS in a finished block.

Attention (`mask_pos`): valid = not PAD; position = cumsum(valid) − 1 (0 on pads); block id =
column // B; query q sees key k iff both are valid and block(k) ≤ block(q). Pad query rows also
see themselves, which keeps them finite and changes nothing else (no valid query sees a pad key).

Kept on purpose, for exactness: slots whose argmax is MASK stay masked; masks left when the
schedule runs out stay in the output; a generated PAD becomes invisible from the next block on;
finished rows keep being denoised until the whole batch stops.
"""

from __future__ import annotations

import copy
import math

import torch

from tide.diffusion import uses_right_shift
from tide.sampling.schedule import num_transfer_tokens

REMASKING_MODES = ("low_confidence", "random")


def mask_pos(
    x: torch.Tensor, valid: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-causal attention mask and position ids over a left-padded canvas.

    x: LongTensor[N, T] (only its shape and device are used); valid: BoolTensor[N, T].
    Returns: (attn BoolTensor[N, 1, T, T], True = attend; pos LongTensor[N, T]).
    """
    _, width = x.shape
    block_ids = torch.arange(width, device=x.device) // block_size
    block_causal = block_ids[None, :] <= block_ids[:, None]  # [T(query), T(key)]
    attn = valid[:, :, None] & valid[:, None, :] & block_causal[None]
    pad_self = torch.eye(width, dtype=torch.bool, device=x.device)[None] & ~valid[:, :, None]
    attn = attn | pad_self
    pos = torch.where(valid, valid.long().cumsum(dim=1) - 1, 0)
    return attn[:, None], pos


def canvas_validity(x: torch.Tensor, left_pad: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Which canvas columns are real tokens.

    x: LongTensor[N, T]; left_pad: LongTensor[N], number of leading pad columns per row.
    Returns BoolTensor[N, T]: False on the leading pads and, when pad_id is set, on any PAD token.
    """
    columns = torch.arange(x.shape[1], device=x.device)
    valid = columns[None, :] >= left_pad[:, None]
    if pad_id is not None:
        valid = valid & (x != pad_id)
    return valid


def block_aligned_prompts(
    prompt_ids: torch.Tensor, block_size: int, pad_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-pad left-padded prompts so that they all end on a block boundary.

    prompt_ids: LongTensor[N, P], left-padded with pad_id (no padding when pad_id is None).
    Returns: (x LongTensor[N, Lp], left_pad LongTensor[N]) with Lp = ceil(max P_n / B)·B, where
    P_n is the prompt length after its leading pads.
    """
    batch, width = prompt_ids.shape
    if pad_id is None:
        lengths = torch.full((batch,), width, dtype=torch.long, device=prompt_ids.device)
    else:
        is_token = (prompt_ids != pad_id).long()
        lengths = width - (is_token.cumsum(dim=1) == 0).long().sum(dim=1)  # drop leading pads
    longest = int(lengths.max()) if batch else 0
    prefix_len = math.ceil(longest / block_size) * block_size
    fill = pad_id if pad_id is not None else 0
    x = torch.full((batch, prefix_len), fill, dtype=torch.long, device=prompt_ids.device)
    for row in range(batch):
        n = int(lengths[row])
        if n:
            x[row, prefix_len - n :] = prompt_ids[row, width - n :]
    return x, prefix_len - lengths


def candidate_tokens(logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
    """Proposed token per slot.

    logits: [N, L, V]. temperature 0: argmax (first index on ties). temperature > 0: Gumbel-max in
    float64, argmax(exp(z) / (−log U)^T). Returns LongTensor[N, L].
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    z = logits.to(torch.float64)
    noise = torch.rand(z.shape, generator=generator, dtype=torch.float64, device=z.device)
    return (z.exp() / (-torch.log(noise)) ** temperature).argmax(dim=-1)


def confidences(
    logits: torch.Tensor, tokens: torch.Tensor, remasking: str, generator
) -> torch.Tensor:
    """Confidence of each proposed token: softmax prob in the logits' dtype, or U(0,1) for "random".

    logits: [N, L, V]; tokens: LongTensor[N, L]. Returns [N, L] (float32 for "random").
    """
    if remasking == "low_confidence":
        probs = torch.softmax(logits, dim=-1)
        return probs.gather(-1, tokens[..., None])[..., 0]
    if remasking == "random":
        return torch.rand(tokens.shape, generator=generator, device=tokens.device)
    raise ValueError(f"unknown remasking {remasking!r}; choose one of {REMASKING_MODES}")


def denoise_step(
    logits: torch.Tensor,
    block: torch.Tensor,
    counts: torch.Tensor,
    *,
    mask_id: int,
    remasking: str = "low_confidence",
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One denoising step on the block tokens.

    logits: [N, L, V]; block: LongTensor[N, L]; counts: LongTensor[N], tokens to commit per row.
    Commits the proposed token at the top-min(count, #masked) confident masked slots of each row
    (torch.topk order); every other slot keeps its token. Returns the new LongTensor[N, L].
    """
    masked = block == mask_id
    tokens = candidate_tokens(logits, temperature, generator)
    conf = confidences(logits, tokens, remasking, generator)
    conf = torch.where(masked, conf, torch.full_like(conf, -math.inf))
    out = block.clone()
    for row in range(block.shape[0]):
        k = min(int(counts[row]), int(masked[row].sum()))
        if k:
            chosen = torch.topk(conf[row], k).indices
            out[row, chosen] = tokens[row, chosen]
    return out


def reference_generate(
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
    """Reference BD3LM generation (see the module docstring).

    model: any HF-style model taking (input_ids, attention_mask 4-D bool, position_ids,
    past_key_values, use_cache) and returning `.logits` [N, L, V] and `.past_key_values`.
    prompt_ids: LongTensor[N, P], left-padded with pad_id. Returns LongTensor[N, gen_length]: the
    generated part only (MASK ids remain where the schedule left masks). Blocks skipped by the EOS
    stop are filled with eos_id.
    right_shift_logits (None: the model config's flag): position i of a block is scored with the
    output at i - 1, the block's first position with the prefix's last output (bd3lm.md §3).
    """
    if right_shift_logits is None:
        right_shift_logits = uses_right_shift(model)
    device = next(model.parameters()).device
    x, left_pad = block_aligned_prompts(prompt_ids.to(device), block_size, pad_id)
    prefix_len = x.shape[1]
    num_blocks = math.ceil(gen_length / block_size)
    block_steps = steps_per_block or math.ceil(steps / num_blocks)
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=device)
    for k in range(num_blocks):
        if done.all():
            break
        block_len = min(block_size, gen_length - k * block_size)
        width = x.shape[1]
        cache, last = None, None
        if width:
            attn, pos = mask_pos(x, canvas_validity(x, left_pad, pad_id), block_size)
            prefix = model(input_ids=x, attention_mask=attn, position_ids=pos, use_cache=True)
            cache, last = prefix.past_key_values, prefix.logits[:, -1:]
        x = torch.cat([x, x.new_full((x.shape[0], block_len), mask_id)], dim=1)
        counts = num_transfer_tokens((x[:, width:] == mask_id).sum(dim=1), block_steps)
        attn, pos = mask_pos(x, canvas_validity(x, left_pad, pad_id), block_size)
        block_attn, block_pos = attn[:, :, width:, :], pos[:, width:]
        for j in range(counts.shape[1]):
            block = x[:, width:]
            if not (block == mask_id).any():
                break
            logits = model(
                input_ids=block,
                attention_mask=block_attn,
                position_ids=block_pos,
                past_key_values=copy.deepcopy(cache),
                use_cache=False,
            ).logits
            if right_shift_logits:
                logits = torch.cat([logits[:, :1] if last is None else last, logits[:, :-1]], 1)
            x[:, width:] = denoise_step(
                logits,
                block,
                counts[:, j],
                mask_id=mask_id,
                remasking=remasking,
                temperature=temperature,
                generator=generator,
            )
        if eos_id is not None:
            done |= (x[:, width:] == eos_id).any(dim=1)
    generated = x[:, prefix_len:]
    if generated.shape[1] < gen_length:  # stopped early: every row already holds EOS
        rest = torch.full_like(generated[:, :1], eos_id).expand(-1, gen_length - generated.shape[1])
        generated = torch.cat([generated, rest], dim=1)
    return generated
