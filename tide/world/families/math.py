"""``math``: one-line algebra with ``\\boxed{}`` answers (linear equations, evaluating expressions,
function values, combining like terms).

Prompt ``"Problem:\\n{problem}\\n\\nSolution:"`` as in ``minerva_math``; the reply shows the working
and boxes the result; ``answer`` is the boxed content. A problem is (subtype, numbers).
"""

from __future__ import annotations

import random
import re
from typing import Any

from tide.world.arith import as_int, evaluate
from tide.world.core import Family, Item, Problem

LINEAR = re.compile(r"Solve for \$x\$: \$(\d+)x ([+-]) (\d+) = (-?\d+)\$\.")
EVALUATE = re.compile(r"Evaluate \$([0-9+\-* ()]+)\$\.")
FUNCTION = re.compile(r"If \$f\(x\) = (\d+)x ([+-]) (\d+)\$, what is \$f\((-?\d+)\)\$\?")
COMBINE = re.compile(r"Simplify \$([0-9x+\- ]+)\$\.")
_TERM = re.compile(r"([+-]?) ?(\d*)x")


def _signed(v: int) -> str:
    """``" + 4"`` / ``" - 4"``: how a signed constant follows a term."""
    return f" + {v}" if v >= 0 else f" - {-v}"


def _num(v: int) -> str:
    return str(v) if v >= 0 else f"({v})"


# --- expressions for "evaluate": trees of (op, left, right) over ints -------------------------
_PREC = {"+": 1, "-": 1, "*": 2}


def _show(tree: Any, parent: int = 0, right: bool = False) -> str:
    if isinstance(tree, int):
        return f"({tree})" if tree < 0 and parent else str(tree)
    op, a, b = tree
    text = f"{_show(a, _PREC[op])} {op} {_show(b, _PREC[op], True)}"
    # parentheses where precedence (or left-to-right order, on the right side) needs them
    need = _PREC[op] < parent or (right and _PREC[op] == parent)
    return f"({text})" if need else text


def _value(tree: Any) -> int:
    if isinstance(tree, int):
        return tree
    op, a, b = tree
    x, y = _value(a), _value(b)
    return x + y if op == "+" else x - y if op == "-" else x * y


def _reduce_once(tree: Any) -> Any:
    """Evaluate the first operation in evaluation order (the leftmost innermost one)."""
    op, a, b = tree
    if not isinstance(a, int):
        return (op, _reduce_once(a), b)
    if not isinstance(b, int):
        return (op, a, _reduce_once(b))
    return _value(tree)


def _random_tree(rng: random.Random, n_ops: int, hi: int) -> Any:
    if n_ops == 0:
        return rng.randint(1, hi)
    left = rng.randint(0, n_ops - 1)
    op = rng.choice("+-*")
    return (op, _random_tree(rng, left, hi), _random_tree(rng, n_ops - 1 - left, hi))


