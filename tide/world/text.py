"""Text helpers shared by the families: templates that render *and* parse, option lists.

A :class:`TextTemplate` such as ``"What is the capital of {land}?"`` renders with keyword values and
parses a rendered string back into them; the reference solvers and the overlap checks read the
problem back from the prompt text this way instead of trusting stored parameters.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

LETTERS = string.ascii_uppercase
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class TextTemplate:
    """A string with ``{name}`` slots: ``render(**values)`` fills them, ``parse`` undoes it."""

    pattern: str
    _regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts, pos, seen = [], 0, set()
        for m in _FIELD.finditer(self.pattern):
            parts.append(re.escape(self.pattern[pos:m.start()]))
            name = m.group(1)
            # a repeated slot must hold the same text both times
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
            pos = m.end()
        parts.append(re.escape(self.pattern[pos:]))
        object.__setattr__(self, "_regex", re.compile("".join(parts), re.DOTALL))

    @property
    def slots(self) -> list[str]:
        return list(dict.fromkeys(_FIELD.findall(self.pattern)))

    def render(self, **values: object) -> str:
        return _FIELD.sub(lambda m: str(values[m.group(1)]), self.pattern)

    def parse(self, text: str) -> dict[str, str] | None:
        """The slot values when ``text`` is exactly this template rendered, else ``None``."""
        m = self._regex.fullmatch(text)
        return m.groupdict() if m else None


def parse_any(templates: dict[str, TextTemplate], text: str) -> tuple[str, dict[str, str]] | None:
    """Try each named template on ``text``; return ``(name, values)`` of the first that matches."""
    for name, tpl in templates.items():
        values = tpl.parse(text)
        if values is not None:
            return name, values
    return None


def option_lines(choices: list[str]) -> str:
    """``"A. c0\\nB. c1..."`` as in the lm-eval multiple-choice prompts."""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def parse_options(text: str) -> dict[str, str]:
    """The ``{letter: option}`` lines (``"A. ..."``) found in a prompt."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^([A-J])\. (.*)$", text, re.MULTILINE)}


def letter_of(value: str, text: str) -> str:
    """The letter whose option line in ``text`` equals ``value`` (``ValueError`` unless one)."""
    hits = [k for k, v in parse_options(text).items() if v == value]
    if len(hits) != 1:
        raise ValueError(f"value {value!r} is among the options {len(hits)} times, expected once")
    return hits[0]


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the near-duplicate comparison form."""
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return " ".join(text.split())
