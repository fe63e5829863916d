"""``tide.world``: the deterministic tiny world (corpus + 8 benchmark-like task families).

Public API::

    generate_world(cfg: dict, out_dir: Path) -> dict      # writes corpus/, tasks/, manifest.json
    WorldConfig.from_dict(cfg) -> WorldConfig             # defaults filled, unknown keys rejected
    build_world(cfg: WorldConfig) -> World                # fact base, scripts, names
    get_family(name, world) -> Family                     # .solve(item), .parse(text), .render(...)
    solve(item: dict, world: World) -> str                # reference solver for a held-out item
    bbh_user_turn(item: dict) -> str                      # few-shot exemplars + query, as trained
    FAMILIES                                              # the eight task-family names
"""

from __future__ import annotations

from typing import Any

from tide.world.config import FAMILIES, WorldConfig
from tide.world.core import Family, Item, Problem, World, build_world
from tide.world.families import FAMILY_CLASSES
from tide.world.families.bbh import Bbh
from tide.world.generate import generate_world

# characters of a user + assistant pair that 95% of every family's sft conversations stay under
# (bbh included: its sft user turns carry ``bbh.sft_shots`` exemplars), per ``prompt_style``
CHAR_BUDGET = {"benchmark": 380, "compact": 300}


def get_family(name: str, world: World) -> Family:
    if name not in FAMILY_CLASSES:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILY_CLASSES[name](world)


def solve(item: dict[str, Any], world: World) -> str:
    """The gold answer of a held-out item, computed from its prompt by the family's solver."""
    return get_family(item["family"], world).solve(item)


def bbh_user_turn(item: dict[str, Any]) -> str:
    """A bbh held-out item's full user turn: its ``fewshot`` exemplars, then its query."""
    return Bbh.fewshot_text(item.get("fewshot") or [], item["prompt"])


__all__ = [
    "CHAR_BUDGET",
    "FAMILIES",
    "Family",
    "Item",
    "Problem",
    "World",
    "WorldConfig",
    "bbh_user_turn",
    "build_world",
    "generate_world",
    "get_family",
    "solve",
]
