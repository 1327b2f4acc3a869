"""``fedtutor grade`` end to end on a small course notebook and a class of fake students.

The course notebook made here has two real exercises (01.1 broadcasting, 01.2 autograd), so a
kernel starts in a few seconds. The expected feedback of a wrong answer is what the course's
own checker says about that answer, asked directly here.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import nbformat
import pytest
import torch

from fedtutor.course import grading
from fedtutor.course.exercises import EXERCISES
from fedtutor.course.student import student_notebook

TIMEOUT_S = 12.0
COURSE_01 = Path(__file__).resolve().parents[1] / "notebooks" / "01-pytorch-basics.ipynb"
SETUP = "import torch\n\nfrom fedtutor.course import check, hint, solution  # noqa: F401"
WRONG_1 = "table = 10 * a.reshape(1, -1) + b.reshape(-1, 1)"  # rows and columns swapped
WRONG_2 = "w.requires_grad_()\nf = (w**2).sum()\nf.backward()\ngrad = w.grad"  # the derivative of w**2
INT_1 = "table = (10 * a.reshape(-1, 1) + b).int()"  # right values, but integers
HIDDEN = """
import torch


def hidden_01_1(namespace):
    assert namespace["table"].dtype == torch.float32, "SECRET: table must be float32"


def hidden_01_2_leaf(namespace):
    assert namespace["w"].is_leaf
"""


def exercise_cell(exercise: str) -> str:
    """The real course cell of ``exercise`` (notebook 01), so the test follows the course."""
    cells = nbformat.read(COURSE_01, as_version=4).cells
    return next(c.source for c in cells if c.cell_type == "code" and f'check("{exercise}"' in c.source)


def course_notebook() -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell("# 01 · tiny\n\n**By the end you will be able to**\n1. broadcast\n2. autograd"),
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_markdown_cell("**Exercise 01.1.** Build the table."),
        nbformat.v4.new_code_cell(exercise_cell("01.1")),
        nbformat.v4.new_markdown_cell("**Exercise 01.2.** The gradient of `(w**3).sum()`."),
        nbformat.v4.new_code_cell(exercise_cell("01.2")),
        nbformat.v4.new_code_cell("finished = True"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def answered(student_version: nbformat.NotebookNode, answers: dict[int, str]) -> nbformat.NotebookNode:
    """A student's copy: the placeholder of cell ``i`` replaced by ``answers[i]``."""
    nb = nbformat.from_dict(json.loads(json.dumps(student_version)))
    for index, code in answers.items():
        lines = nb.cells[index].source.split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("# YOUR CODE HERE"))
        nb.cells[index].source = "\n".join([*lines[:at], code, *lines[at + 2 :]])
    return nb


def solution_of(exercise: str) -> str:
    source = exercise_cell(exercise).split("\n")
    begin, end = source.index("### BEGIN SOLUTION"), source.index("### END SOLUTION")
    return "\n".join(source[begin + 1 : end])


