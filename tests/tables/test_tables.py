"""The tables from fixture evaluation results with known per-item scores: means, stds and deltas,
the paper's layout at both scales, errors that name the file, byte-identical rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tide.config import REPO_ROOT, load_config
from tide.eval.run import PAPER_TASKS
from tide.eval.tasks import PRIMARY_METRICS
from tide.tables import FIGURES, TABLES, TablesError, make_tables
from tide.tables.build import study_models
from tide.tables.signal import signal_files, signal_systems

SMALL = {
    "eval": {"tasks": ["tiny_mmlu", "tiny_gsm8k"]},
    "distill": {
        "seeds": [0, 1],
        "pipelines": {"cross": {"variants": ["calm", "tide_cross", "tide_shared", "ce_only"]},
                      "shared": {"variants": ["kl", "tide_shared", "tide_cross", "ce_only"]}},
        "ablations": {"activate": True, "select": ["compdemo_off"], "seeds": [0]},
    },
    "tables": {"n_boot": 300, "avg_excluding": ["mmlu"]},
}  # fmt: skip


def write_result(path: Path, task: str, scores, sha: str = "abc123") -> None:
    """An evaluation result JSON as tide.eval.run writes it (the fields the tables read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metric, filt = PRIMARY_METRICS.get(task, ("exact_match", "x"))
    items = [{"task": task, "doc_id": i, "score": float(s)} for i, s in enumerate(scores)]
    record = {"task": task, "items": items, "tide": {"git_sha": sha},
              "primary": {"metric": metric, "filter": filt, "value": float(np.mean(scores))}}
    path.write_text(json.dumps(record))


def write_curve(path: Path, start: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = np.arange(10, 60, 10)
    pd.DataFrame({"step": steps, "loss": start / np.sqrt(steps), "lr": 1e-3}).to_csv(path,
                                                                                       index=False)


def signal_of(pipeline: str, model: str) -> dict:
    """A teacher-signal result: the teacher at KL 0, KD variants below the rest, seed-dependent."""
    if model.startswith("teachers/"):
        return {"kl": 0.0, "gold_nll": 1.0, "top1": 0.8, "units": 100}
    seed = int(model[-1]) if model[-1].isdigit() and "seed" in model else 0
    kl = 0.6 if "ce_only" in model or model == "students/bd3lm" else 0.4 + 0.01 * seed
    return {"kl": kl, "gold_nll": 1.5, "top1": 0.5, "units": 100}


def populate(root: Path, config: dict, scores_for) -> None:
    """Eval results of every model of the study (``scores_for(model, task)`` gives the items), a
    loss curve per distilled model and a teacher signal per (pipeline, model measured)."""
    systems, ablations = study_models(config)
    layout = signal_systems(systems, ablations, config["distill"]["ablations"]["runs"])
    for rel in signal_files(layout):
        pipeline, model = rel.split("/", 1)
        path = root / "signal" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(signal_of(pipeline, model[:-len(".json")])))
    models = [m for ms in [*systems.values(), *ablations.values()] for m in ms]
    for model in models:
        for task in config["eval"]["tasks"]:
            write_result(root / "eval" / model / task / f"{task}.json", task,
                         scores_for(model, task))
        if model.startswith("distill/"):
            write_curve(root / "curves" / model / "loss.csv", 2.0 + hash(model) % 3)


TINY = REPO_ROOT / "config" / "config.yaml"  # for its ablation runs


@pytest.fixture
def small_config():
    return load_config(TINY, SMALL)


def known_scores(model: str, task: str) -> list[float]:
    """20 items; BD3LM right on the first 5, `shared/kl` on 5 more per seed index (+1 item per
    seed), `ce_only` as BD3LM, every other model as BD3LM."""
    base = [1.0] * 5 + [0.0] * 15
    if model.startswith("distill/shared/kl/"):
        seed = int(model[-1])
        return [1.0] * (10 + seed) + [0.0] * (10 - seed)
    return base


def test_known_scores_give_known_mean_std_and_deltas(tmp_path, small_config):
    populate(tmp_path, small_config, known_scores)
    make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables", tmp_path / "figures")
    main = pd.read_csv(tmp_path / "tables" / "main_results.csv")
    assert list(main.columns[:7]) == ["pipeline", "variant", "benchmark", "mean", "std",
                                      "n_seeds", "n_items"]
    kl = main[(main["variant"] == "kl") & (main["benchmark"] == "mmlu")].iloc[0]
    # seeds score 10/20 and 11/20: mean 52.5, std over seeds sd(50, 55), vs BD3LM 25
    assert kl["mean"] == pytest.approx(52.5)
    assert kl["std"] == pytest.approx(np.std([50, 55], ddof=1), abs=1e-4)
    assert kl["n_seeds"] == 2 and kl["n_items"] == 20
    assert kl["delta_vs_bd3lm"] == pytest.approx(27.5)
    assert kl["delta_vs_ce_only"] == pytest.approx(27.5)
    assert 0 < kl["delta_vs_bd3lm_ci_low"] < 27.5 < kl["delta_vs_bd3lm_ci_high"]
    excl = main[(main["variant"] == "kl") & (main["benchmark"] == "avg_excl")].iloc[0]
    assert excl["n_items"] == 20 and excl["mean"] == pytest.approx(kl["mean"])  # gsm8k alone
    assert excl["paper"] == pytest.approx(43.97)  # the paper's GSM8K for B: KL
    avg = main[(main["variant"] == "kl") & (main["benchmark"] == "avg")].iloc[0]
    assert avg["mean"] == pytest.approx(52.5) and avg["n_items"] == 40
    assert avg["paper"] == pytest.approx(30.55)  # B: KL's published average
    bd3lm = main[(main["variant"] == "bd3lm") & (main["benchmark"] == "mmlu")].iloc[0]
    assert bd3lm["paper"] == pytest.approx(39.15) and pd.isna(bd3lm["std"])
    assert bd3lm["near_chance"]  # 25% on a 4-option task
    assert pd.isna(bd3lm["delta_vs_ce_only"])  # a baseline has no CE-only control
    calm = main[(main["variant"] == "calm") & (main["benchmark"] == "avg")].iloc[0]
    assert calm["delta_vs_bd3lm"] == 0 and calm["delta_vs_ce_only"] == 0
    teacher = main[(main["pipeline"] == "cross") & (main["variant"] == "teacher")]
    assert len(teacher) == 4 and teacher["paper"].isna().all()


def test_markdown_is_the_papers_layout(tmp_path, small_config):
    populate(tmp_path, small_config, known_scores)
    make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables", tmp_path / "figures")
    text = (tmp_path / "tables" / "main_results.md").read_text()
    head = next(line for line in text.splitlines() if line.startswith("| Benchmark"))
    assert head.split(" | ")[1:] == ["AR", "BD3LM", "B: KL", "B: TIDE-Cross", "B: TIDE-Shared",
                                     "A: CALM", "A: TIDE-Shared", "A: TIDE-Cross", "A: CE only",
                                     "B: CE only", "Teacher A", "Teacher B |"]
    rows = [line.split(" | ")[0][2:] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Benchmark")]
    assert rows[:4] == ["GSM8K", "MMLU", "Avg", "Avg*"]  # the paper's row order, averages last
    assert "Avg*: the average without MMLU" in text
    assert "52.5 ± 3.5 (39.57)" in text  # ours ± std (paper), B: KL on MMLU
    assert "abc123" in text and "†" in text and "not above chance by two binomial standard errors" in text
    for name in TABLES:
        assert (tmp_path / "tables" / f"{name}.md").read_text().startswith("# ")
    for name in FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_verdicts_and_strategy_swap_follow_the_intervals(tmp_path, small_config):
    def scores(model, task):  # A's native strategy far ahead, B's swap level
        if model.startswith("distill/cross/tide_cross/"):
            return [1.0] * 18 + [0.0] * 2
        return [1.0] * 5 + [0.0] * 15

    populate(tmp_path, small_config, scores)
    make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables", tmp_path / "figures")
    swap = pd.read_csv(tmp_path / "tables" / "strategy_swap.csv").set_index("pipeline")
    assert swap.loc["cross", "delta"] == pytest.approx(65.0)
    assert swap.loc["cross", "verdict"] == "holds" and swap.loc["cross", "paper_delta"] == 0.37
    assert swap.loc["shared", "verdict"] == "not resolvable here"
    claims = pd.read_csv(tmp_path / "tables" / "claims.csv").set_index("claim")
    assert claims.loc["native beats swapped strategy (Pipeline A)", "verdict"] == "holds"
    assert claims.loc["avg gain of best TIDE system over non-distilled BD3LM (8 benchmarks)",
                      "verdict"] == "holds"
    best_a = claims.loc["A: TIDE-Cross is the best variant of Pipeline A (avg)"]
    assert best_a["verdict"] == "holds" and best_a["ours_delta"] == pytest.approx(65.0)
    assert best_a["paper"] == "+0.37 over the next"  # 34.20 vs A: TIDE-Shared 33.83
    assert "closest of 2" in best_a["ours"]  # CALM and TIDE-Shared; CE only is not the paper's
    best_b = claims.loc["B: TIDE-Shared is the best variant of Pipeline B (avg)"]
    assert best_b["verdict"] == "not resolvable here" and best_b["ours_delta"] == 0
    memory = claims.loc["peak-memory reduction vs LLaDA2.0-mini teacher"]
    assert memory["verdict"] == "not resolvable here" and pd.isna(memory["ours_delta"])
    ablations = pd.read_csv(tmp_path / "tables" / "ablations.csv")
    assert set(ablations["ablation"]) == {"compdemo_off"}
    assert (ablations["parent"] == "tide_shared").all() and (ablations["delta"] == 0).all()


def test_paper_scale_task_names_give_the_paper_layout(tmp_path):
    tasks = [spec.task for spec in PAPER_TASKS.values()]
    config = load_config(TINY.parent / "paper.yaml",
                         {**SMALL, "eval": {"tasks": tasks}, "tables": {"n_boot": 300}})
    rng = np.random.default_rng(0)
    populate(tmp_path, config, lambda m, t: (rng.random(12) < 0.4).astype(float))
    make_tables(config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables",
                tmp_path / "figures")
    main = pd.read_csv(tmp_path / "tables" / "main_results.csv")
    assert set(main["benchmark"]) == {*PAPER_TASKS, "avg"}
    text = (tmp_path / "tables" / "main_results.md").read_text()
    rows = [line.split(" | ")[0][2:] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Benchmark")][:9]
    assert rows == ["GSM8K", "MATH", "BBH", "MMLU-Pro", "HellaSwag", "MMLU", "HumanEval", "MBPP",
                    "Avg"]
    assert "(48.78)" in text  # B: TIDE-Shared's published HumanEval


def test_rebuild_is_byte_identical(tmp_path, small_config):
    populate(tmp_path, small_config, known_scores)
    paths = make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "t1",
                        tmp_path / "f1")
    again = make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "t2",
                        tmp_path / "f2")
    assert sorted(paths) == sorted(again)
    for name in paths:
        assert paths[name].read_bytes() == again[name].read_bytes(), name


@pytest.mark.parametrize("damage", ["missing", "corrupt", "no_items", "other_items", "curve",
                                    "signal"])
def test_bad_inputs_name_the_file(tmp_path, small_config, damage):
    populate(tmp_path, small_config, known_scores)
    target = tmp_path / "eval" / "distill" / "shared" / "kl" / "seed1" / "tiny_gsm8k" / \
        "tiny_gsm8k.json"
    if damage == "missing":
        target.unlink()
    elif damage == "corrupt":
        target.write_text('{"task": "tiny_gsm8k", "items": [')
    elif damage == "no_items":
        target.write_text(json.dumps({"task": "tiny_gsm8k"}))
    elif damage == "other_items":
        write_result(target, "tiny_gsm8k", [1.0] * 7)
    elif damage == "signal":
        target = tmp_path / "signal" / "shared" / "distill" / "shared" / "kl" / "seed0.json"
        target.write_text(json.dumps({"kl": "nan", "gold_nll": 1.0, "top1": 0.5}))
    else:
        target = tmp_path / "curves" / "distill" / "cross" / "calm" / "seed0" / "loss.csv"
        target.write_text("nothing,here\n1,2\n")
    with pytest.raises(TablesError, match=str(target)):
        make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables",
                    tmp_path / "figures")
    assert not (tmp_path / "tables" / "main_results.csv").exists()


