"""Project configuration: load the YAML, validate it against the JSON schema, fill defaults.

The schema lives in ``workflow/schemas/config.schema.yaml`` (with one sub-schema file per stage); the
workflow (``workflow/rules/common.smk``) and the command line both validate through
:func:`validate_config`, so a wrong key is rejected the same way everywhere.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that does not match the schema (unknown key, wrong type, bad value)."""


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that ``default`` values are written into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _load_yaml(path: Path) -> Any:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _registry(schema_path: Path) -> Registry:
    def retrieve(uri: str) -> Resource:
        contents = _load_yaml(schema_path.parent / Path(uri).name)
        # a "$schema" key would make jsonschema switch to a stock validator without defaults
        contents.pop("$schema", None)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    return Registry(retrieve=retrieve)


def _describe(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(repr(k) for k in extra)
        return f"unknown config key {keys} in {where} (allowed: {', '.join(allowed)})"
    return f"invalid value at {where}: {error.message}"


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` naming the offending key and its location.
    """
    schema = _load_yaml(schema_path)
    schema["$id"] = schema_path.name
    validator = _with_defaults(Draft202012Validator)(schema, registry=_registry(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    return config


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a config YAML (or start empty), apply ``overrides`` (deep merge) and validate."""
    config: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        config = _load_yaml(path) or {}
        if not isinstance(config, dict):
            raise ConfigError(f"config file {path} must hold a mapping, not {type(config).__name__}")
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config)


def deep_merge(base: dict, update: dict) -> dict:
    """Return ``base`` with ``update`` merged into it recursively (update wins)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def section_json(config: dict, *paths: str) -> str:
    """The config values at ``paths`` (``"eval"``, ``"students.block_size"``) as canonical JSON,
    nested as in the config: what a workflow rule hands to the CLI. A rule names only the keys its
    stage reads, so that Snakemake re-runs it when one of those changes and not otherwise."""
    out: dict = {}
    for path in paths:
        node, keys = config, path.split(".")
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                raise ConfigError(f"config has no key {'.'.join(keys[:i + 1])!r} (asked for {path!r})")
            node = node[key]
        target = out
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = node
    return json.dumps(out, sort_keys=True)