def feedback(exercise: str, code: str, learner: str, monkeypatch) -> str:
    """What the course's checker itself says about ``code`` run as that learner's cell."""
    monkeypatch.setenv("FEDTUTOR_LEARNER", learner)
    calls = []
    namespace = {"torch": torch, "check": lambda ex, *answer: calls.append(answer)}
    namespace["given"] = __import__("fedtutor.course.exercises", fromlist=["given"]).given
    exec(exercise_cell(exercise).replace(solution_of(exercise), code), namespace)
    try:
        note = EXERCISES[exercise].checker(*calls[0])
    except AssertionError as err:
        return str(err).strip().split("\n")[0][:300]
    return "correct" + (f". {note}" if note else "")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    course = root / "course"
    course.mkdir()
    source = course_notebook()
    nbformat.write(source, course / "01-tiny.ipynb")
    student, _ = student_notebook(source, "01-tiny.ipynb")  # same cell ids, as `fedtutor start` copies
    (root / "hidden").mkdir()
    (root / "hidden" / "tests_01.py").write_text(HIDDEN)
    right_1, right_2 = solution_of("01.1"), solution_of("01.2")
    edited = answered(student, {3: right_1, 5: right_2})
    edited.cells[1].source = SETUP + "\ncheck = lambda *answer: True  # cheat"  # edited outside an answer
    edited.cells[5].source = edited.cells[5].source.replace('check("01.2", w, grad)', 'check("01.2", w, 3 * w**2)')
    edited.cells.insert(6, nbformat.v4.new_code_cell("table = 'overwritten by an added cell'"))
    students = {
        "ada": answered(student, {3: right_1, 5: right_2}),
        "bob": answered(student, {3: WRONG_1, 5: WRONG_2}),
        "cy": student,  # never answered
        "dee": answered(student, {3: "raise RuntimeError('my own bug')", 5: right_2}),
        "eve": answered(student, {3: right_1, 5: "while True:\n    pass"}),
        "fay": answered(
            student,
            {
                3: right_1,
                5: "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                "    except KeyboardInterrupt:\n        pass",
            },
        ),
        "gus": edited,
        "hal": answered(student, {3: INT_1, 5: right_2}),
    }
    subs = root / "submissions"
    for name, nb in students.items():
        if name == "ada":  # a plain file per student works too
            subs.mkdir(exist_ok=True)
            nbformat.write(nb, subs / "ada.ipynb")
        else:
            (subs / name).mkdir(parents=True)
            nbformat.write(nb, subs / name / "01-tiny.ipynb")
    (subs / "ivy").mkdir()
    (subs / "ivy" / "01-tiny.ipynb").write_text("{ this is not json")
    start = time.monotonic()
    rows = grading.grade(
        subs, course, root / "hidden", jobs=2, limits=grading.Limits(timeout_s=TIMEOUT_S), progress=False
    )
    seconds = time.monotonic() - start
    paths = grading.write_csvs(rows, root / "out" / "results.csv")
    return rows, paths, seconds


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_results_csv_is_exactly_as_expected(graded, monkeypatch):
    _, (students_csv, _, _), _ = graded

    def right(exercise: str, learner: str) -> str:
        return feedback(exercise, solution_of(exercise), learner, monkeypatch)

    wrong_1, wrong_2 = feedback("01.1", WRONG_1, "bob", monkeypatch), feedback("01.2", WRONG_2, "bob", monkeypatch)
    assert not wrong_1.startswith("correct") and not wrong_2.startswith("correct")
    limit = f"{TIMEOUT_S:g} s"
    expected = [
        grading.STUDENT_COLUMNS,
        ["ada", "ada.ipynb", "01.1", "yes", right("01.1", "ada")],
        ["ada", "ada.ipynb", "01.2", "yes", right("01.2", "ada")],
        ["bob", "01-tiny.ipynb", "01.1", "no", wrong_1],
        ["bob", "01-tiny.ipynb", "01.2", "no", wrong_2],
        ["cy", "01-tiny.ipynb", "01.1", "no", "not answered: the cell still holds the placeholder"],
        ["cy", "01-tiny.ipynb", "01.2", "no", "not answered: the cell still holds the placeholder"],
        ["dee", "01-tiny.ipynb", "01.1", "no", "not answered: your cell raised RuntimeError: my own bug"],
        ["dee", "01-tiny.ipynb", "01.2", "yes", right("01.2", "dee")],
        ["eve", "01-tiny.ipynb", "01.1", "yes", right("01.1", "eve")],
        [
            "eve",
            "01-tiny.ipynb",
            "01.2",
            "no",
            f"not graded: the cell was still running at the time limit ({limit}) and was stopped",
        ],
        [
            "fay",
            "01-tiny.ipynb",
            "01.1",
            "no",
            f"not graded: the notebook ran past its time limit ({limit}) and was stopped",
        ],
        [
            "fay",
            "01-tiny.ipynb",
            "01.2",
            "no",
            f"not graded: the notebook ran past its time limit ({limit}) and was stopped",
        ],
        ["gus", "01-tiny.ipynb", "01.1", "yes", right("01.1", "gus")],
        ["gus", "01-tiny.ipynb", "01.2", "yes", right("01.2", "gus")],
        ["hal", "01-tiny.ipynb", "01.1", "no", grading.HIDDEN_FAILED],
        ["hal", "01-tiny.ipynb", "01.2", "yes", right("01.2", "hal")],
        [
            "ivy",
            "01-tiny.ipynb",
            "",
            "no",
            "not graded: not a readable notebook (Expecting property name enclosed in "
            "double quotes: line 1 column 3 (char 2))",
        ],
    ]
    assert read_csv(students_csv) == expected


