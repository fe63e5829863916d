"""The paper's variant names, each mapped once to an objective (method.md §(f)).

A variant is a name in config (``tide_cross``, ``tide_shared``, ``calm``, ``kl``, ``ce_only``) inside a
pipeline (``cross`` = Pipeline A, chunk level; ``shared`` = Pipeline B, token level). Ablations are
the same objectives with fields overridden. The trainer only reads :class:`Objective`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

PIPELINES = ("cross", "shared")
KINDS = ("none", "kl", "reverse_kl", "tidal", "calm", "calm_tidal")


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
        return self.kind in ("calm", "calm_tidal")

    @property
    def uses_teacher(self) -> bool:
        return self.kind != "none"


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
    if pipeline not in VARIANTS:
        raise ValueError(f"unknown pipeline {pipeline!r} (one of {', '.join(PIPELINES)})")
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
    if result.chunk_level != base.chunk_level or (
        pipeline == "cross" and result.kind not in ("none", "calm", "calm_tidal")
    ) or (pipeline == "shared" and result.chunk_level):
        raise ValueError(f"objective kind {result.kind!r} does not fit pipeline {pipeline!r}")
    return result
