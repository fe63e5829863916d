"""Paper-scale task YAMLs that stock lm-eval lacks (tide/eval/tasks/paper). Each is loaded through
lm-eval's TaskManager on a few rows in its hub dataset's format (a local JSONL stands in for the
hub, offline) and checked for the exact prompt, the target, and what its filters + metric score:
right replies 1, wrong ones 0, malformed or empty ones 0 without crashing."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
import yaml

from tide.eval.run import PAPER_TASKS
from tide.eval.tasks import PAPER_LOCAL_TASKS, PRIMARY_METRICS, TASKS_DIR, utils

MMLU_ROWS = [  # hails/mmlu_no_train, config "all"
    {"question": "  What is 2 + 2? ", "subject": "high_school_mathematics",
     "choices": ["3", "4", "5", "22"], "answer": 1},
    {"question": "Which data structure is LIFO?", "subject": "college_computer_science",
     "choices": ["queue", "stack", "heap", "tree"], "answer": 1},
]  # fmt: skip
HELLASWAG_ROWS = [  # Rowan/hellaswag (WikiHow row: bracket tags, double spaces)
    {"ind": 4, "activity_label": "Home and Garden",
     "ctx_a": "[header] How to clean a grill [title] Heat the grill for  fifteen minutes. [step] "
              "Turn on all burners.",
     "ctx_b": "then scrub the BBQ",
     "ctx": "[header] How to clean a grill [title] Heat the grill for  fifteen minutes. [step] "
            "Turn on all burners. then scrub the BBQ",
     "endings": ["the grates with a brush. [substeps] Rinse them.", "  the lid [title] Close it.",
                 "the dog.", "nothing."],
     "source_id": "wikihow~1", "split": "val", "split_type": "indomain", "label": "1"},
]  # fmt: skip
MBPP_CODE = (
    "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n"
    "            s = s[0 : i] + s[i + 1:] \r\n            break\r\n"
    "    for i in range(len(s) - 1,-1,-1):  \r\n        if (s[i] == ch): \r\n"
    "            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s "
)
MBPP_TESTS = [
    'assert remove_Occ("hello","l") == "heo"',
    'assert remove_Occ("abcda","a") == "bcd"',
    'assert remove_Occ("PHP","P") == "H"',
]
MBPP_ROWS = [  # google-research-datasets/mbpp, config "full"
    {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a "
     "given character from the string.", "code": MBPP_CODE, "test_list": MBPP_TESTS,
     "test_setup_code": "", "challenge_test_list": []},
]  # fmt: skip


@pytest.fixture
def manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@pytest.fixture
def load_task(manager, tmp_path, monkeypatch):
    """``load_task(name, rows, split)``: our task with its hub dataset swapped for ``rows`` (a YAML
    in tmp_path includes ours and points it at a local JSONL), requests built (no chat)."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)

    def load(name: str, rows: list[dict], split: str):
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        override = {
            "include": str(manager.task_index[name].yaml_path),
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(data)}, "cache_dir": str(tmp_path / "hf")},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(override))
        task = manager.load([str(path)])["tasks"][name]
        task.build_all_requests(rank=0, world_size=1)
        assert len(task.instances) == len(rows)
        return task

    return load


def instance(task, doc_id: int = 0):
    return next(i for i in task.instances if i.doc_id == doc_id)


def score(task, reply: str, doc_id: int = 0) -> tuple[str, float]:
    """(filtered reply, primary metric) for ``reply`` to doc ``doc_id``, computed as lm-eval's
    evaluator does: every filter ensemble, then ``process_results`` on the primary filter."""
    metric, filter_name = PRIMARY_METRICS[task.config.task]
    inst = dataclasses.replace(instance(task, doc_id), resps=[reply], filtered_resps={})
    for ensemble in task._filters:
        ensemble.apply([inst])
    filtered = inst.filtered_resps[filter_name]
    return filtered, task.process_results(inst.doc, [filtered])[metric]


def chat_messages(task, doc_id: int = 0) -> list[dict]:
    """The messages lm-eval hands the chat template for doc ``doc_id`` (0-shot)."""
    doc = instance(task, doc_id).doc
    rendered = task.fewshot_context(
        doc,
        0,
        apply_chat_template=True,
        chat_template=lambda messages, add_generation_prompt=True: json.dumps(messages),
        gen_prefix=task.doc_to_prefix(doc),
    )
    return json.loads(rendered)


def test_local_paper_tasks_are_indexed_with_their_primary_metric(manager):
    assert set(PAPER_LOCAL_TASKS) <= set(manager.all_tasks)
    local = {spec.task: spec for spec in PAPER_TASKS.values() if not spec.upstream}
    assert set(local) == set(PAPER_LOCAL_TASKS)
    for name, spec in local.items():
        assert PRIMARY_METRICS[name] == spec.metric
    assert PAPER_TASKS["mbpp"].task == "paper_mbpp"
    assert PAPER_TASKS["mbpp"].metric == ("pass@1", "extract_code")