def test_teacher_signal_table_reads_every_model_and_the_teachers_lead(tmp_path, small_config):
    populate(tmp_path, small_config, known_scores)
    make_tables(small_config, tmp_path / "eval", tmp_path / "curves", tmp_path / "signal",
                tmp_path / "tables", tmp_path / "figures")
    frame = pd.read_csv(tmp_path / "tables" / "teacher_signal.csv")
    kl = frame[frame["measure"] == "kl"].set_index(["pipeline", "system"])
    assert kl.loc[("shared", "kl"), "mean"] == pytest.approx(0.405)  # seeds 0, 1: 0.40, 0.41
    assert kl.loc[("shared", "kl"), "std"] == pytest.approx(np.std([0.40, 0.41], ddof=1), abs=1e-4)
    assert kl.loc[("shared", "kl"), "n_seeds"] == 2
    assert kl.loc[("cross", "teacher"), "mean"] == 0 and pd.isna(kl.loc[("cross", "teacher"), "std"])
    assert ("shared", "ablation:compdemo_off") in kl.index
    assert ("cross", "ablation:compdemo_off") not in kl.index  # a Pipeline-B ablation
    lead = frame[frame["measure"] == "lead"].set_index(["pipeline", "benchmark"])
    # known_scores: the teachers score as BD3LM, so their lead is 0 on every benchmark
    assert set(lead.index.get_level_values("benchmark")) == {"mmlu", "gsm8k", "avg", "avg_excl"}
    assert (lead["mean"] == 0).all()
    text = (tmp_path / "tables" / "teacher_signal.md").read_text()
    assert "| B: KL | 2 | 0.405 ± 0.007 | -0.195 | -0.195 | 1.500 ± 0.000 | 0.500 ± 0.000 |" in text
    assert "## Pipeline A (`cross`)" in text and "Teacher − BD3LM [CI]" in text
