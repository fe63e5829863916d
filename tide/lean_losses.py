"""Memory-lean variants of the distillation losses of :mod:`tide.losses` (issue #26 item 5).

Same values and gradients as the plain functions (within float tolerance), with two savings:

- they take logits of the scored rows only (``[N, V]``: the caller selects the hidden states of the
  supervised / distilled positions before the LM head, see
  :func:`tide.distill.trainer.student_logits_at`), never ``[B, L, V]``;
- every vocabulary-sized softmax is computed ``chunk_size`` rows at a time, in float32, inside a
  custom autograd function that keeps nothing vocabulary-sized for the backward pass but the
  logits it was given (which exist anyway): the backward pass recomputes the softmaxes chunk by
  chunk and writes the gradient in the logits' dtype. The plain functions keep several float32
  ``[N, V]`` tensors (cast, log-softmax, probabilities) alive from forward to backward.

An empty selection (``N == 0``) gives an exact 0 that is still connected to the student input, so
``backward()`` runs (with zero gradient), as in :mod:`tide.losses`. Temperatures as there: token
KL / TIDAL divide the logits by ``T`` and multiply by ``T**2``; CALM has no temperature on logits.
"""

from __future__ import annotations

import torch

from tide.losses import (
    TIDAL_LOG_FLOOR,
    _check_same_shape,
    _reduce_rows,
    _zero_with_grad,
    calm,
    calm_tidal,
    chunk_logprob,
    loss_weight,
)

CHUNK_SIZE = 128  # rows per vocabulary-sized float32 block (128 x 151936 x 4 B = 78 MB)


def _chunks(count: int, chunk_size: int):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, count, chunk_size):
        yield slice(start, min(start + chunk_size, count))


# ------------------------------------------------------------------------------ token log-prob


class _TokenLogprob(torch.autograd.Function):
    """``z[id] - logsumexp(z)`` per row, float32; saves the logits, ids and ``[N]`` logsumexps."""

    @staticmethod
    def forward(ctx, logits, ids, chunk_size):
        out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(out)
        for sl in _chunks(logits.shape[0], chunk_size):
            z = logits[sl].float()
            lse[sl] = torch.logsumexp(z, dim=-1)
            out[sl] = z.gather(-1, ids[sl, None]).squeeze(-1) - lse[sl]
        ctx.save_for_backward(logits, ids, lse)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out):
        logits, ids, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for sl in _chunks(logits.shape[0], ctx.chunk_size):
            g = grad_out[sl].float()[:, None]
            chunk = -torch.exp(logits[sl].float() - lse[sl, None]) * g  # d/dz of -lse
            chunk.scatter_add_(-1, ids[sl, None], g)  # d/dz of z[id]
            grad[sl] = chunk.to(grad.dtype)
        return grad, None, None


