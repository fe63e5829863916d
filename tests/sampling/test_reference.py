"""Tests of the BD3LM schedule and the reference sampler against a cache-free brute force written here."""

import copy
import math

import numpy as np
import pytest
import torch
from transformers import Qwen3ForCausalLM

from tide.models.student import A2DQwen3LMHeadModel, student_config
from tide.sampling import SAMPLERS, SamplerConfig, generate, num_transfer_tokens
from tide.sampling.reference import mask_pos

torch.set_num_threads(1)

VOCAB, PAD, EOS, MASK = 64, 0, 1, 2

# ---------------------------------------------------------------- schedule

SCHEDULE_VECTORS = [
    (32, 32, [1] * 32),
    (32, 16, [2] * 16),
    (3, 3, [1, 1, 1]),
    (32, 10, [3, 3, 3, 3, 3, 3, 3, 4, 3, 4]),
    (32, 5, [6, 6, 7, 6, 7]),
    (32, 64, [1] * 32),
]


def numpy_schedule(masks: int, steps: int) -> list[int]:
    """Independent float32 emulation of dllm's get_num_transfer_tokens for one row."""
    f32, one = np.float32, np.float32(1.0)
    remaining, out = masks, []
    for j in range(steps):
        if remaining == 0:
            break
        t, s = f32((steps - j) / steps), f32((steps - j - 1) / steps)
        ratio = float(f32((one - f32(one - s)) / (one - f32(one - t))))
        count = min(remaining, int(np.round(np.float64(remaining) * (1.0 - ratio))))
        remaining -= count
        out += [count] if count else []
    return out


@pytest.mark.parametrize("masks,steps,expected", SCHEDULE_VECTORS)
def test_schedule_vectors(masks, steps, expected):
    assert num_transfer_tokens(torch.tensor([masks]), steps).tolist() == [expected]


def test_schedule_batch_right_pads_and_sums():
    rng = np.random.default_rng(0)
    for _ in range(200):
        steps = int(rng.integers(1, 70))
        counts = [int(c) for c in rng.integers(0, 40, size=4)]
        table = num_transfer_tokens(torch.tensor(counts), steps)
        rows = [numpy_schedule(c, steps) for c in counts]
        assert table.shape == (4, max(len(r) for r in rows))
        for row, expected, count in zip(table.tolist(), rows, counts):
            assert row == expected + [0] * (table.shape[1] - len(expected))
            assert sum(row) == count


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        num_transfer_tokens(torch.tensor([3]), 0)


# ---------------------------------------------------------------- brute force


def loop_mask_pos(x: list[list[int]], left: list[int], pad_id, block_size):
    """mask_pos by loops: valid, positions, block-causal attention, pad rows see themselves."""
    n, width = len(x), len(x[0])
    valid = [
        [c >= left[r] and (pad_id is None or x[r][c] != pad_id) for c in range(width)]
        for r in range(n)
    ]
    attn = torch.zeros(n, 1, width, width, dtype=torch.bool)
    pos = torch.zeros(n, width, dtype=torch.long)
    for r in range(n):
        count = 0
        for q in range(width):
            if valid[r][q]:
                pos[r, q] = count
                count += 1
            for k in range(width):
                attn[r, 0, q, k] = (
                    valid[r][q] and valid[r][k] and k // block_size <= q // block_size
                )
            attn[r, 0, q, q] |= not valid[r][q]
    return attn, pos


