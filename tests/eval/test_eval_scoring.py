"""The real task YAMLs score known replies correctly through lm-eval.

A canned LM (registered in conftest.py as ``tide_test_canned``) returns a fixed reply per item id; the items
are smoke-world held-out items, duplicated once per reply. Each family gets right replies (scored
1), wrong ones (0) and malformed ones (0, without crashing). ``tide.eval.answers.score`` must give
the same verdicts outside lm-eval.
"""

from __future__ import annotations

import json

import pytest

from tide.eval import answers
from tide.eval.run import evaluate, samples_of
from tide.eval.tasks import PRIMARY_METRICS
from tide.world import bbh_user_turn

CANNED_MODEL = "tide_test_canned"  # registered in tests/eval/conftest.py


def sandbox_ready() -> bool:
    try:
        import tide.eval.sandbox  # noqa: F401
    except ImportError:
        return False
    return True


def _other_letter(gold: str, letters: str) -> str:
    return next(c for c in letters if c != gold)


def cases(family: str, row: dict) -> list[tuple[str, str, float | dict[str, float]]]:
    """(label, reply, expected score) for one item; a dict gives the score per filter."""
    gold = row["answer"]
    if family == "mmlu":
        return [
            ("right", gold, 1),
            ("right_text", f"{gold}. {row['choices'][0]}", 1),
            ("wrong", _other_letter(gold, "ABCD"), 0),
            ("lower", gold.lower(), 0),
            ("empty", "", 0),
            ("junk", "%%%?", 0),
        ]
    if family == "mmlu_pro":
        return [
            ("right", f"Fay lives in Zoti. So the answer is ({gold}).", 1),
            ("bare", f"the answer is {gold}", 1),
            ("wrong", f"So the answer is ({_other_letter(gold, 'ABCDEFGHIJ')}).", 0),
            ("malformed", "(((", 0),
        ]
    if family == "hellaswag":
        return [
            ("right", gold.upper(), 1),
            ("right_lower", gold, 1),
            ("wrong", _other_letter(gold, "abcd").upper(), 0),
            ("malformed", "xyz", 0),
        ]
    if family == "gsm8k":
        wrong = str(int(gold) + 1)
        both = {"strict-match": 1, "flexible-extract": 1}
        return [
            ("right", f"2*3=6. 6+1=7.\n#### {gold}", both),
            ("no_marker", f"The result is {gold}.", {"strict-match": 0, "flexible-extract": 1}),
            ("wrong", f"2*3=6.\n#### {wrong}", {"strict-match": 0, "flexible-extract": 0}),
            ("malformed", "no idea", {"strict-match": 0, "flexible-extract": 0}),
        ]
    if family == "bbh":
        return [
            ("right", f"x = y. So the answer is {gold}.", 1),
            ("wrong", "x = y. So the answer is zzz.", 0),
            ("no_period", f"So the answer is {gold}", 0),  # the paper's (?=.) drops a char
            ("empty", "", 0),
        ]
    if family == "math":
        return [
            ("right", f"$x = \\boxed{{{gold}}}$.", 1),
            ("spaced", f"\\boxed{{ {gold} }}", 1),
            ("wrong", "\\boxed{987654}", 0),
            ("unbalanced", "\\boxed{12", 0),
        ]
    if family == "humaneval":
        body = row["canonical_solution"]
        return [
            ("right", body + "```", 1),
            ("no_fence", body, 1),
            ("wrong", "    return None\n```", 0),
            ("syntax", "    return (\n```", 0),
        ]
    if family == "mbpp":
        code, name = row["canonical_solution"], row["entry_point"]
        return [
            ("right", code + "```", 1),
            ("unclosed", code, 1),
            ("wrong", f"def {name}(x):\n    return None\n```", 0),
            ("empty", "```", 0),
        ]
    raise AssertionError(family)


def families() -> list[str]:
    base = ["mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math"]
    return base + (["humaneval", "mbpp"] if sandbox_ready() else [])


