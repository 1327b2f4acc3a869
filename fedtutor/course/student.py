"""Student versions of the course notebooks (``fedtutor student``).

In the source notebooks each exercise solution sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` so CI runs it. ``student_notebook`` replaces each such region with a
placeholder that raises ``NotImplementedError`` with a hint, keeps every other character of
every cell as it is, and strips outputs. Markers that would leak a solution (unclosed, nested,
a stray END, a misspelt marker) stop the build with the notebook, cell and line to fix, before
any file is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
# A line that mentions a marker without being exactly one is almost always a typo
# ("## BEGIN SOLUTION", "### begin solution"); left alone, it would leak a solution.
NEAR_MARKER = re.compile(r"(BEGIN|END)[ _]SOLUTION", re.IGNORECASE)
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d+\.\d+)["']""")
PLACEHOLDER_COMMENT = "# YOUR CODE HERE: replace the line below with your solution."

PACKAGED_NOTEBOOKS = Path(__file__).resolve().parent.parent / "_notebooks"  # where a wheel ships them


class MarkerError(ValueError):
    """Solution markers that cannot be removed safely; ``problems`` lists each with its place."""

    def __init__(self, problems: list[MarkerProblem]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{len(problems)} malformed solution marker(s); no student version was written:\n{lines}\n"
            f"Each solution must sit between a line `{SOLUTION_BEGIN}` and a line `{SOLUTION_END}`, not nested."
        )


class CourseError(RuntimeError):
    """The course notebooks or the workspace cannot be used; the message says why and the fix."""


@dataclass(frozen=True)
class MarkerProblem:
    notebook: str
    cell: int  # 1-based, counting every cell (markdown too), as you scroll the notebook
    line: int  # 1-based within the cell
    message: str

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell}, line {self.line}: {self.message}"


def solution_regions(source: str) -> tuple[list[tuple[int, int]], list[tuple[int, str]]]:
    """Find the solution regions of one cell's source.

    Returns ``(regions, problems)``: regions as 0-based ``(begin_line, end_line)`` index pairs
    (marker lines included), problems as ``(1-based line, message)``.
    """
    regions: list[tuple[int, int]] = []
    problems: list[tuple[int, str]] = []
    begin: int | None = None
    for i, line in enumerate(source.split("\n")):
        marker = line.strip()
        if marker == SOLUTION_BEGIN:
            if begin is not None:
                problems.append(
                    (i + 1, f"`{SOLUTION_BEGIN}` inside the region opened on line {begin + 1}; close that first")
                )
            else:
                begin = i
        elif marker == SOLUTION_END:
            if begin is None:
                problems.append((i + 1, f"`{SOLUTION_END}` without a `{SOLUTION_BEGIN}` before it"))
            else:
                regions.append((begin, i))
                begin = None
        elif NEAR_MARKER.search(line):
            problems.append(
                (i + 1, f"{marker!r} looks like a marker but is neither `{SOLUTION_BEGIN}` nor `{SOLUTION_END}`")
            )
    if begin is not None:
        problems.append((begin + 1, f"`{SOLUTION_BEGIN}` is never closed by `{SOLUTION_END}`"))
    return regions, problems


def exercise_id(source: str) -> str | None:
    """The id in the cell's ``check("NN.k", ...)`` call, if it has one."""
    match = CHECK_CALL.search(source)
    return match.group(1) if match else None


def placeholder(indent: str, exercise: str | None) -> list[str]:
    """The two lines that stand where a solution was, indented like its BEGIN marker."""
    if exercise:
        message = f"Exercise {exercise}: replace this line with your code and run the cell. Stuck? hint('{exercise}')"
    else:
        message = "This exercise is yours: replace this line with your code (the task is in the text above)."
    return [indent + PLACEHOLDER_COMMENT, f"{indent}raise NotImplementedError({message!r})"]


def student_source(source: str, regions: list[tuple[int, int]]) -> str:
    """``source`` with each region swapped for the placeholder; every other line kept exactly."""
    lines = source.split("\n")
    exercise = exercise_id(source)
    for begin, end in reversed(regions):  # from the bottom, so earlier indices stay valid
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        lines[begin : end + 1] = placeholder(indent, exercise)
    return "\n".join(lines)


def marker_problems(nb: nbformat.NotebookNode, name: str) -> list[MarkerProblem]:
    """Every malformed marker in the notebook's code cells."""
    found = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            _, problems = solution_regions(cell.source)
            found += [MarkerProblem(name, number, line, message) for line, message in problems]
    return found


