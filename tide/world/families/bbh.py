"""``bbh``: a symbolic reasoning suite with four subtasks and chain-of-thought answers.

Subtasks: ``boolean_expressions``, ``word_sorting``, ``dyck_languages`` (close the open brackets)
and ``date_arithmetic`` (a date plus or minus a few days). Query ``"Q: {input}\\nA: Let's think
step by step."``; the reply is a short chain of thought ending ``"So the answer is X."``; the
evaluation prompt prepends ``shots`` exemplars drawn from training items (fixed per subtask).
No reply contains a capital Q or a blank line (``bbh`` stops generation at both).
"""

from __future__ import annotations

import ast
import calendar
import datetime as dt
import random
import re
from typing import Any

from tide.world.core import Family, Item, Problem

THINK = "A: Let's think step by step."
WORDS = ("apple", "ant", "bird", "boat", "cat", "cup", "dog", "drum", "egg", "elm", "fig", "fox",
         "goat", "gem", "hat", "hill", "ink", "ice", "jam", "jet", "kite", "kiwi", "lamp", "leaf",
         "moon", "milk", "nest", "net", "oak", "owl", "pear", "pen", "rain", "rope", "sun",
         "sock", "tree", "toy", "urn", "umbrella", "vase", "van", "wolf", "wind", "yarn", "yak",
         "zoo", "zip")
PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
SORT_Q = "Sort the following words alphabetically: List: "
DYCK_Q = "Close the open brackets: "
DATE_Q = re.compile(r"Today is (\d\d)/(\d\d)/(\d{4})\. What is the date (\d+) days? (later|ago) "
                    r"in MM/DD/YYYY\?")
BOOL_Q = re.compile(r"((?:not|and|or|True|False|[()]| )+) is")


# --- boolean expressions ------------------------------------------------------------------
def _bool_tree(rng: random.Random, n_ops: int) -> Any:
    if n_ops == 0:
        return rng.choice((True, False))
    if rng.random() < 0.3:
        return ("not", _bool_tree(rng, n_ops - 1))
    left = rng.randint(0, n_ops - 1)
    return (rng.choice(("and", "or")), _bool_tree(rng, left), _bool_tree(rng, n_ops - 1 - left))


def _bool_show(tree: Any, top: bool = True) -> str:
    if isinstance(tree, bool):
        return str(tree)
    if tree[0] == "not":
        return f"not {_bool_show(tree[1], False)}"
    text = f"{_bool_show(tree[1], False)} {tree[0]} {_bool_show(tree[2], False)}"
    return text if top else f"( {text} )"


def _bool_value(tree: Any) -> bool:
    if isinstance(tree, bool):
        return tree
    if tree[0] == "not":
        return not _bool_value(tree[1])
    a, b = _bool_value(tree[1]), _bool_value(tree[2])
    return (a and b) if tree[0] == "and" else (a or b)


def _bool_steps(tree: Any) -> list[str]:
    """One ``"x op y = z."`` per operation, innermost first, left to right."""
    steps: list[str] = []

    def walk(node: Any) -> bool:
        if isinstance(node, bool):
            return node
        if node[0] == "not":
            v = walk(node[1])
            steps.append(f"not {v} = {not v}.")
            return not v
        a, b = walk(node[1]), walk(node[2])
        v = (a and b) if node[0] == "and" else (a or b)
        steps.append(f"{a} {node[0]} {b} = {v}.")
        return v

    walk(tree)
    return steps


def _bool_reference(expr: str) -> bool:
    """Evaluate a rendered expression with Python's grammar, allowing only not/and/or/True/False."""
    tree = ast.parse(expr, mode="eval")
    allowed = (ast.Expression, ast.BoolOp, ast.UnaryOp, ast.Not, ast.And, ast.Or, ast.Constant,
               ast.Load)
    if not all(isinstance(node, allowed) and (not isinstance(node, ast.Constant) or
                                              isinstance(node.value, bool))
               for node in ast.walk(tree)):
        raise ValueError(f"not a boolean expression: {expr!r}")
    return bool(eval(compile(tree, "<bool>", "eval"), {"__builtins__": {}}))


# --- brackets -----------------------------------------------------------------------------
def _dyck_input(rng: random.Random, depth: int) -> list[str]:
    closed = rng.randint(0, 2)
    opens, closes, stack, out = depth + closed, closed, [], []
    while opens or closes:
        if closes and stack and (not opens or rng.random() < 0.4):
            out.append(PAIRS[stack.pop()])
            closes -= 1
        else:
            b = rng.choice(tuple(PAIRS))
            stack.append(b)
            out.append(b)
            opens -= 1
    return out


def _open_stack(tokens: list[str]) -> list[str]:
    stack: list[str] = []
    closing = {v: k for k, v in PAIRS.items()}
    for t in tokens:
        if t in PAIRS:
            stack.append(t)
        elif t in closing and stack and stack[-1] == closing[t]:
            stack.pop()
        else:
            raise ValueError(f"bad bracket sequence {' '.join(tokens)!r}")
    return stack


