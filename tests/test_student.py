"""Student versions (``fedtutor student``): solutions become placeholders, outputs go, nothing else changes."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fedtutor.course import student
from fedtutor.course.cli import main
from fedtutor.course.student import MarkerError, student_notebook, student_source

REPO = Path(__file__).resolve().parent.parent

EXERCISE = """\
# the setup line stays
### BEGIN SOLUTION
answer = 6 * 7  # the secret
### END SOLUTION
check("05.2", answer)"""


def make_notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return path


def regions(source: str):
    found, problems = student.solution_regions(source)
    assert problems == []
    return found


# ----------------------------------------------------------------------------- student versions


def test_solution_region_becomes_a_placeholder_that_raises_with_the_hint():
    student = student_source(EXERCISE, regions(EXERCISE))
    lines = student.split("\n")
    assert lines[0] == "# the setup line stays"
    assert lines[-1] == 'check("05.2", answer)'
    assert "6 * 7" not in student and "secret" not in student and "SOLUTION" not in student
    with pytest.raises(NotImplementedError, match=r"Exercise 05\.2: .*hint\('05\.2'\)"):
        exec(compile(student, "cell", "exec"), {"check": None})


def test_placeholder_keeps_the_indentation_of_the_marker_and_the_code_still_compiles():
    source = (
        "def local_step(model):\n"
        "    x = 1\r\n"  # an odd line ending elsewhere in the cell survives untouched
        "    ### BEGIN SOLUTION\n"
        "    return x + 1\n"
        "    ### END SOLUTION\n"
        "\n"
        "for i in range(2):\n"
        "    ### BEGIN SOLUTION\n"
        "    pass\n"
        "    ### END SOLUTION\n"
        "local_step(None)\n"
    )
    student = student_source(source, regions(source))
    assert student.startswith("def local_step(model):\n    x = 1\r\n    # YOUR CODE HERE")
    assert student.count("    raise NotImplementedError(") == 2
    assert student.endswith("\nlocal_step(None)\n")
    assert "return x + 1" not in student
    namespace: dict = {}
    with pytest.raises(NotImplementedError, match="This exercise is yours"):
        exec(compile(student, "cell", "exec"), namespace)  # no check() call: the generic hint


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        ("x = 1\n### BEGIN SOLUTION\nx = 2\n", 2, "never closed"),
        ("### BEGIN SOLUTION\na = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\n", 3, "inside the region opened"),
        ("a = 1\n### END SOLUTION\n", 2, "without a `### BEGIN SOLUTION`"),
        ("## BEGIN SOLUTION\na = 1\n### END SOLUTION\n", 1, "looks like a marker"),
        ("### BEGIN SOLUTION\na = 1\n### end solution\n", 3, "looks like a marker"),
    ],
)
def test_malformed_markers_are_reported_with_notebook_cell_and_line(tmp_path, source, line, what):
    src = write(tmp_path / "src" / "05-demo.ipynb", make_notebook(new_markdown_cell("# Demo"), new_code_cell(source)))
    dest = tmp_path / "dest"
    with pytest.raises(MarkerError) as caught:
        student.write_student_versions(src.parent, dest)
    problem = caught.value.problems[0]
    assert (Path(problem.notebook).name, problem.cell, problem.line) == ("05-demo.ipynb", 2, line)
    assert what in problem.message
    assert f"05-demo.ipynb, cell 2, line {line}: " in str(caught.value)
    assert not dest.exists()  # nothing written, not even the folder


def test_one_bad_notebook_stops_the_whole_build(tmp_path):
    good = make_notebook(new_code_cell(EXERCISE))
    bad = make_notebook(new_code_cell("### BEGIN SOLUTION\nx = 1"))
    write(tmp_path / "src" / "01-good.ipynb", good)
    write(tmp_path / "src" / "02-bad.ipynb", bad)
    with pytest.raises(MarkerError, match="02-bad.ipynb, cell 1, line 1"):
        student.write_student_versions(tmp_path / "src", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_student_notebook_strips_outputs_and_keeps_every_other_cell_exactly():
    run_cell = new_code_cell("print('hi')", execution_count=3, outputs=[new_output("stream", text="hi\n")])
    run_cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    run_cell.metadata["tags"] = ["keep-me"]
    markdown = new_markdown_cell("Exercise text, mentioning `### BEGIN SOLUTION` as an example.")
    exercise = new_code_cell(EXERCISE, execution_count=4, outputs=[new_output("stream", text="✅\n")])
    nb = make_notebook(markdown, run_cell, exercise)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    original = json.dumps(nb, sort_keys=True)

    student, removed = student_notebook(nb, "05-demo.ipynb")

    assert removed == 1
    assert json.dumps(nb, sort_keys=True) == original  # the source is not modified
    nbformat.validate(student)
    assert "widgets" not in student.metadata
    assert student.cells[0] == markdown  # markers in markdown are prose, left alone
    assert student.cells[1].source == run_cell.source
    assert student.cells[1].metadata == {"tags": ["keep-me"]}
    assert [c.outputs for c in student.cells[1:]] == [[], []]
    assert [c.execution_count for c in student.cells[1:]] == [None, None]
    assert [c.id for c in student.cells] == [c.id for c in nb.cells]
    assert "6 * 7" not in student.cells[2].source


def test_a_clean_notebook_without_solutions_comes_out_byte_for_byte(tmp_path):
    src = write(tmp_path / "src" / "00-intro.ipynb", make_notebook(new_markdown_cell("# Hi"), new_code_cell("x = 1")))
    assert student.write_student_versions(src, tmp_path / "out.ipynb").written == [str(tmp_path / "out.ipynb")]
    assert (tmp_path / "out.ipynb").read_bytes() == src.read_bytes()


def test_existing_different_files_need_force_and_identical_ones_are_unchanged(tmp_path):
    src = tmp_path / "src"
    write(src / "01-a.ipynb", make_notebook(new_code_cell(EXERCISE)))
    write(src / "02-b.ipynb", make_notebook(new_code_cell("y = 2")))
    dest = tmp_path / "dest"
    first = student.write_student_versions(src, dest)
    assert sorted(Path(p).name for p in first.written) == ["01-a.ipynb", "02-b.ipynb"]

    again = student.write_student_versions(src, dest)
    assert (again.written, again.conflicts, len(again.unchanged)) == ([], [], 2)

    (dest / "01-a.ipynb").write_text("instructor's hand edit", encoding="utf-8")
    write(src / "02-b.ipynb", make_notebook(new_code_cell("y = 3")))  # a changed source
    refused = student.write_student_versions(src, dest)
    assert refused.conflicts == [str(dest / "01-a.ipynb"), str(dest / "02-b.ipynb")]
    assert refused.written == []
    assert (dest / "01-a.ipynb").read_text(encoding="utf-8") == "instructor's hand edit"
    assert "y = 2" in (dest / "02-b.ipynb").read_text(encoding="utf-8")  # not even the other file moved

    forced = student.write_student_versions(src, dest, force=True)
    assert len(forced.written) == 2
    assert "y = 3" in (dest / "02-b.ipynb").read_text(encoding="utf-8")


def test_student_refuses_to_write_over_its_own_sources_even_with_force(tmp_path):
    src = write(tmp_path / "src" / "01-a.ipynb", make_notebook(new_code_cell(EXERCISE)))
    with pytest.raises(student.CourseError, match="replace the source notebooks"):
        student.write_student_versions(src.parent, src.parent, force=True)
    assert "6 * 7" in src.read_text(encoding="utf-8")


def test_student_command(tmp_path, capsys):
    src = write(tmp_path / "src" / "01-a.ipynb", make_notebook(new_code_cell(EXERCISE)))
    assert main(["student", str(src.parent), str(tmp_path / "dest")]) == 0
    assert f"wrote     {tmp_path / 'dest' / '01-a.ipynb'}" in capsys.readouterr().out
    (tmp_path / "dest" / "01-a.ipynb").write_text("changed", encoding="utf-8")
    assert main(["student", str(src.parent), str(tmp_path / "dest")]) == 1
    assert "Re-run with --force" in capsys.readouterr().err
    write(src, make_notebook(new_code_cell("### END SOLUTION")))
    assert main(["student", str(src.parent), str(tmp_path / "dest"), "--force"]) == 1
    assert "01-a.ipynb, cell 1, line 1" in capsys.readouterr().err
    assert main(["student", str(tmp_path / "missing"), str(tmp_path / "dest")]) == 2  # a bad argument: usage error
    err = capsys.readouterr().err
    assert "fedtutor student: error: SRC: " in err and "is neither a notebook nor a folder" in err
