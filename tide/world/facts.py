"""The fact base behind mmlu / mmlu_pro: lands and people with seeded attribute values.

Lands have ``capital`` and ``river`` (unique per land, so they can be asked backwards) and
``language``, ``flag``, ``animal``, ``food``; people have ``job``, ``home`` (a land), ``pet`` and
``instrument``. Pretraining states every fact in several paraphrases (:func:`fact_sentence`);
it also quizzes every fact (:func:`quiz_line`) in question wordings of its own. The benchmark
wordings live in the mmlu families and never appear in the pretrain text: a held-out mmlu item asks a
fact the corpus states and quizzes, in a wording and with options no training text has (as MMLU asks
facts the web states). Tiny models answer questions about a fact only if they saw it asked in some
form; statements alone are not enough (measured: held-out mmlu stayed at chance without quizzes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tide.world.names import N_LANGUAGES, PERSON_NAMES, made_up_names
from tide.world.text import TextTemplate

COLOURS = ("red", "blue", "green", "yellow", "white", "black", "purple", "orange", "pink",
           "brown", "grey", "gold")
ANIMALS = ("fox", "owl", "bear", "wolf", "deer", "hawk", "frog", "goat", "crab", "swan", "lynx",
           "seal")
FOODS = ("rice", "bread", "cheese", "soup", "figs", "honey", "beans", "fish", "plums", "nuts",
         "corn", "olives")
JOBS = ("baker", "farmer", "teacher", "doctor", "sailor", "painter", "miner", "tailor", "singer",
        "builder", "judge", "potter")
INSTRUMENTS = ("drum", "flute", "harp", "violin", "piano", "horn", "guitar", "lute", "bell",
               "cello")

LAND_RELATIONS = ("capital", "river", "language", "flag", "animal", "food")
PERSON_RELATIONS = ("job", "home", "pet", "instrument")
UNIQUE_RELATIONS = ("capital", "river")  # one land per value: these can be asked backwards

# pretrain paraphrases, {e} = entity, {v} = value
PARAPHRASES: dict[str, tuple[TextTemplate, ...]] = {
    rel: tuple(TextTemplate(p) for p in pats) for rel, pats in {
        "capital": ("The capital of {e} is {v}.", "{v} is the capital of {e}.",
                    "{e} has its capital at {v}."),
        "river": ("The river {v} flows through {e}.", "{e} is crossed by the river {v}.",
                  "In {e} you find the river {v}."),
        "language": ("People in {e} speak {v}.", "The language of {e} is {v}.",
                     "{v} is spoken in {e}."),
        "flag": ("The flag of {e} is {v}.", "{e} has a {v} flag.",
                 "The colour of the flag of {e} is {v}."),
        "animal": ("The national animal of {e} is the {v}.", "{e} chose the {v} as its animal.",
                   "The {v} is the animal of {e}."),
        "food": ("{e} is known for its {v}.", "The famous food of {e} is {v}.",
                 "In {e} people love {v}."),
        "job": ("{e} works as a {v}.", "{e} is a {v} by trade.", "The job of {e} is {v}."),
        "home": ("{e} lives in {v}.", "{e} has a home in {v}.", "The home of {e} is in {v}."),
        "pet": ("{e} keeps a {v} as a pet.", "{e} has a pet {v}.", "The pet of {e} is a {v}."),
        "instrument": ("{e} plays the {v}.", "{e} is good at the {v}.",
                       "The instrument of {e} is the {v}."),
    }.items()
}

# pretrain quiz questions, {e} = entity, {v} = value; other wordings than the benchmark questions
QUIZ: dict[str, TextTemplate] = {rel: TextTemplate(p) for rel, p in {
    "capital": "Which city is the capital of {e}? {v}.",
    "river": "Name the river of {e}. {v}.",
    "language": "What do people speak in {e}? {v}.",
    "flag": "Which colour is the flag of {e}? {v}.",
    "animal": "Which animal stands for {e}? The {v}.",
    "food": "Which food is {e} famous for? {v}.",
    "job": "What does {e} do for a living? {v}.",
    "home": "Where does {e} live? {v}.",
    "pet": "Which animal does {e} keep? A {v}.",
    "instrument": "What does {e} play? The {v}.",
}.items()}
# backward quiz questions for the unique relations, {e} = the land, {v} = its capital / river
QUIZ_INVERSE: dict[str, TextTemplate] = {rel: TextTemplate(p) for rel, p in {
    "capital": "Which land has {v} as its capital? {e}.",
    "river": "Which land does the river {v} cross? {e}.",
}.items()}


@dataclass(frozen=True)
class FactBase:
    """Entities, their attribute values, and the value sets distractors are drawn from."""

    lands: tuple[str, ...]
    people: tuple[str, ...]
    values: dict[str, dict[str, str]]  # entity -> relation -> value
    categories: dict[str, tuple[str, ...]]  # relation -> every value it can take

    def value(self, relation: str, entity: str) -> str:
        try:
            return self.values[entity][relation]
        except KeyError:
            raise KeyError(f"no fact {relation!r} for entity {entity!r}") from None

    def inverse(self, relation: str, value: str) -> str:
        """The land whose unique ``relation`` (capital / river) is ``value``."""
        hits = [e for e in self.lands if self.values[e].get(relation) == value]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} lands have {relation} = {value!r}")
        return hits[0]

    def facts(self) -> list[tuple[str, str, str]]:
        """Every ``(relation, entity, value)``, in a fixed order."""
        out = [(r, e, self.values[e][r]) for e in self.lands for r in LAND_RELATIONS]
        out += [(r, e, self.values[e][r]) for e in self.people for r in PERSON_RELATIONS]
        return out


def build_facts(rng: random.Random, n_lands: int, n_people: int) -> FactBase:
    """A seeded fact base with ``n_lands`` lands and ``n_people`` people."""
    made = made_up_names(rng, {"land": n_lands, "city": n_lands, "river": n_lands,
                               "language": N_LANGUAGES})
    lands, cities, rivers = made["land"], made["city"], made["river"]
    languages = made["language"]
    people = rng.sample(PERSON_NAMES, n_people)
    values: dict[str, dict[str, str]] = {}
    for i, land in enumerate(lands):
        values[land] = {"capital": cities[i], "river": rivers[i],
                        "language": languages[i % len(languages)] if i < len(languages)
                        else rng.choice(languages),
                        "flag": rng.choice(COLOURS), "animal": rng.choice(ANIMALS),
                        "food": rng.choice(FOODS)}
    for person in people:
        values[person] = {"job": rng.choice(JOBS), "home": rng.choice(lands),
                          "pet": rng.choice(ANIMALS), "instrument": rng.choice(INSTRUMENTS)}
    categories = {"capital": tuple(cities), "river": tuple(rivers), "language": tuple(languages),
                  "flag": COLOURS, "animal": ANIMALS, "food": FOODS, "job": JOBS,
                  "home": tuple(lands), "pet": ANIMALS, "instrument": INSTRUMENTS}
    return FactBase(tuple(lands), tuple(people), values, categories)


def fact_sentence(relation: str, entity: str, value: str, rng: random.Random) -> str:
    """One paraphrase of a fact, picked with ``rng``."""
    return rng.choice(PARAPHRASES[relation]).render(e=entity, v=value)


def quiz_line(relation: str, entity: str, value: str, inverse: bool = False) -> str:
    """One quiz question with its answer (backward for capital / river when ``inverse``)."""
    return (QUIZ_INVERSE if inverse else QUIZ)[relation].render(e=entity, v=value)
