"""``WorldConfig``: the ``world:`` section of the project config as nested dataclasses.

Build it with :meth:`WorldConfig.from_dict`: the dataclasses have no defaults of their own; every
default, type and bound is in ``workflow/schemas/world.schema.yaml`` (the *tiny* scale), which
validates and fills the section (:class:`tide.config.ConfigError`, a ValueError, names a bad key:
``unknown config key 'max_opernd' in world.gsm8k``). Only checks that relate several keys are here.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from tide.config import fill_section

FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")
PRETRAIN_KINDS = ("facts", "quiz", "stories", "gsm8k", "math", "bbh", "code")
# what the code implements: the schema's enums (and its maxima: names.MAX_LANDS, PERSON_NAMES,
# scripts.ACTIVITIES) must agree, as tests/world/test_world_config.py checks
BBH_SUBTASKS = ("boolean_expressions", "word_sorting", "dyck_languages", "date_arithmetic")
MATH_SUBTYPES = ("linear_equation", "evaluate", "function_value", "combine_terms")
PROMPT_STYLES = ("benchmark", "compact")


@dataclass
class SizesConfig:
    """How many items each split holds (per family where it says so)."""

    pretrain_docs: int
    sft_per_family: int
    distill_per_family: int
    distill_unseen_per_family: int
    signal_per_family: int
    eval_per_family: int


@dataclass
class FactsConfig:
    """The fact base behind mmlu / mmlu_pro: lands (6 attributes) and people (4 attributes)."""

    n_lands: int
    n_people: int


@dataclass
class PretrainMix:
    """Relative weights of the pretrain document kinds (normalised to sum 1)."""

    facts: float
    quiz: float
    stories: float
    gsm8k: float
    math: float
    bbh: float
    code: float


@dataclass
class PretrainConfig:
    facts_per_doc: int
    mix: PretrainMix


@dataclass
class MmluConfig:
    heldout_fraction: float
    heldout_renders: int


@dataclass
class MmluProConfig:
    heldout_fraction: float
    heldout_renders: int
    n_options: int


@dataclass
class HellaswagConfig:
    n_activities: int
    n_actors: int
    max_context_steps: int
    same_activity_distractors: int


@dataclass
class Gsm8kConfig:
    max_operand: int
    min_steps: int
    max_steps: int


@dataclass
class BbhConfig:
    subtasks: list[str]
    shots: int
    sft_shots: int
    max_bool_ops: int
    max_words: int
    max_open_brackets: int
    max_day_offset: int


@dataclass
class MathConfig:
    subtypes: list[str]
    max_coef: int
    allow_negative: bool
    max_expr_ops: int


@dataclass
class CodeConfig:
    heldout_fraction: float
    n_tests: int


@dataclass
class WorldConfig:
    seed: int
    prompt_style: str
    sizes: SizesConfig
    facts: FactsConfig
    pretrain: PretrainConfig
    mmlu: MmluConfig
    mmlu_pro: MmluProConfig
    hellaswag: HellaswagConfig
    gsm8k: Gsm8kConfig
    bbh: BbhConfig
    math: MathConfig
    humaneval: CodeConfig
    mbpp: CodeConfig

    @classmethod
    def from_dict(cls, data: dict | None) -> WorldConfig:
        """The world of the ``world:`` mapping ``data`` (None = {}): validated against and filled
        from the world schema (:class:`tide.config.ConfigError`, a ValueError, names a bad key),
        then checked across keys (:func:`_check_across`)."""
        cfg = _build(cls, fill_section("world.schema.yaml", data, "world"))
        _check_across(cfg)
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, data: dict) -> Any:
    """Dataclass ``cls`` from a schema-filled mapping (every field present, types checked)."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _convert(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)})


def _convert(tp: Any, value: Any) -> Any:
    """``value`` as the field type ``tp``: JSON numbers to float / int (the schema allows ``1`` for
    a number and ``3.0`` for an integer), lists copied, nested mappings built."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value)
    if tp is float:
        return float(value)
    if tp is int:
        return int(value)
    if typing.get_origin(tp) is list:
        return list(value)
    return value


def _require(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"world config key '{path}': {msg}")


def _check_across(c: WorldConfig) -> None:
    """The checks that relate several keys (each key's own type and range is the schema's)."""
    mix = dataclasses.asdict(c.pretrain.mix)
    _require(sum(mix.values()) > 0, "pretrain.mix", "weights must have a positive sum")
    _require(c.humaneval.heldout_fraction + c.mbpp.heldout_fraction < 0.9,
             "humaneval.heldout_fraction", "humaneval + mbpp held-out fractions must stay < 0.9 "
             "(they share one problem space with the training splits)")
    _require(c.gsm8k.min_steps <= c.gsm8k.max_steps, "gsm8k.min_steps",
             "must be <= gsm8k.max_steps")
