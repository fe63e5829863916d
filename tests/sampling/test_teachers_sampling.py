"""Tests of the teacher samplers (LLaDA2 block sampler, WeDLM streaming decoding) on a tiny Qwen3."""

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from tide.sampling import generate
from tide.sampling.teachers import llada2_generate, step_quotas, wedlm_generate

torch.set_num_threads(1)

VOCAB, MASK, EOS, STOP = 48, 2, 1, 3


class Recorder(torch.nn.Module):
    """Wraps a model: records each call's inputs and adds an optional logit bias function."""

    def __init__(self, inner, bias=None):
        super().__init__()
        self.inner, self.bias, self.calls = inner, bias, []

    def forward(self, **kw):
        self.calls.append({k: v.clone() if torch.is_tensor(v) else v for k, v in kw.items()})
        out = self.inner(**kw)
        if self.bias is not None:
            out.logits = out.logits + self.bias(kw, out.logits)
        self.calls[-1]["logits"] = out.logits.clone()
        return out


def suppress(token: int):
    def bias(kw, logits):
        out = torch.zeros_like(logits)
        out[..., token] = -1e4
        return out

    return bias


@pytest.fixture(scope="module")
def qwen3() -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        initializer_range=0.2,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return Qwen3ForCausalLM(config).eval()


PROMPT = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])


# ---------------------------------------------------------------- LLaDA2


def test_step_quotas():
    assert step_quotas(32, 32) == [1] * 32
    assert step_quotas(4, 3) == [2, 1, 1]
    assert step_quotas(4, 6) == [1, 1, 1, 1, 0, 0]


def test_llada2_high_threshold_commits_the_quota(qwen3):
    model = Recorder(qwen3, suppress(MASK))
    block, steps, gen_length = 4, 3, 7  # canvas ceil(13/4) = 4 blocks; prompt tail in block 1
    out = llada2_generate(
        model,
        PROMPT,
        gen_length=gen_length,
        block_size=block,
        steps=steps,
        threshold=1.5,
        mask_id=MASK,
        eos_id=None,
    )
    assert [len(o) for o in out] == [gen_length, gen_length]
    assert all((o != MASK).all() for o in out)
    quotas = step_quotas(block, steps)  # [2, 1, 1]
    by_block: dict[int, list[torch.Tensor]] = {}
    for call in model.calls:
        ids = call["input_ids"]
        assert torch.equal(ids[:, :6], PROMPT)  # the prompt is never changed
        assert torch.equal(call["position_ids"][0], torch.arange(ids.shape[1]))
        blocks = torch.arange(ids.shape[1]) // block
        assert torch.equal(call["attention_mask"][0, 0], blocks[None, :] <= blocks[:, None])
        by_block.setdefault(ids.shape[1] // block - 1, []).append(
            (ids[:, -block:] == MASK).sum(dim=1)
        )
    assert sorted(by_block) == [1, 2, 3]  # the block holding the prompt tail is denoised too
    assert [len(v) for v in by_block.values()] == [1, 3, 3]  # 2 masks in block 1: one step of 2
    for masked in by_block.values():
        counts = masked + [torch.zeros(2, dtype=torch.long)]
        for s in range(len(masked)):
            expected = torch.minimum(torch.full((2,), quotas[s]), counts[s])
            assert torch.equal(counts[s] - counts[s + 1], expected)


def test_llada2_zero_threshold_fills_a_block_per_forward(qwen3):
    model = Recorder(qwen3, suppress(MASK))
    out = llada2_generate(
        model,
        PROMPT[:1],
        gen_length=8,
        block_size=4,
        steps=8,
        threshold=0.0,
        mask_id=MASK,
        eos_id=None,
    )
    assert len(model.calls) == 3  # blocks 1 (prompt tail), 2, 3: one forward each
    canvas = torch.cat([PROMPT[0], out[0]])
    for call in model.calls:
        end = call["input_ids"].shape[1]
        segment = canvas[end - 4 : end]  # the canvas has 2 columns past prompt + gen_length
        active = (call["input_ids"][0, end - 4 :] == MASK)[: len(segment)]
        argmax = call["logits"][0, end - 4 :].argmax(-1)[: len(segment)]
        assert active.any() and torch.equal(segment[active], argmax[active])


