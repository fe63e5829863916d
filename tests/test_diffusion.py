"""Tests for tide.diffusion: block mask, noising RNG order, BD3LM inputs and objective, no-leak."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from tide.diffusion import (
    bd3lm_inputs,
    bd3lm_loss,
    block_diffusion_mask,
    corrupt,
    loss_weight,
    mask_slot_loss,
    masked_diffusion_loss,
    noise,
    sample_mask,
    sample_timesteps,
    score,
)
from tide.losses import bd3lm_ce

torch.set_num_threads(1)

VOCAB = 50
MASK_ID = VOCAB - 1


def tiny_qwen3() -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        attn_implementation="sdpa",
    )
    return Qwen3ForCausalLM(config).eval()


# ---------------------------------------------------------------------------------- block mask


def brute_force_mask(seq_len: int, block_size: int, clean_first: bool) -> torch.Tensor:
    """The boolean rule of the spec, one (q, k) pair at a time."""
    out = torch.zeros(2 * seq_len, 2 * seq_len, dtype=torch.bool)
    for q in range(2 * seq_len):
        for k in range(2 * seq_len):
            h_q, h_k = int(q >= seq_len), int(k >= seq_len)
            blk_q = (q - h_q * seq_len) // block_size
            blk_k = (k - h_k * seq_len) // block_size
            c_q = (h_q == 0) if clean_first else (h_q == 1)
            c_k = (h_k == 0) if clean_first else (h_k == 1)
            out[q, k] = (
                (blk_q == blk_k and c_q == c_k)
                or (not c_q and c_k and blk_k < blk_q)
                or (c_q and c_k and blk_k <= blk_q)
            )
    return out


@pytest.mark.parametrize("clean_first", [False, True])
@pytest.mark.parametrize(
    ("seq_len", "block_size"), [(1, 1), (4, 2), (8, 4), (10, 4), (13, 5), (7, 32), (9, 1)]
)
def test_block_mask_equals_brute_force(seq_len: int, block_size: int, clean_first: bool) -> None:
    got = block_diffusion_mask(seq_len, block_size, clean_first)
    assert got.dtype == torch.bool and got.shape == (2 * seq_len, 2 * seq_len)
    assert torch.equal(got, brute_force_mask(seq_len, block_size, clean_first))


def test_block_mask_hand_example_student_order() -> None:
    # L = 4, block 2, [xt ; x0]: rows/cols 0-1 noisy block 0, 2-3 noisy block 1,
    # 4-5 clean block 0, 6-7 clean block 1.
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(block_diffusion_mask(4, 2, clean_first=False), expected)
    # Teacher order [x0 ; xt] is the same graph with the halves swapped.
    perm = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3])
    assert torch.equal(block_diffusion_mask(4, 2, clean_first=True), expected[perm][:, perm])


def test_block_mask_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="block_size"):
        block_diffusion_mask(8, 0, clean_first=False)


# ---------------------------------------------------------------------------------- noising


def test_rng_order_t_then_position_draw() -> None:
    batch, length, eps = 3, 17, 1e-3
    maskable = torch.rand(batch, length, generator=torch.Generator().manual_seed(5)) < 0.8
    gen = torch.Generator().manual_seed(1234)
    t = sample_timesteps(batch, gen, eps)
    masked = sample_mask(maskable, t, gen)

    ref = torch.Generator().manual_seed(1234)
    t_ref = eps + (1 - eps) * torch.rand(batch, generator=ref)
    u_ref = torch.rand(batch, length, generator=ref)
    masked_ref = torch.zeros(batch, length, dtype=torch.bool)
    for b in range(batch):
        for i in range(length):
            masked_ref[b, i] = bool(u_ref[b, i] < t_ref[b]) and bool(maskable[b, i])
    assert t.dtype == torch.float32
    assert torch.equal(t, t_ref)
    assert torch.equal(masked, masked_ref)
    # The other order would give a different t (so the check above is meaningful).
    swapped = torch.Generator().manual_seed(1234)
    torch.rand(batch, length, generator=swapped)
    assert not torch.equal(eps + (1 - eps) * torch.rand(batch, generator=swapped), t)


def test_timesteps_range_and_mask_rate() -> None:
    gen = torch.Generator().manual_seed(0)
    t = sample_timesteps(4000, gen, eps=0.1)
    assert t.min() >= 0.1 and t.max() < 1.0
    assert abs(t.mean().item() - 0.55) < 0.02
    t_fixed = torch.full((2,), 0.3)
    maskable = torch.ones(2, 5000, dtype=torch.bool)
    maskable[1, :2500] = False
    masked = sample_mask(maskable, t_fixed, gen)
    assert not masked[1, :2500].any()
    assert abs(masked[0].float().mean().item() - 0.3) < 0.03


def test_noise_replaces_only_masked() -> None:
    x0 = torch.arange(12).view(2, 6)
    masked = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    xt = noise(x0, masked, mask_id=99)
    assert torch.equal(xt[masked], torch.full((3,), 99))
    assert torch.equal(xt[~masked], x0[~masked])


def test_loss_weight_kinds() -> None:
    t = torch.tensor([1e-3, 0.5, 1.0])
    expected = torch.tensor([1 / (1e-3 + 1e-6), 1 / (0.5 + 1e-6), 1 / (1.0 + 1e-6)])
    assert torch.allclose(loss_weight(t, "elbo"), expected)
    assert torch.equal(loss_weight(t, "uniform"), torch.ones(3))
    with pytest.raises(ValueError, match="kind"):
        loss_weight(t, "linear")


def test_bd3lm_inputs_layout() -> None:
    xt = torch.tensor([[9, 1, 9], [4, 9, 6]])
    x0 = torch.tensor([[0, 1, 2], [4, 5, 6]])
    ids, pos, mask = bd3lm_inputs(xt, x0, block_size=2)
    assert torch.equal(ids, torch.tensor([[9, 1, 9, 0, 1, 2], [4, 9, 6, 4, 5, 6]]))
    assert torch.equal(pos, torch.tensor([[0, 1, 2, 0, 1, 2]] * 2))
    assert mask.shape == (1, 1, 6, 6) and mask.dtype == torch.bool
    assert torch.equal(mask[0, 0], brute_force_mask(3, 2, clean_first=False))


# ---------------------------------------------------------------------------------- BD3LM CE


def reference_ce(logits, x0, masked, maskable, t, norm: str, weight: str) -> torch.Tensor:
    """Per-position loop of the spec's weighted CE (float64)."""
    batch, length, _ = logits.shape
    total = logits.new_zeros((), dtype=torch.float64)
    per_row = [logits.new_zeros((), dtype=torch.float64) for _ in range(batch)]
    for b in range(batch):
        w = 1.0 / (float(t[b]) + 1e-6) if weight == "elbo" else 1.0
        for i in range(length):
            if not masked[b, i]:
                continue
            z = logits[b, i].double()
            lse = z.max() + torch.log(torch.exp(z - z.max()).sum())
            term = w * (lse - z[x0[b, i]])
            total = total + term
            per_row[b] = per_row[b] + term
    if norm == "token":
        return total / max(1, int(maskable.sum()))
    if norm == "sequence":
        return sum(per_row[b] / max(1, int(maskable[b].sum())) for b in range(batch)) / batch
    return total / batch


