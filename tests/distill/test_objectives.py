"""The paper's variant names map to the objectives of method.md §(f); ablation overrides are checked."""

from __future__ import annotations

import pytest
import torch

from tide import losses
from tide.distill.objectives import (
    KINDS,
    NATIVE,
    VARIANTS,
    Objective,
    check_fits,
    distill_term,
    objective,
)
from tide.pipelines import PIPELINES


def test_paper_matrix():
    cross, shared = VARIANTS["cross"], VARIANTS["shared"]
    assert (cross["calm"].kind, cross["calm"].reverse, cross["calm"].compdemo) == ("calm", False, False)
    assert (cross["tide_cross"].kind, cross["tide_cross"].reverse) == ("calm", True)
    assert (cross["tide_shared"].kind, cross["tide_shared"].compdemo) == ("calm_tidal", True)
    assert cross["tide_shared"].tidal_weight == "uniform"  # Pipeline-A script leaves the default
    assert all(o.temperature == 5.0 for o in cross.values())
    assert shared["kl"].kind == "kl" and not shared["kl"].compdemo
    assert (shared["tide_shared"].kind, shared["tide_shared"].compdemo) == ("tidal", True)
    assert shared["tide_shared"].tidal_weight == "midrange"
    assert shared["tide_cross"].kind == "reverse_kl"
    assert all(o.temperature == 2.0 for o in shared.values())
    assert NATIVE == {"cross": "tide_cross", "shared": "tide_shared"}
    assert not cross["ce_only"].uses_teacher and not shared["ce_only"].uses_teacher


def test_overrides_and_errors():
    o = objective("shared", "tide_shared", {"tidal_axis": "timestep_only", "demo_ratio": 0.3})
    assert o.tidal_axis == "timestep_only" and o.demo_ratio == 0.3 and o.compdemo
    with pytest.raises(ValueError, match="tidal_axs"):
        objective("shared", "tide_shared", {"tidal_axs": "both"})
    with pytest.raises(ValueError, match="unknown variant 'calm'"):
        objective("shared", "calm")
    with pytest.raises(ValueError, match="does not fit"):
        objective("cross", "calm", {"kind": "kl"})
    with pytest.raises(ValueError, match="demo_ratio"):
        objective("shared", "tide_shared", {"demo_ratio": 1.5})


def test_every_kind_has_its_loss_and_fits_its_pipeline_only():
    """The kind table: one loss and its lean twin per kind, at the level of the pipeline it fits."""
    for name, kind in KINDS.items():
        assert (kind.loss is None) == (kind.lean_loss is None) == (kind.level == "none")
        for pipeline in PIPELINES.values():
            fits = kind.level == "none" or (kind.level == "chunk") == pipeline.chunk_level
            obj = Objective(name)
            if fits:
                check_fits(obj, pipeline.name)
            else:
                with pytest.raises(ValueError, match="does not fit"):
                    check_fits(obj, pipeline.name)
    with pytest.raises(ValueError, match="unknown pipeline 'A'"):
        objective("A", "calm")


def test_distill_term_calls_the_kinds_loss_with_its_arguments():
    """distill_term equals the loss called by hand: temperature, TIDAL's lam and weight, CALM's
    direction, and the lean twins' chunk size."""
    gen = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(6, 11, generator=gen), torch.randn(6, 11, generator=gen)
    lam, weight = torch.rand(6, generator=gen), torch.rand(6, generator=gen)
    for kind, extra in (("kl", ()), ("reverse_kl", ()), ("tidal", (lam, weight))):
        o = Objective(kind, temperature=1.7)
        kw = dict(zip(("lam", "weight"), extra))
        want = KINDS[kind].loss(zs, zt, *extra, 1.7)
        assert torch.equal(distill_term(o, zs, zt, **kw), want)
        lean = distill_term(o, zs, zt, **kw, lean=True, chunk_size=2)
        assert torch.allclose(lean, want, atol=1e-6)
    s_lp, t_lp = -torch.rand(2, 5, generator=gen), -torch.rand(2, 5, generator=gen)
    active = torch.rand(2, 5, generator=gen) < 0.7
    for reverse in (False, True):
        o = Objective("calm", reverse=reverse, temperature=5.0)
        want = losses.calm(s_lp, t_lp, active, 5.0, reverse=reverse)
        assert torch.equal(distill_term(o, s_lp, t_lp, active), want)
        o = Objective("calm_tidal", reverse=reverse, temperature=5.0)
        lam2, w2 = torch.rand(2, generator=gen), torch.rand(2, generator=gen)
        want = losses.calm_tidal(s_lp, t_lp, active, lam2, w2, 5.0, reverse=reverse)
        assert torch.equal(distill_term(o, s_lp, t_lp, active, lam=lam2, weight=w2), want)
    with pytest.raises(ValueError, match="no distillation term"):
        distill_term(Objective("none"), zs, zt)


def test_the_schema_speaks_the_same_vocabulary():
    """The config schema names the pipelines of tide.pipelines, each with the variants of the
    variant table, and objective settings that are Objective fields."""
    import yaml

    from tide.config import SCHEMA_PATH

    schema = yaml.safe_load((SCHEMA_PATH.parent / "distill.schema.yaml").read_text())
    pipelines = schema["properties"]["pipelines"]["properties"]
    assert list(pipelines) == list(PIPELINES) == list(VARIANTS)
    for name, section in pipelines.items():
        assert section["properties"]["variants"]["items"]["enum"] == list(VARIANTS[name])
        assert f"teacher {PIPELINES[name].teacher}" in section["description"]
    runs = schema["properties"]["ablations"]["properties"]["runs"]["additionalProperties"]
    assert runs["properties"]["pipeline"]["enum"] == list(PIPELINES)
    assert set(schema["$defs"]["objective"]["properties"]) <= set(Objective.__dataclass_fields__)
