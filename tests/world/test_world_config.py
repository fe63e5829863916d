"""WorldConfig: built through the world schema (its defaults, bounds, unknown keys), the checks
across keys in code; the schema's enums and maxima agree with what the code implements."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from tide.config import section_defaults
from tide.world import WorldConfig
from tide.world.config import BBH_SUBTASKS, MATH_SUBTYPES, PROMPT_STYLES

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "world.schema.yaml"


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _schema_defaults(node: dict) -> dict:
    """The defaults a schema-filling validator would produce for ``{}``."""
    out = {}
    for key, sub in node["properties"].items():
        if sub.get("type") == "object":
            out[key] = _schema_defaults(sub)
        else:
            out[key] = sub["default"]
    return out


def test_defaults_are_the_tiny_scale():
    cfg = WorldConfig.from_dict({})
    assert cfg.seed == 1234 and cfg.sizes.eval_per_family == 1000
    assert cfg.prompt_style == "benchmark"
    assert WorldConfig.from_dict(None) == cfg


def test_values_override_defaults_at_any_depth():
    cfg = WorldConfig.from_dict({"seed": 5, "gsm8k": {"max_operand": 20},
                                 "pretrain": {"mix": {"code": 0.5}}})
    assert (cfg.seed, cfg.gsm8k.max_operand, cfg.pretrain.mix.code) == (5, 20, 0.5)
    assert cfg.gsm8k.max_steps == 3  # untouched siblings keep their defaults


@pytest.mark.parametrize("cfg, name", [
    ({"sede": 1}, "'sede' in world "),
    ({"gsm8k": {"max_operand": 9, "max_opernd": 3}}, r"'max_opernd' in world\.gsm8k "),
    ({"pretrain": {"mix": {"poems": 1.0}}}, r"'poems' in world\.pretrain\.mix "),
])
def test_unknown_key_is_rejected_by_name(cfg, name):
    with pytest.raises(ValueError, match=f"unknown config key {name}"):
        WorldConfig.from_dict(cfg)


@pytest.mark.parametrize("cfg, where", [
    ({"seed": "one"}, "seed"),
    ({"sizes": {"sft_per_family": 2.5}}, "sizes.sft_per_family"),
    ({"math": {"allow_negative": 1}}, "math.allow_negative"),
    ({"bbh": {"subtasks": ["boolean_expressions", "chess"]}}, "bbh.subtasks"),
    ({"mmlu": {"heldout_fraction": 1.0}}, "mmlu.heldout_fraction"),
    ({"gsm8k": {"min_steps": 3, "max_steps": 2}}, "gsm8k.min_steps"),
    ({"gsm8k": {"min_steps": 1}}, "gsm8k.min_steps"),
    ({"prompt_style": "fancy"}, "prompt_style"),
    ({"sizes": 3}, "sizes"),
    ({"facts": {"n_lands": 121}}, "facts.n_lands"),
    ({"bbh": {"subtasks": []}}, "bbh.subtasks"),
    ({"bbh": {"subtasks": ["word_sorting", "word_sorting"]}}, "bbh.subtasks"),
    ({"pretrain": {"mix": {"facts": -0.1}}}, "pretrain.mix.facts"),
    ({"pretrain": {"mix": {k: 0 for k in ("facts", "quiz", "stories", "gsm8k", "math", "bbh",
                                          "code")}}}, "pretrain.mix"),
    ({"humaneval": {"heldout_fraction": 0.5}, "mbpp": {"heldout_fraction": 0.5}},
     "humaneval.heldout_fraction"),
])
def test_bad_values_name_the_key(cfg, where):
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        WorldConfig.from_dict(cfg)


def test_the_empty_world_is_the_schema_default_world():
    """The dataclasses have no defaults of their own: ``{}`` gives the schema's, value and type."""
    for cls in _dataclasses(WorldConfig):
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(cls)), cls.__name__
    built = WorldConfig.from_dict({}).to_dict()
    assert built == _schema_defaults(_schema()) == section_defaults("world.schema.yaml")
    assert _types(built) == _types(_schema_defaults(_schema()))
    assert isinstance(WorldConfig.from_dict({"pretrain": {"mix": {"code": 1}}}).pretrain.mix.code,
                      float)  # a JSON integer for a number field is stored as the float it means


def _dataclasses(cls: type) -> list[type]:
    hinted = [tp for tp in typing.get_type_hints(cls).values() if dataclasses.is_dataclass(tp)]
    return [cls, *(sub for tp in hinted for sub in _dataclasses(tp))]


def _types(node):
    return {k: _types(v) for k, v in node.items()} if isinstance(node, dict) else type(node)


def test_schema_enums_and_maxima_are_what_the_code_implements():
    """The bounds live in the schema; these are the ones that the code's tables fix."""
    from tide.world.names import MAX_LANDS, PERSON_NAMES
    from tide.world.scripts import ACTIVITIES

    props = _schema()["properties"]
    assert props["prompt_style"]["enum"] == list(PROMPT_STYLES)
    assert props["bbh"]["properties"]["subtasks"]["items"]["enum"] == list(BBH_SUBTASKS)
    assert props["math"]["properties"]["subtypes"]["items"]["enum"] == list(MATH_SUBTYPES)
    assert props["facts"]["properties"]["n_lands"]["maximum"] == MAX_LANDS
    assert props["facts"]["properties"]["n_people"]["maximum"] == len(PERSON_NAMES)
    assert props["hellaswag"]["properties"]["n_actors"]["maximum"] == len(PERSON_NAMES)
    assert props["hellaswag"]["properties"]["n_activities"]["maximum"] == len(ACTIVITIES)


def test_schema_is_closed_and_documented_at_every_level():
    def walk(node: dict, path: str) -> None:
        assert node.get("additionalProperties") is False, path
        for key, sub in node["properties"].items():
            assert "description" in sub and "default" in sub, f"{path}.{key}"
            if sub.get("type") == "object":
                walk(sub, f"{path}.{key}")

    walk(_schema(), "world")


def test_schema_rejects_what_the_dataclass_rejects():
    validator = Draft202012Validator(_schema())
    assert not list(validator.iter_errors({"seed": 3, "gsm8k": {"max_operand": 12}}))
    errors = list(validator.iter_errors({"gsm8k": {"max_opernd": 3}}))
    assert errors and "max_opernd" in errors[0].message
