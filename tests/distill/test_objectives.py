"""The paper's variant names map to the objectives of method.md §(f); ablation overrides are checked."""

from __future__ import annotations

import pytest

from tide.distill.objectives import NATIVE, VARIANTS, objective


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
