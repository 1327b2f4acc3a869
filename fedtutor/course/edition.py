"""A class edition of the course: notebooks, and optionally a package, without any solution text.

``fedtutor edition notebooks/ build/class`` writes the student version of every notebook and a
marker file ``.fedtutor-class``; with ``--package`` it also writes ``build/class/package/``, a
source tree of the course whose notebooks are the class edition and whose exercise modules
have their solution texts emptied, for ``pip wheel build/class/package``. Before it returns,
every file written is searched for each solution region's code; one hit stops the build.

``solutions_off()`` is what ``solution()`` asks: solutions are off when
``FEDTUTOR_SOLUTIONS=off``, when the installed package is a class build, or when the working
folder (or a folder above it) holds the marker. A self-learner's install has none of these.
The marker and the variable only choose the message: what keeps the answers from a class is
that no file it receives holds them.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

SOLUTIONS_ENV = "FEDTUTOR_SOLUTIONS"
MARKER = ".fedtutor-class"
CLASS_MODULE = "_class_edition"  # fedtutor/course/_class_edition.py exists only in a class build
MIN_SECRET = 12  # shorter solution lines ("f.backward()") are not an answer on their own
OFF_MESSAGE = "Solutions are off for this class ({why}). Try hint({exercise!r}), or ask your instructor."


def solutions_off(start: Path | None = None) -> str | None:
    """Why solutions are off here, or None when ``solution()`` may show them."""
    value = os.environ.get(SOLUTIONS_ENV, "").strip().lower()
    if value in ("off", "0", "no", "false"):
        return f"{SOLUTIONS_ENV}={value}"
    if (Path(__file__).with_name(f"{CLASS_MODULE}.py")).is_file():
        return "this is the class edition of the course"
    folder = Path(start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / MARKER).is_file():
            return f"class marker {candidate / MARKER}"
    return None


def off_message(exercise_id: str, start: Path | None = None) -> str | None:
    """The line ``solution(exercise_id)`` prints instead of a solution, or None."""
    why = solutions_off(start)
    return OFF_MESSAGE.format(why=why, exercise=exercise_id) if why else None


# ----------------------------------------------------------------------------- what must not leak


def _normal(line: str) -> str:
    """A line as compared: no indentation, no trailing comment, single spaces."""
    code = re.split(r"\s#", line.strip(), maxsplit=1)[0] if not line.strip().startswith("#") else ""
    return " ".join(code.split())


def solution_lines(notebooks: Path, public_code: list[Path] = ()) -> dict[str, str]:
    """``{normalized line: where}`` for each solution line that is an answer on its own.

    A line counts when it has at least ``MIN_SECRET`` characters and appears nowhere outside
    the solution regions: not in the notebooks' other cells, not in ``public_code`` (the
    library), since a line the learner already reads gives nothing away.
    """
    import nbformat

    from fedtutor.course.student import course_notebook_paths, solution_regions

    secret: dict[str, str] = {}
    public: set[str] = set()
    for path in course_notebook_paths(Path(notebooks)):
        for number, cell in enumerate(nbformat.read(path, as_version=4).cells, start=1):
            lines = cell.source.split("\n")
            inside = set()
            if cell.cell_type == "code":
                for begin, end in solution_regions(cell.source)[0]:
                    inside.update(range(begin + 1, end))
            for i, line in enumerate(lines):
                if i in inside:
                    secret.setdefault(_normal(line), f"{path.name}, cell {number}")
                else:
                    public.add(_normal(line))
    for path in public_code:
        public.update(_normal(line) for line in Path(path).read_text(encoding="utf-8").split("\n"))
    public_text = "\n".join(public)
    # A line the learner already reads (task text, other cells, the library) gives nothing away.
    return {line: where for line, where in secret.items() if len(line) >= MIN_SECRET and line not in public_text}


def _texts(path: Path) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of a file, of each string in a notebook, of each member of a wheel or sdist."""
    data = path.read_bytes()
    yield from _texts_of(str(path), data)


def _texts_of(name: str, data: bytes) -> Iterator[tuple[str, str]]:
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from _texts_of(f"{name}!{member}", archive.read(member))
        return
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    yield from _texts_of(f"{name}!{member.name}", archive.extractfile(member).read())
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    yield name, text
    if text.lstrip()[:1] in ("{", "["):  # JSON (a notebook) escapes quotes: search its decoded strings too
        with contextlib.suppress(ValueError):
            yield from ((name, s) for s in _strings(json.loads(text)))


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def find_leaks(folder: Path, secret: dict[str, str]) -> list[str]:
    """Every place under ``folder`` (archives opened) where a solution line appears, even inside a line."""
    if not secret:
        return []
    pattern = re.compile("|".join(re.escape(line) for line in sorted(secret, key=len, reverse=True)))
    leaks = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        for name, text in _texts(path):
            for number, line in enumerate(text.split("\n"), start=1):
                found = pattern.search(" ".join(line.split()))
                if found:
                    leaks.append(f"{name}:{number}: {found.group(0)!r} (solution in {secret[found.group(0)]})")
    return sorted(set(leaks))


