"""WorldConfig: defaults, unknown keys, bad values; the JSON schema agrees with the dataclasses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from tide.world import WorldConfig

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
    ({"sede": 1}, "'sede'"),
    ({"gsm8k": {"max_operand": 9, "max_opernd": 3}}, "'gsm8k.max_opernd'"),
    ({"pretrain": {"mix": {"poems": 1.0}}}, "'pretrain.mix.poems'"),
])
def test_unknown_key_is_rejected_by_name(cfg, name):
    with pytest.raises(ValueError, match=f"unknown world config key: {name}"):
        WorldConfig.from_dict(cfg)


@pytest.mark.parametrize("cfg, where", [
    ({"seed": "one"}, "seed"),
    ({"sizes": {"sft_per_family": 2.5}}, "sizes.sft_per_family"),
    ({"math": {"allow_negative": 1}}, "math.allow_negative"),
    ({"bbh": {"subtasks": ["boolean_expressions", "chess"]}}, "bbh.subtasks"),
    ({"mmlu": {"heldout_fraction": 1.0}}, "mmlu.heldout_fraction"),
    ({"gsm8k": {"min_steps": 3, "max_steps": 2}}, "gsm8k.min_steps"),
    ({"prompt_style": "fancy"}, "prompt_style"),
    ({"sizes": 3}, "sizes"),
])
def test_bad_values_name_the_key(cfg, where):
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        WorldConfig.from_dict(cfg)


def test_schema_defaults_equal_dataclass_defaults():
    assert _schema_defaults(_schema()) == dataclasses.asdict(WorldConfig())


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