def student_notebook(nb: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, int]:
    """The student version of ``nb`` and how many solutions it removed; ``nb`` is not modified.

    Markers in markdown cells are left alone: there they are text about the convention.
    """
    problems = marker_problems(nb, name)
    if problems:
        raise MarkerError(problems)
    student = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    removed = 0
    for cell in student.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        regions, _ = solution_regions(cell.source)
        if regions:
            cell.source = student_source(cell.source, regions)
            removed += len(regions)
    student.metadata.pop("widgets", None)  # saved widget state is output too
    return student, removed


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:  # json and nbformat errors are ValueErrors
        raise CourseError(f"Cannot read notebook {path}: {err}. Fix: restore it (e.g. `git checkout {path}`).") from err


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The file text, formatted exactly as ``scripts/strip_notebooks.py`` writes the sources."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def student_versions(source: Path) -> dict[str, tuple[str, int]]:
    """``{file name: (student text, solutions removed)}`` for a notebook or a folder of them.

    Every notebook is checked before anything is returned, and all marker problems are
    reported together, so a build either fully succeeds or writes nothing.
    """
    paths = course_notebook_paths(source) if source.is_dir() else [source]
    if not paths:
        raise CourseError(f"No notebooks (*.ipynb) in {source}.")
    notebooks = {path.name: read_notebook(path) for path in paths}
    problems = [p for path in paths for p in marker_problems(notebooks[path.name], str(path))]
    if problems:
        raise MarkerError(problems)
    versions = {}
    for path in paths:
        student, removed = student_notebook(notebooks[path.name], str(path))
        versions[path.name] = (notebook_text(student), removed)
    return versions


def course_notebook_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


@dataclass
class StudentBuild:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # existing, different, and no --force


def write_student_versions(source: Path, dest: Path, force: bool = False) -> StudentBuild:
    """Write student versions of ``source`` (a notebook or a folder) to ``dest``.

    ``dest`` is a folder, or a ``.ipynb`` path when ``source`` is one notebook. A file that
    already holds exactly the new text counts as unchanged; one that differs is replaced only
    with ``force`` (these are generated release files: learners edit their own copies, made by
    ``fedtutor start``, which never overwrites). Without ``force`` nothing at all is written
    when any file conflicts.
    """
    source, dest = Path(source), Path(dest)
    check_paths(source, dest)
    versions = student_versions(source)
    if dest.suffix == ".ipynb":
        targets = {dest: next(iter(versions.values()))[0]}
    else:
        targets = {dest / name: text for name, (text, _) in versions.items()}
    sources = {p.resolve() for p in (course_notebook_paths(source) if source.is_dir() else [source])}
    clobbered = sorted(str(t) for t in targets if t.resolve() in sources)
    if clobbered:
        listed = ", ".join(clobbered)
        raise CourseError(
            f"DEST would replace the source notebooks ({listed}), solutions and all. Choose another DEST."
        )
    build = StudentBuild()
    for target, text in targets.items():
        if target.exists() and target.read_bytes() == text.encode("utf-8"):
            build.unchanged.append(str(target))
        elif target.exists() and not force:
            build.conflicts.append(str(target))
    if build.conflicts:
        return build
    for target, text in targets.items():
        if str(target) not in build.unchanged:
            write_atomically(target, text)
            build.written.append(str(target))
    return build


def check_paths(source: Path, dest: Path) -> None:
    """Refuse, before reading anything, a SRC that is neither a notebook nor a folder, and a DEST of the wrong kind."""
    if not (source.is_file() or source.is_dir()):
        raise CourseError(
            f"SRC: {source} is neither a notebook nor a folder. Fix: give a notebook or a folder of them."
        )
    if dest.suffix == ".ipynb" and source.is_dir():
        raise CourseError(f"DEST: {source} is a folder, so DEST must be a folder too, not {dest}.")
    if dest.suffix == ".ipynb" and os.path.lexists(dest) and not dest.is_file():
        raise CourseError(f"DEST: {dest} exists and is not a file. Fix: give another DEST.")


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file, so an interrupted write never leaves half a notebook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_new_file(path: Path, text: str) -> None:
    """Create ``path``; fails rather than replace a file that appeared meanwhile."""
    with open(path, "x", encoding="utf-8", newline="") as f:
        f.write(text)
