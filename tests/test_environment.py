"""environment.yml (conda) and pyproject.toml (pip) must ask for the same packages and ranges.

conda is not available on the CI machine, so this test is what keeps the conda route honest.
"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI's
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def _parse(spec: str) -> tuple[str, str]:
    name, rng = REQUIREMENT.match(spec.split("#")[0].strip()).groups()
    return name.lower(), rng.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(_parse(s) for s in specs)


def conda_requirements() -> dict[str, str]:
    """The plain `- name>=x` lines of the dependencies list (a tiny YAML subset, no PyYAML needed)."""
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z][^:]*)$", line.split("#")[0].rstrip())
        if match:
            name, rng = _parse(match.group(1))
            found[CONDA_TO_PIP.get(name, name)] = rng
    return found


def test_same_packages_and_ranges():
    pip, conda = pyproject_requirements(), conda_requirements()
    conda.pop("pip")
    python = conda.pop("python")
    assert python == ">=3.10"
    assert set(conda) == set(pip), f"only in conda: {set(conda) - set(pip)}; only in pip: {set(pip) - set(conda)}"
    for name, rng in pip.items():
        assert conda[name] == rng, f"{name}: pyproject says {rng!r}, environment.yml says {conda[name]!r}"


def test_python_floor_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