@pytest.mark.parametrize("weight", ["elbo", "uniform"])
@pytest.mark.parametrize("norm", ["token", "sequence", "batch"])
def test_bd3lm_ce_equals_loop(norm: str, weight: str) -> None:
    gen = torch.Generator().manual_seed(3)
    batch, length, vocab = 3, 9, 11
    logits = (3 * torch.randn(batch, length, vocab, generator=gen)).requires_grad_()
    x0 = torch.randint(0, vocab, (batch, length), generator=gen)
    maskable = torch.rand(batch, length, generator=gen) < 0.7
    maskable[2] = False  # a row without any maskable token
    t = torch.tensor([0.3, 0.8, 0.5])
    masked = (torch.rand(batch, length, generator=gen) < t[:, None]) & maskable
    assert masked.any()

    got = bd3lm_ce(logits, x0, masked, maskable, t, norm=norm, weight=weight)
    ref = reference_ce(logits, x0, masked, maskable, t, norm, weight)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-6)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert torch.allclose(g_got, g_ref, rtol=1e-4, atol=1e-6)


def test_bd3lm_ce_ignores_unmasked_logits_and_handles_empty() -> None:
    logits = torch.randn(2, 4, 7)
    logits[0, 1] = float("nan")
    logits.requires_grad_()
    x0 = torch.randint(0, 7, (2, 4))
    masked = torch.zeros(2, 4, dtype=torch.bool)
    masked[1, 2] = True
    maskable = torch.ones(2, 4, dtype=torch.bool)
    t = torch.tensor([0.5, 0.5])
    assert torch.isfinite(bd3lm_ce(logits, x0, masked, maskable, t))
    empty = bd3lm_ce(logits, x0, torch.zeros_like(masked), maskable, t)
    assert empty.item() == 0.0 and empty.requires_grad
    (grad,) = torch.autograd.grad(empty, logits)
    assert torch.equal(grad, torch.zeros_like(logits))