def test_hidden_tests_stay_out_of_the_students_csv(graded):
    _, (students_csv, instructor_csv, _), _ = graded
    assert "SECRET" not in students_csv.read_text() and "hidden_01" not in students_csv.read_text()
    rows = {(r[0], r[2]): r for r in read_csv(instructor_csv)[1:]}
    hal = rows[("hal", "01.1")]
    assert hal[5] == "0/1 passed" and "tests_01.py::hidden_01_1" in hal[6] and "SECRET" in hal[6]
    assert rows[("ada", "01.1")][5] == "1/1 passed" and rows[("ada", "01.2")][5] == "1/1 passed"
    assert rows[("bob", "01.1")][5] == ""  # hidden tests run only once the visible check passes


def test_edits_outside_answers_are_restored_and_listed(graded):
    _, (_, instructor_csv, _), _ = graded
    edits = {r[0]: r[7] for r in read_csv(instructor_csv)[1:]}
    assert "cell 2 edited" in edits["gus"] and "cell 6 edited outside its answer region" in edits["gus"]
    assert "1 code cell(s) added" in edits["gus"]
    assert edits["ada"] == edits["bob"] == edits["cy"] == ""


def test_summary_counts_each_exercise(graded):
    _, (_, _, summary_csv), _ = graded
    table = read_csv(summary_csv)
    assert table[0] == grading.SUMMARY_COLUMNS
    by_ex = {r[0]: r[1:] for r in table[1:]}
    # notebooks, passed, wrong, hidden test failed, not answered, not graded (from the CSV above)
    assert by_ex == {
        "01.1": ["8", "3", "1", "1", "2", "1"],
        "01.2": ["8", "4", "1", "0", "1", "2"],
        "(none)": ["1", "0", "0", "0", "0", "1"],
    }


def test_run_stays_within_its_limits(graded):
    _, _, seconds = graded
    # 9 notebooks, 2 at a time; the slowest one is stopped after startup + 2 x timeout + 15 s
    assert seconds < grading.STARTUP_S + 4 * TIMEOUT_S + 60


def test_a_memory_hog_is_stopped_by_the_limit(tmp_path):
    if not grading.sys.platform.startswith("linux"):
        pytest.skip("the address-space limit is Linux only")
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "import torch\nbig = torch.ones(2**31)  # 8 GiB of float32",
        }
    ]
    run = grading.run_notebook(cells, "hog.ipynb", {}, [], grading.Limits(timeout_s=30, memory_mb=6144))
    assert run["status"] == "ok"
    assert "RuntimeError" in run["cells"]["1"]["error"] or "MemoryError" in run["cells"]["1"]["error"]


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(grading.GradeError, match="not a folder"):
        grading.find_submissions(tmp_path / "missing")
    with pytest.raises(grading.GradeError, match="No notebooks"):
        grading.find_submissions(tmp_path)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "t.py").write_text("def helper(ns):\n    pass\n")
    with pytest.raises(grading.GradeError, match="no functions named hidden_NN_k"):
        grading.load_hidden_sources(tmp_path / "h")
    (tmp_path / "h" / "t.py").write_text("def hidden_01_1(ns) oops")
    with pytest.raises(grading.GradeError, match="SyntaxError"):
        grading.load_hidden_sources(tmp_path / "h")


def test_grade_is_a_subcommand(tmp_path, capsys):
    from fedtutor.course.cli import main

    assert main(["grade", str(tmp_path / "nowhere"), "--course", str(tmp_path)]) == 2  # a bad input: usage error
    err = capsys.readouterr().err
    assert "fedtutor grade: error: " in err and "not a folder" in err
