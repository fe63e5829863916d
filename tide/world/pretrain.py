"""The pretrain split: plain text. Fact paraphrases and fact quizzes (every fact many times, in
rounds so coverage is even), activity stories, worked problems and code snippets, all from training problems only."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from tide.world.config import PRETRAIN_KINDS
from tide.world.core import World
from tide.world.facts import (
    LAND_RELATIONS,
    PERSON_RELATIONS,
    UNIQUE_RELATIONS,
    fact_sentence,
    quiz_line,
)
from tide.world.rng import derive_rng
from tide.world.split import Split


def kind_counts(world: World) -> dict[str, int]:
    """Documents per kind: ``sizes.pretrain_docs`` shared out by the mix weights."""
    cfg = world.config
    mix = dataclasses.asdict(cfg.pretrain.mix)
    total_w = sum(mix.values())
    counts = {k: int(cfg.sizes.pretrain_docs * mix[k] / total_w) for k in PRETRAIN_KINDS}
    counts[max(PRETRAIN_KINDS, key=lambda k: mix[k])] += cfg.sizes.pretrain_docs - sum(
        counts.values())
    return counts


def _entity_rounds(items: list[tuple[str, list]], n: int, per_doc: int, rng: random.Random,
                   render: Callable[[str, list], str]) -> list[str]:
    """``n`` documents about one entity each, ``render(entity, chunk)`` of up to ``per_doc`` of its
    items, cycling through all entities and items round after round (entities and items shuffled)."""
    docs: list[str] = []
    while len(docs) < n:
        order = list(items)
        rng.shuffle(order)
        for entity, entity_items in order:
            chunk = list(entity_items)
            rng.shuffle(chunk)
            docs += [render(entity, chunk[i:i + per_doc]) for i in range(0, len(chunk), per_doc)]
    return docs[:n]


def fact_docs(world: World, n: int, rng: random.Random) -> list[str]:
    """``n`` documents of up to ``facts_per_doc`` facts about one entity, cycling through all
    facts round after round (so every fact appears ``n * facts_per_doc / #facts`` times or so)."""
    fb = world.facts
    entities = [(e, LAND_RELATIONS) for e in fb.lands] + [(e, PERSON_RELATIONS) for e in fb.people]
    return _entity_rounds(entities, n, world.config.pretrain.facts_per_doc, rng, lambda e, rels: " ".join(
        fact_sentence(r, e, fb.value(r, e), rng) for r in rels))


def quiz_docs(world: World, n: int, rng: random.Random) -> list[str]:
    """``n`` quizzes of up to ``facts_per_doc`` questions about one entity (a land's capital and
    river are also asked backwards), cycling through all questions round after round."""
    fb = world.facts
    questions = [(e, [(r, False) for r in LAND_RELATIONS] + [(r, True) for r in UNIQUE_RELATIONS])
                 for e in fb.lands] + [(e, [(r, False) for r in PERSON_RELATIONS]) for e in fb.people]
    return _entity_rounds(questions, n, world.config.pretrain.facts_per_doc, rng, lambda e, asked: (
        "Quiz. " + " ".join(quiz_line(r, e, fb.value(r, e), inv) for r, inv in asked)))


def pretrain_records(world: World, splits: dict[str, Split]) -> list[dict[str, str]]:
    """All pretrain documents as ``{"text", "family"}`` (family = document kind), shuffled."""
    seed = world.config.seed
    counts = kind_counts(world)
    records = [{"text": t, "family": "facts"}
               for t in fact_docs(world, counts["facts"], derive_rng(seed, "pretrain", "facts"))]
    records += [{"text": t, "family": "quiz"}
                for t in quiz_docs(world, counts["quiz"], derive_rng(seed, "pretrain", "quiz"))]
    sources = {"stories": "hellaswag", "gsm8k": "gsm8k", "math": "math", "bbh": "bbh",
               "code": "humaneval"}
    for kind, fam in sources.items():
        rng = derive_rng(seed, "pretrain", kind)
        split = splits[fam]
        for _ in range(counts[kind]):
            problem = split.draw_training(rng)
            records.append({"text": split.family.pretrain_text(problem, rng), "family": kind})
    derive_rng(seed, "pretrain", "order").shuffle(records)
    return records