def brute_generate(
    model,
    prompts,
    *,
    gen_length,
    steps,
    block_size,
    mask_id,
    eos_id=None,
    pad_id=None,
    remasking="low_confidence",
    temperature=0.0,
    generator=None,
    right_shift=False,
):
    """Cache-free BD3LM sampling: a full forward over the whole canvas at every step (with
    ``right_shift``, column c is scored by the output of column c - 1)."""
    n = len(prompts)
    prefix = math.ceil(max(len(p) for p in prompts) / block_size) * block_size
    left = [prefix - len(p) for p in prompts]
    fill = PAD if pad_id is None else pad_id
    x = [[fill] * left[r] + list(p) for r, p in enumerate(prompts)]
    num_blocks = math.ceil(gen_length / block_size)
    per_block = math.ceil(steps / num_blocks)
    done = [False] * n
    for k in range(num_blocks):
        if all(done):
            break
        length = min(block_size, gen_length - k * block_size)
        start = len(x[0])
        for row in x:
            row.extend([mask_id] * length)
        attn, pos = loop_mask_pos(x, left, pad_id, block_size)
        plans = [numpy_schedule(length, per_block) for _ in range(n)]
        for j in range(max(len(p) for p in plans)):
            if all(mask_id not in row[start:] for row in x):
                break
            with torch.no_grad():
                z = model(input_ids=torch.tensor(x), attention_mask=attn, position_ids=pos).logits
            if right_shift:
                z = torch.cat([z[:, :1], z[:, :-1]], dim=1)
            z = z[:, start:]
            if temperature > 0:
                noise = torch.rand(z.shape, generator=generator, dtype=torch.float64)
                tokens = (z.double().exp() / (-noise.log()) ** temperature).argmax(-1)
            else:
                tokens = z.argmax(-1)
            if remasking == "random":
                conf = torch.rand(tokens.shape, generator=generator)
            else:
                conf = z.softmax(-1).gather(-1, tokens[..., None])[..., 0]
            for r in range(n):
                masked = [i for i in range(length) if x[r][start + i] == mask_id]
                quota = plans[r][j] if j < len(plans[r]) else 0
                best = sorted(masked, key=lambda i: -float(conf[r, i]))[: min(quota, len(masked))]
                for i in best:
                    x[r][start + i] = int(tokens[r, i])
        for r in range(n):
            done[r] |= eos_id is not None and eos_id in x[r][start:]
    out = [row[prefix:] for row in x]
    return torch.tensor([row + [eos_id] * (gen_length - len(row)) for row in out])


# ---------------------------------------------------------------- models and helpers


class Recorder(torch.nn.Module):
    """Wraps a model: records every call and adds an optional logit bias (a function of the call)."""

    def __init__(self, inner, bias=None):
        super().__init__()
        self.inner, self.bias, self.calls = inner, bias, []

    def forward(self, **kw):
        self.calls.append(
            {k: v.clone() for k, v in kw.items() if isinstance(v, torch.Tensor)}
            | {"use_cache": kw.get("use_cache")}
        )
        out = self.inner(**kw)
        assert torch.isfinite(out.logits).all()
        if self.bias is not None:
            out.logits = out.logits + self.bias(kw, out.logits)
        return out


@pytest.fixture(scope="module")
def student() -> A2DQwen3LMHeadModel:
    torch.manual_seed(0)
    config = student_config(
        VOCAB, PAD, EOS, size="unit", a2d=True, tie_word_embeddings=False, initializer_range=0.2
    )
    return A2DQwen3LMHeadModel(config).eval()


def token_bias(token: int, value: float, rows=None):
    """Bias adding `value` to one token's logit (optionally in some batch rows only)."""

    def bias(kw, logits):
        out = torch.zeros_like(logits)
        out[..., token] = value
        if rows is not None:
            keep = torch.zeros(logits.shape[0], dtype=torch.bool)
            keep[list(rows)] = True
            out[~keep] = 0
        return out

    return bias


def left_pad(prompts: list[list[int]]) -> torch.Tensor:
    width = max(len(p) for p in prompts)
    return torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])


PROMPTS = [[5, 9, 11, 40, 17, 3, 8], [21, 22, 23], [30, 31, 32, 33, 34, 35, 36, 37, 38, 39]]


# ---------------------------------------------------------------- tests


def test_mask_pos_matches_loops():
    x = [[PAD, PAD, 5, 6, 7, PAD, 8, MASK], [4, 5, 6, 7, 8, 9, 10, 11]]
    left = [2, 0]
    attn, pos = mask_pos(
        torch.tensor(x),
        torch.tensor(
            [[c >= left[r] and v != PAD for c, v in enumerate(row)] for r, row in enumerate(x)]
        ),
        3,
    )
    ref_attn, ref_pos = loop_mask_pos(x, left, PAD, 3)
    assert torch.equal(attn, ref_attn) and torch.equal(pos, ref_pos)
    assert pos[0].tolist() == [0, 0, 0, 1, 2, 0, 3, 4]


