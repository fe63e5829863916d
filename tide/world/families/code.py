"""``humaneval`` and ``mbpp``: tiny Python functions from one shared, enumerated problem space.

A problem is (template, parameters), e.g. ``add`` with k=3 -> ``def add_3(x): return x + 3``.
Both families draw held-out problems from the same space, and every problem held out by either
one is kept out of all training splits (a code snippet in pretraining is a training item too).

* ``humaneval``: ``"Write a solution to the following problem and make sure that it passes the
  tests:\\n```python\\n{stub}```"``; the reply opens with the ``humaneval_instruct`` gen_prefix
  ``"Here is the completed function:\\n```python\\n{stub}"`` and continues with the body;
  ``canonical_solution`` is the body, ``stub`` the signature + docstring.
* ``mbpp``: ``"You are an expert Python programmer, and here is your task:\\n{text}\\nYour code
  should pass these tests:\\n{one assert}"``; the reply is ``"```python\\n{function}```"``.

Hidden tests are HumanEval-style ``def check(candidate): assert ...`` blocks;
run them with ``tide.eval.sandbox.check_solution(program, test, entry_point)``.
"""

from __future__ import annotations

import itertools
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tide.world.core import Family, Item, Problem

HUMANEVAL_INSTRUCTION = ("Write a solution to the following problem and make sure that it passes "
                         "the tests:")
HUMANEVAL_PREFIX = "Here is the completed function:\n```python\n"
COMPACT_HUMANEVAL_INSTRUCTION = "Complete the function:"
MBPP_INSTRUCTION = "You are an expert Python programmer, and here is your task:"
MBPP_TESTS = "Your code should pass these tests:"

_CMP = {"above": (">", "above"), "below": ("<", "below"), "at_least": (">=", "at least"),
        "at_most": ("<=", "at most")}
_OPS = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b}
_SUFFIXES = ("ab", "ok", "up", "ed", "er", "ly", "yes", "no", "hi", "go", "fox", "cat", "dog",
             "sun", "top", "end", "pro", "max", "min", "day", "red", "sky", "box", "pen", "ink",
             "art", "bit", "cup", "dot", "fun", "gap", "hat", "jam", "key", "lid", "map", "net",
             "oak", "pig", "rug")
_CONSONANTS = "bcdfghjklmnpqrstvwxyz"


