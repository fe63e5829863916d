"""Training objectives: BD3LM cross-entropy, token KL / TIDAL, chunk-level CALM and CALM+TIDAL.

Every function casts its inputs to float32 first; teacher inputs are constants (detached).
Temperature semantics differ on purpose (as in the reference code):
- token KL / TIDAL divide the *logits* by ``T`` and multiply the loss by ``T**2``;
- CALM raises chunk *probabilities* to ``1/T`` (``exp(logp / T)``), with no ``T**2`` factor.
A loss over an empty selection is an exact 0 that is still connected to the student input, so
``backward()`` works (with zero gradient) on every rank and step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CE_NORMS = ("token", "sequence", "batch")
IGNORE_INDEX = -100  # labels that are not scored (HF convention)
WEIGHT_KINDS = ("elbo", "uniform")
TIDAL_AXES = ("both", "training_only", "timestep_only")
TIDAL_SCHEDULES = ("cosine", "linear")
TIMESTEP_WEIGHTS = ("uniform", "midrange")
MIDRANGE_CENTER = 0.5
MIDRANGE_WIDTH = 0.15
TIDAL_LOG_FLOOR = 1e-8
CALM_PROB_CLAMP = 1e-7


def _zero_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Float32 scalar 0 that depends on ``x`` (zero gradient), so an empty loss back-propagates."""
    return x.float().sum() * 0.0