@pytest.fixture(scope="module")
def canned_run(world_rows, tmp_path_factory):
    """Fixture world with one item per (family, case), the replies file, and the evaluation."""
    root = tmp_path_factory.mktemp("canned")
    (root / "world" / "tasks").mkdir(parents=True)
    replies, expected, items = {}, {}, {}
    for family in families():
        rows = []
        source = world_rows[family][0]
        for label, reply, score in cases(family, source):
            item = dict(source, id=f"{family}#{label}")
            rows.append(item)
            replies[item["id"]], expected[item["id"]], items[item["id"]] = reply, score, item
        lines = "".join(json.dumps(r) + "\n" for r in rows)
        (root / "world" / "tasks" / f"{family}.jsonl").write_text(lines)
    (root / "replies.json").write_text(json.dumps(replies))
    tasks = [f"tiny_{f}" for f in families()]
    summary = evaluate(
        root / "replies.json",
        tasks,
        root / "out",
        world_dir=root / "world",
        model_kind=CANNED_MODEL,
    )
    return root / "out", expected, items, summary


@pytest.mark.parametrize("family", families())
def test_each_reply_gets_the_expected_score(family, canned_run):
    out, expected, _, _ = canned_run
    task = f"tiny_{family}"
    metric = PRIMARY_METRICS[task][0]
    seen = 0
    for sample in samples_of(out, task):
        want = expected[sample["doc"]["id"]]
        want = want[sample["filter"]] if isinstance(want, dict) else want
        assert sample[metric] == want, (
            sample["doc"]["id"],
            sample["resps"],
            sample["filtered_resps"],
        )
        seen += 1
    assert seen >= len(cases(family, sample["doc"]))


@pytest.mark.parametrize("family", families())
def test_answers_module_agrees_with_the_yaml_pipeline(family, canned_run):
    out, expected, items, _ = canned_run
    primary_filter = PRIMARY_METRICS[f"tiny_{family}"][1]
    replies = json.loads((out.parent / "replies.json").read_text())
    checked = 0
    for item_id, want in expected.items():
        if item_id.startswith(f"{family}#"):
            want = want[primary_filter] if isinstance(want, dict) else want
            assert answers.score(items[item_id], replies[item_id]) == bool(want), item_id
            checked += 1
    assert checked >= 4


def test_prompts_follow_the_paper_formats(canned_run, world_rows, canned_contexts):
    contexts = canned_contexts
    # chat template applied: one user turn holding the world's prompt, generation prompt on
    mmlu = json.loads(contexts["mmlu#right"])
    assert mmlu == {
        "messages": [{"role": "user", "content": world_rows["mmlu"][0]["prompt"]}],
        "generation_prompt": True,
    }
    # bbh: the item's 3 exemplars then the query, in ONE user turn, no system turn
    bbh_row = world_rows["bbh"][0]
    bbh = json.loads(contexts["bbh#right"])["messages"]
    assert [m["role"] for m in bbh] == ["user"]
    expected = "".join(f"{s['prompt']} {s['response']}\n\n" for s in bbh_row["fewshot"])
    assert bbh[0]["content"] == expected + bbh_row["prompt"] == bbh_user_turn(bbh_row)
    assert len(bbh_row["fewshot"]) == 3
    if sandbox_ready():
        # code tasks continue the assistant turn from the gen_prefix the world trained on
        for family in ("humaneval", "mbpp"):
            chat = json.loads(contexts[f"{family}#right"])
            assert chat["generation_prompt"] is False
            assert chat["messages"][-1] == {
                "role": "assistant",
                "content": world_rows[family][0]["gen_prefix"],
            }


def test_results_files_and_average(canned_run):
    out, _, _, summary = canned_run
    for task, primary in summary["tasks"].items():
        record = json.loads((out / f"{task}.json").read_text())
        assert record["primary"] == primary and record["task"] == task
        assert record["versions"][task] == 1.0
        assert record["harness"]["config"]["model"] == CANNED_MODEL
        assert record["tide"]["seed"] == 0 and record["tide"]["git_sha"]
    values = [p["value"] for p in summary["tasks"].values()]
    assert summary["average"] == pytest.approx(sum(values) / len(values))
