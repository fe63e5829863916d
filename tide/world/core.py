"""The pieces every family shares: ``Problem`` (the underlying parameters), ``Item`` (one rendered
question with its reference answer), ``World`` (fact base + scripts + names) and ``Family`` (the
interface each of the eight task families implements).

"Same problem" means same ``Problem.key``: held-out keys never occur in a training split.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from tide.world.config import WorldConfig
from tide.world.facts import FactBase, build_facts
from tide.world.names import PERSON_NAMES
from tide.world.rng import derive_rng
from tide.world.scripts import ACTIVITIES, Activity


@dataclass(frozen=True)
class Problem:
    """Underlying parameters of one question; ``key`` identifies it across wordings and splits."""

    key: str
    params: dict[str, Any]
    stratum: str | None = None  # subtask / template: held-out splits are balanced over strata


@dataclass
class Item:
    """One rendered question: ``prompt`` is the user turn, ``response`` the reference assistant
    turn (with its short chain of thought where the family has one), ``answer`` the gold string."""

    family: str
    prompt: str
    response: str
    answer: str
    subtask: str | None = None
    choices: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def heldout_record(self, item_id: str) -> dict[str, Any]:
        rec = {"id": item_id, "family": self.family, "subtask": self.subtask,
               "prompt": self.prompt, "answer": self.answer}
        if self.choices is not None:
            rec["choices"] = list(self.choices)
        rec.update(self.extra)
        return rec

    def conversation(self, item_id: str, user: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "family": self.family,
                "messages": [{"role": "user", "content": self.prompt if user is None else user},
                             {"role": "assistant", "content": self.response}]}


@dataclass(frozen=True)
class World:
    """Everything a family needs besides its own config section."""

    config: WorldConfig
    facts: FactBase
    activities: tuple[Activity, ...]
    actors: tuple[str, ...]  # hellaswag actors
    names: tuple[str, ...]  # names used in word problems


def build_world(cfg: WorldConfig) -> World:
    """The seeded fact base, the activity subset and the name lists of ``cfg``."""
    facts = build_facts(derive_rng(cfg.seed, "facts"), cfg.facts.n_lands, cfg.facts.n_people)
    rng = derive_rng(cfg.seed, "scripts")
    activities = tuple(rng.sample(ACTIVITIES, cfg.hellaswag.n_activities))
    actors = tuple(rng.sample(PERSON_NAMES, cfg.hellaswag.n_actors))
    return World(cfg, facts, activities, actors, PERSON_NAMES)


class Family(ABC):
    """A task family: samples problems, renders them, reads them back, solves them."""

    name: str = ""
    shared_space: str | None = None  # families with the same value draw from one problem space

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def compact(self) -> bool:
        """``prompt_style: compact``: the benchmark's fixed instruction lines are left out."""
        return self.world.config.prompt_style == "compact"

    # --- the problem space -------------------------------------------------------------------
    def strata(self) -> list[str | None]:
        """Subtasks / templates that held-out and training items are balanced over."""
        return [None]

    def enumerate_problems(self) -> list[Problem] | None:
        """Every problem, for small spaces split by ``heldout_fraction``; ``None``: sample."""
        return None

    def heldout_fraction(self) -> float:
        return 0.5

    def heldout_renders(self) -> int:
        """Held-out items per held-out problem, each with other options (small spaces only)."""
        return 1

    @abstractmethod
    def sample_problem(self, rng: random.Random, stratum: str | None) -> Problem:
        """A random problem (for spaces too large to enumerate)."""

    # --- text ------------------------------------------------------------------------------
    @abstractmethod
    def render(self, problem: Problem, rng: random.Random) -> Item:
        """The question in the benchmark's prompt format plus its reference solution."""

    @abstractmethod
    def parse(self, text: str) -> Problem | None:
        """Read the problem back from a prompt / user turn / pretrain text; ``None`` if absent."""

    def parse_all(self, text: str) -> list[Problem]:
        """Every problem a text contains (bbh user turns hold exemplars before the query)."""
        problem = self.parse(text)
        return [] if problem is None else [problem]

    @abstractmethod
    def solve(self, item: dict[str, Any]) -> str:
        """The gold answer string, computed from the prompt text (never read from the item)."""

    def training_user_turn(self, item: Item, rng: random.Random, exemplars: list[Item]) -> str:
        """The user turn of an sft/distill conversation (bbh prepends few-shot exemplars)."""
        return item.prompt

    def pretrain_text(self, problem: Problem, rng: random.Random) -> str:
        """A worked problem as plain pretrain text."""
        item = self.render(problem, rng)
        return f"{item.prompt} {item.response}"
