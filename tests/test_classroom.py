"""fedtutor.classroom: student versions (``fedtutor student``) and the workspace (``fedtutor start``)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fedtutor.course import student, workspace
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
    assert main(["student", str(tmp_path / "missing"), str(tmp_path / "dest")]) == 1
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the learner's workspace


@pytest.fixture
def course(tmp_path) -> Path:
    folder = tmp_path / "course"
    write(folder / "01-basics.ipynb", make_notebook(new_markdown_cell("# Basics"), new_code_cell(EXERCISE)))
    write(folder / "02-more.ipynb", make_notebook(new_code_cell("x = 2")))
    return folder


def kinds(changes) -> dict[str, str]:
    return {c.notebook: c.kind for c in changes}


def test_start_copies_student_versions_and_a_rerun_changes_nothing(tmp_path, course):
    ws = tmp_path / "ws"
    assert kinds(workspace.start_workspace(ws, course)) == {"01-basics.ipynb": "added", "02-more.ipynb": "added"}
    copied = (ws / "01-basics.ipynb").read_text(encoding="utf-8")
    assert "NotImplementedError" in copied and "6 * 7" not in copied  # the student version, not the source
    assert sorted(p.name for p in ws.glob("*.ipynb")) == ["01-basics.ipynb", "02-more.ipynb"]

    changes = workspace.start_workspace(ws, course)
    assert kinds(changes) == {"01-basics.ipynb": "same", "02-more.ipynb": "same"}
    assert "2 notebook(s) already here (0 with your edits)" in workspace.summary(ws, changes)


def test_start_never_overwrites_and_saves_course_updates_beside_the_learners_copy(tmp_path, course):
    ws = tmp_path / "ws"
    workspace.start_workspace(ws, course)
    mine = (ws / "01-basics.ipynb").read_text(encoding="utf-8").replace("YOUR CODE HERE", "my own work")
    (ws / "01-basics.ipynb").write_text(mine, encoding="utf-8")
    assert kinds(workspace.start_workspace(ws, course))["01-basics.ipynb"] == "yours"  # the course did not change

    write(course / "01-basics.ipynb", make_notebook(new_markdown_cell("# Basics, v2"), new_code_cell(EXERCISE)))
    write(course / "02-more.ipynb", make_notebook(new_code_cell("x = 3")))
    write(course / "03-new.ipynb", make_notebook(new_code_cell("z = 1")))
    changes = {c.notebook: c for c in workspace.start_workspace(ws, course)}

    assert (ws / "01-basics.ipynb").read_text(encoding="utf-8") == mine  # the learner's work, untouched
    assert changes["01-basics.ipynb"].kind == "update" and changes["01-basics.ipynb"].edited
    assert changes["01-basics.ipynb"].saved_as == "01-basics (course update 1).ipynb"
    assert "Basics, v2" in (ws / "01-basics (course update 1).ipynb").read_text(encoding="utf-8")
    assert changes["02-more.ipynb"].kind == "update" and not changes["02-more.ipynb"].edited
    assert "x = 2" in (ws / "02-more.ipynb").read_text(encoding="utf-8")
    assert changes["03-new.ipynb"].kind == "added"
    text = workspace.summary(ws, list(changes.values()))
    assert "! 01-basics.ipynb: the course changed this notebook since you copied it." in text
    assert "Your copy, with your edits, is kept exactly as it is." in text
    assert 'saved as "01-basics (course update 1).ipynb"' in text
    assert "you had not changed it" in text  # 02-more was never edited
    assert "+ 03-new.ipynb  (new)" in text

    # Starting again offers nothing new; a further course change gets the next free name.
    rerun = workspace.start_workspace(ws, course)
    assert kinds(rerun)["01-basics.ipynb"] == "update-saved-before"
    assert '(01-basics.ipynb: the course update saved earlier is in "01-basics (course update 1).ipynb".)' in (
        workspace.summary(ws, rerun)
    )
    assert len(list(ws.glob("01-basics*.ipynb"))) == 2
    write(course / "01-basics.ipynb", make_notebook(new_markdown_cell("# Basics, v3"), new_code_cell(EXERCISE)))
    again = {c.notebook: c for c in workspace.start_workspace(ws, course)}
    assert again["01-basics.ipynb"].saved_as == "01-basics (course update 2).ipynb"
    assert (ws / "01-basics.ipynb").read_text(encoding="utf-8") == mine


def test_start_restores_a_deleted_notebook_and_keeps_unknown_files(tmp_path, course):
    ws = tmp_path / "ws"
    workspace.start_workspace(ws, course)
    (ws / "02-more.ipynb").unlink()
    (ws / "notes.md").write_text("mine", encoding="utf-8")
    assert kinds(workspace.start_workspace(ws, course))["02-more.ipynb"] == "restored"
    assert (ws / "notes.md").read_text(encoding="utf-8") == "mine"


def test_start_treats_a_file_it_did_not_copy_as_the_learners(tmp_path, course):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "01-basics.ipynb").write_text("{}", encoding="utf-8")  # e.g. copied by hand, no manifest
    changes = {c.notebook: c for c in workspace.start_workspace(ws, course)}
    assert (changes["01-basics.ipynb"].kind, changes["01-basics.ipynb"].edited) == ("update", True)
    assert (ws / "01-basics.ipynb").read_text(encoding="utf-8") == "{}"


def test_start_refuses_a_workspace_inside_the_course_and_bad_markers_touch_nothing(tmp_path, course):
    with pytest.raises(student.CourseError, match="choose a folder of your own"):
        workspace.start_workspace(course / "mine", course)
    write(course / "02-more.ipynb", make_notebook(new_code_cell("### BEGIN SOLUTION")))
    with pytest.raises(MarkerError, match="02-more.ipynb, cell 1, line 1"):
        workspace.start_workspace(tmp_path / "ws", course)
    assert not (tmp_path / "ws").exists()


def test_start_command_copy_only(tmp_path, course, capsys):
    ws = tmp_path / "ws"
    assert main(["start", str(ws), "--copy-only", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert f"Your course workspace: {ws}" in out and "+ 02-more.ipynb  (new)" in out
    assert main(["start", str(course), "--copy-only", "--course", str(course)]) == 1
    assert "inside the course's own notebooks" in capsys.readouterr().err


def test_jupyter_command_is_rooted_at_the_workspace(tmp_path):
    command = workspace.jupyter_command(tmp_path, open_browser=False)
    assert command[1:3] == ["-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command and "--no-browser" in command
    assert "--no-browser" not in workspace.jupyter_command(tmp_path, open_browser=True)


def test_course_notebooks_come_from_the_clone_in_an_editable_install():
    assert workspace.course_notebooks_dir() == REPO / "notebooks"
    assert workspace.default_workspace().parent == Path.home()