@dataclass(frozen=True)
class CodeTemplate:
    """One kind of function: ``{k}``-style slots in ``name``/``doc``/``body`` take ``grid``
    values."""

    tid: str
    arg: str  # "x" (int), "xs" (list of int) or "s" (str)
    name: str
    doc: str  # one sentence starting with "Return"
    body: str
    grid: dict[str, tuple[Any, ...]]
    ref: Callable[..., Any]  # ref(value, **params) -> expected output

    def combos(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        out = [dict(zip(keys, vals)) for vals in itertools.product(*self.grid.values())]
        return [c for c in out if "a" not in c or c["a"] + 2 <= c["b"]]  # ranges span >= 3


def _fill(text: str, params: dict[str, Any]) -> str:
    for k, v in params.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def _cmp_templates() -> list[CodeTemplate]:
    out = []
    for opname, (op, words) in _CMP.items():
        f = _OPS[op]
        ks = tuple(range(31))
        out += [
            CodeTemplate(f"is_{opname}", "x", f"is_{opname}_{{k}}",
                         f"Return True if x is {words} {{k}}.", f"return x {op} {{k}}", {"k": ks},
                         lambda x, k, f=f: f(x, k)),
            CodeTemplate(f"count_{opname}", "xs", f"count_{opname}_{{k}}",
                         f"Return how many numbers in xs are {words} {{k}}.",
                         f"return sum(1 for v in xs if v {op} {{k}})", {"k": ks},
                         lambda xs, k, f=f: sum(1 for v in xs if f(v, k))),
            CodeTemplate(f"keep_{opname}", "xs", f"keep_{opname}_{{k}}",
                         f"Return the numbers in xs {words} {{k}}.",
                         f"return [v for v in xs if v {op} {{k}}]", {"k": ks},
                         lambda xs, k, f=f: [v for v in xs if f(v, k)]),
            CodeTemplate(f"sum_{opname}", "xs", f"sum_{opname}_{{k}}",
                         f"Return the sum of the numbers in xs {words} {{k}}.",
                         f"return sum(v for v in xs if v {op} {{k}})", {"k": ks},
                         lambda xs, k, f=f: sum(v for v in xs if f(v, k))),
        ]
    return out


LETTERS = tuple(string.ascii_lowercase)
TEMPLATES: tuple[CodeTemplate, ...] = (
    CodeTemplate("add", "x", "add_{k}", "Return x plus {k}.", "return x + {k}",
                 {"k": tuple(range(1, 51))}, lambda x, k: x + k),
    CodeTemplate("subtract", "x", "subtract_{k}", "Return x minus {k}.", "return x - {k}",
                 {"k": tuple(range(1, 51))}, lambda x, k: x - k),
    CodeTemplate("times", "x", "times_{k}", "Return x times {k}.", "return x * {k}",
                 {"k": tuple(range(2, 21))}, lambda x, k: x * k),
    CodeTemplate("affine", "x", "times_{k}_plus_{m}", "Return x times {k} plus {m}.",
                 "return x * {k} + {m}", {"k": tuple(range(2, 13)), "m": tuple(range(1, 21))},
                 lambda x, k, m: x * k + m),
    CodeTemplate("divisible", "x", "divisible_by_{k}", "Return True if x is divisible by {k}.",
                 "return x % {k} == 0", {"k": tuple(range(2, 21))}, lambda x, k: x % k == 0),
    CodeTemplate("mod", "x", "mod_{k}", "Return the remainder of x divided by {k}.",
                 "return x % {k}", {"k": tuple(range(2, 21))}, lambda x, k: x % k),
    CodeTemplate("int_div", "x", "div_{k}", "Return x divided by {k}, rounded down.",
                 "return x // {k}", {"k": tuple(range(2, 21))}, lambda x, k: x // k),
    CodeTemplate("cap", "x", "cap_at_{k}", "Return x, but at most {k}.", "return min(x, {k})",
                 {"k": tuple(range(31))}, lambda x, k: min(x, k)),
    CodeTemplate("floor", "x", "floor_at_{k}", "Return x, but at least {k}.",
                 "return max(x, {k})", {"k": tuple(range(31))}, lambda x, k: max(x, k)),
    CodeTemplate("between", "x", "is_between_{a}_{b}", "Return True if x is from {a} to {b}.",
                 "return {a} <= x <= {b}", {"a": tuple(range(21)), "b": tuple(range(2, 21))},
                 lambda x, a, b: a <= x <= b),
    CodeTemplate("count_between", "xs", "count_between_{a}_{b}",
                 "Return how many numbers in xs are from {a} to {b}.",
                 "return sum(1 for v in xs if {a} <= v <= {b})",
                 {"a": tuple(range(21)), "b": tuple(range(2, 21))},
                 lambda xs, a, b: sum(1 for v in xs if a <= v <= b)),
    *_cmp_templates(),
    CodeTemplate("scale", "xs", "scale_by_{k}", "Return the numbers in xs, each times {k}.",
                 "return [v * {k} for v in xs]", {"k": tuple(range(2, 21))},
                 lambda xs, k: [v * k for v in xs]),
    CodeTemplate("shift", "xs", "shift_by_{k}", "Return the numbers in xs, each plus {k}.",
                 "return [v + {k} for v in xs]", {"k": tuple(range(1, 31))},
                 lambda xs, k: [v + k for v in xs]),
    CodeTemplate("head", "xs", "first_{k}", "Return the first {k} items of xs.",
                 "return xs[:{k}]", {"k": tuple(range(1, 6))}, lambda xs, k: xs[:k]),
    CodeTemplate("tail", "xs", "last_{k}", "Return the last {k} items of xs.",
                 "return xs[-{k}:]", {"k": tuple(range(1, 6))}, lambda xs, k: xs[-k:]),
    CodeTemplate("count_value", "xs", "count_{k}s", "Return how many times {k} appears in xs.",
                 "return xs.count({k})", {"k": tuple(range(21))}, lambda xs, k: xs.count(k)),
    CodeTemplate("count_char", "s", "count_{c}", "Return how many times '{c}' appears in s.",
                 "return s.count('{c}')", {"c": LETTERS}, lambda s, c: s.count(c)),
    CodeTemplate("suffix", "s", "end_with_{w}", "Return s followed by '{w}'.",
                 "return s + '{w}'", {"w": _SUFFIXES}, lambda s, w: s + w),
    CodeTemplate("prefix", "s", "start_with_{w}", "Return '{w}' followed by s.",
                 "return '{w}' + s", {"w": _SUFFIXES}, lambda s, w: w + s),
    CodeTemplate("repeat", "s", "repeat_{k}_times", "Return s repeated {k} times.",
                 "return s * {k}", {"k": tuple(range(2, 6))}, lambda s, k: s * k),
    CodeTemplate("startswith", "s", "starts_with_{c}", "Return True if s starts with '{c}'.",
                 "return s.startswith('{c}')", {"c": LETTERS}, lambda s, c: s.startswith(c)),
    CodeTemplate("endswith", "s", "ends_with_{c}", "Return True if s ends with '{c}'.",
                 "return s.endswith('{c}')", {"c": LETTERS}, lambda s, c: s.endswith(c)),
    CodeTemplate("replace", "s", "swap_{c}_for_{d}", "Return s with every '{c}' replaced by '{d}'.",
                 "return s.replace('{c}', '{d}')", {"c": tuple("aeiou"), "d": tuple(_CONSONANTS)},
                 lambda s, c, d: s.replace(c, d)),
    CodeTemplate("drop_char", "s", "drop_{c}", "Return s without any '{c}'.",
                 "return s.replace('{c}', '')", {"c": LETTERS}, lambda s, c: s.replace(c, "")),
    CodeTemplate("head_chars", "s", "first_{k}_chars", "Return the first {k} characters of s.",
                 "return s[:{k}]", {"k": tuple(range(1, 7))}, lambda s, k: s[:k]),
    CodeTemplate("tail_chars", "s", "last_{k}_chars", "Return the last {k} characters of s.",
                 "return s[-{k}:]", {"k": tuple(range(1, 7))}, lambda s, k: s[-k:]),
)
BY_ID = {t.tid: t for t in TEMPLATES}


# argument names a function may use: wording only, the problem stays the same
ARG_NAMES = {"x": ("x", "n", "v"), "xs": ("xs", "ns", "arr"), "s": ("s", "w", "t")}


@dataclass(frozen=True)
class CodeProblem:
    """A rendered function: what prompts, replies and tests are made of."""

    tid: str
    params: dict[str, Any]
    name: str
    arg: str  # the argument's name
    kind: str  # its type: "x" (int), "xs" (list of int) or "s" (str)
    doc: str
    body: str

    @property
    def stub(self) -> str:
        return f'def {self.name}({self.arg}):\n    """{self.doc}"""\n'

    @property
    def function(self) -> str:
        return f"def {self.name}({self.arg}):\n    {self.body}\n"

    @property
    def task_text(self) -> str:
        """The mbpp task sentence: ``"Write a function add_3(x) that returns x plus 3."``."""
        return f"Write a function {self.name}({self.arg}) that returns {self.doc[len('Return '):]}"


def code_problem(tid: str, params: dict[str, Any], arg: str | None = None) -> CodeProblem:
    """The function of template ``tid`` with ``params``, its argument called ``arg``."""
    t = BY_ID[tid]
    arg = arg or t.arg
    if arg not in ARG_NAMES[t.arg]:
        raise ValueError(f"argument name {arg!r} is not one of {ARG_NAMES[t.arg]}")

    def rename(text: str) -> str:  # before filling, so a parameter 's' is never renamed
        return re.sub(rf"\b{t.arg}\b", arg, text)

    return CodeProblem(tid, params, _fill(t.name, params), arg, t.arg,
                       _fill(rename(t.doc), params), _fill(rename(t.body), params))


def _key(tid: str, params: dict[str, Any]) -> str:
    return f"code:{tid}:" + ",".join(f"{k}={params[k]}" for k in sorted(params))


def all_code_problems() -> list[Problem]:
    """Every (template, parameters) problem, in a fixed order; function names are unique."""
    out, names = [], set()
    for t in TEMPLATES:
        for params in t.combos():
            cp = code_problem(t.tid, params)
            if cp.name in names:
                raise AssertionError(f"duplicate code function name {cp.name}")
            names.add(cp.name)
            out.append(Problem(_key(t.tid, params), {"tid": t.tid, "params": params}, t.tid))
    return out


_BY_NAME: dict[str, Problem] = {}


def _by_name() -> dict[str, Problem]:
    if not _BY_NAME:
        for p in all_code_problems():
            _BY_NAME[code_problem(p.params["tid"], p.params["params"]).name] = p
    return _BY_NAME


# --- hidden tests -------------------------------------------------------------------------
_ALPHABET = "abdeilmnorstu"


def _hints(params: dict[str, Any]) -> tuple[list[int], str]:
    nums = [v for v in params.values() if isinstance(v, int)]
    chars = "".join(v for v in params.values() if isinstance(v, str) and len(v) == 1)
    return nums, chars


def _boundary_inputs(rng: random.Random, cp: CodeProblem, nums: list[int], chars: str
                     ) -> list[Any]:
    """Inputs on which a changed constant shows: x = k and k+1; a list holding k, k, k+1
    (longer than k where k is a length); a string that starts and ends with the template's
    letter (longer than k where k is a length)."""
    k = nums[0] if nums else 3
    long = cp.tid in ("head", "tail", "head_chars", "tail_chars")
    if cp.kind == "x":
        return [k, k + 1]
    if cp.kind == "xs":
        xs = [k, k, k + 1] + [rng.randint(-5, 20) for _ in range((k + 2 if long else 4) - 3)]
        rng.shuffle(xs)
        return [xs]
    c = chars[:1] or rng.choice(_ALPHABET)
    middle = "".join(rng.choice(_ALPHABET) for _ in range((k + 2 if long else 5) - 2))
    return [c + middle + c]


def _random_input(rng: random.Random, arg: str, nums: list[int], chars: str) -> Any:
    near = [n + d for n in nums for d in (-1, 0, 1)]
    if arg == "x":
        return rng.choice(near) if near and rng.random() < 0.5 else rng.randint(-10, 30)
    if arg == "xs":
        return [rng.choice(near) if near and rng.random() < 0.4 else rng.randint(-5, 20)
                for _ in range(rng.randint(2, 6))]
    return "".join(rng.choice(chars) if chars and rng.random() < 0.3 else rng.choice(_ALPHABET)
                   for _ in range(rng.randint(2, 7)))


def make_tests(cp: CodeProblem, rng: random.Random, n: int) -> list[tuple[Any, Any]]:
    """``n`` (input, expected) pairs: boundary inputs first, then random ones, with at least two
    different expected outputs."""
    t = BY_ID[cp.tid]
    nums, chars = _hints(cp.params)
    for _ in range(100):
        inputs: list[Any] = []
        for v in _boundary_inputs(rng, cp, nums, chars)[:n]:
            if v not in inputs:
                inputs.append(v)
        while len(inputs) < n:
            v = _random_input(rng, cp.kind, nums, chars)
            if v not in inputs:
                inputs.append(v)
        pairs = [(v, t.ref(v, **cp.params)) for v in inputs]
        if len({repr(o) for _, o in pairs}) >= 2:
            return pairs
    raise AssertionError(f"cannot find discriminating tests for {cp.name}")


def check_code(cp: CodeProblem, pairs: list[tuple[Any, Any]]) -> str:
    lines = [f"    assert candidate({v!r}) == {o!r}" for v, o in pairs]
    return "def check(candidate):\n" + "\n".join(lines) + "\n"


_STUB = re.compile(r'def (\w+)\((\w+)\):\n    """(.*?)"""\n')
_TASK = re.compile(r"Write a function (\w+)\((\w+)\) that returns (.*)")


class _CodeFamily(Family):
    shared_space = "code"

    def strata(self) -> list[str | None]:
        return [t.tid for t in TEMPLATES]

    def enumerate_problems(self) -> list[Problem]:
        return all_code_problems()

    def heldout_fraction(self) -> float:
        return getattr(self.world.config, self.name).heldout_fraction

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        return rng.choice(all_code_problems())

    def _n_tests(self) -> int:
        return getattr(self.world.config, self.name).n_tests

    def _problem_of(self, name: str, arg: str, doc: str) -> Problem | None:
        p = _by_name().get(name)
        if p is None or arg not in ARG_NAMES[BY_ID[p.params["tid"]].arg]:
            return None
        if code_problem(p.params["tid"], p.params["params"], arg).doc != doc:
            return None
        return Problem(p.key, {**p.params, "arg": arg}, p.stratum)

    def _code_problem(self, problem: Problem, rng: random.Random | None = None) -> CodeProblem:
        """The problem's function; a training / held-out rendering picks the argument name."""
        kind = BY_ID[problem.params["tid"]].arg
        arg = problem.params.get("arg") or (rng.choice(ARG_NAMES[kind]) if rng else kind)
        return code_problem(problem.params["tid"], problem.params["params"], arg)

    def parse(self, text: str) -> Problem | None:
        """The function named by a humaneval stub, an mbpp task line or a pretrain snippet."""
        for m in _STUB.finditer(text):
            if p := self._problem_of(m[1], m[2], m[3]):
                return p
        for line in text.split("\n"):
            if (m := _TASK.fullmatch(line)) and (p := self._problem_of(m[1], m[2],
                                                                       "Return " + m[3])):
                return p
        return None

    def solve(self, item: dict[str, Any]) -> str:
        p = self.parse(item["prompt"])
        if p is None:
            raise ValueError(f"{self.name} item {item.get('id')}: no known function in the prompt")
        return self._canonical(self._code_problem(p))

    def _canonical(self, cp: CodeProblem) -> str:
        raise NotImplementedError

    def pretrain_text(self, problem: Problem, rng: random.Random) -> str:
        cp = self._code_problem(problem, rng)
        return cp.stub + f"    {cp.body}\n"


class HumanEval(_CodeFamily):
    name = "humaneval"

    def _canonical(self, cp: CodeProblem) -> str:
        return f"    {cp.body}\n"

    def render(self, problem: Problem, rng: random.Random) -> Item:
        cp = self._code_problem(problem, rng)
        test = check_code(cp, make_tests(cp, rng, self._n_tests()))
        instruction = COMPACT_HUMANEVAL_INSTRUCTION if self.compact else HUMANEVAL_INSTRUCTION
        prompt = f"{instruction}\n```python\n{cp.stub}```"
        body = self._canonical(cp)
        gen_prefix = ("```python\n" if self.compact else HUMANEVAL_PREFIX) + cp.stub
        return Item(self.name, prompt, f"{gen_prefix}{body}```", body,
                    extra={"entry_point": cp.name, "test": test, "canonical_solution": body,
                           "stub": cp.stub, "gen_prefix": gen_prefix})


class Mbpp(_CodeFamily):
    name = "mbpp"

    def _canonical(self, cp: CodeProblem) -> str:
        return cp.function

    def render(self, problem: Problem, rng: random.Random) -> Item:
        cp = self._code_problem(problem, rng)
        pairs = make_tests(cp, rng, self._n_tests())
        v, o = min(pairs, key=lambda p: len(repr(p)))  # the shortest example keeps prompts short
        shown = f"assert {cp.name}({v!r}) == {o!r}"
        if self.compact:
            prompt = f"{cp.task_text}\nTest: {shown}"
        else:
            prompt = f"{MBPP_INSTRUCTION}\n{cp.task_text}\n{MBPP_TESTS}\n{shown}"
        code = cp.function
        return Item(self.name, prompt, f"```python\n{code}```", code,
                    extra={"entry_point": cp.name, "test": check_code(cp, pairs),
                           "canonical_solution": code, "gen_prefix": "```python\n"})
