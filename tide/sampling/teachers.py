"""Reference samplers of the two diffusion teachers (greedy, cache-free re-encoding).

- `llada2_generate`: LLaDA2's block sampler. The canvas (prompt + masks, padded to whole blocks) is
  block-causal; each block is denoised by committing every masked slot whose confidence exceeds
  `threshold`, or at least the step's quota of most confident slots.
- `wedlm_generate`: WeDLM's streaming parallel decoding. A window of mask slots follows the
  committed text; filled slots are moved before the unfilled ones (keeping their logical
  positions) in a causal forward; slots whose entropy (plus a distance penalty) is below a
  threshold get their argmax; the leading run of filled slots is committed each round.

Both take any HF-style model called as `model(input_ids, attention_mask=4-D bool [B,1,Q,K],
position_ids=[B,Q]).logits` and re-encode everything every forward (no KV cache).
"""

from __future__ import annotations

import math

import torch

from tide.diffusion import shift_logits_right, uses_right_shift


def _as_batch(prompt_ids: torch.Tensor, name: str) -> torch.Tensor:
    """Prompt ids as LongTensor[B, P] (accepts [P])."""
    if prompt_ids.dim() == 1:
        prompt_ids = prompt_ids[None]
    if prompt_ids.dim() != 2 or prompt_ids.dtype != torch.long:
        raise ValueError(
            f"{name}: prompt_ids must be a LongTensor [P] or [B, P], got "
            f"{prompt_ids.dtype} {tuple(prompt_ids.shape)}"
        )
    return prompt_ids


def _device(model) -> torch.device:
    return next(model.parameters()).device


def step_quotas(block_size: int, steps: int) -> list[int]:
    """Minimum tokens committed per step: block_size split evenly, earlier steps get the remainder."""
    base, extra = divmod(block_size, steps)
    return [base + (1 if s < extra else 0) for s in range(steps)]


def block_causal_mask(length: int, block_size: int, device=None) -> torch.Tensor:
    """BoolTensor[length, length]: query q sees key k iff k // block_size <= q // block_size."""
    blocks = torch.arange(length, device=device) // block_size
    return blocks[None, :] <= blocks[:, None]


def _truncate_after(tokens: torch.Tensor, stop_id: int | None) -> torch.Tensor:
    """1-D tokens cut after the first stop_id (kept); unchanged if absent or stop_id is None."""
    if stop_id is None:
        return tokens
    hits = (tokens == stop_id).nonzero()
    return tokens[: int(hits[0]) + 1] if len(hits) else tokens


