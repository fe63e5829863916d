"""The efficiency table from synthetic profile JSONs: ratios teacher/student, the paper's row, and
the verdicts of the paper's efficiency claims (tiny models never test them; the real sizes on a GPU
do)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_tables import SMALL, TINY, known_scores, populate

from tide.config import load_config
from tide.tables import TablesError, make_tables
from tide.tables.efficiency import (
    LLADA2_MINI_PARAMETERS,
    MEMORY_CLAIM,
    efficiency_claims,
    efficiency_table,
    profile_files,
)

GIB = 2**30
SPEED = "inference speedup vs LLaDA2.0-mini teacher (256 tokens on H100)"
TEASER = "inference speedup (teaser figure)"


def write_profile(root: Path, model: str, role: str, gib: float, seconds: float, *,
                  device: str = "cpu", dtype: str = "float32", params: int = 1_000_000,
                  random: bool = False, layers: int = 4, full: int | None = None,
                  tokens: int = 256) -> None:
    """A profile record with the fields tide.profiling writes (those the table reads)."""
    path = root / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "model": model, "role": role, "random_weights": random, "parameters": params,
        "num_hidden_layers": layers, "full_depth": full, "device": device,
        "device_name": "NVIDIA H100 80GB HBM3" if device.startswith("cuda") else "cpu",
        "dtype": dtype, "attention": "sdpa",
        "sampler": {"function": f"sampler-of-{role}", "block_size": 32},
        "gen_length": tokens, "generated_tokens": tokens, "batch_size": 1, "prompt_tokens": 30,
        "repeats": 5, "best_time_s": seconds, "tokens_per_s": tokens / seconds,
        "peak_memory_bytes": int(gib * GIB), "deterministic": True,
    }))  # fmt: skip


@pytest.fixture
def config():
    return load_config(TINY, SMALL)


def tiny_profiles(root: Path) -> None:
    write_profile(root, "students/bd3lm", "student", 0.01, 2.0, params=400_000)
    write_profile(root, "teachers/a", "teacher_a", 0.05, 10.0, params=1_900_000)
    write_profile(root, "teachers/b", "teacher_b", 0.04, 6.0, params=2_000_000)
    write_profile(root, "shapes/student", "student", 2.5, 30.0, params=596_049_920, random=True,
                  layers=28, full=28, tokens=32)


def test_profile_files_follow_the_config(config):
    assert profile_files(config) == ["students/bd3lm.json", "teachers/a.json", "teachers/b.json",
                                     "shapes/student.json"]


def test_ratios_and_the_papers_rows(tmp_path, config):
    tiny_profiles(tmp_path)
    frame = efficiency_table(tmp_path, config).set_index(["group", "model"])
    a = frame.loc[("checkpoints", "teachers/a")]
    assert a["memory_ratio"] == pytest.approx(5.0) and a["time_ratio"] == pytest.approx(5.0)
    assert a["tokens_per_s_ratio"] == pytest.approx(5.0)
    b = frame.loc[("checkpoints", "teachers/b")]
    assert b["memory_ratio"] == pytest.approx(4.0) and b["time_ratio"] == pytest.approx(3.0)
    shape = frame.loc[("real shapes, random weights", "shapes/student")]
    assert bool(shape["random_weights"]) and pd.isna(shape["memory_ratio"])  # no teacher beside it
    paper = frame.xs("paper", level="group").set_index("role")
    assert paper.loc["student", "peak_memory_gib"] == 1.4
    assert paper.loc["teacher_a", "best_time_s"] == 32.55
    assert paper.loc["teacher_a", "memory_ratio"] == 22.36
    assert paper.loc["teacher_a", "time_ratio"] == 5.21
    assert paper.loc["teacher_a", "tokens_per_s_ratio"] == 5.0


def test_tiny_ratios_do_not_test_the_claims(tmp_path, config):
    tiny_profiles(tmp_path)
    claims = efficiency_claims(efficiency_table(tmp_path, config))
    for claim in (MEMORY_CLAIM, SPEED, TEASER):
        what, value, verdict = claims[claim]
        assert verdict == "not resolvable here" and "does not test the claim" in what
        assert value == pytest.approx(5.0) and "tiny models" in what


@pytest.mark.parametrize("teacher_gib, teacher_s, expected", [
    (31.0, 30.0, ("holds", "holds", "holds")),       # 20.7x, 5.0x: within 80% of 22.36x / 5.21x
    (10.0, 12.0, ("does not hold",) * 3),            # 6.7x, 2.0x
])  # fmt: skip
def test_checkpoints_on_a_gpu_judge_the_magnitudes(tmp_path, config, teacher_gib, teacher_s,
                                                   expected):
    write_profile(tmp_path, "students/bd3lm", "student", 1.5, 6.0, device="cuda:0",
                  dtype="bfloat16", params=596_049_920)
    write_profile(tmp_path, "teachers/a", "teacher_a", teacher_gib, teacher_s, device="cuda:0",
                  dtype="bfloat16", params=LLADA2_MINI_PARAMETERS)
    write_profile(tmp_path, "teachers/b", "teacher_b", 16.0, 20.0, device="cuda:0",
                  dtype="bfloat16", params=8_190_735_360)
    config["profile"]["random_weights_shapes"] = []
    claims = efficiency_claims(efficiency_table(tmp_path, config))
    assert tuple(claims[c][2] for c in (MEMORY_CLAIM, SPEED, TEASER)) == expected
    assert "prepared checkpoints" in claims[MEMORY_CLAIM][0]


@pytest.mark.parametrize("teacher_s, speed", [(60.0, "not resolvable here"),
                                               (9.0, "does not hold")])
def test_random_weight_shapes_give_memory_and_a_time_bound(tmp_path, config, teacher_s, speed):
    config["profile"]["random_weights_shapes"] = [
        {"name": "student", "role": "student", "num_hidden_layers": None, "gen_length": None,
         "repeats": None, "prompt_length": 32, "block_size": 32},
        {"name": "teacher_a", "role": "teacher_a", "num_hidden_layers": None, "gen_length": None,
         "repeats": None, "prompt_length": 32, "block_size": 32}]
    tiny_profiles(tmp_path)
    write_profile(tmp_path, "shapes/student", "student", 1.4, 6.0, device="cuda:0",
                  dtype="bfloat16", params=596_049_920, random=True, layers=28, full=28)
    write_profile(tmp_path, "shapes/teacher_a", "teacher_a", 31.3, teacher_s, device="cuda:0",
                  dtype="bfloat16", params=LLADA2_MINI_PARAMETERS, random=True, layers=20,
                  full=20)
    claims = efficiency_claims(efficiency_table(tmp_path, config))
    assert claims[MEMORY_CLAIM][2] == "holds"
    assert claims[MEMORY_CLAIM][1] == pytest.approx(31.3 / 1.4)
    assert claims[SPEED][2] == speed and "upper bound" in claims[SPEED][0]


def test_missing_profile_names_the_file(tmp_path, config):
    tiny_profiles(tmp_path)
    (tmp_path / "teachers" / "b.json").unlink()
    with pytest.raises(TablesError, match="teachers/b.json"):
        efficiency_table(tmp_path, config)


def test_make_tables_writes_the_efficiency_table_and_claims(tmp_path, config):
    populate(tmp_path, config, known_scores)
    tiny_profiles(tmp_path / "profile")
    args = (tmp_path / "eval", tmp_path / "curves", tmp_path / "signal")
    paths = make_tables(config, *args, tmp_path / "t1", tmp_path / "f1", tmp_path / "profile")
    text = (tmp_path / "t1" / "efficiency.md").read_text()
    assert "| paper | Teacher A (LLaDA2-MoE) |" in text and "22.36x" in text and "5.21x" in text
    assert "| checkpoints | Teacher A (LLaDA2-MoE) | `teachers/a` |" in text and "5.00x" in text
    assert "| real shapes, random weights | Student (BD3LM) | `shapes/student` |" in text
    claims = pd.read_csv(tmp_path / "t1" / "claims.csv").set_index("claim")
    assert claims.loc[MEMORY_CLAIM, "ours_ratio"] == pytest.approx(5.0)
    assert claims.loc[MEMORY_CLAIM, "verdict"] == "not resolvable here"
    assert "5.00x" in (tmp_path / "t1" / "claims.md").read_text()
    again = make_tables(config, *args, tmp_path / "t2", tmp_path / "f2", tmp_path / "profile")
    for name in ("efficiency.csv", "efficiency.md", "claims.md"):
        assert paths[name].read_bytes() == again[name].read_bytes(), name
