"""Tests for tide.losses against slow per-position / per-chunk loops (values and gradients)."""

from __future__ import annotations

import math

import pytest
import torch

from tide.losses import (
    calm,
    calm_tidal,
    causal_lm_ce,
    chunk_logprob,
    forward_kl,
    reverse_kl,
    tidal,
    tidal_lambda,
    timestep_weight,
    token_logprob,
)

torch.set_num_threads(1)

CLAMP_LO = 1e-7
# 1 - 1e-7 is not representable in float32; the losses clamp in float32 (as the reference code).
CLAMP_HI = float(torch.tensor(1 - 1e-7, dtype=torch.float32))


def grads(loss: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs)


def assert_close(got: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6):
    assert torch.allclose(got.double(), ref.double(), rtol=rtol, atol=atol), (got, ref)


def random_logits(n: int, vocab: int, seed: int, scale: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    student = (scale * torch.randn(n, vocab, generator=gen)).requires_grad_()
    teacher = scale * torch.randn(n, vocab, generator=gen)
    return student, teacher


def log_softmax_row(z: torch.Tensor) -> list[torch.Tensor]:
    """Log-softmax of one row, element by element (float64)."""
    z = z.double()
    top = z.max()
    log_norm = top + torch.log(sum(torch.exp(z[v] - top) for v in range(z.shape[0])))
    return [z[v] - log_norm for v in range(z.shape[0])]


# ---------------------------------------------------------------------------------- token KL


def reference_kl(student, teacher, temperature: float, reverse: bool) -> torch.Tensor:
    n, vocab = student.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        ls = log_softmax_row(student[i] / temperature)
        lt = log_softmax_row(teacher[i] / temperature)
        for v in range(vocab):
            if reverse:
                total = total + torch.exp(ls[v]) * (ls[v] - lt[v])
            else:
                total = total + torch.exp(lt[v]) * (lt[v] - ls[v])
    return temperature**2 * total / n


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_token_kl_equals_loop(reverse: bool, temperature: float) -> None:
    student, teacher = random_logits(6, 9, seed=1)
    fn = reverse_kl if reverse else forward_kl
    got = fn(student, teacher, temperature)
    ref = reference_kl(student, teacher, temperature, reverse)
    assert got.dtype == torch.float32
    assert_close(got, ref)
    assert_close(grads(got, student)[0], grads(ref, student)[0])


def test_token_kl_bf16_inputs_are_upcast() -> None:
    student, teacher = random_logits(5, 7, seed=2)
    student_bf16 = student.detach().bfloat16().requires_grad_()
    got = forward_kl(student_bf16, teacher.bfloat16(), 2.0)
    ref = reference_kl(student_bf16.detach().float(), teacher.bfloat16().float(), 2.0, False)
    assert got.dtype == torch.float32
    assert_close(got, ref, rtol=1e-5)


@pytest.mark.parametrize("fn", [forward_kl, reverse_kl])
def test_token_kl_empty_is_zero_with_grad(fn) -> None:
    student = torch.zeros(0, 9, requires_grad=True)
    loss = fn(student, torch.zeros(0, 9), 2.0)
    assert loss.item() == 0.0 and loss.requires_grad
    (g,) = grads(loss, student)
    assert g.shape == (0, 9)


# ---------------------------------------------------------------------------------- TIDAL


def reference_tidal(student, teacher, lam, weight, temperature: float, stop_grad: bool = True):
    n, vocab = student.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        s = student[i].double() / temperature
        u = teacher[i].double() / temperature
        mix = (1 - lam[i].double()) * s + lam[i].double() * u
        if stop_grad:
            mix = mix.detach()
        log_r = log_softmax_row(mix)
        ls = log_softmax_row(s)
        row = torch.zeros((), dtype=torch.float64)
        for v in range(vocab):
            r_v = torch.exp(log_r[v])
            row = row + r_v * (torch.log(torch.clamp(r_v, min=1e-8)) - ls[v])
        total = total + weight[i].double() * row
    return temperature**2 * total / max(1, n)


def test_tidal_equals_loop() -> None:
    student, teacher = random_logits(7, 8, seed=3)
    gen = torch.Generator().manual_seed(4)
    lam = torch.rand(7, generator=gen)
    weight = torch.rand(7, generator=gen) + 0.2
    got = tidal(student, teacher, lam, weight, 2.0)
    ref = reference_tidal(student, teacher, lam, weight, 2.0)
    assert_close(got, ref)
    (g_got,) = grads(got, student)
    assert_close(g_got, grads(ref, student)[0])
    # The stop-gradient on the target matters: without it the gradient differs.
    no_sg = reference_tidal(student, teacher, lam, weight, 2.0, stop_grad=False)
    assert not torch.allclose(g_got, grads(no_sg, student)[0], atol=1e-4)


def test_tidal_log_floor_on_tiny_target_probabilities() -> None:
    student, teacher = random_logits(3, 6, seed=5, scale=40.0)  # some r_v far below 1e-8
    lam, weight = torch.full((3,), 0.7), torch.ones(3)
    got = tidal(student, teacher, lam, weight, 1.0)
    ref = reference_tidal(student, teacher, lam, weight, 1.0)
    assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_tidal_limits() -> None:
    student, teacher = random_logits(5, 7, seed=6)
    ones = torch.ones(5)
    # lam = 1: target is the teacher, so TIDAL is the forward KL (value and gradient).
    full = tidal(student, teacher, ones, ones, 2.0)
    kl = forward_kl(student, teacher, 2.0)
    assert_close(full, kl, rtol=1e-5)
    assert_close(grads(full, student)[0], grads(kl, student)[0])
    # lam = 0: target is the student itself, loss 0 (up to float rounding).
    assert abs(tidal(student, teacher, torch.zeros(5), ones, 2.0).item()) < 1e-5


def test_tidal_empty_is_zero_with_grad() -> None:
    student = torch.zeros(0, 4, requires_grad=True)
    loss = tidal(student, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 2.0)
    assert loss.item() == 0.0
    assert grads(loss, student)[0].shape == (0, 4)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("axis", ["both", "training_only", "timestep_only"])
def test_tidal_lambda_all_axes(axis: str, schedule: str) -> None:
    t = torch.tensor([0.001, 0.25, 0.5, 0.999])
    for progress in [0.0, 0.1, 0.5, 0.75, 0.999]:
        got = tidal_lambda(progress, t, axis, lam_init=0.1, lam_max=0.9, schedule=schedule)
        for b in range(4):
            g = 0.5 * (1 - math.cos(math.pi * progress)) if schedule == "cosine" else progress
            lam_train = 0.1 + 0.8 * g
            expected = {
                "both": lam_train * (1 - float(t[b])),
                "training_only": lam_train,
                "timestep_only": 0.9 * (1 - float(t[b])),
            }[axis]
            assert math.isclose(float(got[b]), expected, rel_tol=1e-5, abs_tol=1e-7)


def test_tidal_lambda_known_values_and_errors() -> None:
    t = torch.tensor([0.2])
    assert math.isclose(float(tidal_lambda(0.5, t, "both")), 0.5 * 0.8, rel_tol=1e-6)
    assert math.isclose(float(tidal_lambda(0.0, t, "training_only")), 0.1, rel_tol=1e-6)
    linear_end = float(tidal_lambda(1.0, t, "training_only", schedule="linear"))
    assert math.isclose(linear_end, 0.9, rel_tol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        tidal_lambda(0.5, t, "sideways")
    with pytest.raises(ValueError, match="schedule"):
        tidal_lambda(0.5, t, "both", schedule="step")
    with pytest.raises(ValueError, match="progress"):
        tidal_lambda(1.5, t, "both")


def test_timestep_weight() -> None:
    t = torch.tensor([0.0, 0.35, 0.5, 0.8, 1.0])
    mid = timestep_weight(t, "midrange")
    for b in range(5):
        expected = math.exp(-((float(t[b]) - 0.5) ** 2) / (2 * 0.15**2))
        assert math.isclose(float(mid[b]), expected, rel_tol=1e-6)
    assert math.isclose(float(mid[1]), math.exp(-0.5), rel_tol=1e-6)
    assert torch.equal(timestep_weight(t, "uniform"), torch.ones(5))
    with pytest.raises(ValueError, match="kind"):
        timestep_weight(t, "edges")


# ---------------------------------------------------------------------------------- chunks


def test_token_logprob_equals_loop() -> None:
    gen = torch.Generator().manual_seed(7)
    logits = (2 * torch.randn(2, 5, 6, generator=gen)).bfloat16()
    ids = torch.randint(0, 6, (2, 5), generator=gen)
    got = token_logprob(logits, ids)
    assert got.dtype == torch.float32
    for b in range(2):
        for i in range(5):
            row = log_softmax_row(logits[b, i].float())
            assert math.isclose(float(got[b, i]), float(row[ids[b, i]]), rel_tol=1e-5, abs_tol=1e-6)


def random_chunks(batch: int, length: int, n_chunks: int, seed: int) -> torch.Tensor:
    """Non-overlapping contiguous chunk spans, some tokens outside every chunk, one empty column."""
    gen = torch.Generator().manual_seed(seed)
    chunks = torch.zeros(batch, length, n_chunks, dtype=torch.bool)
    for b in range(batch):
        pos = int(torch.randint(0, 2, (1,), generator=gen))
        for c in range(n_chunks - 1):
            width = int(torch.randint(1, 3, (1,), generator=gen))
            if pos + width > length:
                break
            chunks[b, pos : pos + width, c] = True
            pos += width + int(torch.randint(0, 2, (1,), generator=gen))
    return chunks


def test_chunk_logprob_equals_loop_and_ignores_nan_outside_chunks() -> None:
    batch, length, n_chunks = 2, 16, 6
    chunks = random_chunks(batch, length, n_chunks, seed=8)
    outside = ~chunks.any(-1)
    assert outside.any()
    lp = -torch.rand(batch, length, generator=torch.Generator().manual_seed(9)) * 3
    poisoned = lp.clone()
    poisoned[outside] = torch.tensor([float("nan"), float("inf"), -float("inf")]).repeat(
        int(outside.sum())
    )[: int(outside.sum())]
    poisoned.requires_grad_()
    got = chunk_logprob(poisoned, chunks)
    assert got.shape == (batch, n_chunks) and torch.isfinite(got).all()
    for b in range(batch):
        for c in range(n_chunks):
            expected = sum(float(lp[b, i]) for i in range(length) if chunks[b, i, c])
            assert math.isclose(float(got[b, c].detach()), expected, rel_tol=1e-6, abs_tol=1e-6)
    (g,) = grads(got.sum(), poisoned)
    assert torch.isfinite(g).all()
    assert torch.equal(g, chunks.any(-1).float())  # each token is in at most one chunk here


def reference_calm(student_lp, teacher_lp, active, temperature, reverse, lam=None, weight=None):
    """Per-chunk loop; the clamp is an explicit branch that drops the gradient."""
    batch, n_chunks = student_lp.shape
    total = torch.zeros((), dtype=torch.float64)
    count = 0

    def prob(x: torch.Tensor) -> torch.Tensor:
        p = torch.exp(x.double() / temperature)
        if p.item() < CLAMP_LO:
            return torch.tensor(CLAMP_LO, dtype=torch.float64)
        if p.item() > CLAMP_HI:
            return torch.tensor(CLAMP_HI, dtype=torch.float64)
        return p

    for b in range(batch):
        for c in range(n_chunks):
            if not active[b, c]:
                continue
            count += 1
            s = prob(student_lp[b, c])
            q = prob(teacher_lp[b, c]).detach()
            w = 1.0
            if lam is not None:
                m = ((1 - float(lam[b])) * s.detach() + float(lam[b]) * q).item()
                q = torch.tensor(min(max(m, CLAMP_LO), CLAMP_HI), dtype=torch.float64)
                w = float(weight[b])
            if reverse:
                ell = -(s * torch.log(q) + (1 - s) * torch.log(1 - q))
            else:
                ell = -(q * torch.log(s) + (1 - q) * torch.log(1 - s))
            total = total + w * ell
    return total / max(1, count)


def random_chunk_lps(batch: int, n_chunks: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    student = -torch.rand(batch, n_chunks, generator=gen) * 8
    teacher = -torch.rand(batch, n_chunks, generator=gen) * 8
    student[0, 0] = -1e-9  # exp ~ 1: clamped at 1 - 1e-7 (no gradient)
    student[1, 1] = -400.0  # exp ~ 0: clamped at 1e-7
    teacher[0, 2] = 0.0  # teacher certain (empty teacher chunk)
    active = torch.rand(batch, n_chunks, generator=gen) < 0.7
    active[0, :3] = True
    active[1, 1] = True
    return student.requires_grad_(), teacher, active


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_calm_equals_loop(reverse: bool, temperature: float) -> None:
    student, teacher, active = random_chunk_lps(3, 7, seed=10)
    got = calm(student, teacher, active, temperature, reverse)
    ref = reference_calm(student, teacher, active, temperature, reverse)
    assert got.dtype == torch.float32
    assert_close(got, ref)
    (g_got,) = grads(got, student)
    assert_close(g_got, grads(ref, student)[0])
    assert g_got[0, 0] == 0 and g_got[1, 1] == 0  # clamped chunks carry no gradient
    assert (g_got[~active] == 0).all()


def test_calm_reverse_gradient_depends_only_on_teacher() -> None:
    # d l / d s_hat = log((1 - q) / q) for the reverse cross-entropy.
    student = torch.tensor([[-0.7, -2.0]], requires_grad=True)
    teacher = torch.tensor([[-0.3, -5.0]])
    active = torch.ones(1, 2, dtype=torch.bool)
    loss = calm(student, teacher, active, 1.0, reverse=True)
    (g,) = grads(loss, student)
    s_hat, q_hat = torch.exp(student.detach()), torch.exp(teacher)
    expected = torch.log((1 - q_hat) / q_hat) * s_hat / 2  # chain rule through exp, mean of 2
    assert_close(g, expected, rtol=1e-5)


def test_calm_inactive_nan_chunks_and_empty() -> None:
    student, teacher, active = random_chunk_lps(2, 5, seed=11)
    poisoned = student.detach().clone()
    poisoned[~active] = float("nan")
    poisoned.requires_grad_()
    teacher = teacher.clone()
    teacher[~active] = float("-inf")
    for reverse in (False, True):
        loss = calm(poisoned, teacher, active, 2.0, reverse)
        assert torch.isfinite(loss)
        assert torch.isfinite(grads(loss, poisoned)[0]).all()
        empty = calm(poisoned, teacher, torch.zeros_like(active), 2.0, reverse)
        assert empty.item() == 0.0 and empty.requires_grad
        assert torch.equal(grads(empty, poisoned)[0], torch.zeros_like(poisoned))


@pytest.mark.parametrize("reverse", [False, True])
def test_calm_tidal_equals_loop(reverse: bool) -> None:
    student, teacher, active = random_chunk_lps(3, 6, seed=12)
    lam = torch.tensor([0.1, 0.5, 0.85])
    weight = torch.tensor([1.0, 0.3, 0.7])
    got = calm_tidal(student, teacher, active, lam, weight, 5.0, reverse)
    ref = reference_calm(student, teacher, active, 5.0, reverse, lam=lam, weight=weight)
    assert_close(got, ref)
    assert_close(grads(got, student)[0], grads(ref, student)[0])


def test_calm_tidal_with_lam_one_is_calm() -> None:
    student, teacher, active = random_chunk_lps(2, 5, seed=13)
    ones = torch.ones(2)
    for reverse in (False, True):
        mixed = calm_tidal(student, teacher, active, ones, ones, 2.0, reverse)
        plain = calm(student, teacher, active, 2.0, reverse)
        assert_close(mixed, plain, rtol=1e-6)


def reference_causal_ce(logits, labels, norm: str) -> torch.Tensor:
    """Loop: every scored next-token target's -log p, summed per row, then normalised."""
    rows, counts = [], []
    for b in range(labels.shape[0]):
        total, n = torch.zeros(()), 0
        for i in range(labels.shape[1] - 1):
            target = int(labels[b, i + 1])
            if target != -100:
                total = total - torch.log_softmax(logits[b, i].double(), -1)[target]
                n += 1
        rows.append(total)
        counts.append(n)
    if norm == "token":
        return sum(rows) / max(1, sum(counts))
    if norm == "sequence":
        return sum(r / max(1, n) for r, n in zip(rows, counts)) / len(rows)
    return sum(rows) / len(rows)


@pytest.mark.parametrize("norm", ["token", "sequence", "batch"])
def test_causal_lm_ce_equals_loop(norm: str) -> None:
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(3, 7, 13, generator=gen, requires_grad=True)
    labels = torch.randint(0, 13, (3, 7), generator=gen)
    labels[0, :5] = -100  # a long prompt: 2 scored targets against 6 and 3 in the other rows
    labels[2, [1, 2, 4]] = -100
    got = causal_lm_ce(logits, labels, norm=norm)
    want = reference_causal_ce(logits, labels, norm)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    got.backward()
    assert logits.grad[:, -1].abs().sum() == 0, "the last position predicts nothing"


def test_causal_lm_ce_token_is_the_hf_loss_and_sequence_weighs_rows_equally() -> None:
    gen = torch.Generator().manual_seed(12)
    logits = torch.randn(2, 9, 11, generator=gen)
    labels = torch.randint(0, 11, (2, 9), generator=gen)
    labels[0, :7] = -100
    hf = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(causal_lm_ce(logits, labels, norm="token"), hf)
    one_row = [causal_lm_ce(logits[b:b + 1], labels[b:b + 1]) for b in range(2)]
    torch.testing.assert_close(causal_lm_ce(logits, labels, norm="sequence"),
                               (one_row[0] + one_row[1]) / 2)
    with pytest.raises(ValueError, match="unknown norm 'row'"):
        causal_lm_ce(logits, labels, norm="row")