# ---------------------------------------------------------------------------------- model level


def test_bd3lm_loss_matches_manual_forward() -> None:
    model = tiny_qwen3()
    batch, length, block = 2, 10, 4
    x0 = torch.randint(0, VOCAB - 1, (batch, length), generator=torch.Generator().manual_seed(7))
    labels = x0.clone()
    labels[0, :3] = -100
    labels[1, 8:] = -100
    loss, aux = bd3lm_loss(
        model,
        x0,
        labels,
        mask_id=MASK_ID,
        block_size=block,
        generator=torch.Generator().manual_seed(11),
    )

    ref_gen = torch.Generator().manual_seed(11)
    t = 1e-3 + (1 - 1e-3) * torch.rand(batch, generator=ref_gen)
    masked = (torch.rand(batch, length, generator=ref_gen) < t[:, None]) & (labels != -100)
    assert torch.equal(aux["t"], t) and torch.equal(aux["masked"], masked)
    assert not masked[0, :3].any() and not masked[1, 8:].any()

    xt = torch.where(masked, MASK_ID, x0)
    mask = brute_force_mask(length, block, clean_first=False)[None, None]
    pos = torch.cat([torch.arange(length), torch.arange(length)])[None].expand(batch, -1)
    logits = model(input_ids=torch.cat([xt, x0], 1), position_ids=pos, attention_mask=mask).logits
    logits = logits[:, :length]
    assert torch.allclose(aux["logits"], logits, atol=1e-6)
    ref = reference_ce(logits, x0, masked, labels != -100, t, "token", "elbo")
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
    loss.backward()
    assert model.model.embed_tokens.weight.grad.abs().sum() > 0

    # right_shift_logits (from the checkpoint's config): position i is scored by output i - 1;
    # position 0 (supervised in row 1) has no output before it and is never masked
    model.config.right_shift_logits = True
    shifted, aux = bd3lm_loss(model, x0, labels, mask_id=MASK_ID, block_size=block,
                              generator=torch.Generator().manual_seed(11))
    maskable = labels != -100
    maskable[:, 0] = False
    masked = masked & maskable
    assert torch.equal(aux["masked"], masked)
    xt = torch.where(masked, MASK_ID, x0)
    logits = model(input_ids=torch.cat([xt, x0], 1), position_ids=pos, attention_mask=mask).logits
    by_previous = torch.cat([logits[:, :1], logits[:, :length - 1]], dim=1)
    assert torch.allclose(aux["logits"], by_previous, atol=1e-6)
    ref = reference_ce(by_previous, x0, masked, maskable, t, "token", "elbo")
    assert math.isclose(shifted.item(), ref.item(), rel_tol=1e-5)
    assert not math.isclose(shifted.item(), loss.item(), rel_tol=1e-3)


