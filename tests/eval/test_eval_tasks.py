"""Task definitions: every YAML is indexed, the group holds the eight tasks, data loading takes the
world directory from metadata or the environment and names bad files, and the helper filters
behave on edge cases."""

from __future__ import annotations

import json

import pytest

from tide.eval.tasks import PAPER_LOCAL_TASKS, TASKS_DIR, TINY_TASKS, utils
from tide.eval.tasks.utils import WorldTaskError


def test_task_manager_indexes_our_tasks_and_group():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert set(manager.all_tasks) == set(TINY_TASKS) | {"tiny_world"} | set(PAPER_LOCAL_TASKS)
    assert set(manager.all_groups) == {"tiny_world"}


def test_world_dir_from_metadata_or_environment(world_dir, monkeypatch, tmp_path):
    monkeypatch.delenv(utils.WORLD_DIR_ENV, raising=False)
    with pytest.raises(WorldTaskError, match="need the world directory"):
        utils.load_world_family("mmlu")
    with pytest.raises(WorldTaskError, match="has no tasks/ folder"):
        utils.load_world_family("mmlu", world_dir=tmp_path)
    rows = utils.load_world_family("gsm8k", world_dir=world_dir, version=1.0)["test"]
    assert len(rows) == 30 and rows[0]["family"] == "gsm8k"
    monkeypatch.setenv(utils.WORLD_DIR_ENV, str(world_dir))
    assert len(utils.load_world_family("bbh")["test"]) == 30
    with pytest.raises(WorldTaskError, match="unknown task family 'arc'"):
        utils.load_world_family("arc")


def test_bad_task_files_are_named_with_the_line(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    good = {"id": "a", "family": "mbpp", "prompt": "p", "answer": "x", "entry_point": "f",
            "test": "t"}  # fmt: skip
    (tasks / "mbpp.jsonl").write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(WorldTaskError, match=r"mbpp\.jsonl:2: not valid JSON"):
        utils.load_world_family("mbpp", world_dir=tmp_path)
    del good["test"]
    (tasks / "mbpp.jsonl").write_text(json.dumps(good) + "\n")
    with pytest.raises(WorldTaskError, match=r"mbpp\.jsonl:1: missing field\(s\) \['test'\]"):
        utils.load_world_family("mbpp", world_dir=tmp_path)
    (tasks / "math.jsonl").write_text(json.dumps({**good, "family": "gsm8k"}) + "\n")
    with pytest.raises(WorldTaskError, match="family 'gsm8k', expected 'math'"):
        utils.load_world_family("math", world_dir=tmp_path)
    with pytest.raises(WorldTaskError, match="missing held-out task file"):
        utils.load_world_family("bbh", world_dir=tmp_path)


def reference_last_boxed(text: str) -> str | None:
    """Slow reference: scan every \\boxed{ start, keep the last one whose braces close."""
    found = None
    for start in range(len(text)):
        if text.startswith("\\boxed{", start):
            depth, inner = 0, start + len("\\boxed")
            for j in range(inner, len(text)):
                depth += 1 if text[j] == "{" else -1 if text[j] == "}" else 0
                if depth == 0:
                    found = text[inner + 1 : j]
                    break
            else:
                found = None
    return found


def test_last_boxed_matches_a_slow_reference():
    import random

    rng = random.Random(0)
    pieces = ["\\boxed{", "{", "}", "x", "2", " ", "\\frac{1}{2}", "$"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert utils.last_boxed(text) == reference_last_boxed(text), text


def test_code_extraction_edge_cases():
    stub = 'def f(x):\n    """Return x."""\n'
    doc = {"stub": stub, "prompt": "ignored"}
    assert utils.humaneval_programs([["    return x\n```\nmore"]], [doc]) == [
        [stub + "    return x\n"]
    ]
    assert utils.humaneval_programs([["    return x"]], [{"prompt": stub}]) == [
        [stub + "    return x"]
    ]
    assert utils.first_code_block("```python\ndef f(): pass\n```\ntext") == "def f(): pass"
    assert utils.first_code_block("```python\ndef f(): pass") == "def f(): pass"
    assert utils.first_code_block("no fence") == ""
    assert utils.mbpp_programs([["def g(): return 1\n```", "```"]], [{}]) == [
        ["def g(): return 1", ""]
    ]
    target = utils.code_target({"test": "def check(c):\n    assert c(1)\n", "entry_point": "f"})
    assert target.endswith("\ncheck(f)\n") and target.startswith("def check(c):")
