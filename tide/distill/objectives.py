"""The paper's variant names, each mapped once to an objective (method.md §(f)), and each
objective kind mapped once to its loss.

A variant is a name in config (``tide_cross``, ``tide_shared``, ``calm``, ``kl``, ``ce_only``) inside a
pipeline (``cross`` = Pipeline A, chunk level; ``shared`` = Pipeline B, token level;
:mod:`tide.pipelines`). Ablations are the same objectives with fields overridden. The trainer reads
:class:`Objective` and computes its term through :func:`distill_term`, which looks the kind up in
:data:`KINDS`: adding an objective is one row there (a loss, its memory-lean twin) and a variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from tide import lean_losses, losses
from tide.pipelines import get_pipeline


@dataclass(frozen=True)
class Kind:
    """An objective kind: the level its loss works at (``token``: aligned logits ``[N, V]``;
    ``chunk``: chunk log-likelihoods; ``none``: no distillation term), the loss and its memory-lean
    twin (:mod:`tide.lean_losses`), and whether it interpolates (TIDAL: takes ``lam`` and the
    timestep ``weight`` before the temperature)."""

    level: str
    loss: Callable | None = None
    lean_loss: Callable | None = None
    interpolated: bool = False


KINDS: dict[str, Kind] = {
    "none": Kind("none"),
    "kl": Kind("token", losses.forward_kl, lean_losses.lean_forward_kl),
    "reverse_kl": Kind("token", losses.reverse_kl, lean_losses.lean_reverse_kl),
    "tidal": Kind("token", losses.tidal, lean_losses.lean_tidal, interpolated=True),
    "calm": Kind("chunk", losses.calm, lean_losses.lean_calm),
    "calm_tidal": Kind("chunk", losses.calm_tidal, lean_losses.lean_calm_tidal, interpolated=True),
}


@dataclass(frozen=True)
class Objective:
    """What the distillation term of one run is. ``kind='none'`` is CE only (the ``ce_only`` control)."""

    kind: str
    reverse: bool = False  # CALM direction (chunk level only)
    compdemo: bool = False  # two teacher passes on complementary masks
    demo_ratio: float = 0.5
    temperature: float = 2.0
    weight: float = 1.0  # weight of the distillation term (CE weight is 1)
    tidal_axis: str = "both"  # both | training_only | timestep_only
    tidal_schedule: str = "cosine"  # cosine | linear
    tidal_weight: str = "uniform"  # uniform | midrange
    lam_init: float = 0.1
    lam_max: float = 0.9

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown objective kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.tidal_axis not in ("both", "training_only", "timestep_only"):
            raise ValueError(f"unknown tidal_axis {self.tidal_axis!r}")
        if not 0.0 < self.demo_ratio < 1.0:
            raise ValueError(f"demo_ratio must lie in (0, 1), got {self.demo_ratio}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @property
    def chunk_level(self) -> bool:
        return KINDS[self.kind].level == "chunk"

    @property
    def uses_teacher(self) -> bool:
        return KINDS[self.kind].level != "none"

    @property
    def interpolated(self) -> bool:
        """Whether the term needs TIDAL's ``lam`` and timestep weight (:func:`distill_term`)."""
        return KINDS[self.kind].interpolated


def check_fits(obj: Objective, pipeline: str) -> None:
    """``ValueError`` unless ``obj`` can run in ``pipeline``: a chunk-level kind in a chunk-aligned
    pipeline, a token-level kind in a position-aligned one (``none`` anywhere)."""
    level = KINDS[obj.kind].level
    if level != "none" and (level == "chunk") != get_pipeline(pipeline).chunk_level:
        raise ValueError(f"objective kind {obj.kind!r} does not fit pipeline {pipeline!r}")


def distill_term(obj: Objective, *inputs, lam: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None, lean: bool = False, **kwargs) -> torch.Tensor:
    """The distillation term of ``obj``: its kind's loss (the lean twin with ``lean``) on
    ``inputs`` (token level: student and teacher logits ``[N, V]``; chunk level: see
    :func:`tide.losses.calm` / :func:`tide.lean_losses.lean_calm`), with ``lam`` and ``weight``
    when the kind interpolates, ``obj.temperature``, and ``obj.reverse`` at chunk level.
    ``kwargs`` go to the loss (``chunk_size`` of the lean losses)."""
    kind = KINDS[obj.kind]
    fn = kind.lean_loss if lean else kind.loss
    if fn is None:
        raise ValueError(f"objective kind {obj.kind!r} has no distillation term")
    args = (*inputs, lam, weight) if kind.interpolated else inputs
    if kind.level == "chunk":
        kwargs["reverse"] = obj.reverse
    return fn(*args, obj.temperature, **kwargs)


# Pipeline A (cross-tokenizer): chunk level, CALM temperature 5.0 (launch script; method.md §i.1).
# Pipeline B (shared tokenizer): token level, temperature 2.0, TIDAL midrange weighting.
VARIANTS: dict[str, dict[str, Objective]] = {
    "cross": {
        "calm": Objective("calm", temperature=5.0),
        "tide_cross": Objective("calm", reverse=True, temperature=5.0),
        "tide_shared": Objective("calm_tidal", compdemo=True, temperature=5.0),
        "ce_only": Objective("none", temperature=5.0),
    },
    "shared": {
        "kl": Objective("kl"),
        "tide_shared": Objective("tidal", compdemo=True, tidal_weight="midrange"),
        "tide_cross": Objective("reverse_kl"),
        "ce_only": Objective("none"),
    },
}
NATIVE = {"cross": "tide_cross", "shared": "tide_shared"}


def objective(pipeline: str, variant: str, overrides: dict | None = None) -> Objective:
    """The objective of ``variant`` in ``pipeline``, with ablation ``overrides`` applied."""
    pipeline = get_pipeline(pipeline).name
    if variant not in VARIANTS[pipeline]:
        raise ValueError(
            f"unknown variant {variant!r} for pipeline {pipeline!r} "
            f"(one of {', '.join(VARIANTS[pipeline])})"
        )
    base = VARIANTS[pipeline][variant]
    overrides = overrides or {}
    known = {f.name for f in fields(Objective)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown objective field(s) {', '.join(map(repr, unknown))}")
    result = replace(base, **overrides)
    check_fits(result, pipeline)
    return result
