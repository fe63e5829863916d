"""Install metadata agrees across pyproject.toml, constraints.txt and environment.yml."""

from __future__ import annotations

import re
import tomllib

import yaml


def _pins(lines):
    out = {}
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)\s*", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def _project(repo):
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]


def test_every_dependency_is_exactly_pinned(repo):
    project = _project(repo)
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert len(_pins(deps)) == len(deps), "every runtime/dev dependency needs an exact == pin"
    assert _pins(deps)["torch"] == "2.13.0"


def test_flash_attn_only_in_gpu_extra(repo):
    project = _project(repo)
    assert not any("flash" in d for d in project["dependencies"] + project["optional-dependencies"]["dev"])
    assert any("flash-attn" in d for d in project["optional-dependencies"]["gpu"])


def test_constraints_agree_with_pyproject(repo):
    project = _project(repo)
    wanted = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    locked = _pins((repo / "constraints.txt").read_text().splitlines())
    for name, version in wanted.items():
        assert locked.get(name) == version, f"constraints.txt pins {name}=={locked.get(name)}"


def test_environment_yml_agrees(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert "torch==2.13.0" in pip
    assert "-c constraints.txt" in pip and any(p.startswith("-e .") for p in pip)


def test_dvc_stages_depend_on_the_whole_package(repo):
    """A stage's code dependency is tide/ as a whole: no hand-kept module list to drift (#27)."""
    import yaml

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        code = [d for d in stage["deps"] if str(d).startswith("tide")]
        assert code == ["tide"], (name, code)
