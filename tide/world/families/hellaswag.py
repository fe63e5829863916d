"""``hellaswag``: pick the ending that follows from an everyday activity script (4 endings).

Prompt as in ``hellaswag_gen``: ``"{label}: {context}\\nQuestion: Which ending makes the most
sense?\\nA. ..\\nD. ..\\nYou may choose from 'A', 'B', 'C', 'D'.\\nAnswer:"``; gold = lower-case
letter. The context is the first k steps of the script with a named actor; the right ending is step
k+1. A problem is an (activity, actor) pair: held-out pairs appear in no training text at all.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tide.world.core import Family, Item, Problem
from tide.world.scripts import Activity, story
from tide.world.text import LETTERS, letter_of, option_lines

QUESTION = "Question: Which ending makes the most sense?"
CHOOSE = "You may choose from 'A', 'B', 'C', 'D'."


class HellaSwag(Family):
    name = "hellaswag"

    def heldout_fraction(self) -> float:
        # at most a third of the pairs are held out so that every activity keeps training actors
        space = len(self.world.activities) * len(self.world.actors)
        return min(1 / 3, self.world.config.sizes.eval_per_family / max(space, 1))

    def enumerate_problems(self) -> list[Problem]:
        return [Problem(f"script:{a.label}|{actor}", {"activity": i, "actor": actor}, a.label)
                for i, a in enumerate(self.world.activities) for actor in self.world.actors]

    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        return rng.choice(self.enumerate_problems())

    def _endings(self, act: Activity, k: int, rng: random.Random) -> list[str]:
        """The right ending (step k) and three wrong ones: ``same_activity_distractors`` steps of
        the same script out of order, the rest steps of other activities."""
        cfg = self.world.config.hellaswag
        gold = f"{act.steps[k]}."
        same = [f"{act.steps[j]}." for j in range(len(act.steps)) if j not in (k, k - 1)]
        wrong = rng.sample(same, min(cfg.same_activity_distractors, len(same)))
        others = [a for a in self.world.activities if a is not act]
        while len(wrong) < 3:
            other = rng.choice(others)
            cand = f"{rng.choice(other.steps)}."
            if cand not in wrong:
                wrong.append(cand)
        endings = wrong + [gold]
        rng.shuffle(endings)
        return endings

    def render(self, problem: Problem, rng: random.Random) -> Item:
        act = self.world.activities[problem.params["activity"]]
        actor = problem.params["actor"]
        k = rng.randint(1, self.world.config.hellaswag.max_context_steps)
        context = " ".join(act.sentence(actor, j) for j in range(k))
        endings = self._endings(act, k, rng)
        letter = LETTERS[endings.index(f"{act.steps[k]}.")].lower()
        if self.compact:
            prompt = f"{act.label}: {context} {actor}\n{option_lines(endings)}\nAnswer:"
        else:
            prompt = (f"{act.label}: {context} {actor}\n{QUESTION}\n{option_lines(endings)}\n"
                      f"{CHOOSE}\nAnswer:")
        return Item(self.name, prompt, letter, letter, choices=endings)

    def _context(self, text: str) -> tuple[Activity, str, list[str]] | None:
        """(activity, actor, context sentences) from a prompt or story line."""
        labels = {a.label: a for a in self.world.activities}
        for line in text.split("\n"):
            label, sep, rest = line.partition(": ")
            if not sep or label not in labels:
                continue
            sentences = re.findall(r"[^.]+\.", rest)
            actor = sentences[0].split(" ", 1)[0] if sentences else ""
            if actor in self.world.actors:
                return labels[label], actor, [s.strip() for s in sentences]
        return None

    def parse(self, text: str) -> Problem | None:
        hit = self._context(text)
        if hit is None:
            return None
        act, actor, _ = hit
        i = self.world.activities.index(act)
        return Problem(f"script:{act.label}|{actor}", {"activity": i, "actor": actor}, act.label)

    def solve(self, item: dict[str, Any]) -> str:
        hit = self._context(item["prompt"])
        if hit is None:
            raise ValueError(f"hellaswag item {item.get('id')}: no known activity in the prompt")
        act, actor, sentences = hit
        done = [j for j in range(len(act.steps)) if act.sentence(actor, j) in sentences]
        return letter_of(f"{act.steps[max(done) + 1]}.", item["prompt"]).lower()

    def pretrain_text(self, problem: Problem, rng: random.Random) -> str:
        act = self.world.activities[problem.params["activity"]]
        return story(act, problem.params["actor"])