# --- dates --------------------------------------------------------------------------------
def _date_text(d: dt.date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def _date_steps(d: dt.date, n: int, later: bool) -> str:
    s = d.day + n if later else d.day - n
    if later:
        work = f"{d.day} + {n} = {s}."
        dim = calendar.monthrange(d.year, d.month)[1]
        if s > dim:
            work += f" {calendar.month_name[d.month]} has {dim} days, {s} - {dim} = {s - dim}."
    else:
        work = f"{d.day} - {n} = {s}."
        if s < 1:
            prev = d.replace(day=1) - dt.timedelta(days=1)
            dim = prev.day
            work += f" {calendar.month_name[prev.month]} has {dim} days, {s} + {dim} = {s + dim}."
    return work


class Bbh(Family):
    name = "bbh"

    def strata(self) -> list[str | None]:
        return list(self.world.config.bbh.subtasks)

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        cfg = self.world.config.bbh
        sub = stratum or rng.choice(cfg.subtasks)
        if sub == "boolean_expressions":
            tree = _bool_tree(rng, rng.randint(1, cfg.max_bool_ops))
            text = _bool_show(tree)
            return Problem(f"bbh:bool:{text}", {"subtask": sub, "tree": tree}, sub)
        if sub == "word_sorting":
            letters = rng.sample(sorted({w[0] for w in WORDS}), rng.randint(2, cfg.max_words))
            words = [rng.choice([w for w in WORDS if w[0] == c]) for c in letters]
            return Problem(f"bbh:sort:{' '.join(sorted(words))}", {"subtask": sub,
                                                                   "words": words}, sub)
        if sub == "dyck_languages":
            tokens = _dyck_input(rng, rng.randint(2, cfg.max_open_brackets))
            return Problem(f"bbh:dyck:{' '.join(tokens)}", {"subtask": sub, "tokens": tokens},
                           sub)
        day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(365 * 30))
        n, later = rng.randint(1, cfg.max_day_offset), rng.random() < 0.5
        return Problem(f"bbh:date:{_date_text(day)}{'+' if later else '-'}{n}",
                       {"subtask": sub, "date": day, "n": n, "later": later}, sub)

    def render(self, problem: Problem, rng: random.Random) -> Item:
        p = problem.params
        sub = p["subtask"]
        if sub == "boolean_expressions":
            question = f"{_bool_show(p['tree'])} is"
            answer = str(_bool_value(p["tree"]))
            work = " ".join(_bool_steps(p["tree"]))
        elif sub == "word_sorting":
            question = SORT_Q + " ".join(p["words"])
            answer = " ".join(sorted(p["words"]))
            work = "First letters: " + " ".join(w[0] for w in p["words"]) + "."
        elif sub == "dyck_languages":
            question = DYCK_Q + " ".join(p["tokens"])
            stack = _open_stack(p["tokens"])
            answer = " ".join(PAIRS[b] for b in reversed(stack))
            work = "Still open: " + " ".join(stack) + "."
        else:
            d, n, later = p["date"], p["n"], p["later"]
            plural = "day" if n == 1 else "days"
            question = (f"Today is {_date_text(d)}. What is the date {n} {plural} "
                        f"{'later' if later else 'ago'} in MM/DD/YYYY?")
            answer = _date_text(d + dt.timedelta(days=n if later else -n))
            work = _date_steps(d, n, later)
        prompt = f"Q: {question}\n{'A:' if self.compact else THINK}"
        return Item(self.name, prompt, f"{work} So the answer is {answer}.", answer, subtask=sub)

    @staticmethod
    def fewshot_text(exemplars: list[dict[str, str]], query: str) -> str:
        """The user turn with exemplars: ``"{Q} {A}\\n\\n" * k + query``."""
        return "".join(f"{ex['prompt']} {ex['response']}\n\n" for ex in exemplars) + query

    def training_user_turn(self, item: Item, rng: random.Random, exemplars: list[Item]) -> str:
        k = self.world.config.bbh.sft_shots
        pool = [e for e in exemplars if e.prompt != item.prompt]
        chosen = rng.sample(pool, min(k, len(pool)))
        return self.fewshot_text([{"prompt": e.prompt, "response": e.response} for e in chosen],
                                 item.prompt)

    # --- reading back ---------------------------------------------------------------------
    def _queries(self, text: str) -> list[str]:
        return [ln[3:] for ln in text.split("\n") if ln.startswith("Q: ")]

    def _parse_query(self, q: str) -> tuple[str, Any] | None:
        if q.startswith(SORT_Q):
            words = q[len(SORT_Q):].split(" ")
            return "word_sorting", words
        if q.startswith(DYCK_Q):
            return "dyck_languages", q[len(DYCK_Q):].split(" ")
        if m := DATE_Q.fullmatch(q):
            return "date_arithmetic", (dt.date(int(m[3]), int(m[1]), int(m[2])), int(m[4]),
                                       m[5] == "later")
        if m := BOOL_Q.fullmatch(q):
            return "boolean_expressions", m[1].strip()
        return None

    @staticmethod
    def _key(sub: str, value: Any) -> str:
        if sub == "word_sorting":
            return f"bbh:sort:{' '.join(sorted(value))}"
        if sub == "dyck_languages":
            return f"bbh:dyck:{' '.join(value)}"
        if sub == "date_arithmetic":
            d, n, later = value
            return f"bbh:date:{_date_text(d)}{'+' if later else '-'}{n}"
        return f"bbh:bool:{value}"

    def parse_all(self, text: str) -> list[Problem]:
        out = []
        for q in self._queries(text):
            hit = self._parse_query(q)
            if hit:
                out.append(Problem(self._key(*hit), {}, hit[0]))
        return out

    def parse(self, text: str) -> Problem | None:
        found = self.parse_all(text)
        return found[-1] if found else None  # the query comes after the exemplars

    def solve(self, item: dict[str, Any]) -> str:
        queries = self._queries(item["prompt"])
        hit = self._parse_query(queries[-1]) if queries else None
        if hit is None:
            raise ValueError(f"bbh item {item.get('id')}: no known question in the prompt")
        sub, value = hit
        if sub == "word_sorting":
            return " ".join(sorted(value))
        if sub == "dyck_languages":
            return " ".join(PAIRS[b] for b in reversed(_open_stack(value)))
        if sub == "date_arithmetic":
            d, n, later = value
            return _date_text(d + dt.timedelta(days=n if later else -n))
        return str(_bool_reference(value))
