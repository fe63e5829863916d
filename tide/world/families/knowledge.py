"""``mmlu`` (4 options, one fact) and ``mmlu_pro`` (10 options, two chained facts), fact base.

Prompts follow ``mmlu_generative_dream`` (``"{q}\\nA. ..\\nD. ..\\nAnswer:"``, gold letter) and the
``mmlu_pro`` template (``"Question:\\n{q}\\nOptions:\\nA. ..\\nAnswer: Let's think step by step."``,
reply ending ``"So the answer is (X)."``). Both spaces are small, so they are enumerated and split
by ``heldout_fraction``; the facts themselves are knowledge stated in pretraining.
"""

from __future__ import annotations

import random
from typing import Any

from tide.world.core import Family, Item, Problem
from tide.world.facts import LAND_RELATIONS, PARAPHRASES, PERSON_RELATIONS, UNIQUE_RELATIONS
from tide.world.text import LETTERS, TextTemplate, letter_of, option_lines, parse_any

# attribute questions about a land; {L} is a land name (mmlu) or a land description (mmlu_pro)
LAND_QUESTIONS = {rel: TextTemplate(p) for rel, p in {
    "capital": "What is the capital of {L}?",
    "river": "Which river flows through {L}?",
    "language": "Which language is spoken in {L}?",
    "flag": "What colour is the flag of {L}?",
    "animal": "What is the national animal of {L}?",
    "food": "What food is {L} known for?",
}.items()}
PERSON_QUESTIONS = {rel: TextTemplate(p) for rel, p in {
    "job": "What is the job of {e}?",
    "home": "In which land does {e} live?",
    "pet": "What pet does {e} keep?",
    "instrument": "Which instrument does {e} play?",
}.items()}
INVERSE_QUESTIONS = {rel: TextTemplate(p) for rel, p in {
    "capital": "{v} is the capital of which land?",
    "river": "The river {v} flows through which land?",
}.items()}
# mmlu_pro asks only attributes with short, real-word values (ten short options keep prompts short)
PRO_RELATIONS = ("language", "flag", "animal", "food")
# mmlu_pro: the first hop, a description of a land
LAND_DESCRIPTIONS = {hop: TextTemplate(p) for hop, p in {
    "home": "the land where {x} lives",
    "capital": "the land whose capital is {x}",
    "river": "the land that the river {x} flows through",
}.items()}


def _choices(rng: random.Random, gold: str, pool: tuple[str, ...], n: int) -> list[str]:
    others = [v for v in pool if v != gold]
    if len(others) < n - 1:
        raise ValueError(f"need {n - 1} distractors for {gold!r}, the category has {len(others)}")
    options = rng.sample(others, n - 1) + [gold]
    rng.shuffle(options)
    return options


def _question_line(text: str, first_line_after: str | None) -> list[str]:
    lines = text.split("\n")
    if first_line_after is not None:
        return [lines[i + 1] for i, ln in enumerate(lines[:-1]) if ln.endswith(first_line_after)]
    return lines


class Mmlu(Family):
    """One-fact questions: forward (land / person attribute) and backward (capital, river)."""

    name = "mmlu"
    n_options = 4

    def heldout_fraction(self) -> float:
        return self.world.config.mmlu.heldout_fraction

    def heldout_renders(self) -> int:
        return self.world.config.mmlu.heldout_renders

    def enumerate_problems(self) -> list[Problem]:
        fb = self.world.facts
        out = [Problem(f"fact:{r}({land})", {"kind": "land", "rel": r, "e": land}, r)
               for land in fb.lands for r in LAND_RELATIONS]
        out += [Problem(f"fact:{r}^-1({fb.value(r, land)})",
                        {"kind": "inverse", "rel": r, "e": fb.value(r, land)}, f"{r}^-1")
                for land in fb.lands for r in UNIQUE_RELATIONS]
        out += [Problem(f"fact:{r}({p})", {"kind": "person", "rel": r, "e": p}, r)
                for p in fb.people for r in PERSON_RELATIONS]
        return out

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        return rng.choice(self.enumerate_problems())

    def _gold(self, kind: str, rel: str, e: str) -> tuple[str, tuple[str, ...]]:
        """The answer and the category its distractors come from."""
        fb = self.world.facts
        if kind == "inverse":
            return fb.inverse(rel, e), fb.lands
        return fb.value(rel, e), fb.categories[rel]

    def question(self, kind: str, rel: str, e: str) -> str:
        if kind == "land":
            return LAND_QUESTIONS[rel].render(L=e)
        if kind == "person":
            return PERSON_QUESTIONS[rel].render(e=e)
        return INVERSE_QUESTIONS[rel].render(v=e)

    def render(self, problem: Problem, rng: random.Random) -> Item:
        p = problem.params
        gold, pool = self._gold(p["kind"], p["rel"], p["e"])
        choices = _choices(rng, gold, pool, self.n_options)
        letter = LETTERS[choices.index(gold)]
        prompt = f"{self.question(p['kind'], p['rel'], p['e'])}\n{option_lines(choices)}\nAnswer:"
        return Item(self.name, prompt, letter, letter, choices=choices)

    def parse(self, text: str) -> Problem | None:
        fb = self.world.facts
        for line in _question_line(text, None):
            hit = parse_any(LAND_QUESTIONS, line)
            if hit and hit[1]["L"] in fb.lands:
                return Problem(f"fact:{hit[0]}({hit[1]['L']})",
                               {"kind": "land", "rel": hit[0], "e": hit[1]["L"]}, hit[0])
            hit = parse_any(PERSON_QUESTIONS, line)
            if hit and hit[1]["e"] in fb.people:
                return Problem(f"fact:{hit[0]}({hit[1]['e']})",
                               {"kind": "person", "rel": hit[0], "e": hit[1]["e"]}, hit[0])
            hit = parse_any(INVERSE_QUESTIONS, line)
            if hit and hit[1]["v"] in fb.categories[hit[0]]:
                return Problem(f"fact:{hit[0]}^-1({hit[1]['v']})",
                               {"kind": "inverse", "rel": hit[0], "e": hit[1]["v"]},
                               f"{hit[0]}^-1")
        return None

    def solve(self, item: dict[str, Any]) -> str:
        problem = self.parse(item["prompt"])
        if problem is None:
            raise ValueError(f"{self.name} item {item.get('id')}: no known question in the prompt")
        p = problem.params
        return letter_of(self._gold(p["kind"], p["rel"], p["e"])[0], item["prompt"])