def lean_token_logprob(logits: torch.Tensor, ids: torch.Tensor, *,
                       chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """Log-probability of each row's token, float32 ``[N]``: ``z[id] - logsumexp(z)``.

    ``logits [N, V]`` (any float dtype), ``ids [N]``; the row version of
    :func:`tide.losses.token_logprob`, chunked over rows.
    """
    if logits.dim() != 2 or ids.shape != logits.shape[:1]:
        raise ValueError(f"lean_token_logprob: logits {tuple(logits.shape)} must be [N, V] with "
                         f"ids {tuple(ids.shape)} [N]")
    return _TokenLogprob.apply(logits, ids.long(), chunk_size)


def lean_bd3lm_ce(logits: torch.Tensor, x0: torch.Tensor, rows: torch.Tensor,
                  maskable: torch.Tensor, t: torch.Tensor, *, norm: str = "token",
                  weight: str = "elbo", chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.bd3lm_ce` from the masked rows only (scalar, float32).

    ``logits [N, V]``: the student's logits at the ``N`` masked positions (full vocabulary);
    ``x0 [N]`` their clean ids; ``rows [N]`` their batch row; ``maskable [B, L]`` bool (the
    denominators count maskable positions); ``t [B]``. ``norm`` / ``weight`` as there.
    """
    _check_same_shape("lean_bd3lm_ce", x0=x0, rows=rows)
    if logits.dim() != 2 or logits.shape[0] != x0.shape[0]:
        raise ValueError(f"lean_bd3lm_ce: logits {tuple(logits.shape)} must be [N, V] for "
                         f"x0 {tuple(x0.shape)}")
    if logits.shape[0] == 0:
        return _zero_with_grad(logits)
    nll = -lean_token_logprob(logits, x0, chunk_size=chunk_size)  # [N]
    per_token = loss_weight(t, weight).to(nll.device)[rows] * nll
    per_row = torch.zeros(maskable.shape[0], dtype=torch.float32, device=nll.device).index_add(
        0, rows, per_token)
    return _reduce_rows(per_row, maskable.sum(dim=1).to(per_row.device), norm)


# ------------------------------------------------------------------------------ token KL / TIDAL


def _row_values_and_grads(kind: str, zs: torch.Tensor, zt: torch.Tensor, lam: torch.Tensor,
                          temperature: float, with_grad: bool):
    """One chunk: per-row loss ``[c]`` and (``with_grad``) its gradient w.r.t. the student logits
    ``[c, V]`` (float32). ``zs, zt [c, V]`` raw logits, ``lam [c]`` (TIDAL only)."""
    s = zs.float() / temperature
    u = zt.float() / temperature
    lp_s = torch.log_softmax(s, dim=-1)
    if kind == "tidal":
        lam = lam.float()[:, None]
        target = torch.softmax((1.0 - lam) * s + lam * u, dim=-1)
        value = (target * (target.clamp(min=TIDAL_LOG_FLOOR).log() - lp_s)).sum(-1)
        if not with_grad:
            return value, None
        # d/ds of -sum r lsm(s) = p_S * sum(r) - r
        return value, (lp_s.exp() * target.sum(-1, keepdim=True) - target) / temperature
    lp_t = torch.log_softmax(u, dim=-1)
    if kind == "kl":
        value = (lp_t.exp() * (lp_t - lp_s)).sum(-1)
        if not with_grad:
            return value, None
        # d/ds of -sum p_T lsm(s) = p_S * sum(p_T) - p_T
        p_t = lp_t.exp()
        return value, (lp_s.exp() * p_t.sum(-1, keepdim=True) - p_t) / temperature
    p_s = lp_s.exp()
    diff = lp_s - lp_t
    value = (p_s * diff).sum(-1)
    if not with_grad:
        return value, None
    # reverse KL: d/ds_k sum_j p_j (lsm_j - lpT_j) = p_k (a_k - sum_j p_j a_j) - (1 - sum p) p_k ~ p (a - KL)
    return value, p_s * (diff - value[:, None] + 1.0 - p_s.sum(-1, keepdim=True)) / temperature


class _RowKD(torch.autograd.Function):
    """``sum_n coef[n] * value_n(zs[n], zt[n])`` with the softmaxes recomputed chunk-wise in backward."""

    @staticmethod
    def forward(ctx, zs, zt, coef, lam, kind, temperature, chunk_size):
        total = torch.zeros((), dtype=torch.float32, device=zs.device)
        for sl in _chunks(zs.shape[0], chunk_size):
            value, _ = _row_values_and_grads(kind, zs[sl], zt[sl], lam[sl], temperature, False)
            total = total + (coef[sl] * value).sum()
        ctx.save_for_backward(zs, zt, coef, lam)
        ctx.kind, ctx.temperature, ctx.chunk_size = kind, temperature, chunk_size
        return total

    @staticmethod
    def backward(ctx, grad_out):
        zs, zt, coef, lam = ctx.saved_tensors
        grad = torch.empty_like(zs)
        for sl in _chunks(zs.shape[0], ctx.chunk_size):
            _, g = _row_values_and_grads(ctx.kind, zs[sl], zt[sl], lam[sl], ctx.temperature, True)
            grad[sl] = (g * (coef[sl] * grad_out)[:, None]).to(grad.dtype)
        return grad, None, None, None, None, None, None


def _row_kd(name: str, kind: str, zs: torch.Tensor, zt: torch.Tensor, coef: torch.Tensor,
            lam: torch.Tensor, temperature: float, chunk_size: int) -> torch.Tensor:
    _check_same_shape(name, student_logits=zs, teacher_logits=zt)
    if zs.dim() != 2:
        raise ValueError(f"{name}: logits must be [N, V], got {tuple(zs.shape)}")
    if zs.shape[0] == 0:
        return _zero_with_grad(zs)
    return _RowKD.apply(zs, zt.detach(), coef.detach().float(), lam.detach().float(), kind,
                        float(temperature), chunk_size)


def lean_forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float, *, chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.forward_kl`: ``T^2 * mean_n KL(p_T || p_S)``, ``p = softmax(z / T)``.

    Logits ``[N, V]`` (distilled positions only, teacher constant); 0 when ``N == 0``.
    """
    n = student_logits.shape[0]
    coef = torch.full((n,), temperature**2 / max(n, 1), device=student_logits.device)
    return _row_kd("lean_forward_kl", "kl", student_logits, teacher_logits, coef, coef, temperature,
                   chunk_size)


def lean_reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float, *, chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.reverse_kl`: ``T^2 * mean_n KL(p_S || p_T)``, gradient through both
    factors of ``p_S (log p_S - log p_T)``. Logits ``[N, V]``; 0 when ``N == 0``."""
    n = student_logits.shape[0]
    coef = torch.full((n,), temperature**2 / max(n, 1), device=student_logits.device)
    return _row_kd("lean_reverse_kl", "rkl", student_logits, teacher_logits, coef, coef,
                   temperature, chunk_size)


def lean_tidal(student_logits: torch.Tensor, teacher_logits: torch.Tensor, lam: torch.Tensor,
               weight: torch.Tensor, temperature: float, *,
               chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.tidal`: ``T^2 * sum_n w_n KL(sg(r_n) || p_S) / max(1, N)`` with
    ``r = softmax((1 - lam) z_S / T + lam z_T / T)``.

    Logits ``[N, V]``; ``lam, weight [N]`` (per-position copies of the per-sequence values).
    """
    _check_same_shape("lean_tidal", lam=lam, weight=weight)
    if lam.shape != student_logits.shape[:1]:
        raise ValueError(f"lean_tidal: lam {tuple(lam.shape)} must be [N] for logits "
                         f"{tuple(student_logits.shape)}")
    n = student_logits.shape[0]
    coef = weight.float() * (temperature**2 / max(n, 1))
    return _row_kd("lean_tidal", "tidal", student_logits, teacher_logits, coef, lam, temperature,
                   chunk_size)


# ------------------------------------------------------------------------------ CALM


def rows_to_grid(values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 shape: tuple[int, int]) -> torch.Tensor:
    """``[B, L]`` float32 zeros with ``values [N]`` at ``(rows, cols)`` (differentiable)."""
    grid = torch.zeros(shape, dtype=torch.float32, device=values.device)
    return grid.index_put((rows, cols), values.float())


def _student_chunk_lp(logits, ids, rows, cols, chunks, chunk_size):
    _check_same_shape("lean CALM", ids=ids, rows=rows, cols=cols)
    if logits.dim() != 2 or logits.shape[0] != ids.shape[0] or chunks.dim() != 3:
        raise ValueError(f"lean CALM: logits {tuple(logits.shape)} must be [N, V] for ids "
                         f"{tuple(ids.shape)}, chunks {tuple(chunks.shape)} [B, L, C]")
    lp = lean_token_logprob(logits, ids, chunk_size=chunk_size)
    return chunk_logprob(rows_to_grid(lp, rows, cols, tuple(chunks.shape[:2])), chunks)


def lean_calm(logits: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
              chunks: torch.Tensor, teacher_chunk_lp: torch.Tensor, active: torch.Tensor,
              temperature: float, reverse: bool, *, chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.calm` on the student's chunk log-likelihoods from the scored rows only.

    ``logits [N, V]`` at positions ``(rows, cols)`` (each ``[N]``) with clean ids ``ids [N]``;
    ``chunks [B, L, C]`` (``A_S``), ``teacher_chunk_lp, active [B, C]``. The rows must cover every
    position of every active chunk (others read as log-probability 0, which only inactive chunks
    see, and those contribute neither value nor gradient).
    """
    student = _student_chunk_lp(logits, ids, rows, cols, chunks, chunk_size)
    return calm(student, teacher_chunk_lp, active, temperature, reverse=reverse)


def lean_calm_tidal(logits: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor, chunks: torch.Tensor, teacher_chunk_lp: torch.Tensor,
                    active: torch.Tensor, lam: torch.Tensor, weight: torch.Tensor,
                    temperature: float, reverse: bool, *,
                    chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """:func:`tide.losses.calm_tidal` from the scored rows only; arguments as :func:`lean_calm`,
    plus ``lam, weight [B]``."""
    student = _student_chunk_lp(logits, ids, rows, cols, chunks, chunk_size)
    return calm_tidal(student, teacher_chunk_lp, active, lam, weight, temperature, reverse=reverse)


@torch.no_grad()
def constant_token_logprob(logits: torch.Tensor, ids: torch.Tensor, *,
                           chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """Teacher side (no gradient): ``z[id] - logsumexp(z)`` per row, float32 ``[N]``, chunked."""
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    for sl in _chunks(logits.shape[0], chunk_size):
        z = logits[sl].float()
        out[sl] = z.gather(-1, ids[sl, None].long()).squeeze(-1) - torch.logsumexp(z, dim=-1)
    return out