@pytest.mark.parametrize("shift", [False, True])
def test_corrupt_draws_t_then_mask_and_the_hook_sees_the_drawn_mask(shift: bool) -> None:
    """corrupt: t, then the mask over supervised positions (position 0 excluded when the model
    shifts its logits, whatever its label), then ``remask``'s mask noised and its state kept; score
    is the BD3LM CE of those positions."""
    model = tiny_qwen3()
    model.config.right_shift_logits = shift
    batch, length = 3, 12
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, VOCAB - 1, (batch, length), generator=gen)
    labels = x0.clone()
    labels[0, :4] = -100  # a prompt; rows 1 and 2 supervise their first token

    ref_gen = torch.Generator().manual_seed(9)
    t = 1e-3 + (1 - 1e-3) * torch.rand(batch, generator=ref_gen)
    maskable = labels != -100
    if shift:
        maskable[:, 0] = False
    drawn = (torch.rand(batch, length, generator=ref_gen) < t[:, None]) & maskable

    seen = []

    def remask(masked):
        seen.append(masked.clone())
        return masked | maskable, "state"

    noised = corrupt(model, x0, labels, mask_id=MASK_ID, generator=torch.Generator().manual_seed(9),
                     remask=remask)
    assert torch.equal(noised.t, t) and torch.equal(seen[0], drawn)
    assert torch.equal(noised.maskable, maskable) and torch.equal(noised.masked, maskable)
    assert torch.equal(noised.xt, torch.where(maskable, MASK_ID, x0)) and noised.state == ("state",)
    assert bool(noised.masked[1:, 0].all()) is not shift  # labelled first tokens: masked unless shifted
    plain = corrupt(model, x0, labels, mask_id=MASK_ID, generator=torch.Generator().manual_seed(9))
    assert torch.equal(plain.masked, drawn) and plain.state == ()
    logits = torch.randn(batch, length, VOCAB, generator=gen)
    want = reference_ce(logits, x0, drawn, maskable, t, "token", "elbo")
    assert math.isclose(score(logits, x0, plain).item(), want.item(), rel_tol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        corrupt(model, x0, labels[:, :5], mask_id=MASK_ID, generator=None)


@pytest.mark.parametrize("shift", [False, True])
def test_masked_diffusion_loss_matches_manual_forward(shift: bool) -> None:
    """MDLM form (teacher-A's second attention pattern): one forward over ``xt`` alone, the same
    noise draws as :func:`bd3lm_loss`, output ``i - 1`` scoring position ``i`` when shifted."""
    model = tiny_qwen3()
    model.config.right_shift_logits = shift
    batch, length = 2, 9
    x0 = torch.randint(0, VOCAB - 1, (batch, length), generator=torch.Generator().manual_seed(3))
    labels = x0.clone()
    labels[0, :2] = -100
    loss, aux = masked_diffusion_loss(model, x0, labels, mask_id=MASK_ID, norm="sequence",
                                      generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    t = 1e-3 + (1 - 1e-3) * torch.rand(batch, generator=gen)
    maskable = labels != -100
    maskable[:, 0] &= not shift
    masked = (torch.rand(batch, length, generator=gen) < t[:, None]) & maskable
    assert torch.equal(aux["masked"], masked) and masked.any()
    xt = torch.where(masked, MASK_ID, x0)
    logits = model(input_ids=xt).logits  # the model's own attention (teacher-A: bidirectional)
    if shift:
        logits = torch.stack([logits[:, max(i - 1, 0)] for i in range(length)], dim=1)
    ref = reference_ce(logits, x0, masked, maskable, t, "sequence", "elbo")
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)


def test_no_leak_from_later_blocks() -> None:
    """On [xt ; x0] with the block mask, logits of block k ignore every token of later blocks."""
    model = tiny_qwen3()
    length, block = 11, 4  # blocks of sizes 4, 4, 3
    gen = torch.Generator().manual_seed(0)
    xt = torch.randint(0, VOCAB, (1, length), generator=gen)
    x0 = torch.randint(0, VOCAB, (1, length), generator=gen)
    ids, pos, mask = bd3lm_inputs(xt, x0, block)

    def logits_of(input_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=input_ids, position_ids=pos, attention_mask=mask).logits[0]

    base = logits_of(ids)
    blk = torch.arange(2 * length) % length // block  # block of each column, both halves
    is_clean = torch.arange(2 * length) >= length
    for p in range(2 * length):
        changed = ids.clone()
        changed[0, p] = (changed[0, p] + 1 + p) % VOCAB
        diff = (logits_of(changed) - base).abs().amax(dim=-1)  # [2L]
        earlier = blk < blk[p]
        if earlier.any():
            assert diff[earlier].max() <= 1e-6, f"token {p} leaks into an earlier block"
        if not is_clean[p]:
            assert diff[is_clean].max() <= 1e-6, f"noisy token {p} leaks into the clean half"
            same_noisy_block = (~is_clean) & (blk == blk[p])
            assert diff[same_noisy_block].min() > 1e-4  # positive control: its own block reacts
        else:
            later_noisy = (~is_clean) & (blk > blk[p])
            if later_noisy.any():
                assert diff[later_noisy].min() > 1e-4  # later noisy blocks see earlier clean ones
            same_noisy = (~is_clean) & (blk == blk[p])
            assert diff[same_noisy].max() <= 1e-6, "noisy block sees its own clean copy"


@pytest.mark.parametrize("norm", ["token", "sequence"])
def test_mask_slot_loss_equals_one_prefix_at_a_time(norm: str) -> None:
    """Each supervised position ``i`` is scored as if the model read ``x0[:i]`` then one mask, with
    a plain causal mask, and predicted ``x0[i]`` at that mask (no shift); prompt positions never."""
    model = tiny_qwen3()
    batch, length = 2, 9
    x0 = torch.randint(0, VOCAB - 1, (batch, length), generator=torch.Generator().manual_seed(3))
    labels = x0.clone()
    labels[0, :2] = -100
    labels[1, :4] = -100
    labels[1, 7:] = -100
    loss, aux = mask_slot_loss(model, x0, labels, mask_id=MASK_ID, norm=norm)
    assert torch.equal(aux["masked"], labels != -100)

    per_row = []
    for b in range(batch):
        nll = []
        for i in range(length):
            if labels[b, i] == -100:
                continue
            ids = torch.cat([x0[b, :i], torch.tensor([MASK_ID])])[None]
            logits = model(input_ids=ids).logits[0, -1]  # Qwen3's own causal attention
            nll.append(torch.nn.functional.cross_entropy(logits[None], x0[b, i : i + 1]))
        per_row.append(torch.stack(nll))
    if norm == "token":
        ref = torch.cat(per_row).mean()
    else:
        ref = torch.stack([r.mean() for r in per_row]).mean()
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)


def test_right_shift_is_read_through_a_ddp_wrapper():
    """DDP / FSDP hold the model as `.module`: a wrapped shifted student keeps its shift."""
    from types import SimpleNamespace

    from tide.diffusion import uses_right_shift

    student = SimpleNamespace(config=SimpleNamespace(right_shift_logits=True))
    assert uses_right_shift(student) and uses_right_shift(SimpleNamespace(module=student))
    assert not uses_right_shift(SimpleNamespace(module=SimpleNamespace(config=SimpleNamespace())))
