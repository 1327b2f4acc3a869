"""CI for the student versions of the course notebooks (what ``fedtutor start`` hands out).

Generated from ``notebooks/`` by ``fedtutor student``, each student notebook must be a valid
notebook without outputs or solution text, and, executed in quick mode, every exercise cell
must stop at its placeholder's ``NotImplementedError`` while every other cell runs cleanly:
a learner who has not solved an exercise yet can still run the whole lesson.

All notebooks execute once per test session, concurrently (each in its own kernel), and the
per-notebook tests then read the executed copies.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fedtutor.course import student
from fedtutor.course.cli import main

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
# Kernels run side by side, one per core, each with one torch thread: two-thread kernels on
# shared cores spin against each other and run several times slower than one thread each.
PARALLEL = max(1, min(4, (os.cpu_count() or 2)))
QUICK_ENV = {"CI": "true", "FEDTUTOR_QUICK": "1", "OMP_NUM_THREADS": "1"}


async def execute_all(paths: list[Path], parallel: int) -> dict[str, nbformat.NotebookNode]:
    gate = asyncio.Semaphore(parallel)

    async def execute(path: Path) -> nbformat.NotebookNode:
        async with gate:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb,
                timeout=CELL_TIMEOUT_S,
                kernel_name="python3",
                allow_errors=True,  # exercise cells must fail; we look at every cell ourselves
                resources={"metadata": {"path": str(path.parent)}},
            )
            await client.async_execute(env={**os.environ, **QUICK_ENV})
            return nb

    executed = await asyncio.gather(*(execute(p) for p in paths))
    return {path.name: nb for path, nb in zip(paths, executed, strict=True)}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A snapshot of the course notebooks: every test compares against what was generated from."""
    folder = tmp_path_factory.mktemp("sources")
    for path in SOURCES:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, sources) -> Path:
    dest = tmp_path_factory.mktemp("student")
    assert main(["student", str(sources), str(dest)]) == 0
    return dest


@pytest.fixture(scope="module")
def executed(student_dir) -> dict[str, nbformat.NotebookNode]:
    start = time.perf_counter()
    notebooks = asyncio.run(execute_all(sorted(student_dir.glob("*.ipynb")), PARALLEL))
    print(
        f"\nexecuted {len(notebooks)} student notebooks in {time.perf_counter() - start:.1f} s ({PARALLEL} at a time)"
    )
    return notebooks


def source_regions(cell) -> list[tuple[int, int]]:
    return student.solution_regions(cell.source)[0] if cell.cell_type == "code" else []


def describe(number: int, cell) -> str:
    first_line = cell.source.split("\n")[0][:60]
    return f"cell {number} ({first_line!r})"


def test_there_are_course_notebooks_to_check():
    assert SOURCES, f"no notebooks in {REPO / 'notebooks'}"


@pytest.mark.parametrize("source_path", SOURCES, ids=lambda p: p.stem)
def test_student_version_is_valid_and_keeps_no_solution(sources, student_dir, source_path):
    path = student_dir / source_path.name
    handout = nbformat.read(path, as_version=4)
    nbformat.validate(handout)
    source = nbformat.read(sources / source_path.name, as_version=4)
    assert handout.metadata["kernelspec"]["name"] == "python3"
    assert len(handout.cells) == len(source.cells)
    for number, (src, mine) in enumerate(zip(source.cells, handout.cells, strict=True), start=1):
        assert mine.get("outputs", []) == [] and mine.get("execution_count") is None, f"{describe(number, mine)}"
        if mine.cell_type == "code":  # markdown may talk about the markers; code must not keep any
            assert student.solution_regions(mine.source) == ([], []), f"{describe(number, mine)} keeps a marker"
        regions = source_regions(src)
        if not regions:
            assert mine.source == src.source, f"{describe(number, src)} changed although it has no solution"
            continue
        lines = src.source.split("\n")
        inside = {i for begin, end in regions for i in range(begin, end + 1)}
        kept = {line.strip() for i, line in enumerate(lines) if i not in inside}
        secret = {lines[i].strip() for i in inside} - kept - {""}
        leaked = secret & {line.strip() for line in mine.source.split("\n")}
        assert not leaked, f"{describe(number, src)} still contains solution lines {sorted(leaked)}"
        assert mine.source.count("raise NotImplementedError(") == len(regions)


@pytest.mark.parametrize("source_path", SOURCES, ids=lambda p: p.stem)
def test_exercise_cells_stop_at_the_placeholder_and_every_other_cell_runs(sources, executed, source_path):
    source = nbformat.read(sources / source_path.name, as_version=4)
    run = executed[source_path.name]
    exercises, problems = 0, []
    for number, (src, cell) in enumerate(zip(source.cells, run.cells, strict=True), start=1):
        if cell.cell_type != "code":
            continue
        errors = [out for out in cell.outputs if out.output_type == "error"]
        if source_regions(src):
            exercises += 1
            wanted = student.exercise_id(src.source)
            prefix = f"Exercise {wanted}:" if wanted else "This exercise is yours"
            ok = [e for e in errors if e.ename == "NotImplementedError" and e.evalue.startswith(prefix)]
            if not ok:
                got = [f"{e.ename}: {e.evalue}" for e in errors] or "no error"
                problems.append(f"{describe(number, src)} should stop at its placeholder, got {got}")
        elif errors:
            problems.append(
                f"{describe(number, src)} fails in the student version: {errors[0].ename}: {errors[0].evalue}"
            )
    assert not problems, f"{source_path.name}:\n" + "\n".join(problems)
    assert exercises >= 1, f"{source_path.name} has no exercise cells"
