"""``WorldConfig``: the ``world:`` section of the project config as nested dataclasses.

Defaults are the *tiny* scale and must equal the ``default`` values in
``workflow/schemas/world.schema.yaml`` (a test compares them). Unknown keys are rejected with
``ValueError("unknown world config key: 'gsm8k.max_opernd'")``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

FAMILIES = ("mmlu", "mmlu_pro", "hellaswag", "gsm8k", "bbh", "math", "humaneval", "mbpp")
BBH_SUBTASKS = ("boolean_expressions", "word_sorting", "dyck_languages", "date_arithmetic")
MATH_SUBTYPES = ("linear_equation", "evaluate", "function_value", "combine_terms")
PRETRAIN_KINDS = ("facts", "quiz", "stories", "gsm8k", "math", "bbh", "code")
PROMPT_STYLES = ("benchmark", "compact")


@dataclass
class SizesConfig:
    """How many items each split holds (per family where it says so)."""

    pretrain_docs: int = 24000
    sft_per_family: int = 2000
    distill_per_family: int = 2000
    distill_unseen_per_family: int = 300
    signal_per_family: int = 32
    eval_per_family: int = 1000


@dataclass
class FactsConfig:
    """The fact base behind mmlu / mmlu_pro: lands (6 attributes) and people (4 attributes)."""

    n_lands: int = 32
    n_people: int = 48


@dataclass
class PretrainMix:
    """Relative weights of the pretrain document kinds (normalised to sum 1)."""

    facts: float = 0.25
    quiz: float = 0.2
    stories: float = 0.15
    gsm8k: float = 0.1
    math: float = 0.1
    bbh: float = 0.1
    code: float = 0.1


@dataclass
class PretrainConfig:
    facts_per_doc: int = 3
    mix: PretrainMix = field(default_factory=PretrainMix)


@dataclass
class MmluConfig:
    heldout_fraction: float = 0.6
    heldout_renders: int = 1


@dataclass
class MmluProConfig:
    heldout_fraction: float = 0.6
    heldout_renders: int = 1
    n_options: int = 10


@dataclass
class HellaswagConfig:
    n_activities: int = 30
    n_actors: int = 100
    max_context_steps: int = 2
    same_activity_distractors: int = 1


@dataclass
class Gsm8kConfig:
    max_operand: int = 10
    min_steps: int = 2
    max_steps: int = 3


@dataclass
class BbhConfig:
    subtasks: list[str] = field(default_factory=lambda: list(BBH_SUBTASKS))
    shots: int = 3
    sft_shots: int = 1
    max_bool_ops: int = 3
    max_words: int = 4
    max_open_brackets: int = 4
    max_day_offset: int = 10


@dataclass
class MathConfig:
    subtypes: list[str] = field(default_factory=lambda: list(MATH_SUBTYPES))
    max_coef: int = 9
    allow_negative: bool = True
    max_expr_ops: int = 3


@dataclass
class CodeConfig:
    heldout_fraction: float = 0.3
    n_tests: int = 4


@dataclass
class WorldConfig:
    seed: int = 1234
    prompt_style: str = "benchmark"
    sizes: SizesConfig = field(default_factory=SizesConfig)
    facts: FactsConfig = field(default_factory=FactsConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    mmlu: MmluConfig = field(default_factory=MmluConfig)
    mmlu_pro: MmluProConfig = field(default_factory=MmluProConfig)
    hellaswag: HellaswagConfig = field(default_factory=HellaswagConfig)
    gsm8k: Gsm8kConfig = field(default_factory=Gsm8kConfig)
    bbh: BbhConfig = field(default_factory=BbhConfig)
    math: MathConfig = field(default_factory=MathConfig)
    humaneval: CodeConfig = field(default_factory=CodeConfig)
    mbpp: CodeConfig = field(default_factory=CodeConfig)

    @classmethod
    def from_dict(cls, data: dict | None) -> WorldConfig:
        """Build from the ``world:`` mapping, filling defaults; ``ValueError`` names a bad key."""
        cfg = _build(cls, data or {}, "")
        _check_ranges(cfg)
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "world"
        raise ValueError(  # noqa: TRY004 - config errors are ValueErrors naming the key
            f"world config {where!r} must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ValueError(f"unknown world config key: '{prefix}{key}'")
    values = {}
    for name in names & set(data):
        values[name] = _coerce(hints[name], data[name], f"{prefix}{name}")
    return cls(**values)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path + ".")
    if tp is str:
        ok = isinstance(value, str)
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typing.get_origin(tp) is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    else:  # pragma: no cover - every field type is listed above
        raise TypeError(f"unsupported config type {tp} at {path}")
    if not ok:
        raise ValueError(f"world config key '{path}' must be {getattr(tp, '__name__', tp)}, "
                         f"got {value!r}")
    return value


def _require(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"world config key '{path}': {msg}")


def _check_ranges(c: WorldConfig) -> None:
    """Value checks the types alone do not catch."""
    from tide.world.names import MAX_LANDS, PERSON_NAMES
    from tide.world.scripts import ACTIVITIES

    _require(c.prompt_style in PROMPT_STYLES, "prompt_style", f"must be one of {PROMPT_STYLES}")
    s = c.sizes
    for name in ("pretrain_docs", "sft_per_family", "distill_per_family",
                 "distill_unseen_per_family", "signal_per_family", "eval_per_family"):
        _require(getattr(s, name) >= 0, f"sizes.{name}", "must be >= 0")
    _require(10 <= c.facts.n_lands <= MAX_LANDS, "facts.n_lands",
             f"must be in [10, {MAX_LANDS}]")
    _require(4 <= c.facts.n_people <= len(PERSON_NAMES), "facts.n_people",
             f"must be in [4, {len(PERSON_NAMES)}]")
    _require(c.pretrain.facts_per_doc >= 1, "pretrain.facts_per_doc", "must be >= 1")
    mix = dataclasses.asdict(c.pretrain.mix)
    _require(all(v >= 0 for v in mix.values()) and sum(mix.values()) > 0, "pretrain.mix",
             "weights must be >= 0 with a positive sum")
    for name in ("mmlu", "mmlu_pro", "humaneval", "mbpp"):
        frac = getattr(c, name).heldout_fraction
        _require(0.0 < frac < 1.0, f"{name}.heldout_fraction", "must be in (0, 1)")
    _require(c.humaneval.heldout_fraction + c.mbpp.heldout_fraction < 0.9,
             "humaneval.heldout_fraction", "humaneval + mbpp held-out fractions must stay < 0.9 "
             "(they share one problem space with the training splits)")
    _require(4 <= c.mmlu_pro.n_options <= 10, "mmlu_pro.n_options", "must be in [4, 10]")
    h = c.hellaswag
    _require(2 <= h.n_activities <= len(ACTIVITIES), "hellaswag.n_activities",
             f"must be in [2, {len(ACTIVITIES)}]")
    _require(1 <= h.n_actors <= len(PERSON_NAMES), "hellaswag.n_actors",
             f"must be in [1, {len(PERSON_NAMES)}]")
    _require(1 <= h.max_context_steps <= 3, "hellaswag.max_context_steps", "must be in [1, 3]")
    _require(0 <= h.same_activity_distractors <= 2, "hellaswag.same_activity_distractors",
             "must be in [0, 2]")
    g = c.gsm8k
    _require(4 <= g.max_operand <= 99, "gsm8k.max_operand", "must be in [4, 99]")
    _require(2 <= g.min_steps <= g.max_steps <= 3, "gsm8k.min_steps",
             "need 2 <= min_steps <= max_steps <= 3")
    b = c.bbh
    _require(bool(b.subtasks) and set(b.subtasks) <= set(BBH_SUBTASKS), "bbh.subtasks",
             f"must be a non-empty subset of {list(BBH_SUBTASKS)}")
    _require(len(set(b.subtasks)) == len(b.subtasks), "bbh.subtasks", "has duplicates")
    _require(0 <= b.shots <= 5, "bbh.shots", "must be in [0, 5]")
    _require(0 <= b.sft_shots <= 5, "bbh.sft_shots", "must be in [0, 5]")
    _require(1 <= b.max_bool_ops <= 5, "bbh.max_bool_ops", "must be in [1, 5]")
    _require(2 <= b.max_words <= 8, "bbh.max_words", "must be in [2, 8]")
    _require(2 <= b.max_open_brackets <= 6, "bbh.max_open_brackets", "must be in [2, 6]")
    _require(1 <= b.max_day_offset <= 28, "bbh.max_day_offset", "must be in [1, 28]")
    m = c.math
    _require(bool(m.subtypes) and set(m.subtypes) <= set(MATH_SUBTYPES), "math.subtypes",
             f"must be a non-empty subset of {list(MATH_SUBTYPES)}")
    _require(len(set(m.subtypes)) == len(m.subtypes), "math.subtypes", "has duplicates")
    _require(3 <= m.max_coef <= 20, "math.max_coef", "must be in [3, 20]")
    _require(1 <= m.max_expr_ops <= 4, "math.max_expr_ops", "must be in [1, 4]")
    for name in ("humaneval", "mbpp"):
        _require(2 <= getattr(c, name).n_tests <= 8, f"{name}.n_tests", "must be in [2, 8]")