def test_mmlu_generative_dream_prompt_target_and_scores(load_task):
    task = load_task("mmlu_generative_dream", MMLU_ROWS, "test")
    context, gen_kwargs = instance(task).arguments
    assert context == (
        "The following are multiple choice questions (with answers) about high school "
        "mathematics.\n\nWhat is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:"
    )
    assert gen_kwargs["until"] == ["</s>", "\n"] and gen_kwargs["max_gen_toks"] == 3
    assert task.doc_to_target(instance(task).doc) == "B"
    # the description names each row's own subject, and is the system turn under a chat template
    second = instance(task, 1).arguments[0]
    assert second.startswith(
        "The following are multiple choice questions (with answers) about college computer "
        "science.\n\nWhich data structure is LIFO?\n"
    )
    assert chat_messages(task, 1) == [
        {"role": "system", "content": "The following are multiple choice questions (with "
         "answers) about college computer science.\n\n"},
        {"role": "user", "content": "Which data structure is LIFO?\nA. queue\nB. stack\nC. heap"
         "\nD. tree\nAnswer:"},
    ]  # fmt: skip
    # the paper's regex is anchored and case-sensitive: " B" and "b" are not read as letters
    for reply, want in [("B", 1), ("B. 4", 1), (" B", 0), ("C", 0), ("b", 0), ("", 0),
                        ("%%%?", 0)]:  # fmt: skip
        assert score(task, reply)[1] == want, reply
    assert score(task, "")[0] == utils.INVALID


def test_hellaswag_gen_prompt_target_and_scores(load_task):
    task = load_task("hellaswag_gen", HELLASWAG_ROWS, "validation")
    context, gen_kwargs = instance(task).arguments
    assert context == (
        "Home and Garden: How to clean a grill. Heat the grill for fifteen minutes. Turn on all "
        "burners. Then scrub the bbq\nQuestion: Which ending makes the most sense?\n"
        "A. the grates with a brush. Rinse them.\nB. the lid. Close it.\nC. the dog.\n"
        "D. nothing.\nYou may choose from 'A', 'B', 'C', 'D'.\nAnswer:\n"
    )
    assert gen_kwargs["until"] == ["\n", "</s>", "<|im_end|>"] and gen_kwargs["max_gen_toks"] == 3
    assert task.doc_to_target(instance(task).doc) == "b"
    for reply, want in [("B", 1), ("b", 1), (" B.", 1), ("A", 0), ("D", 0), ("xyz", 0), ("", 0)]:
        assert score(task, reply)[1] == want, reply
    assert score(task, "xyz")[0] == utils.INVALID


def test_paper_mbpp_prompt_target_and_sandbox_scores(load_task):
    task = load_task("paper_mbpp", MBPP_ROWS, "test")
    doc = instance(task).doc
    assert task.doc_to_text(doc) == (
        "You are an expert Python programmer, and here is your task:\nWrite a python function to "
        "remove first and last occurrence of a given character from the string.\nYour code "
        "should pass these tests:\n" + "\n".join(MBPP_TESTS)
    )
    assert task.doc_to_target(doc) == "\n".join(MBPP_TESTS)
    gen_kwargs = instance(task).arguments[1]
    assert gen_kwargs["until"] == [] and gen_kwargs["max_gen_toks"] == 256
    # the reply continues the assistant turn opened by the gen_prefix
    assert chat_messages(task)[-1] == {"role": "assistant", "content": "\n```python\n"}
    right = MBPP_CODE.replace("\r\n", "\n")
    cases = [
        ("right", right + "\n```\nIt removes both ends.", 1),
        ("unclosed", right, 1),
        ("wrong", "def remove_Occ(s, ch):\n    return s\n```", 0),
        ("empty", "", 0),
        ("only_fence", "```", 0),
        ("syntax", "def remove_Occ(s, ch)\n```", 0),
    ]
    for label, reply, want in cases:
        assert score(task, reply)[1] == want, label
    assert score(task, right + "\n```")[0] == right
    start = time.monotonic()
    assert score(task, "while True: pass\n```")[1] == 0
    assert time.monotonic() - start < utils.CODE_LIMITS["timeout_s"] + 10


def test_hellaswag_clean_matches_lm_evals_preprocess():
    from lm_eval.tasks.hellaswag.utils import preprocess

    texts = [
        "  A [header] B [title] C  D [step] E. ",
        "Roof shingle removal: A man is sitting on a roof. He",
        "[title] x [title]y   z [substeps]",
        "",
    ]
    for text in texts:
        assert utils.hellaswag_clean(text) == preprocess(text), text
    assert utils.hellaswag_clean(texts[0]) == "A B. C D E."