@pytest.mark.parametrize(
    "gen_length,steps,block_size",
    [(10, 10, 4), (10, 4, 4), (10, 25, 4), (8, 8, 4), (5, 5, 8)],
    ids=["G-not-multiple", "steps<G", "steps>G", "G-multiple", "B>G"],
)
def test_reference_equals_brute_force(student, gen_length, steps, block_size):
    kw = {
        "gen_length": gen_length,
        "steps": steps,
        "block_size": block_size,
        "mask_id": MASK,
        "eos_id": EOS,
        "pad_id": PAD,
    }
    got = generate(student, left_pad(PROMPTS), **kw)
    expected = brute_generate(student, PROMPTS, **kw)
    assert got.shape == (3, gen_length)
    assert torch.equal(got, expected)
    assert (got != MASK).float().mean() > 0.5  # a real test: tokens were committed


def test_reference_equals_brute_force_with_generated_pads(student):
    """Forced PADs at some positions become invisible and position-less in later blocks."""

    def pad_bias(kw, logits):
        out = torch.zeros_like(logits)
        out[..., PAD] = 30.0 * (kw["position_ids"] % 5 == 3)
        return out

    model = Recorder(student, pad_bias)
    kw = {
        "gen_length": 12,
        "steps": 12,
        "block_size": 4,
        "mask_id": MASK,
        "eos_id": None,
        "pad_id": PAD,
    }
    got = generate(model, left_pad(PROMPTS), **kw)
    assert (got == PAD).any()
    assert torch.equal(got, brute_generate(model, PROMPTS, **kw))


