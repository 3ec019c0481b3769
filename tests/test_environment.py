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
    """Requirements of pyproject.toml (run-time, test and dev extras), keyed by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + extras["test"] + extras["dev"]
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
    "name",
    [
        "_config.yml",
        "_toc.yml",
        "environment.yml",
        "README.md",
        ".ci/run",
        "CITATION.cff",
        ".pre-commit-config.yaml",
    ],
)
def test_layout_files_exist(name):
    """The files the design fixes at the top of the repository are present."""
    assert (ROOT / name).is_file()


def _pyproject() -> dict:
    """pyproject.toml parsed."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_home():
    """The version is written once, in mcalc/__init__.py; packaging reads it from there."""
    import mcalc

    config = _pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mcalc.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", mcalc.__version__)
    assert "version" not in _citation()


def test_requires_python_is_what_the_tests_use():
    """The tests read TOML with tomllib (Python 3.11), so the package asks for at least that."""
    assert _pyproject()["project"]["requires-python"] == ">=3.11"


def test_package_data_globs_each_match_a_file():
    """Every package-data pattern ships at least one file (a pattern matching nothing is a slip)."""
    for package, patterns in _pyproject()["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches no file"


def _citation() -> dict:
    """CITATION.cff parsed."""
    import yaml

    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_names_the_study_and_the_paper_it_reproduces():
    """CITATION.cff cites mcalc and, as its preferred citation, Singh et al. 2022 (IJERPH 19(4):2159)."""
    cff = _citation()
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["title"].startswith("mcalc") and cff["license"] == _pyproject()["project"]["license"]
    paper = cff["preferred-citation"]
    assert paper["doi"] == "10.3390/ijerph19042159"
    assert (paper["year"], paper["volume"], paper["issue"], paper["start"]) == (2022, 19, 4, 2159)
    assert paper["authors"][0]["family-names"] == "Singh" and len(paper["authors"]) == 8


def test_pre_commit_runs_the_ruff_of_the_dev_extra():
    """The pre-commit hook's ruff release is one the dev extra allows (same lint locally and in CI)."""
    import yaml
    from packaging.requirements import Requirement

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (repo,) = [r for r in config["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    assert {h["id"] for h in repo["hooks"]} == {"ruff-check", "ruff-format"}
    (ruff,) = [
        Requirement(r)
        for r in _pyproject()["project"]["optional-dependencies"]["dev"]
        if r.startswith("ruff")
    ]
    assert ruff.specifier.contains(repo["rev"].lstrip("v")), (repo["rev"], str(ruff.specifier))
