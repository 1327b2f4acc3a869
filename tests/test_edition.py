"""The class edition: no solution text in what a class receives; ``solution()`` off for a class only."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from fedtutor.course import edition
from fedtutor.course.cli import main
from fedtutor.course.student import course_notebook_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def secret() -> dict[str, str]:
    """Solution lines; the library and the checkers are public (a checker computes the answer too)."""
    public = sorted((ROOT / "fedtutor").glob("*.py"))
    checkers = [edition.empty_solution_texts(p.read_text()) for p in (ROOT / "fedtutor/course/exercises").glob("*.py")]
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(checkers):
            (Path(tmp) / f"checker{i}.py").write_text(text)
        return edition.solution_lines(NOTEBOOKS, public + sorted(Path(tmp).glob("*.py")))


@pytest.fixture(scope="module")
def class_edition(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("build") / "class"
    edition.build_edition(NOTEBOOKS, dest, package=True)
    return dest


def test_the_search_knows_every_solution_and_finds_them_in_the_sources(secret):
    where = {w.split(",")[0] for w in secret.values()}
    with_solutions = {p.name for p in course_notebook_paths(NOTEBOOKS) if "### BEGIN SOLUTION" in p.read_text()}
    assert where == with_solutions  # every notebook with solutions has lines to search for
    leaks = edition.find_leaks(NOTEBOOKS, secret)
    assert {leak.split(":")[0].split("/")[-1] for leak in leaks} == with_solutions


def test_class_edition_notebooks_and_package_hold_no_solution_line(class_edition, secret):
    notebooks = sorted(class_edition.glob("*.ipynb"))
    assert [p.name for p in notebooks] == [p.name for p in course_notebook_paths(NOTEBOOKS)]
    assert edition.find_leaks(class_edition, secret) == []
    assert (class_edition / edition.MARKER).is_file()
    package = class_edition / "package"
    assert (package / "pyproject.toml").is_file() and (package / "fedtutor" / "course" / "_class_edition.py").is_file()
    for module in (package / "fedtutor" / "course" / "exercises").glob("ex*.py"):
        assert "solution=" not in module.read_text().replace('solution=""', "")


def test_the_class_wheel_holds_no_solution_line(class_edition, secret, tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(class_edition / "package"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("fedtutor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fedtutor/course/_class_edition.py" in names
    assert sum(n.startswith("fedtutor/_notebooks/") and n.endswith(".ipynb") for n in names) == len(
        course_notebook_paths(NOTEBOOKS)
    )
    assert edition.find_leaks(tmp_path, secret) == []


def test_a_leak_stops_the_build(tmp_path, secret):
    dest = tmp_path / "class"
    dest.mkdir()
    line = next(iter(secret))
    (dest / "notes.txt").write_text(f"a helpful note:\n    {line}\n")
    with pytest.raises(edition.EditionError, match="notes.txt:2"):
        edition.build_edition(NOTEBOOKS, dest)
    notebook = json.loads((NOTEBOOKS / course_notebook_paths(NOTEBOOKS)[1].name).read_text())
    (dest / "notes.txt").write_text(json.dumps(notebook))  # escaped JSON is searched too
    with pytest.raises(edition.EditionError, match="solution line"):
        edition.build_edition(NOTEBOOKS, dest, force=True)


def test_emptying_solution_texts_keeps_the_rest():
    source = 'exercise(\n    "01.1",\n    hint="h",\n    solution="""\n    x = secret()\n    """,\n)\nkeep = 1\n'
    assert (
        edition.empty_solution_texts(source) == 'exercise(\n    "01.1",\n    hint="h",\n    solution="",\n)\nkeep = 1\n'
    )


def test_solutions_are_off_only_for_a_class(tmp_path, monkeypatch):
    monkeypatch.delenv(edition.SOLUTIONS_ENV, raising=False)
    assert edition.solutions_off(tmp_path) is None  # a self-learner
    (tmp_path / "class" / "week1").mkdir(parents=True)
    (tmp_path / "class" / edition.MARKER).write_text("")
    assert "class marker" in edition.solutions_off(tmp_path / "class" / "week1")
    monkeypatch.setenv(edition.SOLUTIONS_ENV, "off")
    assert "off for this class" in edition.off_message("01.1", tmp_path)


def test_solution_says_off_for_a_class_and_works_for_a_self_learner(monkeypatch, capsys, secret, tmp_path):
    from fedtutor.course import solution

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(edition.SOLUTIONS_ENV, raising=False)
    solution("01.1")
    shown = capsys.readouterr().out
    assert any(edition._normal(line) in secret for line in shown.split("\n"))  # the self-learner sees it
    monkeypatch.setenv(edition.SOLUTIONS_ENV, "off")
    solution("01.1")
    shown = capsys.readouterr().out
    assert "off for this class" in shown
    assert not any(edition._normal(line) in secret for line in shown.split("\n"))


def test_edition_is_a_subcommand(tmp_path, capsys):
    assert main(["edition", str(NOTEBOOKS), str(tmp_path / "class")]) == 0
    assert "no solution line" in capsys.readouterr().out
    assert main(["edition", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2  # a usage error, like `student`
    assert "fedtutor edition: error: SRC: " in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before any work