def test_llada2_truncates_after_eos_and_stops(qwen3):
    def eos_at_third(kw, logits):
        out = torch.zeros_like(logits)
        out[..., EOS] = 1e4 * (kw["position_ids"] == 6 + 2)
        out[..., MASK] = -1e4
        return out

    model = Recorder(qwen3, eos_at_third)
    out = llada2_generate(
        model,
        PROMPT[:1],
        gen_length=12,
        block_size=4,
        steps=4,
        threshold=0.9,
        mask_id=MASK,
        eos_id=EOS,
    )
    assert len(out) == 1 and len(out[0]) == 3 and out[0][-1] == EOS
    assert max(c["input_ids"].shape[1] for c in model.calls) == 12  # stopped after block 2


# ---------------------------------------------------------------- WeDLM


def with_lm_head_bias(model: Qwen3ForCausalLM, token: int, value: float) -> Qwen3ForCausalLM:
    """A copy of the model whose lm_head has a bias favouring one token."""
    biased = Qwen3ForCausalLM(model.config).eval()
    biased.load_state_dict(model.state_dict())
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[token] = value
    biased.lm_head = head
    return biased


def wedlm_kw(**kw):
    return {
        "max_new": 9,
        "window": 4,
        "entropy_threshold": 0.4,
        "distance_penalty": 0.02,
        "mask_id": MASK,
        "stop_ids": (STOP,),
    } | kw


def test_wedlm_returns_at_most_max_new(qwen3):
    model = Recorder(qwen3, suppress(STOP))
    out = wedlm_generate(model, PROMPT[0], **wedlm_kw())
    assert out.dim() == 1 and len(out) == 9
    for call in model.calls:  # explicit causal mask over the physical order
        length = call["input_ids"].shape[1]
        assert torch.equal(call["attention_mask"][0, 0], torch.ones(length, length).tril().bool())


def test_wedlm_stops_at_stop_id(qwen3):
    out = wedlm_generate(with_lm_head_bias(qwen3, STOP, 50.0), PROMPT[0], **wedlm_kw())
    assert out.tolist() == [STOP]

    # Favouring the stop id at one logical position only: the output ends exactly there.
    def stop_at_sixth(kw, logits):
        out = torch.zeros_like(logits)
        out[..., STOP] = 100.0 * (kw["position_ids"] == PROMPT.shape[1] + 5) - 50.0
        return out

    out = wedlm_generate(Recorder(qwen3, stop_at_sixth), PROMPT[0], **wedlm_kw(max_new=40))
    assert len(out) == 6 and out[-1] == STOP and STOP not in out[:-1].tolist()


def test_wedlm_commits_leading_filled_slots_in_order(qwen3):
    def no_stop_no_mask(kw, logits):
        out = torch.zeros_like(logits)
        out[..., [STOP, MASK]] = -1e4
        return out

    model = Recorder(qwen3, no_stop_no_mask)
    out = wedlm_generate(model, PROMPT[0], **wedlm_kw(max_new=12, entropy_threshold=3.0))
    assert len(out) == 12
    prompt_len, committed, leads = PROMPT.shape[1], 0, []
    for call, following in zip(model.calls, model.calls[1:]):
        ids, pos = call["input_ids"][0], call["position_ids"][0]
        context = prompt_len + committed
        assert torch.equal(pos[:context], torch.arange(context))
        window_ids, window_slot = ids[context:], pos[context:] - context
        filled = window_ids != MASK
        # filled slots first, then the masks, each in ascending slot order
        assert filled.tolist() == sorted(filled.tolist(), reverse=True)
        assert torch.equal(window_slot[filled], window_slot[filled].sort().values)
        assert torch.equal(window_slot[~filled], window_slot[~filled].sort().values)
        lead, filled_slots = 0, set(window_slot[filled].tolist())
        while lead in filled_slots:
            lead += 1
        # this window's leading filled slots become the next call's context, in order
        assert torch.equal(following["input_ids"][0, context : context + lead], window_ids[:lead])
        assert torch.equal(
            following["position_ids"][0, : context + lead], torch.arange(context + lead)
        )
        assert torch.equal(out[committed : committed + lead], window_ids[:lead])
        committed += lead
        leads.append(lead)
    assert leads[0] == 0 and max(leads) > 1  # several tokens committed in one round


