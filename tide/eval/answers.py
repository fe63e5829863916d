"""Answer extraction and scoring per task family, outside lm-eval (quick checks, monitoring).

The same rules as the task YAMLs in ``tide/eval/tasks/tiny`` (a test checks that both agree):

| family    | extraction (lm-eval filter)                                  | comparison          |
|-----------|--------------------------------------------------------------|---------------------|
| mmlu      | regex ``^([A-Z]).*``                                         | ignore case, punct. |
| mmlu_pro  | regex ``answer is \\(?([ABCDEFGHIJ])\\)?``                     | ignore case, punct. |
| hellaswag | lowercase, first ``[abcd]``                                  | ignore case         |
| gsm8k     | last match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` (flexible)      | ``, $ .`` ignored   |
| bbh       | ``(?<=the answer is )(.*)(?=.)``                             | case-sensitive      |
| math      | last ``\\boxed{}``, whitespace / ``$`` / final ``.`` removed   | exact               |
| humaneval | stub + reply up to the first fence                           | hidden tests pass   |
| mbpp      | first fenced block of ``"```python\\n" + reply``              | hidden tests pass   |

Malformed output never raises: it extracts to ``None`` and scores 0.
"""

from __future__ import annotations

import re
import string
from typing import Any

from tide.eval.tasks.utils import (
    CODE_FENCE,
    code_target,
    first_code_block,
    last_boxed,
    normalise_math,
    program_passes,
)

MMLU = re.compile(r"^([A-Z]).*")
PRO = re.compile(r"answer is \(?([ABCDEFGHIJ])\)?")
ENDING = re.compile(r"[abcd]")
GSM_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
GSM_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
BBH = re.compile(r"(?<=the answer is )(.*)(?=.)")
FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")

__all__ = ["FAMILIES", "code_of", "extract", "last_boxed", "normalise", "score"]


def _first_group(pattern: re.Pattern, text: str) -> str | None:
    """What lm-eval's regex filter keeps: the first match's group (first non-empty group)."""
    found = pattern.findall(text)
    if not found:
        return None
    hit = found[0]
    if isinstance(hit, tuple):
        hit = next((g for g in hit if g), None)
    return hit.strip() if hit is not None else None


def _gsm_number(text: str) -> str | None:
    found = GSM_FLEXIBLE.findall(text)
    if not found:
        return None
    hit = next((g for g in found[-1] if g), None)
    return hit.strip() if hit else None


def code_of(family: str, item: dict[str, Any], output: str) -> str:
    """The program a reply gives for a code item (what the sandbox runs)."""
    if family == "humaneval":
        cut = output.find(CODE_FENCE)
        return (item.get("stub") or item["prompt"]) + (output if cut < 0 else output[:cut])
    return first_code_block(CODE_FENCE + "python\n" + output)


def extract(family: str, text: str) -> str | None:
    """The answer a model's reply gives (before normalisation), or ``None`` if unparseable."""
    if family == "mmlu":
        return _first_group(MMLU, text)
    if family == "mmlu_pro":
        return _first_group(PRO, text)
    if family == "hellaswag":
        return _first_group(ENDING, text.lower())
    if family == "gsm8k":
        return _gsm_number(text)
    if family == "bbh":
        return _first_group(BBH, text)
    if family == "math":
        box = last_boxed(text)
        return normalise_math(box) if box is not None else None
    if family in ("humaneval", "mbpp"):
        raise ValueError(f"{family}: code replies are scored with score(), not extract()")
    raise ValueError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")


def normalise(family: str, answer: str) -> str:
    """The comparison form of an extracted or gold answer (the YAMLs' exact_match options)."""
    if family in ("mmlu", "mmlu_pro"):
        return answer.lower().translate(str.maketrans("", "", string.punctuation))
    if family in ("hellaswag", "gsm8k"):
        for pattern in GSM_IGNORE:
            answer = re.sub(pattern, "", answer)
        return answer.lower()
    if family == "math":
        return normalise_math(answer)
    return answer


def score(item: dict[str, Any], output: str, **limits: Any) -> bool:
    """Exact match (pass@1 for code) of a model ``output`` on a held-out ``item``."""
    family = item["family"]
    if family in ("humaneval", "mbpp"):
        return program_passes(code_of(family, item, output), code_target(item), **limits)
    got = extract(family, output)
    return got is not None and normalise(family, got) == normalise(family, str(item["answer"]))