def _check_same_shape(name: str, **tensors: torch.Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{name}: shapes must match, got {shapes}")


# ------------------------------------------------------------------------------------ BD3LM CE


def loss_weight(t: torch.Tensor, kind: str = "elbo") -> torch.Tensor:
    """Per-sequence CE weight ``[B]`` (float32).

    ``"elbo"``: ``-alpha'(t) / (1 - alpha(t) + 1e-6) = 1 / (t + 1e-6)`` for ``alpha(t) = 1 - t``;
    ``"uniform"``: 1.
    """
    if kind == "elbo":
        return 1.0 / (t.float() + 1e-6)
    if kind == "uniform":
        return torch.ones_like(t, dtype=torch.float32)
    raise ValueError(f"loss_weight: unknown kind {kind!r}; expected one of {WEIGHT_KINDS}")


def bd3lm_ce(
    logits: torch.Tensor,
    x0: torch.Tensor,
    masked: torch.Tensor,
    maskable: torch.Tensor,
    t: torch.Tensor,
    *,
    norm: str = "token",
    weight: str = "elbo",
) -> torch.Tensor:
    """Weighted masked-token cross-entropy of the BD3LM student (scalar, float32).

    Shapes: ``logits [B, L, V]`` (noisy half, no label shift), ``x0 [B, L]``,
    ``masked, maskable [B, L]`` bool, ``t [B]``.
    ``l[b,i] = masked * w(t_b) * -log_softmax(logits[b,i])[x0[b,i]]`` over the full vocabulary,
    ``w`` from :func:`loss_weight` (``weight`` kind). Normalisation (denominators count *maskable*
    tokens): ``token``: ``sum l / max(1, sum maskable)``; ``sequence``:
    ``sum_b (sum_i l[b,i] / max(1, n_b)) / B`` with ``n_b`` the maskable count of row ``b``;
    ``batch``: ``sum l / B``. Only masked rows of ``logits`` are read (NaN elsewhere is harmless).
    """
    if logits.dim() != 3 or logits.shape[:2] != x0.shape:
        raise ValueError(
            f"bd3lm_ce: logits {tuple(logits.shape)} must be [B, L, V] with x0 {tuple(x0.shape)}"
        )
    _check_same_shape("bd3lm_ce", x0=x0, masked=masked, maskable=maskable)
    if norm not in CE_NORMS:
        raise ValueError(f"bd3lm_ce: unknown norm {norm!r}; expected one of {CE_NORMS}")
    batch = x0.shape[0]
    masked = masked.bool()
    rows, cols = masked.nonzero(as_tuple=True)
    nll = F.cross_entropy(logits[rows, cols].float(), x0[rows, cols], reduction="none")  # [N]
    per_token = loss_weight(t, weight).to(nll.device)[rows] * nll  # [N]
    if per_token.numel() == 0:
        return _zero_with_grad(logits[rows, cols])
    per_row = torch.zeros(batch, dtype=torch.float32, device=per_token.device).index_add(
        0, rows, per_token
    )
    return _reduce_rows(per_row, maskable.sum(dim=1).to(per_row.device), norm)


def _reduce_rows(per_row: torch.Tensor, row_count: torch.Tensor, norm: str) -> torch.Tensor:
    """``per_row [B]`` loss sums, ``row_count [B]`` supervised (maskable) positions per row →
    the scalar of normalisation ``norm`` (see :func:`bd3lm_ce`)."""
    if norm == "token":
        return per_row.sum() / row_count.sum().clamp(min=1)
    if norm == "sequence":
        return (per_row / row_count.clamp(min=1)).sum() / per_row.shape[0]
    return per_row.sum() / per_row.shape[0]


def causal_lm_ce(logits: torch.Tensor, labels: torch.Tensor, *, norm: str = "token") -> torch.Tensor:
    """Next-token cross-entropy (scalar, float32): ``logits [B, L, V]``, ``labels [B, L]``.

    Position ``i`` predicts ``labels[i+1]``; ``-100`` marks targets that are not scored.
    Normalisation as :func:`bd3lm_ce` with the scored targets as the maskable ones: ``token`` is
    the HF causal-LM loss, ``sequence`` weighs every row equally (a one-letter answer as much as a
    program), ``batch`` divides the sum by ``B``.
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(f"causal_lm_ce: logits {tuple(logits.shape)} must be [B, L, V] with "
                         f"labels {tuple(labels.shape)}")
    if norm not in CE_NORMS:
        raise ValueError(f"causal_lm_ce: unknown norm {norm!r}; expected one of {CE_NORMS}")
    target = labels[:, 1:]
    scored = target != IGNORE_INDEX
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target.clamp(min=0),
                          reduction="none")  # [B, L-1]
    per_row = (nll * scored).sum(dim=1)
    return _reduce_rows(per_row, scored.sum(dim=1), norm)


# ------------------------------------------------------------------------------------ token KL


def _check_token_logits(
    name: str, student_logits: torch.Tensor, teacher_logits: torch.Tensor
) -> None:
    _check_same_shape(name, student_logits=student_logits, teacher_logits=teacher_logits)
    if student_logits.dim() != 2:
        raise ValueError(f"{name}: logits must be [N, V], got {tuple(student_logits.shape)}")


def _scaled_log_probs(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log_softmax(z / T)`` of student and (detached) teacher logits, float32 ``[N, V]``."""
    _check_token_logits("token KL", student_logits, teacher_logits)
    student_lp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_lp = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return student_lp, teacher_lp


def forward_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Forward KL ``T^2 * mean_n KL(p_T || p_S)``, ``p = softmax(z / T)`` (scalar).

    Logits ``[N, V]`` (distilled positions only); 0 (with a gradient path) when ``N == 0``.
    """
    student_lp, teacher_lp = _scaled_log_probs(student_logits, teacher_logits, temperature)
    if student_lp.shape[0] == 0:
        return _zero_with_grad(student_logits)
    kl = (teacher_lp.exp() * (teacher_lp - student_lp)).sum(dim=-1)  # [N]
    return temperature**2 * kl.mean()


def reverse_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Reverse KL ``T^2 * mean_n KL(p_S || p_T)``, ``p = softmax(z / T)`` (scalar).

    Gradient flows through both factors of ``p_S (log p_S - log p_T)``. Logits ``[N, V]``;
    0 (with a gradient path) when ``N == 0``.
    """
    student_lp, teacher_lp = _scaled_log_probs(student_logits, teacher_logits, temperature)
    if student_lp.shape[0] == 0:
        return _zero_with_grad(student_logits)
    kl = (student_lp.exp() * (student_lp - teacher_lp)).sum(dim=-1)  # [N]
    return temperature**2 * kl.mean()


# ------------------------------------------------------------------------------------ TIDAL


def tidal_lambda(
    progress: float,
    t: torch.Tensor,
    axis: str,
    lam_init: float = 0.1,
    lam_max: float = 0.9,
    schedule: str = "cosine",
) -> torch.Tensor:
    """Teacher interpolation weight per sequence ``[B]`` (float32).

    ``progress P`` = global_step / max(max_steps, 1) in [0, 1]; ``t [B]``.
    ``g = (1 - cos(pi P)) / 2`` (cosine) or ``P`` (linear);
    ``lam_train = lam_init + (lam_max - lam_init) g``. Axis ``both``: ``lam_train (1 - t)``;
    ``training_only``: ``lam_train``; ``timestep_only``: ``lam_max (1 - t)``.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"tidal_lambda: progress must be in [0, 1], got {progress}")
    if schedule == "cosine":
        growth = 0.5 * (1.0 - math.cos(math.pi * progress))
    elif schedule == "linear":
        growth = progress
    else:
        raise ValueError(
            f"tidal_lambda: unknown schedule {schedule!r}; expected one of {TIDAL_SCHEDULES}"
        )
    lam_train = lam_init + (lam_max - lam_init) * growth
    t = t.float()
    if axis == "both":
        return lam_train * (1.0 - t)
    if axis == "training_only":
        return torch.full_like(t, lam_train)
    if axis == "timestep_only":
        return lam_max * (1.0 - t)
    raise ValueError(f"tidal_lambda: unknown axis {axis!r}; expected one of {TIDAL_AXES}")


def timestep_weight(t: torch.Tensor, kind: str) -> torch.Tensor:
    """TIDAL per-sequence weight ``[B]`` from ``t [B]``.

    ``uniform``: 1; ``midrange``: ``exp(-(t - 0.5)^2 / (2 * 0.15^2))``.
    """
    t = t.float()
    if kind == "uniform":
        return torch.ones_like(t)
    if kind == "midrange":
        return torch.exp(-((t - MIDRANGE_CENTER) ** 2) / (2 * MIDRANGE_WIDTH**2))
    raise ValueError(f"timestep_weight: unknown kind {kind!r}; expected one of {TIMESTEP_WEIGHTS}")


def tidal(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    lam: torch.Tensor,
    weight: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Token-level TIDAL: KL from a logit-space student/teacher mix to the student (scalar).

    Shapes: logits ``[N, V]``, ``lam, weight [N]`` (per-position copies of the per-sequence values).
    ``s = z_S / T``, ``u = z_T / T``, ``r = sg(softmax((1 - lam) s + lam u))``,
    ``l = sum_v r (log max(r, 1e-8) - log_softmax(s))`` (gradient only through ``log_softmax(s)``);
    loss ``T^2 * sum w l / max(1, N)`` (divided by the count, not by ``sum w``); 0 when ``N == 0``.
    """
    _check_same_shape("tidal", lam=lam, weight=weight)
    if lam.shape != student_logits.shape[:1]:
        raise ValueError(
            f"tidal: lam {tuple(lam.shape)} must be [N] for logits {tuple(student_logits.shape)}"
        )
    _check_token_logits("tidal", student_logits, teacher_logits)
    count = student_logits.shape[0]
    if count == 0:
        return _zero_with_grad(student_logits)
    s = student_logits.float() / temperature
    u = teacher_logits.detach().float() / temperature
    lam = lam.detach().float()[:, None]
    with torch.no_grad():
        target = torch.softmax((1.0 - lam) * s + lam * u, dim=-1)  # [N, V], stop-gradient
    student_lp = F.log_softmax(s, dim=-1)
    target_log = target.clamp(min=TIDAL_LOG_FLOOR).log()
    per_position = (target * (target_log - student_lp)).sum(dim=-1)  # [N]
    return temperature**2 * (weight.float() * per_position).sum() / max(1, count)


# ------------------------------------------------------------------------------------ CALM


def token_logprob(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each given token: ``z[id] - logsumexp(z)`` in float32.

    ``logits [B, L, V]``, ``ids [B, L]`` -> ``[B, L]``.
    """
    if logits.shape[:-1] != ids.shape:
        raise ValueError(
            f"token_logprob: logits {tuple(logits.shape)} do not match ids {tuple(ids.shape)}"
        )
    z = logits.float()
    return z.gather(-1, ids[..., None].long()).squeeze(-1) - torch.logsumexp(z, dim=-1)


def chunk_logprob(token_logprob: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """Chunk log-likelihood ``[B, C] = sum_i chunks[b,i,c] * token_logprob[b,i]``.

    ``token_logprob [B, L]``, ``chunks [B, L, C]`` bool. Uses ``where``, so a NaN/inf at a
    position outside a chunk never reaches that chunk (value or gradient).
    """
    if chunks.dim() != 3 or chunks.shape[:2] != token_logprob.shape:
        raise ValueError(
            f"chunk_logprob: chunks {tuple(chunks.shape)} must be [B, L, C] for token_logprob "
            f"{tuple(token_logprob.shape)}"
        )
    values = token_logprob.float()[:, :, None]
    return torch.where(chunks.bool(), values, torch.zeros((), device=values.device)).sum(dim=1)


def _chunk_probs(chunk_lp: torch.Tensor, temperature: float) -> torch.Tensor:
    """``clamp(exp(logp / T), 1e-7, 1 - 1e-7)`` in float32 (no gradient outside the range)."""
    return torch.exp(chunk_lp.float() / temperature).clamp(CALM_PROB_CLAMP, 1.0 - CALM_PROB_CLAMP)


def _active_chunk_probs(
    student_chunk_lp: torch.Tensor,
    teacher_chunk_lp: torch.Tensor,
    active: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clamped chunk probabilities ``[B, C]`` of student and (constant) teacher.

    Inactive chunks are replaced by log-likelihood 0 first, so a NaN/inf there cannot turn the zero
    gradient of the final ``where`` into NaN.
    """
    active = active.bool()
    zero = torch.zeros((), device=student_chunk_lp.device)
    student_lp = torch.where(active, student_chunk_lp.float(), zero)
    teacher_lp = torch.where(active, teacher_chunk_lp.detach().float(), zero)
    return _chunk_probs(student_lp, temperature), _chunk_probs(teacher_lp, temperature)


def _binary_cross_entropy(target: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Elementwise ``-[target log prob + (1 - target) log(1 - prob)]``."""
    return -(target * prob.log() + (1.0 - target) * (1.0 - prob).log())


def _masked_chunk_mean(per_chunk: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """``sum(active * per_chunk) / max(1, sum(active))``, summed with ``where``."""
    active = active.bool()
    total = torch.where(active, per_chunk, torch.zeros((), device=per_chunk.device)).sum()
    return total / active.sum().clamp(min=1).to(total.device)


def calm(
    student_chunk_lp: torch.Tensor,
    teacher_chunk_lp: torch.Tensor,
    active: torch.Tensor,
    temperature: float,
    reverse: bool,
) -> torch.Tensor:
    """Chunk-level CALM (scalar). Shapes ``[B, C]`` (chunk log-likelihoods, ``active`` bool).

    ``s = clamp(exp(LS / T))``, ``q = clamp(exp(LT / T))`` (teacher constant). Forward
    (``reverse=False``): ``-[q log s + (1 - q) log(1 - s)]``; reverse (a cross-entropy, not a KL):
    ``-[s log q + (1 - s) log(1 - q)]``. Mean over active chunks with a ``max(1, count)``
    denominator; no ``T^2``. Inactive chunks (even NaN/inf) contribute neither value nor gradient.
    """
    _check_same_shape(
        "calm", student_chunk_lp=student_chunk_lp, teacher_chunk_lp=teacher_chunk_lp, active=active
    )
    student_p, teacher_p = _active_chunk_probs(
        student_chunk_lp, teacher_chunk_lp, active, temperature
    )
    if reverse:
        per_chunk = _binary_cross_entropy(student_p, teacher_p)
    else:
        per_chunk = _binary_cross_entropy(teacher_p, student_p)
    return _masked_chunk_mean(per_chunk, active)


def calm_tidal(
    student_chunk_lp: torch.Tensor,
    teacher_chunk_lp: torch.Tensor,
    active: torch.Tensor,
    lam: torch.Tensor,
    weight: torch.Tensor,
    temperature: float,
    reverse: bool,
) -> torch.Tensor:
    """CALM towards a probability-space student/teacher mix (scalar).

    Shapes: chunk log-likelihoods and ``active`` ``[B, C]``; ``lam, weight [B]``. ``s, q`` as in
    :func:`calm`; ``m = clamp(sg((1 - lam) s + lam q), 1e-7, 1 - 1e-7)``; forward:
    ``-[m log s + (1 - m) log(1 - s)]``; reverse: ``-[s log m + (1 - s) log(1 - m)]``;
    loss ``sum a w l / max(1, sum a)``; no ``T^2``.
    """
    _check_same_shape(
        "calm_tidal",
        student_chunk_lp=student_chunk_lp,
        teacher_chunk_lp=teacher_chunk_lp,
        active=active,
    )
    batch = student_chunk_lp.shape[0]
    if lam.shape != (batch,) or weight.shape != (batch,):
        raise ValueError(
            f"calm_tidal: lam {tuple(lam.shape)} and weight {tuple(weight.shape)} must be [B], "
            f"B={batch}"
        )
    student_p, teacher_p = _active_chunk_probs(
        student_chunk_lp, teacher_chunk_lp, active, temperature
    )
    lam = lam.detach().float()[:, None]
    mixed = ((1.0 - lam) * student_p.detach() + lam * teacher_p).clamp(
        CALM_PROB_CLAMP, 1.0 - CALM_PROB_CLAMP
    )
    if reverse:
        per_chunk = _binary_cross_entropy(student_p, mixed)
    else:
        per_chunk = _binary_cross_entropy(mixed, student_p)
    return _masked_chunk_mean(weight.float()[:, None] * per_chunk, active)