class MmluPro(Family):
    """Two chained facts, ten options, a two-sentence chain of thought."""

    name = "mmlu_pro"

    def heldout_fraction(self) -> float:
        return self.world.config.mmlu_pro.heldout_fraction

    def heldout_renders(self) -> int:
        return self.world.config.mmlu_pro.heldout_renders

    def enumerate_problems(self) -> list[Problem]:
        fb = self.world.facts
        out = []
        for hop, sources in (("home", fb.people),
                             ("capital", [fb.value("capital", x) for x in fb.lands]),
                             ("river", [fb.value("river", x) for x in fb.lands])):
            for x in sources:
                for rel in PRO_RELATIONS:
                    out.append(self._problem(hop, x, rel))
        return out

    @staticmethod
    def _problem(hop: str, x: str, rel: str) -> Problem:
        inner = f"home({x})" if hop == "home" else f"{hop}^-1({x})"
        return Problem(f"fact:{rel}({inner})", {"hop": hop, "x": x, "rel": rel}, f"{hop}>{rel}")

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        return rng.choice(self.enumerate_problems())

    def _land(self, hop: str, x: str) -> str:
        fb = self.world.facts
        return fb.value("home", x) if hop == "home" else fb.inverse(hop, x)

    def render(self, problem: Problem, rng: random.Random) -> Item:
        fb = self.world.facts
        hop, x, rel = (problem.params[k] for k in ("hop", "x", "rel"))
        land = self._land(hop, x)
        gold = fb.value(rel, land)
        n = self.world.config.mmlu_pro.n_options
        choices = _choices(rng, gold, fb.categories[rel], n)
        letter = LETTERS[choices.index(gold)]
        question = LAND_QUESTIONS[rel].render(L=LAND_DESCRIPTIONS[hop].render(x=x))
        if self.compact:
            prompt = f"{question}\n{option_lines(choices)}\nAnswer:"
        else:
            prompt = (f"Question:\n{question}\nOptions:\n{option_lines(choices)}\n"
                      "Answer: Let's think step by step.")
        first = PARAPHRASES["home" if hop == "home" else hop][0]
        hop_sentence = (first.render(e=x, v=land) if hop == "home"
                        else first.render(e=land, v=x))
        fact_sentence = PARAPHRASES[rel][0].render(e=land, v=gold)
        response = f"{hop_sentence} {fact_sentence} So the answer is ({letter})."
        return Item(self.name, prompt, response, letter, choices=choices)

    def parse(self, text: str) -> Problem | None:
        fb = self.world.facts
        for line in _question_line(text, "Question:") or text.split("\n"):
            hit = parse_any(LAND_QUESTIONS, line)
            if not hit:
                continue
            inner = parse_any(LAND_DESCRIPTIONS, hit[1]["L"])
            if not inner:
                continue
            hop, x = inner[0], inner[1]["x"]
            known = fb.people if hop == "home" else fb.categories[hop]
            if x in known and hit[0] in PRO_RELATIONS:
                return self._problem(hop, x, hit[0])
        return None

    def solve(self, item: dict[str, Any]) -> str:
        problem = self.parse(item["prompt"])
        if problem is None:
            raise ValueError(f"{self.name} item {item.get('id')}: no known question in the prompt")
        hop, x, rel = (problem.params[k] for k in ("hop", "x", "rel"))
        gold = self.world.facts.value(rel, self._land(hop, x))
        return letter_of(gold, item["prompt"])
