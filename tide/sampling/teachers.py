"""Reference samplers of the two diffusion teachers (greedy, cache-free re-encoding).

- `llada2_generate`: LLaDA2's block sampler. The canvas (prompt + masks, padded to whole blocks) is
  block-causal; each block is denoised by committing every masked slot whose confidence exceeds
  `threshold`, or at least the step's quota of most confident slots.
- `wedlm_generate`: WeDLM's streaming parallel decoding. A window of mask slots follows the
  committed text; filled slots are moved before the unfilled ones (keeping their logical
  positions) in a causal forward; slots whose entropy (plus a distance penalty) is below a
  threshold get their argmax; the leading run of filled slots is committed each round.

Both take any HF-style model called as `model(input_ids, attention_mask=4-D bool [B,1,Q,K],
position_ids=[B,Q]).logits` and re-encode everything every forward (no KV cache); they are the
ground truth.

KV caching, what is exact:

- WeDLM (`wedlm_generate_cached`): attention is causal in physical order and the committed slots
  are the leading filled slots, which sit first in the window's physical order; their keys/values
  in a round's forward (causal over the context and the slots before them, logical positions) are
  what every later round's re-encoding of the context computes. Caching the context and appending
  those ``lead`` entries after each round is therefore exact: the same tokens as `wedlm_generate`
  (its per-round window forward is W queries against the cache instead of C + W).
- LLaDA2 (`llada2_generate`): the sampler attends block-causally over the canvas, so the keys and
  values of blocks before the active one never change once final, and caching them would be exact
  in the same way as the BD3LM student's (`tide.sampling.cached`). It is not implemented: our
  `LLaDA2MoeModelLM` (tide/models/llada2.py) has no ``past_key_values`` path. A teacher queried
  with bidirectional attention over the whole canvas (as TIDE's distillation queries LLaDA2) could
  only be cached approximately (Fast-dLLM's dual cache): that must never be the default.
"""

from __future__ import annotations

import math

import torch

from tide.diffusion import shift_logits_right, uses_right_shift
from tide.sampling.kv_cache import BlockKVCache, block_cache_for


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

    Re-encodes the canvas up to the active block at every step; blocks before it could be cached
    exactly under this block-causal mask (module docstring), not done (the model has no cache).
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
    context = _check_wedlm_args(model, prompt_ids, max_new, window, "wedlm_generate")[0]

    def forward(slots: torch.Tensor, order: list[int]) -> torch.Tensor:
        return _wedlm_logits(model, context, slots, order)

    def commit(done: torch.Tensor) -> None:
        nonlocal context
        context = torch.cat([context, done])

    return _wedlm_stream(forward, commit, context.device, max_new=max_new, window=window,
                         entropy_threshold=entropy_threshold, distance_penalty=distance_penalty,
                         mask_id=mask_id, stop_ids=stop_ids)


def _wedlm_stream(forward, commit, device: torch.device, *, max_new: int, window: int,
                  entropy_threshold: float, distance_penalty: float, mask_id: int,
                  stop_ids) -> torch.Tensor:
    """The rounds of `wedlm_generate` (its docstring), for both context paths: ``forward(slots,
    order)`` gives the window's logits ``[W, V]`` in ``order`` after the committed context, and
    ``commit(done)`` appends the leading filled slots ``done`` to that context."""
    stops = {int(s) for s in stop_ids}
    out: list[int] = []
    slots = torch.full((window,), mask_id, dtype=torch.long, device=device)
    filled = [False] * window
    while True:
        lead = next((j for j, f in enumerate(filled) if not f), len(filled))
        slots = torch.cat([slots, torch.full_like(slots[:lead], mask_id)])
        filled = filled + [False] * lead
        order = _window_order(filled)
        logits = forward(slots, order)
        for token in slots[:lead].tolist():
            out.append(token)
            if token in stops or len(out) == max_new:
                return torch.tensor(out, dtype=torch.long, device=device)
        commit(slots[:lead])
        slots, filled = slots[lead:], filled[lead:]
        unfilled = [j for j, f in enumerate(filled) if not f]
        rows = logits[len(order) - len(unfilled) :]  # unfilled rows, in slot order
        picked, tokens = _wedlm_fill(rows, unfilled, entropy_threshold, distance_penalty)
        for i in picked:
            slots[unfilled[i]] = tokens[i]
            filled[unfilled[i]] = True


