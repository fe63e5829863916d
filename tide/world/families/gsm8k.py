"""``gsm8k``: two- and three-step arithmetic word problems with small operands.

Prompt ``"Q: {question}\\nA:"`` as in ``gsm8k_cot``; the reply is a short chain of thought, one
``"3*4=12."`` per step, then ``"\\n#### 17"``. A problem is (template, operands): the person's name
is wording only and does not make a new problem.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from tide.world.arith import as_int, evaluate
from tide.world.core import Family, Item, Problem
from tide.world.text import TextTemplate


@dataclass(frozen=True)
class WordProblem:
    """A story with number slots, its formula, and the steps the chain of thought shows."""

    tid: str
    text: TextTemplate
    formula: str  # what the solver evaluates
    steps: tuple[str, ...]  # expressions over the slots and earlier results r1, r2
    big: tuple[str, ...] = ()  # slots drawn from [max_operand, max_operand**2]; others [2, max]

    @property
    def slots(self) -> list[str]:
        return [s for s in self.text.slots if s != "n"]


def _wp(tid: str, text: str, formula: str, steps: tuple[str, ...], big: tuple[str, ...] = ()):
    return WordProblem(tid, TextTemplate(text), formula, steps, big)


TEMPLATES: tuple[WordProblem, ...] = (
    _wp("apples", "{n} has {a} apples and buys {b} bags with {c} apples each. How many apples "
        "does {n} have now?", "a + b * c", ("b*c", "a+r1")),
    _wp("pages", "{n} reads {a} pages a day for {b} days. The book has {c} pages. How many pages "
        "are left?", "c - a * b", ("a*b", "c-r1"), ("c",)),
    _wp("change", "{n} buys {a} pens at {b} dollars each and pays with {c} dollars. How much "
        "change does {n} get?", "c - a * b", ("a*b", "c-r1"), ("c",)),
    _wp("coins", "{n} has {a} coins, spends {b} and then finds {c} more. How many coins does {n} "
        "have?", "a - b + c", ("a-b", "r1+c"), ("a",)),
    _wp("cookies", "{n} bakes {a} trays of {b} cookies and gives away {c}. How many cookies are "
        "left?", "a * b - c", ("a*b", "r1-c")),
    _wp("sweets", "{n} shares {a} sweets equally among {b} friends. Each friend eats {c}. How many "
        "sweets does each friend have left?", "a / b - c", ("a/b", "r1-c"), ("a",)),
    _wp("walks", "{n} walks {a} km in the morning and {b} km in the evening. How many km does {n} "
        "walk in {c} days?", "(a + b) * c", ("a+b", "r1*c")),
    _wp("marbles", "{n} has {a} red and {b} blue marbles, gives away {c} and then doubles the "
        "rest. How many marbles does {n} have?", "(a + b - c) * 2", ("a+b", "r1-c", "r2*2")),
    _wp("harvest", "{n} picks {a} apples on each of {b} days and {c} more on the last day, then "
        "eats {d}. How many apples are left?", "a * b + c - d", ("a*b", "r1+c", "r2-d")),
    _wp("class", "A class has {a} rows of {b} kids. {c} kids leave and {d} new kids join. How many "
        "kids are in the class now?", "a * b - c + d", ("a*b", "r1-c", "r2+d")),
    _wp("cards", "{n} buys {a} packs of {b} cards and {c} packs of {d} cards. How many cards does "
        "{n} have?", "a * b + c * d", ("a*b", "c*d", "r1+r2")),
    _wp("jars", "{n} earns {a} dollars a day for {b} days and spends {c}. {n} puts the rest "
        "equally into {d} jars. How much goes in each jar?", "(a * b - c) / d",
        ("a*b", "r1-c", "r2/d")),
)
BY_ID = {t.tid: t for t in TEMPLATES}


def _run_steps(tpl: WordProblem, values: dict[str, int]) -> list[tuple[str, int]] | None:
    """``[(shown expression, result)]`` per step, or ``None`` if a step is negative / not whole."""
    env: dict[str, int] = dict(values)
    out = []
    for i, step in enumerate(tpl.steps, start=1):
        shown = re.sub(r"[a-z]\d?", lambda m: str(env[m.group(0)]), step)
        result = evaluate(step, env)
        if result.denominator != 1 or result <= 0:
            return None
        env[f"r{i}"] = int(result)
        out.append((shown, int(result)))
    return out


class Gsm8k(Family):
    name = "gsm8k"

    def _templates(self) -> list[WordProblem]:
        cfg = self.world.config.gsm8k
        return [t for t in TEMPLATES if cfg.min_steps <= len(t.steps) <= cfg.max_steps]

    def strata(self) -> list[str | None]:
        return [t.tid for t in self._templates()]

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        tpl = BY_ID[stratum] if stratum else rng.choice(self._templates())
        m = self.world.config.gsm8k.max_operand
        while True:
            values = {s: rng.randint(m, m * m) if s in tpl.big else rng.randint(2, m)
                      for s in tpl.slots}
            if _run_steps(tpl, values) is not None:
                break
        key = f"gsm8k:{tpl.tid}:" + ",".join(str(values[s]) for s in tpl.slots)
        return Problem(key, {"tid": tpl.tid, "values": values}, tpl.tid)

    def render(self, problem: Problem, rng: random.Random) -> Item:
        tpl = BY_ID[problem.params["tid"]]
        values = problem.params["values"]
        question = tpl.text.render(n=rng.choice(self.world.names), **values)
        steps = _run_steps(tpl, values)
        answer = str(steps[-1][1])
        response = " ".join(f"{e}={r}." for e, r in steps) + f"\n#### {answer}"
        return Item(self.name, f"Q: {question}\nA:", response, answer)

    def _parse_question(self, text: str) -> tuple[WordProblem, dict[str, int]] | None:
        for line in text.split("\n"):
            if not line.startswith("Q: "):
                continue
            for tpl in TEMPLATES:
                got = tpl.text.parse(line[3:])
                if got is None or ("n" in got and got["n"] not in self.world.names):
                    continue
                if all(got[s].isdigit() for s in tpl.slots):
                    return tpl, {s: int(got[s]) for s in tpl.slots}
        return None

    def parse(self, text: str) -> Problem | None:
        hit = self._parse_question(text)
        if hit is None:
            return None
        tpl, values = hit
        key = f"gsm8k:{tpl.tid}:" + ",".join(str(values[s]) for s in tpl.slots)
        return Problem(key, {"tid": tpl.tid, "values": values}, tpl.tid)

    def solve(self, item: dict[str, Any]) -> str:
        hit = self._parse_question(item["prompt"])
        if hit is None:
            raise ValueError(f"gsm8k item {item.get('id')}: no known word problem in the prompt")
        tpl, values = hit
        return str(as_int(evaluate(tpl.formula, values)))

    def pretrain_text(self, problem: Problem, rng: random.Random) -> str:
        item = self.render(problem, rng)
        return f"{item.prompt} {item.response}"
