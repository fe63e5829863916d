"""The memory-lean losses (tide.lean_losses) equal the plain ones (tide.losses) in value and gradient
on random cases (shapes, temperatures, chunk sizes that do and do not divide the row count, empty
selections). The trainer's lean path: tests/distill/test_trainer_lean.py."""

from __future__ import annotations

import pytest
import torch

from tide import lean_losses, losses

torch.set_num_threads(1)

SHAPES = [(1, 7), (13, 50), (40, 301)]
CHUNKS = [1, 4, 5, 1000]  # 4, 5: divide some counts and not others; 1000: one chunk


def _close(a, b, tol=1e-5):
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()


def _grad(value, x):
    (g,) = torch.autograd.grad(value, x, retain_graph=True)
    return g


def _token_inputs(n, v, seed):
    gen = torch.Generator().manual_seed(seed)
    zs = (3 * torch.randn(n, v, generator=gen)).requires_grad_()
    zt = 3 * torch.randn(n, v, generator=gen)
    lam = torch.rand(n, generator=gen)
    weight = torch.rand(n, generator=gen) + 0.5
    return zs, zt, lam, weight


# ----------------------------------------------------------------------------- token KL / TIDAL
@pytest.mark.parametrize("n,v", SHAPES)
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_token_objectives_match_the_plain_ones(n, v, chunk, temperature):
    zs, zt, lam, weight = _token_inputs(n, v, seed=n * 1000 + v + chunk)
    pairs = [
        (losses.forward_kl(zs, zt, temperature),
         lean_losses.lean_forward_kl(zs, zt, temperature, chunk_size=chunk)),
        (losses.reverse_kl(zs, zt, temperature),
         lean_losses.lean_reverse_kl(zs, zt, temperature, chunk_size=chunk)),
        (losses.tidal(zs, zt, lam, weight, temperature),
         lean_losses.lean_tidal(zs, zt, lam, weight, temperature, chunk_size=chunk)),
    ]
    for plain, lean in pairs:
        assert lean.dtype == torch.float32 and lean.shape == ()
        _close(lean, plain)
        _close(_grad(lean, zs), _grad(plain, zs))


def test_token_objectives_in_bf16_logits_keep_the_logits_dtype():
    zs, zt, lam, weight = _token_inputs(9, 64, seed=3)
    zs16 = zs.detach().bfloat16().requires_grad_()
    plain = losses.tidal(zs16, zt, lam, weight, 2.0)
    lean = lean_losses.lean_tidal(zs16, zt, lam, weight, 2.0, chunk_size=4)
    _close(lean, plain)
    g_plain, g_lean = _grad(plain, zs16), _grad(lean, zs16)
    assert g_lean.dtype == torch.bfloat16
    _close(g_lean.float(), g_plain.float(), tol=1e-2)


@pytest.mark.parametrize("fn", ["lean_forward_kl", "lean_reverse_kl", "lean_tidal"])
def test_token_objectives_of_an_empty_selection_are_zero_with_zero_gradient(fn):
    zs = torch.randn(0, 11, requires_grad=True)
    zt = torch.randn(0, 11)
    extra = (torch.zeros(0), torch.zeros(0)) if fn == "lean_tidal" else ()
    value = getattr(lean_losses, fn)(zs, zt, *extra, 2.0, chunk_size=3)
    assert value.item() == 0.0
    value.backward()
    assert zs.grad is not None and zs.grad.shape == (0, 11)


# ----------------------------------------------------------------------------- BD3LM CE
def _ce_inputs(b, length, v, p_masked, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(b, length, v, generator=gen)).requires_grad_()
    x0 = torch.randint(0, v, (b, length), generator=gen)
    maskable = torch.rand(b, length, generator=gen) < 0.8
    masked = (torch.rand(b, length, generator=gen) < p_masked) & maskable
    t = torch.rand(b, generator=gen) * 0.9 + 0.05
    return logits, x0, masked, maskable, t


@pytest.mark.parametrize("b,length,v", [(1, 5, 9), (3, 17, 40), (4, 33, 257)])
@pytest.mark.parametrize("norm", ["token", "sequence", "batch"])
@pytest.mark.parametrize("weight", ["elbo", "uniform"])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_ce_matches_the_plain_one(b, length, v, norm, weight, chunk):
    logits, x0, masked, maskable, t = _ce_inputs(b, length, v, 0.5, seed=b + length + v + chunk)
    plain = losses.bd3lm_ce(logits, x0, masked, maskable, t, norm=norm, weight=weight)
    rows, cols = masked.nonzero(as_tuple=True)
    selected = logits[rows, cols]  # [N, V]: what the model's LM head produces in the lean path
    lean = lean_losses.lean_bd3lm_ce(selected, x0[rows, cols], rows, maskable, t, norm=norm,
                                     weight=weight, chunk_size=chunk)
    _close(lean, plain)
    _close(_grad(lean, logits), _grad(plain, logits))


