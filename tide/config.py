"""Project configuration: load the YAML, validate it against the JSON schema, fill defaults.

The schema lives in ``workflow/schemas/config.schema.yaml`` (with one sub-schema file per stage); the
workflow (``workflow/rules/common.smk``) and the command line both validate through
:func:`validate_config`, so a wrong key is rejected the same way everywhere.

A stage sees only the keys it declares (``tide.cli``): :func:`restrict_config` gives the
:class:`ConfigView` of them that the command line hands the stage, and :func:`section_json` the
same keys as the JSON a workflow rule passes.
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


def _with_defaults(validator_class, fills: list | None = None):
    """Extend a jsonschema validator so that ``default`` values are written into the instance;
    each fill is appended to ``fills`` as ``(parent dict, key, property schema, True)``, and each
    given key marked ``x-scale: tiny`` as ``(..., False)``."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
                    if fills is not None:
                        fills.append((instance, name, sub, True))
                elif fills is not None and name in instance and sub.get("x-scale") == "tiny":
                    fills.append((instance, name, sub, False))  # given, but never read at paper
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


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH, *, complete: bool = True) -> dict:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` naming the offending key and its location. At paper scale no
    default (a tiny-scale value) may stand in for a setting: with ``complete`` (a whole project
    config, as the workflow validates it) every key the paper scale reads must be set, else the
    error lists the missing keys; without it (the part of the config a rule hands its stage) every
    key left to its default becomes a :class:`Unset` that raises, naming the key, when read.
    """
    schema = _load_yaml(schema_path)
    schema["$id"] = schema_path.name
    fills: list = []
    validator = _with_defaults(Draft202012Validator, fills)(schema, registry=_registry(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    if config.get("scale") == "paper":
        _paper_scale_check(config, fills, complete)
    return config


# --- paper scale: no silent tiny defaults -------------------------------------------------------
# Schema annotations: `x-scale: tiny` marks a key the paper scale never reads (the tiny world, the
# BPE settings, the tiny model sizes); `x-from-scratch: true` a key read only when its section
# trains instead of loading `pretrained`.


class Unset:
    """A paper-scale config value left to its tiny default: any use of it raises ConfigError."""

    def __init__(self, path: str):
        self._path = path

    def _fail(self, *args, **kwargs):
        raise ConfigError(f"paper scale: config key {self._path!r} is not set; the stage reads it "
                          "and no tiny-scale default may stand in (set it in the config, and have "
                          "the rule pass it)")

    __bool__ = __int__ = __float__ = __index__ = __iter__ = __len__ = __getitem__ = _fail
    __eq__ = __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __mul__ = __rmul__ = _fail
    __sub__ = __rsub__ = __truediv__ = __rtruediv__ = __str__ = __format__ = __contains__ = _fail
    __hash__ = None  # type: ignore[assignment]

    def get(self, *args, **kwargs):
        self._fail()

    def items(self):
        self._fail()

    def __repr__(self) -> str:
        return f"Unset({self._path!r})"


def _paths(node: Any, prefix: str = "") -> dict[int, str]:
    """id(dict) -> dotted path of every mapping in ``node``."""
    out = {}
    if isinstance(node, dict):
        out[id(node)] = prefix
        for key, value in node.items():
            out.update(_paths(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _exempt(parent: dict, sub: dict) -> bool:
    return sub.get("x-scale") == "tiny" or (bool(sub.get("x-from-scratch"))
                                            and bool(parent.get("pretrained")))


def _paper_scale_check(config: dict, fills: list, complete: bool) -> None:
    where = _paths(config)
    seen = [(parent, name, sub, filled, f"{where[id(parent)]}.{name}".lstrip("."))
            for parent, name, sub, filled in fills if id(parent) in where]
    filled = [(parent, name, sub, path) for parent, name, sub, was_filled, path in seen if was_filled]
    # a fill inside a filled (or given but never read) subtree goes with that subtree
    roots = {path for *_, path in filled} | {path for *_, was_filled, path in seen if not was_filled}
    exempt = {path for parent, _, sub, path in filled if _exempt(parent, sub)}

    def covered(path: str, by: set[str]) -> bool:
        return any(path.startswith(other + ".") for other in by)

    if complete:
        missing = sorted(path for *_, path in filled
                         if path not in exempt and not covered(path, roots))
        if missing:
            raise ConfigError("paper scale: the config must set every key the paper scale reads "
                              "(a schema default is a tiny-scale value); missing: "
                              + ", ".join(missing))
    else:
        for parent, name, _, path in filled:
            if not covered(path, roots):
                parent[name] = Unset(path)



def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a config YAML (or start empty), apply ``overrides`` (deep merge) and validate: a file
    is a whole project config; overrides alone are the part of one that a rule hands its stage."""
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
    return validate_config(config, complete=path is not None)


def stands_alone(paths) -> bool:
    """Whether one of the config files ``paths`` is a paper-scale config, which states every key
    and is not merged over the tiny config/config.yaml."""
    return any(_load_yaml(Path(p)).get("scale") == "paper" for p in paths or ()
               if Path(p).is_file())


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
    nested as in the config: what a workflow rule hands to the CLI, for the keys its stage declares
    (``tide.cli.stage_json``), so that Snakemake re-runs it when one of those changes and not
    otherwise. At paper scale the scale goes along, so that the stage refuses to read a key the
    rule did not pass."""
    out: dict = {}
    if config.get("scale") == "paper" and "scale" not in paths:
        paths = ("scale", *paths)
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


# --- one section against its own schema file ----------------------------------------------------
SCHEMA_DIR = SCHEMA_PATH.parent


def fill_section(schema_name: str, section: dict | None, where: str | None = None) -> dict:
    """One config section validated against ``workflow/schemas/<schema_name>`` (e.g.
    ``"train.schema.yaml"``) with the schema's defaults filled in: what the dataclasses built from a
    section (``TrainConfig``, ``WorldConfig``) are made from, their defaults and bounds being the
    schema's only.

    Takes the section (None = empty; not modified) and ``where``, the section's name in errors
    (default: the schema file's stem). Returns a filled deep copy. Raises :class:`ConfigError`
    naming the key (``unknown config key 'lr_' in train``). A key whose value is :class:`Unset` (a
    paper-scale key the rule did not pass) is kept unvalidated, so that reading it still fails by
    name; an :class:`Unset` section fails here.
    """
    if isinstance(section, Unset):
        section._fail()
    section = section or {}
    unset = {k: v for k, v in section.items() if isinstance(v, Unset)}
    given = copy.deepcopy({k: v for k, v in section.items() if k not in unset})
    where = where or schema_name.removesuffix(".schema.yaml")
    # the section under its name, so that errors give its path (`invalid value at train.lr: ...`)
    wrapper = {"$id": "section", "type": "object",
               "properties": {where: {"$ref": schema_name, "default": {}}}}
    validator = _with_defaults(Draft202012Validator)(wrapper,
                                                     registry=_registry(SCHEMA_DIR / schema_name))
    instance = {where: given}
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    return instance[where] | unset


def section_defaults(schema_name: str) -> dict:
    """The defaults of the section ``workflow/schemas/<schema_name>``: what :func:`fill_section`
    makes of an empty one."""
    return fill_section(schema_name, {})


# --- what a stage may read: the view of its declared keys ----------------------------------------


class ConfigView(dict):
    """A config mapping holding only the keys a stage declared (at the levels where it declared
    some keys of a section and not the whole section; a declared section is the config's own dict).

    Reading an undeclared key (``view[k]``, ``view.get(k, default)``, ``k in view``,
    ``setdefault``, ``pop``) raises :class:`ConfigError` naming the stage and the key; a declared
    key that the config lacks is an ordinary ``KeyError`` (``get`` gives the default). Everything
    else is a plain dict of the declared content: ``dict(view)``, ``view | {...}``, ``{**view}``,
    JSON and YAML dumping."""

    def __init__(self, stage: str, path: str, declared):
        super().__init__()
        self._stage, self._path, self._declared = stage, path, frozenset(declared)

    def _check(self, key) -> None:
        if key not in self._declared:
            where = f"{self._path}.{key}" if self._path else str(key)
            raise ConfigError(f"stage {self._stage!r} reads config key {where!r}, which it does "
                              "not declare (add it to the stage's keys in tide/cli.py: its rule "
                              "passes what the stage declares)")

    def __missing__(self, key):
        self._check(key)
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        self._check(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self._check(key)
        return super().setdefault(key, default)

    def pop(self, key, *default):
        self._check(key)
        return super().pop(key, *default)

    def __repr__(self) -> str:
        return f"ConfigView({self._stage!r}, {self._path!r}, {dict(self)!r})"


# YAML dumps a view as the mapping it holds (the safe dumper knows plain dicts only)
for _dumper in (yaml.SafeDumper, yaml.Dumper):
    yaml.add_representer(ConfigView, yaml.representer.SafeRepresenter.represent_dict, Dumper=_dumper)
del _dumper


def restrict_config(config: dict, paths, stage: str) -> ConfigView:
    """The view of ``config`` that stage ``stage`` may read: the dotted ``paths`` it declares
    (``"students.block_size"``, ``"eval"``), plus ``scale``. A declared path's value is the
    config's own object (a whole section stays a dict, a paper-scale :class:`Unset` stays one);
    a declared path missing from the config is left out (reading it is a ``KeyError``)."""
    tree: dict = {}  # declared paths as nested dicts; None marks a declared (whole) value
    for path in sorted({"scale", *paths}, key=lambda p: p.count(".")):  # shorter paths first
        node, keys = tree, path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if node is None:  # inside a path already declared whole
                break
        else:
            node[keys[-1]] = None

    def build(value, declared: dict, where: str):
        view = ConfigView(stage, where, declared)
        for key, sub in declared.items():
            if key in value:
                child = value[key]
                if sub is not None and isinstance(child, dict):
                    child = build(child, sub, f"{where}.{key}" if where else key)
                dict.__setitem__(view, key, child)
        return view

    return build(config, tree, "")
