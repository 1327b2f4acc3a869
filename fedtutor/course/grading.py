"""Grade a class's notebooks: ``fedtutor grade SUBMISSIONS_DIR``.

One sub-folder (or one ``.ipynb``) per student. For each submitted notebook the grader:

1. finds the course notebook it comes from (by file name ``NN-name.ipynb``, else by the
   exercise ids in its ``check("NN.k", ...)`` calls);
2. rebuilds it from the course's student version, taking from the submission only the code
   that replaces each solution placeholder. Cells edited outside the answer regions run as in
   the course (and are listed for the instructor), so an edited cell cannot change a grade;
3. executes it in a fresh kernel (nbclient) in quick mode, in its own process and its own
   temporary folder holding only that notebook, with a wall-clock limit and, on Linux, an
   address-space limit (``RLIMIT_AS``), several notebooks at once within the machine's cores;
4. grades in that kernel: a first cell replaces ``check`` by a recorder of each call's
   arguments; after the last cell, each exercise's checker (taken from the registry before
   any student code ran) is called on the recorded answer, then the instructor's hidden tests;
5. writes one CSV for students (student, notebook, exercise, passed, feedback), one for the
   instructor with the hidden tests' details, and a summary per exercise.

Outcomes recorded in the submitted notebook are never read: everything is re-run.

Limits, honestly: the student's code and the checks share one kernel, under the same OS user
as the grader. A notebook that sets out to attack the grader (patching the checkers' modules
in memory, reading files by absolute path) can; the temporary folder only keeps honest
mistakes and other students' files out of its way. Grade untrusted work in a container or a
separate account for stronger isolation. The memory limit needs Linux; on macOS and Windows
only the time limit applies.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_MIME = "application/vnd.fedtutor.grade+json"
RESULT_LINE = "FEDTUTOR-GRADE-RESULT "
HIDDEN_NAME = re.compile(r"^hidden_(\d+)_(\d+)(?:_\w+)?$")
CHECK_IDS = re.compile(r"""\bcheck\(\s*["'](\d+\.\d+)["']""")
STUDENT_COLUMNS = ["student", "notebook", "exercise", "passed", "feedback"]
INSTRUCTOR_COLUMNS = [*STUDENT_COLUMNS, "hidden_tests", "instructor_detail", "edits", "seconds"]
HIDDEN_FAILED = "hidden test failed"
# The runner loads this file alone: importing the fedtutor package would import torch (500 MB).
RUNNER = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('fedtutor_grade_runner', sys.argv[1]); "
    "m = sys.modules[s.name] = u.module_from_spec(s); s.loader.exec_module(m); m._child_main()"
)
STARTUP_S = 90.0  # a kernel that is not ready by then (torch imported on a busy laptop) is stopped


class GradeError(ValueError):
    """Grading cannot start; the message says what to fix."""


# ----------------------------------------------------------------------------- finding the work


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path


def find_submissions(folder: Path) -> list[Submission]:
    """Every student's notebooks: ``folder/<student>/*.ipynb`` and ``folder/<student>.ipynb``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(f"{folder} is not a folder. Give a folder with one sub-folder or .ipynb per student.")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found += [Submission(entry.name, p) for p in sorted(entry.glob("*.ipynb")) if not p.name.startswith(".")]
        elif entry.suffix == ".ipynb":
            found.append(Submission(entry.stem, entry))
    if not found:
        raise GradeError(f"No notebooks in {folder}: expected <student>/NN-name.ipynb or <student>.ipynb files.")
    return found


def match_course_notebook(path: Path, nb: dict[str, Any], course: dict[str, Path]) -> Path | None:
    """The course notebook a submission comes from: same ``NN-`` prefix, else its check ids."""
    number = re.match(r"(\d\d)-", path.name)
    if number is not None:
        return course.get(number.group(1))
    sources = "\n".join(_text(c) for c in nb.get("cells", []) if isinstance(c, dict))
    ids = Counter(i.split(".")[0] for i in CHECK_IDS.findall(sources))
    return course.get(ids.most_common(1)[0][0]) if ids else None


# ----------------------------------------------------------------------------- rebuilding a submission


@dataclass
class Rebuilt:
    cells: list[dict[str, Any]]  # the notebook to run, without the grader's two cells
    exercises: list[str]  # exercise ids of the course notebook, in order
    answer_cells: dict[str, int] = field(default_factory=dict)  # exercise id -> index in cells
    unanswered: set[str] = field(default_factory=set)  # answer still the placeholder
    edits: list[str] = field(default_factory=list)  # what was restored or dropped, for the instructor


def _placeholder_spans(lines: list[str]) -> list[int]:
    from fedtutor.course.student import PLACEHOLDER_COMMENT

    return [i for i, line in enumerate(lines) if line.strip() == PLACEHOLDER_COMMENT]


def _splice(course_src: str, submitted: str) -> tuple[str, bool, bool]:
    """The course cell with the student's answer in place of its placeholder(s).

    Returns ``(source, edited_outside, unanswered)``. Lines before the first placeholder and
    after the last one are the course's; what the student wrote between them is the answer.
    """
    course, sub = course_src.split("\n"), submitted.split("\n")
    spans = _placeholder_spans(course)
    head, tail = course[: spans[0]], course[spans[-1] + 2 :]
    k = 0
    while k < min(len(head), len(sub)) and sub[k] == head[k]:
        k += 1
    j = 0
    while j < min(len(tail), len(sub) - k) and sub[len(sub) - 1 - j] == tail[len(tail) - 1 - j]:
        j += 1
    answer = sub[k : len(sub) - j]
    edited = k < len(head) or j < len(tail)
    unanswered = answer == course[spans[0] : spans[-1] + 2]
    return "\n".join(head + answer + tail), edited, unanswered


def rebuild(course_student: dict[str, Any], submission: dict[str, Any]) -> Rebuilt:
    """The notebook to grade: the course's student version with the submission's answers in it."""
    sub_cells = submission.get("cells", [])
    by_id = {c.get("id"): c for c in sub_cells if c.get("id")}
    by_exercise = {}
    for c in sub_cells:
        if c.get("cell_type") == "code":
            for ex in CHECK_IDS.findall(_text(c)):
                by_exercise.setdefault(ex, c)
    used: set[int] = set()
    out = Rebuilt(cells=[], exercises=[])
    for number, cell in enumerate(course_student["cells"], start=1):
        src = _text(cell)
        ids = CHECK_IDS.findall(src) if cell["cell_type"] == "code" else []
        is_answer = cell["cell_type"] == "code" and bool(_placeholder_spans(src.split("\n")))
        mine = by_id.get(cell.get("id"))
        if is_answer and (mine is None or mine.get("cell_type") != "code") and ids:
            mine = by_exercise.get(ids[0])
        if mine is None and not is_answer:  # cell ids lost (a copy made by other tools): same text counts
            mine = next((c for c in sub_cells if id(c) not in used and _text(c) == src), None)
        if mine is not None:
            used.add(id(mine))
        new = {"cell_type": cell["cell_type"], "metadata": {}, "source": src}
        if cell["cell_type"] == "code":
            new.update(outputs=[], execution_count=None)
        if is_answer:
            out.exercises += ids
            for ex in ids:
                out.answer_cells[ex] = len(out.cells)
            if mine is None:
                out.unanswered.update(ids)
                out.edits.append(f"cell {number} (answer to {', '.join(ids)}) missing")
            else:
                new["source"], edited, unanswered = _splice(src, _text(mine))
                if unanswered:
                    out.unanswered.update(ids)
                if edited:
                    out.edits.append(f"cell {number} edited outside its answer region (course lines restored)")
        elif mine is None or _text(mine) != src:
            out.edits.append(f"cell {number} {'missing' if mine is None else 'edited'} (run as in the course)")
        out.cells.append(new)
    added = sum(1 for c in sub_cells if id(c) not in used and c.get("cell_type") == "code" and _text(c).strip())
    if added:
        out.edits.append(f"{added} code cell(s) added by the student (not run)")
    return out


def _text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


# ----------------------------------------------------------------------------- inside the kernel

_KERNEL: dict[str, Any] = {"calls": {}, "checkers": {}}


def kernel_install_hook() -> None:
    """First cell of a graded notebook: ``check`` records its arguments instead of judging.

    The checkers are taken from the registry now, before any student code runs, so a later
    change to the registry does not change the grade.
    """
    import fedtutor.course as course
    from fedtutor.course import exercises

    _KERNEL["checkers"] = {ex_id: ex.checker for ex_id, ex in exercises.EXERCISES.items()}

    def check(exercise_id: str, *answer: Any) -> bool:
        _KERNEL["calls"][str(exercise_id)] = answer
        print(f"(grading: your answer to {exercise_id} was recorded)")
        return True

    exercises.check = check
    if "check" in vars(course):
        course.check = check


def _short(err: BaseException) -> str:
    text = str(err).strip().split("\n")[0]
    return text[:300] if text else type(err).__name__


def kernel_report(exercise_ids: list[str], hidden_sources: dict[str, str]) -> None:
    """Last cell: re-run each checker on the recorded answer, then the hidden tests."""
    import io

    from IPython import get_ipython
    from IPython.display import display

    namespace = get_ipython().user_ns
    hidden = _hidden_tests(hidden_sources)
    results = {}
    for ex in exercise_ids:
        result: dict[str, Any] = {"answered": ex in _KERNEL["calls"], "passed": False, "feedback": "", "hidden": []}
        answer = _KERNEL["calls"].get(ex)
        if answer is not None and any(a is ... or a is NotImplemented for a in answer):
            result["answered"] = False
        elif answer is not None:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    note = _KERNEL["checkers"][ex](*answer)
                    result.update(passed=True, feedback="correct" + (f". {note}" if note else ""))
                except AssertionError as err:  # Wrong is an AssertionError
                    result["feedback"] = _short(err)
                except Exception as err:  # noqa: BLE001 - any failure of the student's object is feedback
                    result["feedback"] = f"the checker could not use your answer: {type(err).__name__}: {_short(err)}"
                for name, test in hidden.get(ex, []) if result["passed"] else []:
                    try:
                        test(namespace)
                        result["hidden"].append({"name": name, "passed": True, "detail": ""})
                    except Exception as err:  # noqa: BLE001
                        result["hidden"].append(
                            {"name": name, "passed": False, "detail": f"{type(err).__name__}: {_short(err)}"}
                        )
        results[ex] = result
    display({RESULT_MIME: results}, raw=True)


def _hidden_tests(sources: dict[str, str]) -> dict[str, list[tuple[str, Any]]]:
    """``{exercise id: [(name, function)]}`` from the instructor's hidden test files."""
    tests: dict[str, list[tuple[str, Any]]] = {}
    for filename, source in sorted(sources.items()):
        namespace: dict[str, Any] = {"__name__": f"hidden_{Path(filename).stem}"}
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the instructor's own file
        for name, value in sorted(namespace.items()):
            match = HIDDEN_NAME.match(name)
            if match and callable(value):
                ex = f"{int(match.group(1)):02d}.{int(match.group(2))}"
                tests.setdefault(ex, []).append((f"{filename}::{name}", value))
    return tests


def load_hidden_sources(folder: Path | None) -> dict[str, str]:
    """The hidden test files' text, checked here so that a mistake shows before grading starts."""
    if folder is None:
        return {}
    folder = Path(folder)
    files = sorted(folder.glob("*.py")) if folder.is_dir() else []
    if not files:
        raise GradeError(f"--hidden-tests {folder}: no .py files there. Put functions hidden_NN_k(namespace) in them.")
    sources = {p.name: p.read_text(encoding="utf-8") for p in files}
    try:
        found = _hidden_tests(sources)
    except Exception as err:  # noqa: BLE001 - any error in the instructor's file is reported plainly
        raise GradeError(f"--hidden-tests: cannot load {folder}: {type(err).__name__}: {err}") from err
    if not found:
        raise GradeError(f"--hidden-tests {folder}: no functions named hidden_NN_k (e.g. hidden_01_2) found.")
    return sources


# ----------------------------------------------------------------------------- one notebook, in its own process


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 120.0  # the notebook's cells together; the checks get as long again
    memory_mb: int = 6144  # address space per process; torch alone reserves about 3.3 GB of it
    startup_s: float = STARTUP_S


def _child_main() -> None:
    """The runner process: reads a job on stdin, prints one result line on stdout."""
    job = json.loads(sys.stdin.read())
    if sys.platform.startswith("linux") and job["memory_mb"]:
        import resource

        limit = int(job["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # inherited by the kernel
    print(RESULT_LINE + json.dumps(_execute(job)), flush=True)


def _execute(job: dict[str, Any]) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.from_dict(job["notebook"])
    client = NotebookClient(
        nb,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": job["workdir"]}},
    )
    deadline = [0.0]
    client.timeout_func = lambda cell: max(1, int(deadline[0] - time.monotonic()) + 1)
    cells: dict[int, dict[str, Any]] = {}  # index -> {"error": ..., "timed_out": ..., "skipped": ...}
    result: dict[str, Any] = {"status": "ok", "cells": cells, "results": None}
    try:
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            deadline[0] = time.monotonic() + job["startup_s"]
            client.execute_cell(nb.cells[0], 0)  # the hook: imports torch, not the student's time
            Path(job["pidfile"]).write_text(str(client.km.provisioner.pid))
            deadline[0] = time.monotonic() + job["timeout_s"]
            for index, cell in enumerate(nb.cells[:-1]):
                if index == 0:
                    continue
                if cell.cell_type != "code":
                    continue
                if time.monotonic() >= deadline[0]:
                    cells[index] = {"skipped": True}
                    continue
                client.execute_cell(cell, index)
                errors = [o for o in cell.outputs if o.output_type == "error"]
                cells[index] = {
                    "timed_out": time.monotonic() >= deadline[0],
                    "error": f"{errors[0].ename}: {errors[0].evalue}".split("\n")[0][:300] if errors else None,
                }
                cell.outputs = errors  # keep the runner small whatever the notebook prints
            deadline[0] = time.monotonic() + job["timeout_s"]
            last = nb.cells[-1]
            client.execute_cell(last, len(nb.cells) - 1)
            shown = [o for o in last.outputs if o.output_type == "display_data" and RESULT_MIME in o.data]
            errors = [o for o in last.outputs if o.output_type == "error"]
            if shown:
                result["results"] = shown[-1].data[RESULT_MIME]
            else:
                result.update(status="grader failed", detail=f"{errors[0].ename}: {errors[0].evalue}" if errors else "")
    except DeadKernelError as err:
        result.update(status="kernel died", detail=str(err)[:300])
    except Exception as err:  # noqa: BLE001 - reported in the result, the run goes on
        result.update(status="grader failed", detail=f"{type(err).__name__}: {err}"[:300])
    return result


def _kill_group(pid: int) -> None:
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_notebook(
    cells: list[dict[str, Any]],
    name: str,
    hidden: dict[str, str],
    exercises: list[str],
    limits: Limits,
    threads: int = 1,
    learner: str = "learner",
) -> dict[str, Any]:
    """Execute one rebuilt notebook in a runner process of its own; never raises for the notebook's faults."""
    hook = {
        "cell_type": "code",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
        "source": "import fedtutor.course.grading as __grading\n__grading.kernel_install_hook()\ndel __grading",
    }
    report = dict(
        hook,
        source=f"__import__('fedtutor.course.grading', fromlist=['x']).kernel_report("
        f"{json.dumps(exercises)}, {json.dumps(hidden)})",
    )
    nb = {
        "cells": [hook, *cells, report],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    private = Path(tempfile.mkdtemp(prefix="fedtutor-grade-job-"))
    workdir = Path(tempfile.mkdtemp(prefix="fedtutor-grade-"))
    (workdir / name).write_text(json.dumps({**nb, "cells": cells}), encoding="utf-8")  # its own copy, only
    job = {
        "notebook": nb,
        "workdir": str(workdir),
        "pidfile": str(private / "kernel.pid"),
        "timeout_s": limits.timeout_s,
        "memory_mb": limits.memory_mb,
        "startup_s": limits.startup_s,
    }
    env = dict(
        os.environ,
        CI="true",
        FEDTUTOR_QUICK="1",
        FEDTUTOR_OFFLINE="1",
        FEDTUTOR_LEARNER=learner,  # given("NN.k") inputs are this student's, as in their own kernel
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.pop("FEDTUTOR_SOLUTIONS", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=private,
        env=env,
        start_new_session=sys.platform != "win32",
    )
    try:
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        out = _wait(proc, private / "kernel.pid", started, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def _wait(proc: subprocess.Popen, pidfile: Path, started: float, limits: Limits) -> dict[str, Any]:
    """Wait for the runner; stop it and its kernel when it overruns. Reads its output meanwhile."""
    import threading

    chunks: dict[str, list[str]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=lambda s=s, k=k: chunks[k].extend(s), daemon=True)
        for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))
    ]
    for reader in readers:
        reader.start()
    deadline, kernel = started + limits.startup_s, None
    while proc.poll() is None:
        if kernel is None and pidfile.exists() and pidfile.read_text().strip():
            kernel = int(pidfile.read_text())
            deadline = time.monotonic() + 2 * limits.timeout_s + 15
        if time.monotonic() > deadline:
            for pid in (kernel, proc.pid):
                if pid:
                    _kill_group(pid)
            proc.wait()
            why = (
                "its kernel did not start" if kernel is None else "it ran past its time limit and ignored the interrupt"
            )
            return {"status": "killed", "detail": why}
        time.sleep(0.2)
    for reader in readers:
        reader.join(timeout=5)
    if kernel:
        _kill_group(kernel)  # anything the notebook started and left running
    lines = [ln for ln in "".join(chunks["out"]).splitlines() if ln.startswith(RESULT_LINE)]
    if not lines:
        tail = "".join(chunks["err"]).strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"status": "grader failed", "detail": tail[0][:300]}
    return json.loads(lines[-1][len(RESULT_LINE) :])


# ----------------------------------------------------------------------------- rows


@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    passed: bool
    feedback: str
    hidden_tests: str = ""
    instructor_detail: str = ""
    edits: str = ""
    seconds: float = 0.0

    def student_row(self) -> list[str]:
        return [self.student, self.notebook, self.exercise, "yes" if self.passed else "no", self.feedback]

    def instructor_row(self) -> list[str]:
        return [*self.student_row(), self.hidden_tests, self.instructor_detail, self.edits, f"{self.seconds:.1f}"]


def rows_for(sub: Submission, rebuilt: Rebuilt, run: dict[str, Any], limits: Limits) -> list[Row]:
    """One row per exercise of the course notebook, whatever became of the run."""
    rows = []
    status, results, cells = run.get("status"), run.get("results") or {}, run.get("cells") or {}
    limit = f"{limits.timeout_s:g} s"
    for ex in rebuilt.exercises:
        row = Row(sub.student, sub.path.name, ex, False, "", edits="; ".join(rebuilt.edits), seconds=run["seconds"])
        cell = cells.get(str(rebuilt.answer_cells[ex] + 1), {})  # +1: the grader's first cell
        got = results.get(ex)
        if status == "killed":
            row.feedback = f"not graded: the notebook ran past its time limit ({limit}) and was stopped"
            row.instructor_detail = run.get("detail", "")
        elif status != "ok" or got is None:
            row.feedback = f"not graded: {status}" if status == "kernel died" else "not graded: the grader failed"
            row.instructor_detail = run.get("detail", "")
        elif ex in rebuilt.unanswered:
            row.feedback = "not answered: the cell still holds the placeholder"
        elif cell.get("skipped"):
            row.feedback = f"not graded: the notebook's time limit ({limit}) was used up before this cell ran"
        elif cell.get("timed_out") and not got["answered"]:
            row.feedback = f"not graded: the cell was still running at the time limit ({limit}) and was stopped"
        elif not got["answered"]:
            error = cell.get("error")
            row.feedback = (
                f"not answered: your cell raised {error}" if error else "not answered: check() was not reached"
            )
        elif got["passed"] and any(not h["passed"] for h in got["hidden"]):
            row.feedback = HIDDEN_FAILED
            row.instructor_detail = "; ".join(f"{h['name']}: {h['detail']}" for h in got["hidden"] if not h["passed"])
        else:
            row.passed, row.feedback = got["passed"], got["feedback"]
        if got and got["hidden"]:
            row.hidden_tests = f"{sum(h['passed'] for h in got['hidden'])}/{len(got['hidden'])} passed"
        rows.append(row)
    return rows


def grade_submission(
    sub: Submission, course: dict[str, Path], hidden: dict[str, str], limits: Limits, threads: int = 1
) -> list[Row]:
    """Grade one submitted notebook; every failure becomes rows, never an exception."""
    import nbformat

    from fedtutor.course.student import student_notebook

    try:
        text = sub.path.read_text(encoding="utf-8")
        submitted = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return [Row(sub.student, sub.path.name, "", False, f"not graded: not a readable notebook ({_short(err)})")]
    if not isinstance(submitted, dict):
        submitted = {}
    source = match_course_notebook(sub.path, submitted, course)
    if source is None:
        return [
            Row(
                sub.student,
                sub.path.name,
                "",
                False,
                "not graded: not a course notebook (keep the course's file name, e.g. 01-pytorch-basics.ipynb)",
            )
        ]
    course_student, _ = student_notebook(nbformat.read(source, as_version=4), str(source))
    rebuilt = rebuild(course_student, submitted)
    ids = set(rebuilt.exercises)
    mine = {
        name: src for name, src in hidden.items() if any(re.search(rf"\bhidden_{e[:2]}_{e[3:]}\b", src) for e in ids)
    }
    run = run_notebook(rebuilt.cells, source.name, mine, rebuilt.exercises, limits, threads, sub.student)
    return rows_for(sub, rebuilt, run, limits)


# ----------------------------------------------------------------------------- the whole class


def grade(
    submissions_dir: Path,
    course_dir: Path,
    hidden_dir: Path | None = None,
    jobs: int | None = None,
    limits: Limits = Limits(),
    progress: bool = True,
) -> list[Row]:
    """Grade every submission, ``jobs`` at a time; rows sorted by student, notebook, exercise order."""
    from fedtutor.course.student import course_notebook_paths

    subs = find_submissions(submissions_dir)
    course = {p.name[:2]: p for p in course_notebook_paths(Path(course_dir)) if p.name[:2].isdigit()}
    if not course:
        raise GradeError(f"No course notebooks (NN-name.ipynb) in {course_dir}. Give --course NOTEBOOKS_DIR.")
    hidden = load_hidden_sources(hidden_dir)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(subs)))
    threads = max(1, cores // jobs)  # one job per core: torch's own threads would only fight over them
    from tqdm.auto import tqdm

    results: dict[int, list[Row]] = {}
    with (
        ThreadPoolExecutor(jobs) as pool,
        tqdm(total=len(subs), desc="grading", unit="notebook", disable=not progress) as bar,
    ):
        futures = {pool.submit(grade_submission, s, course, hidden, limits, threads): i for i, s in enumerate(subs)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as err:  # noqa: BLE001 - one notebook's failure never stops the class
                detail = f"{type(err).__name__}: {err}"[:300]
                results[i] = [
                    Row(
                        subs[i].student,
                        subs[i].path.name,
                        "",
                        False,
                        "not graded: the grader failed",
                        instructor_detail=detail,
                    )
                ]
            bar.update()
    return [row for i in range(len(subs)) for row in results[i]]


def write_csvs(rows: list[Row], out: Path) -> tuple[Path, Path, Path]:
    """``out`` for students, ``<out>-instructor.csv`` with hidden details, ``<out>-summary.csv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    instructor, summary_path = out.with_name(f"{out.stem}-instructor.csv"), out.with_name(f"{out.stem}-summary.csv")
    for path, header, cells in (
        (out, STUDENT_COLUMNS, Row.student_row),
        (instructor, INSTRUCTOR_COLUMNS, Row.instructor_row),
    ):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(cells(r) for r in rows)
    with open(summary_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(summary(rows))
    return out, instructor, summary_path


SUMMARY_COLUMNS = ["exercise", "notebooks", "passed", "wrong", "hidden test failed", "not answered", "not graded"]


def summary(rows: list[Row]) -> list[list[Any]]:
    """One line per exercise: how many notebooks passed, were wrong, unanswered or not graded."""
    table: dict[str, Counter] = {}
    for row in rows:
        kind = (
            "passed"
            if row.passed
            else HIDDEN_FAILED
            if row.feedback == HIDDEN_FAILED
            else "not answered"
            if row.feedback.startswith("not answered")
            else "not graded"
            if row.feedback.startswith("not graded")
            else "wrong"
        )
        table.setdefault(row.exercise or "(none)", Counter())[kind] += 1
    return [[ex, sum(c.values()), *(c[k] for k in SUMMARY_COLUMNS[2:])] for ex, c in sorted(table.items())]


def format_summary(rows: list[Row]) -> str:
    lines = [SUMMARY_COLUMNS, *[[str(v) for v in line] for line in summary(rows)]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(SUMMARY_COLUMNS))]
    return "\n".join(
        "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths, strict=True)))
        for line in lines
    )


def grade_command(args: argparse.Namespace) -> int:
    from fedtutor.course.student import CourseError
    from fedtutor.course.workspace import course_notebooks_dir

    try:
        course = Path(args.course) if args.course else course_notebooks_dir()
        limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
        if not sys.platform.startswith("linux"):
            print("fedtutor grade: no memory limit on this system (it needs Linux); the time limit applies.")
        rows = grade(
            Path(args.submissions), course, Path(args.hidden_tests) if args.hidden_tests else None, args.jobs, limits
        )
    except (GradeError, CourseError) as err:  # all raised by the checks of the inputs, before any notebook runs
        from fedtutor.course.cli import UsageError

        raise UsageError(str(err)) from None  # exit 2, one line, as for any bad option
    paths = write_csvs(rows, Path(args.out))
    print(format_summary(rows))
    print(
        f"\nfor students:    {paths[0]}\nfor you only:    {paths[1]} (hidden tests' details)\nsummary:         "
        f"{paths[2]}"
    )
    return 0


def add_grade_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="grade a class's notebooks: run each in a fresh kernel with limits, re-run the checks, write CSVs",
        description="Grade SUBMISSIONS_DIR (one sub-folder or .ipynb per student). Each notebook runs in quick "
        "mode in a fresh kernel of its own, in a temporary folder, with a time and memory limit; only the code in "
        "its answer regions is taken from the student (other cells run as in the course). Every check is re-run "
        "by the grader, then the hidden tests. Writes OUT (for students), OUT-instructor.csv and OUT-summary.csv.",
    )
    parser.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="one sub-folder or .ipynb per student")
    parser.add_argument("--out", default="results.csv", help="the students' CSV (default: results.csv)")
    parser.add_argument("--hidden-tests", metavar="DIR", help="python files defining hidden_NN_k(namespace)")
    parser.add_argument(
        "--course", metavar="NOTEBOOKS_DIR", help="the course's source notebooks (default: this install's)"
    )
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook, cells together (120)")
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=6144,
        help="address-space limit per process in MB, Linux only (6144; torch alone reserves ~3300)",
    )
    parser.set_defaults(func=grade_command)