class Math(Family):
    name = "math"

    def strata(self) -> list[str | None]:
        return list(self.world.config.math.subtypes)

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        cfg = self.world.config.math
        sub = stratum or rng.choice(cfg.subtypes)
        m = cfg.max_coef
        lo = -m if cfg.allow_negative else 1
        if sub == "linear_equation":
            a, x, b = rng.randint(2, m), rng.randint(lo, m), rng.randint(1, m)
            if cfg.allow_negative and rng.random() < 0.5:
                b = -b
            params = {"a": a, "b": b, "c": a * x + b}
        elif sub == "evaluate":
            while True:
                tree = _random_tree(rng, rng.randint(1, cfg.max_expr_ops), m)
                if (cfg.allow_negative or _value(tree) >= 0) and abs(_value(tree)) <= 999:
                    break
            params = {"expr": _show(tree), "tree": tree}
        elif sub == "function_value":
            a, b, c = rng.randint(2, m), rng.randint(1, m), rng.randint(lo, m)
            if cfg.allow_negative and rng.random() < 0.5:
                b = -b
            params = {"a": a, "b": b, "c": c}
        else:  # combine_terms
            while True:
                coefs = [rng.randint(1, m) for _ in range(rng.randint(2, 3))]
                coefs = [coefs[0]] + [c if rng.random() < 0.6 else -c for c in coefs[1:]]
                if abs(sum(coefs)) >= 2 and (cfg.allow_negative or sum(coefs) > 0):
                    break
            params = {"coefs": coefs}
        if sub == "evaluate":
            shown = params["expr"]
        elif sub == "combine_terms":
            shown = ",".join(map(str, params["coefs"]))
        else:
            shown = f"{params['a']},{params['b']},{params['c']}"
        return Problem(f"math:{sub}:{shown}", {"subtype": sub, **params}, sub)

    def render(self, problem: Problem, rng: random.Random) -> Item:
        p = problem.params
        sub = p["subtype"]
        if sub == "linear_equation":
            a, b, c = p["a"], p["b"], p["c"]
            x = (c - b) // a
            text = f"Solve for $x$: ${a}x{_signed(b)} = {c}$."
            work = (f"${a}x = {c}{_signed(-b)} = {c - b}$, so $x = {c - b} / {a} = "
                    f"\\boxed{{{x}}}$.")
            answer = str(x)
        elif sub == "evaluate":
            tree, steps = p["tree"], [p["expr"]]
            while not isinstance(tree, int):
                tree = _reduce_once(tree)
                steps.append(_show(tree))
            answer = str(tree)
            text = f"Evaluate ${p['expr']}$."
            work = "$" + " = ".join(steps[:-1]) + f" = \\boxed{{{answer}}}$."
        elif sub == "function_value":
            a, b, c = p["a"], p["b"], p["c"]
            answer = str(a * c + b)
            text = f"If $f(x) = {a}x{_signed(b)}$, what is $f({c})$?"
            work = (f"$f({c}) = {a} * {_num(c)}{_signed(b)} = {a * c}{_signed(b)} = "
                    f"\\boxed{{{answer}}}$.")
        else:
            coefs = p["coefs"]
            terms = f"{coefs[0]}x" + "".join(
                f" + {c}x" if c > 0 else f" - {-c}x" for c in coefs[1:])
            inner = str(coefs[0]) + "".join(_signed(c) for c in coefs[1:])
            answer = f"{sum(coefs)}x"
            text = f"Simplify ${terms}$."
            work = f"${terms} = ({inner})x = \\boxed{{{answer}}}$."
        return Item(self.name, f"Problem:\n{text}\n\nSolution:", work, answer, subtask=None)

    def _problem_line(self, text: str) -> str | None:
        lines = text.split("\n")
        for i, line in enumerate(lines[:-1]):
            if line == "Problem:":
                return lines[i + 1]
        return None

    def parse(self, text: str) -> Problem | None:
        line = self._problem_line(text)
        if line is None:
            return None
        if m := LINEAR.fullmatch(line):
            a, sign, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            return Problem(f"math:linear_equation:{a},{b if sign == '+' else -b},{c}", {},
                           "linear_equation")
        if m := EVALUATE.fullmatch(line):
            return Problem(f"math:evaluate:{m[1]}", {}, "evaluate")
        if m := FUNCTION.fullmatch(line):
            a, sign, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            return Problem(f"math:function_value:{a},{b if sign == '+' else -b},{c}", {},
                           "function_value")
        if m := COMBINE.fullmatch(line):
            coefs = [int(s + (d or "1")) for s, d in _TERM.findall(m[1])]
            return Problem(f"math:combine_terms:{','.join(map(str, coefs))}", {},
                           "combine_terms")
        return None

    def solve(self, item: dict[str, Any]) -> str:
        line = self._problem_line(item["prompt"]) or ""
        if m := LINEAR.fullmatch(line):
            a, b, c = int(m[1]), int(m[3]) * (1 if m[2] == "+" else -1), int(m[4])
            return str(as_int(evaluate("(c - b) / a", {"a": a, "b": b, "c": c})))
        if m := EVALUATE.fullmatch(line):
            return str(as_int(evaluate(m[1])))
        if m := FUNCTION.fullmatch(line):
            a, b, c = int(m[1]), int(m[3]) * (1 if m[2] == "+" else -1), int(m[4])
            return str(as_int(evaluate("a * c + b", {"a": a, "b": b, "c": c})))
        if m := COMBINE.fullmatch(line):
            return f"{sum(int(s + (d or '1')) for s, d in _TERM.findall(m[1]))}x"
        raise ValueError(f"math item {item.get('id')}: no known problem in the prompt")
