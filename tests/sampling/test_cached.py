"""The KV-cached BD3LM samplers against the reference (tide.sampling.reference, the ground truth).

A unit student trained for a few dozen steps (a fixture: a counting task with one EOS) gives
confident, structured outputs: rows end with EOS at different blocks, so generation goes through
the EOS stop and several blocks. Comparisons are meaningful beyond tie luck: the step logits of the
cached sampler match the reference's to float rounding (bitwise on the CPUs measured), checked per
forward below, and ties in the commit rule are tested on their own.
"""

import copy
import math
import sys

import pytest
import torch

from tide.diffusion import bd3lm_loss
from tide.models.student import A2DQwen3LMHeadModel, student_config
from tide.sampling import SAMPLERS, generate, num_transfer_tokens
from tide.sampling.cached import commit_above, commit_top
from tide.sampling.reference import denoise_step

torch.set_num_threads(1)

VOCAB, PAD, EOS, MASK = 64, 0, 1, 2
TRAIN_WIDTH, TRAIN_BLOCK = 48, 16


def counting_rows(generator: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows: prompt of 3-12 tokens, reply counting up from its last token (p + 6 tokens),
    one EOS, PADs. Returns (x0, labels) LongTensor[n, 48]; labels -100 on prompt and pads."""
    x0 = torch.full((n, TRAIN_WIDTH), PAD)
    labels = torch.full((n, TRAIN_WIDTH), -100)
    for row in range(n):
        length = int(torch.randint(3, 13, (1,), generator=generator))
        prompt = torch.randint(4, 40, (length,), generator=generator)
        start = int(prompt[-1]) + 1
        reply = torch.arange(start, start + length + 6) % 60 + 4
        seq = torch.cat([prompt, reply, torch.tensor([EOS])])
        x0[row, : len(seq)] = seq
        labels[row, length : len(seq)] = seq[length:]
    return x0, labels


def train_unit_student(right_shift: bool) -> A2DQwen3LMHeadModel:
    """A unit student after 60 BD3LM steps on counting rows (about 3 s)."""
    torch.manual_seed(0)
    config = student_config(VOCAB, PAD, EOS, size="unit", a2d=True, tie_word_embeddings=False)
    config.right_shift_logits = right_shift
    model = A2DQwen3LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        x0, labels = counting_rows(generator, 32)
        loss, _ = bd3lm_loss(model, x0, labels, mask_id=MASK, block_size=TRAIN_BLOCK,
                             generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained() -> A2DQwen3LMHeadModel:
    return train_unit_student(right_shift=False)


@pytest.fixture(scope="module")
def shifted() -> A2DQwen3LMHeadModel:
    """Trained with the config's ``right_shift_logits`` on (output i scores slot i + 1)."""
    return train_unit_student(right_shift=True)


def prompts(n: int, seed: int) -> list[list[int]]:
    """n prompts of 3-12 tokens (distinct with overwhelming probability)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (n,), generator=generator).tolist()
    return [torch.randint(4, 40, (k,), generator=generator).tolist() for k in lengths]


def left_pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[PAD] * (width - len(r)) + r for r in rows])


def settings(gen_length, steps, block_size, **extra) -> dict:
    return {"gen_length": gen_length, "steps": steps, "block_size": block_size,
            "mask_id": MASK, "eos_id": EOS, "pad_id": PAD} | extra


class Recorder(torch.nn.Module):
    """Wraps a model: records each call's logits (and an optional logit bias of the call)."""

    def __init__(self, inner, bias=None):
        super().__init__()
        self.inner, self.bias, self.logits = inner, bias, []
        self.config = inner.config

    def forward(self, **kw):
        out = self.inner(**kw)
        if self.bias is not None:
            out.logits = out.logits + self.bias(kw, out.logits)
        self.logits.append(out.logits.clone())
        return out


PROMPTS = prompts(50, seed=1)


# ---------------------------------------------------------------- token agreement


@pytest.mark.parametrize("shift", [False, True], ids=["no-shift", "right-shift"])
@pytest.mark.parametrize(
    "gen_length,steps,block_size",
    [(40, 40, 16), (40, 20, 16), (32, 32, 16), (21, 9, 8)],
    ids=["G-not-multiple", "steps<G", "G-multiple", "short-blocks"],
)
def test_cached_equals_reference_batched(trained, shifted, shift, gen_length, steps, block_size):
    model = shifted if shift else trained
    kw = settings(gen_length, steps, block_size)
    ids = left_pad(PROMPTS)  # 50 prompts of mixed lengths, one batch
    expected = generate(model, ids, **kw)
    got = generate(model, ids, method="cached", **kw)
    assert torch.equal(got, expected)
    assert (expected == EOS).any(dim=1).float().mean() > 0.5  # EOS is reached


@pytest.mark.parametrize("shift,count", [(True, 50), (False, 20)], ids=["right-shift", "no-shift"])
def test_cached_equals_reference_one_prompt_at_a_time(trained, shifted, shift, count):
    model = shifted if shift else trained
    kw = settings(40, 40, 16)
    stops_early = 0
    for prompt in PROMPTS[:count]:
        ids = torch.tensor([prompt])
        expected = generate(model, ids, **kw)
        assert torch.equal(generate(model, ids, method="cached", **kw), expected)
        stops_early += bool((expected[0, :16] == EOS).any())
    assert 0 < stops_early < count  # both the EOS stop and multi-block rows occur


def test_step_logits_match_the_reference(shifted):
    """Every denoising forward of the cached sampler sees the reference's logits (so token
    agreement is not luck): same number of steps, values equal to rounding."""
    kw = settings(40, 20, 16, eos_id=None)
    reference, cached = Recorder(shifted), Recorder(shifted)
    ids = left_pad(PROMPTS[:12])
    generate(reference, ids, **kw)
    generate(cached, ids, method="cached", **kw)
    blocks = math.ceil(40 / 16)
    per_block = [num_transfer_tokens(torch.tensor([m]), math.ceil(20 / blocks)).shape[1]
                 for m in (16, 16, 8)]
    ref_steps, cache_steps, r, c = [], [], 0, 0
    for k, steps in enumerate(per_block):
        r += 1  # the reference's prefix forward
        ref_steps += reference.logits[r : r + steps]
        r += steps
        c += 1 if k == 0 else 0  # prefill; later blocks: the commit forward of the previous one
        cache_steps += cached.logits[c : c + steps]
        c += steps + (1 if k < blocks - 1 else 0)
    assert len(reference.logits) == r and len(cached.logits) == c
    for a, b in zip(ref_steps, cache_steps, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_cached_sampling_with_generator_equals_reference(trained):
    """temperature > 0 and random remasking draw the same random numbers in the same order."""
    kw = settings(24, 12, 8, remasking="random", temperature=0.8)
    ids = left_pad(PROMPTS[:20])
    expected = generate(trained, ids, generator=torch.Generator().manual_seed(5), **kw)
    got = generate(trained, ids, method="cached", generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(got, expected)


def test_generated_pads_become_invisible_as_in_the_reference(trained):
    """PADs forced at some positions: the commit forward drops them from attention and positions
    exactly as the reference's next prefix forward does."""

    def pad_bias(kw, logits):
        out = torch.zeros_like(logits)
        out[..., PAD] = 30.0 * (kw["position_ids"] % 5 == 3)
        return out

    kw = settings(24, 24, 8, eos_id=None)
    ids = left_pad(PROMPTS[:10])
    expected = generate(Recorder(trained, pad_bias), ids, **kw)
    assert (expected == PAD).any()
    assert torch.equal(generate(Recorder(trained, pad_bias), ids, method="cached", **kw), expected)


def test_empty_prompts_and_extra_pad_columns(trained):
    kw = settings(12, 12, 4)
    empty = torch.full((2, 3), PAD)
    assert torch.equal(generate(trained, empty, method="cached", **kw), generate(trained, empty, **kw))
    ids = left_pad(PROMPTS[:4])
    wider = torch.cat([torch.full((4, 5), PAD), ids], dim=1)
    assert torch.equal(generate(trained, wider, method="cached", **kw), generate(trained, ids, **kw))


def test_eos_everywhere_stops_after_the_first_block(trained):
    def eos_bias(kw, logits):
        out = torch.zeros_like(logits)
        out[..., EOS] = 1e4
        return out

    model = Recorder(trained, eos_bias)
    out = generate(model, left_pad(PROMPTS[:3]), method="cached", **settings(12, 12, 4))
    assert (out == EOS).all()
    assert len(model.logits) == 1 + 4  # prefill + the first block's 4 steps, no commit forward


# ---------------------------------------------------------------- commit rule, copies, syncs


def test_commit_top_equals_the_reference_step_with_ties():
    """Tied confidences (equal logits rows) and fewer masks than the quota: the batched on-device
    commit picks the reference's slots."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        n, length = 4, 8
        logits = torch.randn(n, 1, VOCAB, generator=generator).expand(n, length, VOCAB).clone()
        logits[:, ::3] += torch.randn(n, 1, VOCAB, generator=generator)
        block = torch.where(torch.rand(n, length, generator=generator) < 0.6, MASK, 7)
        count = int(torch.randint(1, length + 1, (1,), generator=generator))
        expected = denoise_step(logits, block, torch.full((n,), count), mask_id=MASK)
        tokens = logits.argmax(-1)
        conf = logits.softmax(-1).gather(-1, tokens[..., None])[..., 0]
        assert torch.equal(commit_top(block, tokens, conf, count, MASK), expected)


SAMPLER_FILES = ("cached.py", "kv_cache.py", "reference.py")


def count_sampler_syncs(monkeypatch) -> dict:
    """Count .item() / .tolist() / bool() / .cpu() called from the sampler modules (the model's
    internals and the host-side schedule arithmetic of schedule.py are not counted)."""
    syncs = {"n": 0}
    for name in ("item", "tolist", "__bool__", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            syncs["n"] += caller.endswith(SAMPLER_FILES) and "sampling" in caller
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return syncs


def test_no_copies_and_no_per_step_host_syncs(trained, monkeypatch):
    """No deepcopy, and the number of host syncs does not grow with the number of steps (the
    reference's does: the counter works)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("copy.deepcopy called")

    ids = left_pad(PROMPTS[:8])
    syncs = count_sampler_syncs(monkeypatch)
    counts = {}
    for method in ("reference", "cached"):
        for steps in (4, 32):
            syncs["n"] = 0
            if method == "cached":
                monkeypatch.setattr(copy, "deepcopy", forbidden)
            generate(trained, ids, method=method, **settings(64, steps * 2, 32))
            counts[method, steps] = syncs["n"]
    assert counts["cached", 4] == counts["cached", 32] <= 8
    assert counts["reference", 32] > counts["reference", 4]


# ---------------------------------------------------------------- threshold sampler


def test_threshold_above_one_is_the_one_token_per_step_schedule(trained, shifted):
    for model in (trained, shifted):
        ids = left_pad(PROMPTS[:20])
        kw = settings(32, 32, 16)
        one_per_step = generate(model, ids, method="cached", **kw)
        assert torch.equal(generate(model, ids, method="threshold", threshold=1.5, **kw),
                           one_per_step)
        assert torch.equal(generate(model, ids, method="threshold", threshold=1.0, **kw),
                           one_per_step)


def test_threshold_commits_confident_slots_and_at_least_one_per_step(trained):
    """Per step and row: at least one commit while masks remain; every committed slot's
    confidence exceeds the threshold or is the step's maximum over masked slots."""
    generator = torch.Generator().manual_seed(0)
    threshold = 0.3
    for _ in range(100):
        logits = torch.randn(3, 8, VOCAB, generator=generator) * 3
        logits[..., MASK] = -math.inf  # every commit changes its slot
        block = torch.where(torch.rand(3, 8, generator=generator) < 0.7, MASK, 7)
        tokens = logits.argmax(-1)
        conf = logits.softmax(-1).gather(-1, tokens[..., None])[..., 0]
        new = commit_above(block, tokens, conf, threshold, MASK)
        committed = (block == MASK) & (new != block)
        for row in range(3):
            masked = block[row] == MASK
            if masked.any():
                assert committed[row].sum() >= 1
                best = conf[row][masked].max()
                assert ((conf[row] > threshold) | (conf[row] == best))[committed[row]].all()
                assert (committed[row] | ~masked | (conf[row] <= threshold)).all()


def test_threshold_uses_fewer_forwards_and_terminates(trained):
    ids = left_pad(PROMPTS[:10])
    kw = settings(40, 40, 16, eos_id=None)
    model = Recorder(trained)
    out = generate(model, ids, method="threshold", threshold=0.1, **kw)
    assert (out != MASK).all() and len(model.logits) < (1 + 40 + 2) / 2

    def mask_bias(kw, logits):  # every argmax is MASK: slots stay masked, the loop still ends
        out = torch.zeros_like(logits)
        out[..., MASK] = 1e4
        return out

    stuck = Recorder(trained, mask_bias)
    out = generate(stuck, ids, method="threshold", threshold=0.5, **kw)
    assert (out == MASK).all() and len(stuck.logits) == 1 + 16 + 1 + 16 + 1 + 8


def test_threshold_rejects_random_remasking(trained):
    with pytest.raises(ValueError, match="remasking must be 'low_confidence'"):
        generate(trained, left_pad(PROMPTS[:2]), method="threshold", remasking="random",
                 **settings(8, 8, 4))


def test_registered():
    assert {"reference", "cached", "threshold"} <= set(SAMPLERS)
