"""The learner's workspace (``fedtutor start``): copies, never overwrites, reports what it skipped.

Every test that has learner files in the workspace hash-checks them before and after: no learner
byte ever changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell
from test_student import EXERCISE, make_notebook, write

from fedtutor.course import student, workspace
from fedtutor.course.cli import main
from fedtutor.course.student import MarkerError

REPO = Path(__file__).resolve().parent.parent


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
    assert main(["start", str(course), "--copy-only", "--course", str(course)]) == 2
    assert "inside the course's own notebooks" in capsys.readouterr().err


def test_jupyter_command_is_rooted_at_the_workspace(tmp_path):
    command = workspace.jupyter_command(tmp_path, open_browser=False)
    assert command[1:3] == ["-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command and "--no-browser" in command
    assert "--no-browser" not in workspace.jupyter_command(tmp_path, open_browser=True)


def test_course_notebooks_come_from_the_clone_in_an_editable_install():
    assert workspace.course_notebooks_dir() == REPO / "notebooks"
    assert workspace.default_workspace().parent == Path.home()


# ----------------------------------------------------------------------------- entries in the way


def fingerprint(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: sha256 of a file's bytes, or what else it is (folder, link, pipe)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            found[name] = "folder"
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[name] = "other"
    return found


def make_blocker(target: Path, kind: str) -> None:
    if kind == "dangling symlink":
        target.symlink_to(target.parent / "gone.ipynb")
    elif kind == "folder":
        target.mkdir()
        (target / "inside.txt").write_text("mine", encoding="utf-8")
    elif kind == "named pipe":
        if not hasattr(os, "mkfifo"):
            pytest.skip("this OS has no named pipes")
        os.mkfifo(target)


@pytest.mark.parametrize(
    "kind, said",
    [
        ("dangling symlink", "is a broken symbolic link"),
        ("folder", "is a folder"),
        ("named pipe", "is not a regular file"),
    ],
)
def test_an_entry_blocking_one_notebook_is_reported_and_the_others_are_copied(tmp_path, course, kind, said, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.md").write_text("my notes", encoding="utf-8")
    make_blocker(ws / "01-basics.ipynb", kind)
    before = fingerprint(ws)

    assert main(["start", str(ws), "--copy-only", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert f"! {ws / '01-basics.ipynb'} {said}" in out and "was not copied" in out and "Fix: rename or move it" in out
    assert "+ 02-more.ipynb  (new)" in out
    after = fingerprint(ws)
    assert {name: after[name] for name in before} == before  # no learner byte changed
    assert (ws / "02-more.ipynb").is_file()

    changes = workspace.start_workspace(ws, course)  # again: still reported, still untouched
    assert kinds(changes) == {"01-basics.ipynb": "blocked", "02-more.ipynb": "same"}
    assert {name: fingerprint(ws)[name] for name in before} == before


def test_a_file_where_the_manifest_folder_goes_is_reported_with_the_fix(tmp_path, course, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".fedtutor").write_text("my own file", encoding="utf-8")
    (ws / "01-basics.ipynb").write_text("{}", encoding="utf-8")
    before = fingerprint(ws)
    with pytest.raises(student.CourseError, match=r"\.fedtutor is not a folder.*Fix: rename or delete"):
        workspace.start_workspace(ws, course)
    assert main(["start", str(ws), "--copy-only", "--course", str(course)]) == 1
    err = capsys.readouterr().err
    assert f"{ws / '.fedtutor'} is not a folder" in err and "Fix:" in err and "Traceback" not in err
    assert fingerprint(ws) == before  # nothing copied, nothing changed


def test_a_folder_where_the_manifest_file_goes_is_reported(tmp_path, course):
    ws = tmp_path / "ws"
    workspace.start_workspace(ws, course)
    manifest = ws / workspace.MANIFEST
    manifest.unlink()
    manifest.mkdir()
    before = fingerprint(ws)
    with pytest.raises(student.CourseError, match="is a folder.*Fix: rename or delete it"):
        workspace.start_workspace(ws, course)
    assert fingerprint(ws) == before


# ----------------------------------------------------------------------------- a class edition's marker


@pytest.fixture
def class_course(tmp_path, course) -> Path:
    """The class edition of ``course``, as an instructor hands it out (notebooks + ``.fedtutor-class``)."""
    from fedtutor.course import edition

    edition.build_edition(course, tmp_path / "class")
    assert (tmp_path / "class" / edition.MARKER).is_file()
    return tmp_path / "class"


def test_start_from_a_class_edition_turns_solutions_off_in_the_workspace(tmp_path, class_course, monkeypatch, capsys):
    from fedtutor.course import edition, solution

    monkeypatch.delenv(edition.SOLUTIONS_ENV, raising=False)
    ws = tmp_path / "ws"
    assert main(["start", str(ws), "--copy-only", "--course", str(class_course)]) == 0
    assert "+ .fedtutor-class  (a class edition: solution() is off in this workspace)" in capsys.readouterr().out
    assert (ws / edition.MARKER).read_bytes() == (class_course / edition.MARKER).read_bytes()
    assert "class marker" in edition.solutions_off(ws)
    monkeypatch.chdir(ws)  # where a learner's kernel runs
    solution("05.2")
    assert "Solutions are off for this class" in capsys.readouterr().out

    changes = workspace.start_workspace(ws, class_course)  # again: nothing to copy, nothing to say
    assert kinds(changes)[edition.MARKER] == "class-kept"
    assert ".fedtutor-class" not in workspace.summary(ws, changes)
    assert "2 notebook(s) already here" in workspace.summary(ws, changes)  # the marker is not a notebook


def test_a_self_learners_workspace_gets_no_marker(tmp_path, course):
    from fedtutor.course import edition

    ws = tmp_path / "ws"
    assert edition.MARKER not in kinds(workspace.start_workspace(ws, course))
    assert not (ws / edition.MARKER).exists()


def test_a_learner_file_named_like_the_marker_is_never_overwritten(tmp_path, class_course):
    from fedtutor.course import edition

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / edition.MARKER).write_text("my own notes, not a marker", encoding="utf-8")
    before = fingerprint(ws)
    assert kinds(workspace.start_workspace(ws, class_course))[edition.MARKER] == "class-kept"
    after = fingerprint(ws)
    assert {name: after[name] for name in before} == before
    assert "class marker" in edition.solutions_off(ws)  # a file of that name is a marker, whatever it says


def test_a_folder_where_the_marker_goes_is_reported_and_left_alone(tmp_path, class_course):
    from fedtutor.course import edition

    ws = tmp_path / "ws"
    (ws / edition.MARKER).mkdir(parents=True)
    (ws / edition.MARKER / "inside.txt").write_text("mine", encoding="utf-8")
    before = fingerprint(ws)
    changes = workspace.start_workspace(ws, class_course)
    assert kinds(changes)[edition.MARKER] == "blocked"
    text = workspace.summary(ws, changes)
    assert f"! {ws / edition.MARKER} is a folder (so solution() is not off here)" in text and "Fix: rename" in text
    after = fingerprint(ws)
    assert {name: after[name] for name in before} == before
    assert (ws / "01-basics.ipynb").is_file()  # the notebooks were copied all the same
