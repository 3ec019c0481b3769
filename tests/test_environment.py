"""pyproject.toml and environment.yml declare the same dependencies with the same lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _name(spec: str) -> tuple[str, str]:
    """Split a requirement into (normalised name, version constraint), dropping markers and extras."""
    spec = spec.split(";")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def _conda_specs() -> dict[str, str]:
    """Requirements of environment.yml (conda and pip sections), keyed by name."""
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or item in {"pip"} or item.startswith("python="):
                continue
            name, version = _name(item)
            specs[name] = version
    return specs


def _pyproject_specs() -> dict[str, str]:
    """Requirements of pyproject.toml (run-time and test extras), keyed by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    specs: dict[str, str] = {}
    for req in reqs:
        name, version = _name(req)
        specs[name] = version
    return specs


def test_environment_yml_matches_pyproject():
    """Every pip dependency is in environment.yml with the same bound, and nothing extra."""
    py, conda = _pyproject_specs(), _conda_specs()
    # tensorflow is declared per platform in pyproject; conda users get tensorflow-cpu from pip.
    py.pop("tensorflow", None)
    assert py == conda


def test_jupyter_book_pinned_below_2():
    """Jupyter Book 2.x builds nothing from _config.yml/_toc.yml: it must stay below 2."""
    assert _pyproject_specs()["jupyter-book"] == ">=1.0,<2"


@pytest.mark.parametrize(
    "name", ["_config.yml", "_toc.yml", "environment.yml", "README.md", ".ci/run"]
)
def test_layout_files_exist(name):
    """The files the design fixes at the top of the repository are present."""
    assert (ROOT / name).is_file()