def test_ce_of_no_masked_position_is_zero_with_zero_gradient():
    logits, x0, _, maskable, t = _ce_inputs(2, 6, 10, 0.0, seed=0)
    empty = torch.zeros(0, dtype=torch.long)
    lean = lean_losses.lean_bd3lm_ce(logits[empty, empty], x0[empty, empty], empty, maskable, t,
                                     chunk_size=4)
    assert lean.item() == 0.0
    g = _grad(lean, logits)
    assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_token_logprob_matches_the_plain_one(chunk):
    logits, x0, *_ = _ce_inputs(3, 11, 70, 0.5, seed=chunk)
    plain = losses.token_logprob(logits, x0)
    lean = lean_losses.lean_token_logprob(logits.flatten(0, 1), x0.flatten(), chunk_size=chunk)
    _close(lean.view_as(plain), plain)
    probe = torch.randn(plain.shape)
    _close(_grad((lean.view_as(plain) * probe).sum(), logits), _grad((plain * probe).sum(), logits))


# ----------------------------------------------------------------------------- CALM
def _calm_inputs(b, length, v, n_chunks, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(b, length, v, generator=gen)).requires_grad_()
    x0 = torch.randint(0, v, (b, length), generator=gen)
    owner = torch.randint(-1, n_chunks, (b, length), generator=gen)  # -1: in no chunk
    chunks = owner[:, :, None] == torch.arange(n_chunks)[None, None]
    active = (torch.rand(b, n_chunks, generator=gen) < 0.6) & chunks.any(1)
    teacher_chunk = -torch.rand(b, n_chunks, generator=gen) * 4
    lam, weight = torch.rand(b, generator=gen), torch.rand(b, generator=gen) + 0.5
    return logits, x0, chunks, active, teacher_chunk, lam, weight


@pytest.mark.parametrize("b,length,v,n_chunks", [(1, 6, 9, 2), (3, 20, 31, 6), (2, 40, 200, 9)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 5.0])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_calm_objectives_match_the_plain_ones(b, length, v, n_chunks, reverse, temperature, chunk):
    logits, x0, chunks, active, teacher_chunk, lam, weight = _calm_inputs(
        b, length, v, n_chunks, seed=b * 7 + length + chunk)
    student_chunk = losses.chunk_logprob(losses.token_logprob(logits, x0), chunks)
    # the lean path scores only the positions of active chunks
    rows, cols = (chunks & active[:, None, :]).any(-1).nonzero(as_tuple=True)
    sel, ids = logits[rows, cols], x0[rows, cols]
    cases = [
        (losses.calm(student_chunk, teacher_chunk, active, temperature, reverse),
         lean_losses.lean_calm(sel, ids, rows, cols, chunks, teacher_chunk, active, temperature,
                               reverse, chunk_size=chunk)),
        (losses.calm_tidal(student_chunk, teacher_chunk, active, lam, weight, temperature, reverse),
         lean_losses.lean_calm_tidal(sel, ids, rows, cols, chunks, teacher_chunk, active, lam,
                                     weight, temperature, reverse, chunk_size=chunk)),
    ]
    for plain, lean in cases:
        _close(lean, plain)
        _close(_grad(lean, logits), _grad(plain, logits))


def test_calm_with_no_active_chunk_is_zero_with_zero_gradient():
    logits, x0, chunks, active, teacher_chunk, lam, weight = _calm_inputs(2, 10, 12, 3, seed=1)
    active = torch.zeros_like(active)
    rows, cols = (chunks & active[:, None, :]).any(-1).nonzero(as_tuple=True)
    for fn, extra in ((lean_losses.lean_calm, ()), (lean_losses.lean_calm_tidal, (lam, weight))):
        value = fn(logits[rows, cols], x0[rows, cols], rows, cols, chunks, teacher_chunk, active,
                   *extra, 5.0, True, chunk_size=2)
        assert value.item() == 0.0
        g = _grad(value, logits)
        assert not g.isnan().any() and torch.equal(g, torch.zeros_like(g))
