"""environment.yml (conda) and pyproject.toml (pip) must ask for the same packages and ranges.

conda is not available on the CI machine, so this test is what keeps the conda route honest.
conda hands the ``pip:`` entries to pip as a requirements file, so each must be a line pip's own
requirements-file parser accepts (``--no-deps`` is not: it is a command-line option only).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from pip._internal.exceptions import RequirementsFileParseError
from pip._internal.network.session import PipSession
from pip._internal.req.req_file import parse_requirements

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI's
EXTRAS = ("test", "flower")  # what the README's install command asks for: pip install -e ".[test,flower]"


def as_pairs(specs) -> dict[str, str]:
    """``{"torch": ">=2.2"}`` from requirement strings, normalised by ``packaging``."""
    found = {}
    for spec in specs:
        requirement = Requirement(spec)
        found[requirement.name.lower()] = str(requirement.specifier)
    return found


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return as_pairs(project["dependencies"] + [spec for extra in EXTRAS for spec in extras[extra]])


def environment_sections(text: str) -> tuple[list[str], list[str]]:
    """(conda entries, pip entries) of environment.yml: a tiny YAML subset, no PyYAML needed."""
    conda, pip, in_pip = [], [], False
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        bare = re.sub(r"\s+#.*$", "", line).rstrip()
        if not bare or bare.lstrip().startswith("#"):
            continue
        if bare == "  - pip:":
            in_pip = True
        elif in_pip and bare.startswith("      - "):
            pip.append(bare[len("      - ") :])
        elif bare.startswith("  - "):
            in_pip = False
            conda.append(bare[len("  - ") :])
        else:
            raise AssertionError(f"environment.yml: unexpected line {line!r}")
    return conda, pip


def pip_parse(lines: list[str], folder: Path) -> list:
    """The entries as pip reads them: conda writes them to a requirements file beside environment.yml."""
    path = folder / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return list(parse_requirements(str(path), session=PipSession()))


def test_pip_entries_are_valid_requirement_lines(tmp_path):
    _, pip = environment_sections((ROOT / "environment.yml").read_text())
    parsed = pip_parse(pip, tmp_path)
    assert len(parsed) == len(pip)
    editable = [entry for entry in parsed if entry.is_editable]
    assert [entry.requirement for entry in editable] == ["."], "fedtutor itself, editable, from the clone"
    assert all(not entry.options for entry in parsed), "per-line options are not what conda passes on"


def test_pips_parser_rejects_what_the_old_file_had(tmp_path):
    """The check above can fail: ``--no-deps -e .`` (the line this file used to have) is refused."""
    with pytest.raises(RequirementsFileParseError):
        pip_parse(["--no-deps -e ."], tmp_path)


def test_same_packages_and_ranges_pip_block_included(tmp_path):
    conda, pip = environment_sections((ROOT / "environment.yml").read_text())
    from_conda = as_pairs(conda)
    from_conda = {CONDA_TO_PIP.get(name, name): rng for name, rng in from_conda.items()}
    assert from_conda.pop("python") == ">=3.10"
    assert from_conda.pop("pip") == ""
    from_pip = as_pairs(entry.requirement for entry in pip_parse(pip, tmp_path) if not entry.is_editable)
    assert not set(from_conda) & set(from_pip), "a package listed twice"
    listed, wanted = {**from_conda, **from_pip}, pyproject_requirements()
    assert set(listed) == set(wanted), (
        f"only in environment.yml: {set(listed) - set(wanted)}; only in pyproject: {set(wanted) - set(listed)}"
    )
    for name, rng in wanted.items():
        assert listed[name] == rng, f"{name}: pyproject says {rng!r}, environment.yml says {listed[name]!r}"


def test_python_floor_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