def _check_wedlm_args(model, prompt_ids: torch.Tensor, max_new: int, window: int, name: str):
    """The prompt as LongTensor[1, P] on the model's device; errors as `wedlm_generate` raises."""
    prompt = _as_batch(prompt_ids, name).to(_device(model))
    if prompt.shape[0] != 1:
        raise ValueError(f"{name}: one prompt at a time, got batch {prompt.shape[0]}")
    if max_new < 1 or window < 1:
        raise ValueError(f"{name}: max_new and window must be >= 1")
    if uses_right_shift(model):  # a window slot has no output of its own slot - 1 to read
        raise ValueError(f"{name}: the model's config sets right_shift_logits (output i scores "
                         "slot i + 1); streaming decoding needs a no-shift model; use the BD3LM "
                         "block decoder")
    return prompt


def _wedlm_cached_logits(model, cache: BlockKVCache, window: torch.Tensor, order: list[int]):
    """Causal forward of the reordered window against the cached context (not committed).

    window: LongTensor[W] (slot j has logical position C + j, C = cache.committed). Keys and
    values are written after the context, in physical order. Returns logits [W, V] of the window
    rows in physical order.
    """
    device = window.device
    context = cache.committed
    order_t = torch.tensor(order, dtype=torch.long, device=device)
    length = len(order)
    mask = torch.ones(length, context + length, dtype=torch.bool, device=device)
    mask[:, context:] = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    logits = model(input_ids=window[order_t][None], attention_mask=mask[None, None],
                   position_ids=(context + order_t)[None], past_key_values=cache,
                   use_cache=False).logits
    return logits[0]


def _wedlm_prefill(model, cache: BlockKVCache, prompt: torch.Tensor) -> None:
    """Causal forward of the prompt [P] into ``cache`` (committed)."""
    length = len(prompt)
    causal = torch.ones(length, length, dtype=torch.bool, device=prompt.device).tril()
    model(input_ids=prompt[None], attention_mask=causal[None, None],
          position_ids=torch.arange(length, device=prompt.device)[None], past_key_values=cache,
          use_cache=False)
    cache.commit(length)


@torch.no_grad()
def wedlm_generate_cached(
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
    """`wedlm_generate` with a KV cache of the committed context (module docstring: exact).

    Same arguments and tokens; each round runs the window (W queries) against the preallocated
    cache and appends the keys/values of the ``lead`` slots it commits. Needs a model that takes
    ``past_key_values`` (a transformers ``Cache``). Returns LongTensor[<= max_new].
    """
    prompt = _check_wedlm_args(model, prompt_ids, max_new, window, "wedlm_generate_cached")[0]
    cache = block_cache_for(model, len(prompt) + max_new + 2 * window)  # a round: <= 2W slots
    if len(prompt):
        _wedlm_prefill(model, cache, prompt)

    def forward(slots: torch.Tensor, order: list[int]) -> torch.Tensor:
        return _wedlm_cached_logits(model, cache, slots, order)

    def commit(done: torch.Tensor) -> None:
        cache.commit(len(done))  # the leading filled slots come first in physical order

    return _wedlm_stream(forward, commit, prompt.device, max_new=max_new, window=window,
                         entropy_threshold=entropy_threshold, distance_penalty=distance_penalty,
                         mask_id=mask_id, stop_ids=stop_ids)


def _wedlm_fill(rows: torch.Tensor, unfilled: list[int], entropy_threshold: float,
                distance_penalty: float) -> tuple[list[int], torch.Tensor]:
    """Which unfilled slots to fill and their argmax tokens, as in `wedlm_generate`.

    rows: logits [U, V] of the unfilled slots in slot order. Returns (indices into ``unfilled``,
    LongTensor[U] argmax tokens).
    """
    log_probs = torch.log_softmax(rows.float(), dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    distance = torch.tensor(unfilled, dtype=torch.float32, device=rows.device) - unfilled[0]
    score = entropy + distance_penalty * distance
    picked = (score < entropy_threshold).nonzero()[:, 0].tolist() or [int(score.argmin())]
    return picked, rows.argmax(dim=-1)