# ----------------------------------------------------------------------------- building


class EditionError(RuntimeError):
    """The edition cannot be built or would leak; the message says where and what to do."""


def empty_solution_texts(source: str) -> str:
    """Python source with every ``solution="..."`` keyword's string emptied (a class build's checkers)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "solution" and isinstance(keyword.value, ast.Constant):
                    spans.append(keyword.value)
    lines = source.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode("utf-8")) + 1)
    data = source.encode("utf-8")
    for node in sorted(spans, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        begin = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        data = data[:begin] + b'""' + data[end:]
    return data.decode("utf-8")


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise EditionError("--package needs a clone of the course (pyproject.toml beside fedtutor/); this is a wheel.")
    return root


def write_package(root: Path, class_notebooks: Path, dest: Path) -> None:
    """A source tree of the course for the class: its notebooks and checkers hold no solution."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", CLASS_MODULE + ".py")
    shutil.copytree(root / "fedtutor", dest / "fedtutor", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    shutil.copytree(class_notebooks, dest / "notebooks", ignore=shutil.ignore_patterns(MARKER, "package"))
    for module in sorted((dest / "fedtutor" / "course" / "exercises").glob("*.py")):
        module.write_text(empty_solution_texts(module.read_text(encoding="utf-8")), encoding="utf-8")
    (dest / "fedtutor" / "course" / f"{CLASS_MODULE}.py").write_text(
        '"""This install is a class edition of the course: solution() is off, and no file holds a solution."""\n',
        encoding="utf-8",
    )


def build_edition(source: Path, dest: Path, package: bool = False, force: bool = False) -> list[str]:
    """Write the class edition of ``source`` to ``dest``; returns the lines to print."""
    from fedtutor.course.student import write_student_versions

    source, dest = Path(source), Path(dest)
    build = write_student_versions(source, dest, force=force)
    if build.conflicts:
        raise EditionError(
            "these files exist and differ from the new class edition: " + ", ".join(build.conflicts) + ". Nothing "
            "was written; re-run with --force to replace them."
        )
    (dest / MARKER).write_text("Solutions are off for this class (written by `fedtutor edition`).\n")
    report = [f"wrote     {p}" for p in build.written] + [f"unchanged {p}" for p in build.unchanged]
    library = []
    if package:
        root = project_root()
        target = dest / "package"
        if target.exists():
            if not force:
                raise EditionError(f"{target} exists. Re-run with --force to rebuild it.")
            shutil.rmtree(target)
        write_package(root, dest, target)
        checkers = target / "fedtutor" / "course" / "exercises"
        # A checker computes the expected answer, so it may share a line with the solution: that is
        # the checker's logic, which a class install needs; it is listed, not refused.
        shared = find_leaks(checkers, solution_lines(source))
        report += [f"note      a checker computes the answer itself: {line}" for line in shared]
        library = sorted((root / "fedtutor").glob("*.py")) + sorted(checkers.glob("*.py"))
        report.append(f"wrote     {target} (build the class's wheel with: pip wheel --no-deps {target})")
    leaks = find_leaks(dest, solution_lines(source, library))
    if leaks:
        raise EditionError(
            f"{len(leaks)} solution line(s) found in the edition; do not hand it out:\n  " + "\n  ".join(leaks[:20])
        )
    report.append(f"checked   no solution line of {source} appears under {dest}")
    return report


def edition_command(args: argparse.Namespace) -> int:
    from fedtutor.course.cli import course_paths
    from fedtutor.course.student import CourseError, MarkerError

    src, dest = course_paths(args)  # as `fedtutor student` checks them: a bad one exits 2 before any work
    try:
        lines = build_edition(src, dest, package=args.package, force=args.force)
    except (EditionError, CourseError, MarkerError, OSError) as err:
        print(f"fedtutor edition: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def add_edition_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "edition",
        help="build a class edition: student notebooks, solution() off, optionally a package without solutions",
        description="Write the student version of every notebook in SRC to DEST with a class marker (solution() "
        "then says solutions are off), and with --package a source tree DEST/package for the class's wheel whose "
        "notebooks and exercise modules hold no solution. Every file written is searched for the solutions' code.",
    )
    parser.add_argument("src", metavar="SRC", help="the course's source notebooks (e.g. notebooks/)")
    parser.add_argument("dest", metavar="DEST", help="output folder (e.g. build/class)")
    parser.add_argument("--package", action="store_true", help="also write DEST/package, a source tree to build")
    parser.add_argument("--force", action="store_true", help="replace existing files in DEST")
    parser.set_defaults(func=edition_command)