def test_reference_equals_brute_force_sampling_random_remasking(student):
    kw = {
        "gen_length": 10,
        "steps": 6,
        "block_size": 4,
        "mask_id": MASK,
        "eos_id": EOS,
        "pad_id": PAD,
        "remasking": "random",
        "temperature": 0.7,
    }
    got = generate(student, left_pad(PROMPTS), generator=torch.Generator().manual_seed(3), **kw)
    expected = brute_generate(student, PROMPTS, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(got, expected)
    greedy = generate(
        student, left_pad(PROMPTS), **(kw | {"remasking": "low_confidence", "temperature": 0.0})
    )
    assert not torch.equal(got, greedy)


def test_plain_qwen3_used_as_bd3lm_without_padding():
    torch.manual_seed(1)
    config = student_config(
        VOCAB, PAD, EOS, size="unit", tie_word_embeddings=False, initializer_range=0.2
    )
    model = Qwen3ForCausalLM(config).eval()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    kw = {
        "gen_length": 7,
        "steps": 7,
        "block_size": 4,
        "mask_id": MASK,
        "eos_id": None,
        "pad_id": None,
    }
    got = generate(model, torch.tensor(prompts), **kw)
    assert torch.equal(got, brute_generate(model, prompts, **kw))


def test_empty_prompts(student):
    """Rows that are all padding (or no prompt columns at all) start from an empty prefix."""
    kw = {"gen_length": 6, "steps": 6, "block_size": 4, "mask_id": MASK, "pad_id": PAD}
    got = generate(student, torch.full((2, 3), PAD), **kw)
    assert got.shape == (2, 6) and (got != MASK).any()
    assert torch.equal(got, brute_generate(student, [[], []], **kw))
    assert torch.equal(generate(student, torch.zeros(2, 0, dtype=torch.long), **kw), got)


def test_extra_pad_columns_change_nothing(student):
    """Blocks are aligned to the prompt end: more leading pad columns give the same tokens."""
    kw = {
        "gen_length": 9,
        "steps": 9,
        "block_size": 4,
        "mask_id": MASK,
        "eos_id": EOS,
        "pad_id": PAD,
    }
    prompt_ids = left_pad(PROMPTS)
    wider = torch.cat([torch.full((3, 5), PAD), prompt_ids], dim=1)
    assert torch.equal(generate(student, wider, **kw), generate(student, prompt_ids, **kw))


def test_commits_follow_schedule_and_prompt_is_kept(student):
    mask_never = token_bias(MASK, -1e4)
    model = Recorder(student, mask_never)
    gen_length, steps, block_size = 10, 7, 4  # 3 blocks, 3 steps per block
    prompt_ids = left_pad(PROMPTS)
    out = generate(
        model,
        prompt_ids,
        gen_length=gen_length,
        steps=steps,
        block_size=block_size,
        mask_id=MASK,
        pad_id=PAD,
    )
    assert (out != MASK).all()
    prefix_calls = [c for c in model.calls if c["use_cache"]]
    step_calls = [c for c in model.calls if not c["use_cache"]]
    assert len(prefix_calls) == 3
    aligned = torch.tensor([[PAD] * (12 - len(p)) + p for p in PROMPTS])
    for call in prefix_calls:
        assert torch.equal(call["input_ids"][:, :12], aligned)
    blocks = [step_calls[0:3], step_calls[3:6], step_calls[6:8]]  # last block: 2 masks, 2 steps
    assert len(step_calls) == 8
    for calls, length in zip(blocks, [4, 4, 2]):
        masked = [(c["input_ids"] == MASK).sum(dim=1) for c in calls] + [torch.zeros(3).long()]
        commits = torch.stack([masked[j] - masked[j + 1] for j in range(len(calls))], dim=1)
        assert torch.equal(commits, num_transfer_tokens(torch.full((3,), length), 3))


def test_mask_argmax_keeps_slots_masked(student):
    model = Recorder(student, token_bias(MASK, 1e4))
    out = generate(
        model, left_pad(PROMPTS), gen_length=6, steps=6, block_size=4, mask_id=MASK, pad_id=PAD
    )
    assert (out == MASK).all()
    # Every scheduled step runs (masks never run out), then the masks stay: 3 + 2 steps.
    planned = sum(num_transfer_tokens(torch.tensor([m]), 3).shape[1] for m in (4, 2))
    assert planned == 5
    assert sum(not c["use_cache"] for c in model.calls) == planned


def test_eos_in_every_row_stops_the_batch(student):
    model = Recorder(student, token_bias(EOS, 1e4))
    out = generate(
        model,
        left_pad(PROMPTS),
        gen_length=12,
        steps=12,
        block_size=4,
        mask_id=MASK,
        eos_id=EOS,
        pad_id=PAD,
    )
    assert (out == EOS).all()
    assert sum(bool(c["use_cache"]) for c in model.calls) == 1  # one block only


def test_eos_in_some_rows_does_not_stop(student):
    model = Recorder(student, token_bias(EOS, 1e4, rows=[0]))
    out = generate(
        model,
        left_pad(PROMPTS),
        gen_length=12,
        steps=12,
        block_size=4,
        mask_id=MASK,
        eos_id=EOS,
        pad_id=PAD,
    )
    assert (out[0] == EOS).all() and not (out[1:] == EOS).all()
    assert sum(bool(c["use_cache"]) for c in model.calls) == 3  # all blocks, finished row too


def test_unknown_method_and_bad_inputs(student):
    prompt_ids = left_pad(PROMPTS)
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        generate(
            student, prompt_ids, gen_length=4, steps=4, block_size=4, mask_id=MASK, method="fast"
        )
    with pytest.raises(ValueError, match="prompt_ids must be a LongTensor"):
        generate(student, prompt_ids[0], gen_length=4, steps=4, block_size=4, mask_id=MASK)
    with pytest.raises(ValueError, match="unknown remasking"):
        generate(
            student, prompt_ids, gen_length=4, steps=4, block_size=4, mask_id=MASK, remasking="topk"
        )
    assert "reference" in SAMPLERS


def test_sampler_config():
    config = SamplerConfig(gen_length=16, steps=8, block_size=4)
    assert config.as_kwargs() == {
        "gen_length": 16,
        "steps": 8,
        "block_size": 4,
        "remasking": "low_confidence",
        "temperature": 0.0,
    }
    with pytest.raises(ValueError, match="remasking"):
        SamplerConfig(remasking="nope")


def test_right_shifted_logits_equal_brute_force(student):
    """dllm's right_shift_logits: the cached sampler scores a block's first slot with the prefix's
    last output and slot i with output i - 1, as a full forward shifted by one column does."""
    kw = {"gen_length": 10, "steps": 10, "block_size": 4, "mask_id": MASK, "eos_id": EOS,
          "pad_id": PAD}
    shifted = generate(student, left_pad(PROMPTS), right_shift_logits=True, **kw)
    assert torch.equal(shifted, brute_generate(student, PROMPTS, right_shift=True, **kw))
    assert not torch.equal(shifted, generate(student, left_pad(PROMPTS), **kw))
    flagged = copy.deepcopy(student)
    flagged.config.right_shift_logits = True  # what a2d writes into config.json
    assert torch.equal(generate(flagged, left_pad(PROMPTS), **kw), shifted)