@torch.no_grad()
def llada2_generate(
    model,
    prompt_ids: torch.Tensor,
    *,
    gen_length: int,
    block_size: int,
    steps: int,
    threshold: float,
    mask_id: int,
    eos_id: int | None,
) -> list[torch.Tensor]:
    """LLaDA2 block sampler (greedy), batch of equal-length prompts.

    prompt_ids: LongTensor[P] or [B, P] (no padding). The canvas has ceil((P + gen_length) / B)
    blocks; generation starts at the block holding the prompt's tail. Per step of a block: one
    forward over the canvas up to the block end; tokens = argmax, confidence = softmax prob (fp32),
    commit all masked slots with confidence > threshold, or, if fewer than the step's quota, the
    top-min(quota, #masked) slots. Stops after a block once every row holds eos_id. A model whose
    config sets ``right_shift_logits`` (a tiny teacher) scores slot i with its output at i - 1.
    Returns one LongTensor[<= gen_length] per row: the generated tokens, cut after the first eos_id.
    """
    prompt_ids = _as_batch(prompt_ids, "llada2_generate").to(_device(model))
    shifted = uses_right_shift(model)
    batch, prompt_len = prompt_ids.shape
    if min(gen_length, block_size, steps) < 1:
        raise ValueError("llada2_generate: gen_length, block_size and steps must be >= 1")
    steps = min(steps, gen_length)
    quotas = step_quotas(block_size, steps)
    num_blocks = math.ceil((prompt_len + gen_length) / block_size)
    total = num_blocks * block_size
    x = torch.full((batch, total), mask_id, dtype=torch.long, device=prompt_ids.device)
    x[:, :prompt_len] = prompt_ids
    positions = torch.arange(total, device=x.device)[None].expand(batch, -1)
    allow = block_causal_mask(total, block_size, x.device)
    for b in range(prompt_len // block_size, num_blocks):
        start, end = b * block_size, (b + 1) * block_size
        attn = allow[None, None, :end, :end].expand(batch, 1, end, end)
        for quota in quotas:
            active = x[:, start:end] == mask_id
            if not active.any():
                break
            logits = model(
                input_ids=x[:, :end], attention_mask=attn, position_ids=positions[:, :end]
            ).logits
            logits = (shift_logits_right(logits) if shifted else logits)[:, start:end]
            probs = torch.softmax(logits.float(), dim=-1)
            tokens = probs.argmax(dim=-1)  # first index on ties
            conf = probs.gather(-1, tokens[..., None])[..., 0]
            conf = torch.where(active, conf, torch.full_like(conf, -math.inf))
            for row in range(batch):
                chosen = conf[row] > threshold
                if int(chosen.sum()) < quota:
                    k = min(quota, int(active[row].sum()))
                    chosen = torch.zeros_like(chosen)
                    chosen[torch.topk(conf[row], k).indices] = True
                x[row, start:end] = torch.where(chosen, tokens[row], x[row, start:end])
        if eos_id is not None and (x[:, prompt_len:end] == eos_id).any(dim=1).all():
            break
    generated = x[:, prompt_len : prompt_len + gen_length]
    return [_truncate_after(row, eos_id) for row in generated]


def _window_order(filled: list[bool]) -> list[int]:
    """Physical order of the window slots: filled slots first, then unfilled, each ascending."""
    return [j for j, f in enumerate(filled) if f] + [j for j, f in enumerate(filled) if not f]


def _wedlm_logits(model, context: torch.Tensor, window: torch.Tensor, order: list[int]):
    """Causal forward over context + reordered window; logits of the window rows in physical order.

    context: LongTensor[C] (prompt + committed tokens, logical positions 0..C-1);
    window: LongTensor[W] (slot j has logical position C + j). Returns [W, V].
    """
    device = context.device
    order_t = torch.tensor(order, dtype=torch.long, device=device)
    ids = torch.cat([context, window[order_t]])
    pos = torch.cat([torch.arange(len(context), device=device), len(context) + order_t])
    length = len(ids)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    logits = model(
        input_ids=ids[None], attention_mask=causal[None, None], position_ids=pos[None]
    ).logits
    return logits[0, len(context) :]


@torch.no_grad()
def wedlm_generate(
    model,
    prompt_ids: torch.Tensor,
    *,
    max_new: int,
    window: int,
    entropy_threshold: float,
    distance_penalty: float,
    mask_id: int,
    stop_ids: set[int] | list[int] | tuple[int, ...] = (),
) -> torch.Tensor:
    """WeDLM streaming parallel decoding (greedy), one prompt, cache-free.

    prompt_ids: LongTensor[P] or [1, P]. Each round: refill the window with as many mask slots as
    were committed, run the causal forward (filled slots before unfilled ones, logical positions
    kept), commit the leading filled slots in order (stopping at a stop id, which is kept, or at
    max_new tokens), then fill every unfilled slot whose entropy + distance_penalty · (slot −
    first unfilled slot) < entropy_threshold with its argmax (at least the lowest-scoring one).
    Returns LongTensor[<= max_new], the committed tokens.
    """
    prompt = _as_batch(prompt_ids, "wedlm_generate").to(_device(model))
    if prompt.shape[0] != 1:
        raise ValueError(f"wedlm_generate: one prompt at a time, got batch {prompt.shape[0]}")
    if max_new < 1 or window < 1:
        raise ValueError("wedlm_generate: max_new and window must be >= 1")
    if uses_right_shift(model):  # a window slot has no output of its own slot - 1 to read
        raise ValueError("wedlm_generate: the model's config sets right_shift_logits (output i "
                         "scores slot i + 1); streaming decoding needs a no-shift model; use "
                         "the BD3LM block decoder")
    stops = {int(s) for s in stop_ids}
    context = prompt[0]
    out: list[int] = []
    slots = torch.full((window,), mask_id, dtype=torch.long, device=context.device)
    filled = [False] * window
    while True:
        lead = next((j for j, f in enumerate(filled) if not f), len(filled))
        slots = torch.cat([slots, torch.full_like(slots[:lead], mask_id)])
        filled = filled + [False] * lead
        order = _window_order(filled)
        logits = _wedlm_logits(model, context, slots, order)
        for token in slots[:lead].tolist():
            out.append(token)
            if token in stops or len(out) == max_new:
                return torch.tensor(out, dtype=torch.long, device=context.device)
        context = torch.cat([context, slots[:lead]])
        slots, filled = slots[lead:], filled[lead:]
        unfilled = [j for j, f in enumerate(filled) if not f]
        rows = logits[len(order) - len(unfilled) :]  # unfilled rows, in slot order
        log_probs = torch.log_softmax(rows.float(), dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        distance = torch.tensor(unfilled, dtype=torch.float32, device=rows.device) - unfilled[0]
        score = entropy + distance_penalty * distance
        picked = (score < entropy_threshold).nonzero()[:, 0].tolist() or [int(score.argmin())]
        tokens = rows.argmax(dim=-1)
        for i in picked:
            slots[unfilled[i]] = tokens[i]
            filled[unfilled[i]] = True