def test_wedlm_parallel_fill_equals_first_forward_argmax(qwen3):
    model = Recorder(qwen3)
    out = wedlm_generate(
        model,
        PROMPT[0],
        **wedlm_kw(max_new=4, entropy_threshold=1e9, distance_penalty=0.0, stop_ids=()),
    )
    assert len(model.calls) == 2  # round 1 fills all 4 slots, round 2 commits them
    with torch.no_grad():
        ids = torch.cat([PROMPT[0], torch.full((4,), MASK)])[None]
        causal = torch.ones(10, 10, dtype=torch.bool).tril()[None, None]
        logits = qwen3(
            input_ids=ids, attention_mask=causal, position_ids=torch.arange(10)[None]
        ).logits
    assert torch.equal(out, logits[0, 6:].argmax(-1))


def test_wedlm_large_distance_penalty_decodes_left_to_right(qwen3):
    model = Recorder(qwen3)
    out = wedlm_generate(
        model,
        PROMPT[0],
        **wedlm_kw(max_new=5, entropy_threshold=-1.0, distance_penalty=100.0, stop_ids=()),
    )
    assert len(out) == 5 and len(model.calls) == 6  # one slot filled and committed per round


def test_wedlm_rejects_batches(qwen3):
    with pytest.raises(ValueError, match="one prompt at a time"):
        wedlm_generate(qwen3, PROMPT, **wedlm_kw())


@pytest.mark.parametrize("shift", [False, True])
def test_llada2_one_token_per_step_equals_the_reference_sampler(qwen3, shift):
    """With one commit per step (threshold above 1) and block-aligned prompts, LLaDA2's sampler and
    the BD3LM reference sampler pick the same tokens, with and without ``right_shift_logits`` (the
    reference reads a block's first slot from the cached prefix, LLaDA2 from its re-encoding)."""
    qwen3.config.right_shift_logits = shift
    try:
        model = Recorder(qwen3, suppress(MASK))
        model.config = qwen3.config
        kw = {"gen_length": 6, "block_size": 3, "mask_id": MASK}
        ours = llada2_generate(model, PROMPT, steps=3, threshold=1.5, eos_id=None, **kw)
        ref = generate(model, PROMPT, steps=6, **kw)
    finally:
        qwen3.config.right_shift_logits = False
    assert torch.equal(torch.stack(ours), ref)
    assert (ref != MASK).all()


def test_llada2_shifted_model_scores_each_slot_with_the_previous_output(qwen3):
    qwen3.config.right_shift_logits = True
    try:
        model = Recorder(qwen3, suppress(MASK))
        model.config = qwen3.config
        out = llada2_generate(model, PROMPT[:1], gen_length=6, block_size=3, steps=6,
                              threshold=0.0, mask_id=MASK, eos_id=None)
    finally:
        qwen3.config.right_shift_logits = False
    assert len(model.calls) == 2  # blocks 2 and 3, one forward each
    for call in model.calls:
        end = call["input_ids"].shape[1]
        previous = call["logits"][0, end - 4 : end - 1].argmax(-1)
        assert torch.equal(out[0][end - 9 : end - 6], previous)


def test_wedlm_refuses_a_shifted_model(qwen3):
    qwen3.config.right_shift_logits = True
    try:
        with pytest.raises(ValueError, match="right_shift_logits"):
            wedlm_generate(qwen3, PROMPT[:1], **wedlm_kw())
    finally:
        qwen3.config.right_shift_logits = False
