"""The learner's own workspace (``fedtutor start``).

``start_workspace`` copies the student version of every course notebook into a folder the
learner owns (default ``~/fedtutor-course``), outside the course repository, so ``git pull``
never touches their work. It never overwrites a file there: when the course changes a notebook
the learner already has, the new version is saved next to it as ``NN-name (course update 1).ipynb``
and the change is listed. A small manifest in ``.fedtutor/copied.json`` remembers what was
copied, which is how it tells "the course changed" from "you edited it".

A class edition (``fedtutor edition``) has a marker file ``.fedtutor-class`` beside its
notebooks; ``start`` copies it into the workspace too, so ``solution()`` says solutions are off
there as well. A file of that name already in the workspace is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedtutor.course.student import (
    PACKAGED_NOTEBOOKS,
    CourseError,
    course_notebook_paths,
    student_versions,
    write_atomically,
    write_new_file,
)

MANIFEST = Path(".fedtutor") / "copied.json"


def default_workspace() -> Path:
    return Path.home() / "fedtutor-course"


def course_notebooks_dir() -> Path:
    """Where the installed course's source notebooks are.

    ``pip install -e .`` from a clone: the clone's ``notebooks/``, next to the package (so a
    ``git pull`` is picked up by the next ``fedtutor start``). A wheel: the copies shipped
    inside the package as ``fedtutor/_notebooks/``.
    """
    clone = Path(__file__).resolve().parents[2]  # fedtutor/course/workspace.py -> the clone
    if (clone / "pyproject.toml").is_file() and course_notebook_paths(clone / "notebooks"):
        return clone / "notebooks"
    if course_notebook_paths(PACKAGED_NOTEBOOKS):
        return PACKAGED_NOTEBOOKS
    raise CourseError(
        f"Cannot find the course notebooks (looked in {clone / 'notebooks'} and {PACKAGED_NOTEBOOKS}). "
        "Fix: install the course from a clone with `pip install -e .`, or pass --course NOTEBOOKS_DIR."
    )


@dataclass(frozen=True)
class Change:
    """What ``start_workspace`` did with one course notebook."""

    notebook: str
    kind: str  # "added", "restored", "same", "yours", "update", "update-saved-before", "blocked",
    # and for a class edition's marker: "class" (copied) or "class-kept" (one is there already)
    edited: bool = False  # the learner changed their copy since it was copied
    saved_as: str = ""  # for updates: the file holding the new course version
    problem: str = ""  # for "blocked": what stands where the notebook should go

    def describe(self) -> str:
        if self.kind == "blocked":
            return (
                f"  ! {self.problem}, so the course's {self.notebook} was not copied (nothing there was touched).\n"
                "      Fix: rename or move it away, then run `fedtutor start` again."
            )
        if self.kind == "class":
            return f"  + {self.notebook}  (a class edition: solution() is off in this workspace)"
        if self.kind == "added":
            return f"  + {self.notebook}  (new)"
        if self.kind == "restored":
            return f"  + {self.notebook}  (it was missing, so here it is again)"
        if self.kind == "update-saved-before" and self.saved_as:
            return f'  ({self.notebook}: the course update saved earlier is in "{self.saved_as}".)'
        if self.kind != "update":
            return ""
        yours = (
            "Your copy, with your edits, is kept exactly as it is."
            if self.edited
            else "Your copy is kept; you had not changed it, so you may delete it and use the new one."
        )
        return (
            f"  ! {self.notebook}: the course changed this notebook since you copied it.\n"
            f"      {yours}\n"
            f'      The new version is saved as "{self.saved_as}".'
        )


def sha256(content: str | bytes) -> str:
    return hashlib.sha256(content.encode("utf-8") if isinstance(content, str) else content).hexdigest()


def entry_problem(path: Path) -> str | None:
    """What makes ``path`` unusable as a notebook file ("... is a folder"); None if absent or a regular file.

    Checked before any read: reading a named pipe would hang, a folder raises.
    """
    try:
        mode = os.stat(path).st_mode  # follows a symbolic link to what it points at
    except (FileNotFoundError, NotADirectoryError):
        return f"{path} is a broken symbolic link" if os.path.islink(path) else None
    except OSError as err:
        return f"{path} cannot be read ({err.strerror})"
    if stat.S_ISDIR(mode):
        return f"{path} is a folder"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file (a pipe, socket or device)"
    return None


def check_manifest(workspace: Path) -> None:
    """The manifest's place must hold a folder ``.fedtutor`` and, if anything, a file in it."""
    folder = workspace / MANIFEST.parent
    if os.path.lexists(folder) and not folder.is_dir():
        raise CourseError(
            f"{folder} is not a folder: fedtutor keeps its list of the notebooks it copied there "
            f"({MANIFEST}). Nothing was copied. Fix: rename or delete {folder}, then run `fedtutor start` again."
        )
    problem = entry_problem(workspace / MANIFEST)
    if problem:
        raise CourseError(
            f"{problem}: fedtutor keeps its list of the notebooks it copied there. Nothing was copied. "
            f"Fix: rename or delete it, then run `fedtutor start` again."
        )


def load_manifest(workspace: Path) -> dict[str, dict[str, str]]:
    path = workspace / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["notebooks"]
    except (ValueError, KeyError, TypeError):
        # A damaged manifest only costs us the "did you edit it" distinction: files stay safe.
        return {}


def save_manifest(workspace: Path, notebooks: dict[str, dict[str, str]]) -> None:
    text = json.dumps({"format": 1, "notebooks": notebooks}, indent=1, sort_keys=True) + "\n"
    write_atomically(workspace / MANIFEST, text)


def update_name(notebook: str, k: int) -> str:
    return f"{Path(notebook).stem} (course update {k}).ipynb"


def save_update(workspace: Path, notebook: str, text: str) -> str:
    """Save a new course version next to the learner's copy; reuses an identical earlier update."""
    k = 1
    while os.path.lexists(workspace / update_name(notebook, k)):  # a broken link takes its name too
        candidate = workspace / update_name(notebook, k)
        if entry_problem(candidate) is None and candidate.read_bytes() == text.encode("utf-8"):
            return update_name(notebook, k)
        k += 1
    write_new_file(workspace / update_name(notebook, k), text)
    return update_name(notebook, k)


def check_workspace(workspace: Path, course: Path) -> None:
    inside_course = workspace.resolve() == course.resolve() or course.resolve() in workspace.resolve().parents
    if inside_course:
        raise CourseError(
            f"{workspace} is inside the course's own notebooks ({course}); a course update could overwrite "
            "your work there. Fix: choose a folder of your own, e.g. `fedtutor start ~/fedtutor-course`."
        )
    if workspace.exists() and not workspace.is_dir():
        raise CourseError(f"{workspace} is a file, not a folder. Fix: choose another workspace folder.")


def start_workspace(workspace: Path, course: Path | None = None) -> list[Change]:
    """Copy the student version of every course notebook into ``workspace``; never overwrite.

    Per notebook: missing in the workspace -> copied; identical -> nothing to do; the
    course version unchanged since it was copied (the learner edited theirs) -> nothing to do;
    otherwise the course changed -> the new version is saved beside the learner's copy.
    """
    workspace = Path(workspace).expanduser()
    course = Path(course) if course is not None else course_notebooks_dir()
    check_workspace(workspace, course)
    check_manifest(workspace)
    versions = student_versions(course)  # may raise MarkerError: then nothing is touched
    workspace.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(workspace)
    changes = []
    for name, (text, _) in versions.items():
        change, entry = sync_notebook(workspace, name, text, dict(manifest.get(name, {})))
        manifest[name] = entry
        changes.append(change)
    save_manifest(workspace, manifest)
    marker = sync_class_marker(workspace, course)
    return changes + ([marker] if marker else [])


def sync_class_marker(workspace: Path, course: Path) -> Change | None:
    """Copy a class edition's marker into the workspace, so ``solution()`` stays off there; None for a
    self-learner's course (no marker). Whatever already has the marker's name is never written over."""
    from fedtutor.course.edition import MARKER

    source, target = course / MARKER, workspace / MARKER
    if not source.is_file():
        return None
    problem = entry_problem(target)
    if problem:  # e.g. a folder of that name: solution() would stay on, so say so
        return Change(MARKER, "blocked", problem=f"{problem} (so solution() is not off here)")
    if os.path.lexists(target):  # a file: a marker already, whatever it says
        return Change(MARKER, "class-kept")
    try:
        write_new_file(target, source.read_text(encoding="utf-8", errors="replace"))
    except OSError as err:  # e.g. it appeared meanwhile: never written over
        return Change(MARKER, "blocked", problem=f"{target} cannot be written ({err.strerror})")
    return Change(MARKER, "class")


def sync_notebook(workspace: Path, name: str, text: str, entry: dict[str, str]) -> tuple[Change, dict[str, str]]:
    """One notebook of ``start_workspace``; returns what happened and its new manifest entry.

    Something else where the notebook should go (a folder, a broken link, a pipe) is reported
    and left alone, and the manifest entry stays as it was.
    """
    target, digest = workspace / name, sha256(text)
    problem = entry_problem(target)
    if problem:
        return Change(name, "blocked", problem=problem), entry
    try:
        if not os.path.lexists(target):
            write_new_file(target, text)
            return Change(name, "restored" if entry else "added"), {"copied": digest}
        current = sha256(target.read_bytes())  # bytes: whatever the learner saved, even if not UTF-8
    except OSError as err:  # e.g. unreadable, or appeared meanwhile: never written over
        return Change(name, "blocked", problem=f"{target} cannot be used ({err.strerror})"), entry
    edited = "copied" in entry and current != entry["copied"]
    if current == digest:
        return Change(name, "same"), {**entry, "copied": entry.get("copied", digest)}
    if digest == entry.get("copied"):
        return Change(name, "yours", edited=True), entry
    if digest == entry.get("offered"):
        still_there = (workspace / entry.get("offered_as", "")).is_file()  # "" names the folder: False
        return Change(name, "update-saved-before", edited, entry["offered_as"] if still_there else ""), entry
    saved_as = save_update(workspace, name, text)
    return Change(name, "update", edited or not entry, saved_as), {**entry, "offered": digest, "offered_as": saved_as}


def summary(workspace: Path, changes: Sequence[Change]) -> str:
    """What a learner reads after ``fedtutor start``."""
    lines = [f"Your course workspace: {workspace}"]
    lines += [c.describe() for c in changes if c.describe()]
    quiet = [c for c in changes if c.kind in ("same", "yours", "update-saved-before")]
    if quiet:
        edited = sum(c.edited for c in quiet)
        lines.append(f"  {len(quiet)} notebook(s) already here ({edited} with your edits).")
    lines.append("Your files here are never overwritten: course updates arrive as new files.")
    return "\n".join(lines)


def jupyter_command(workspace: Path, open_browser: bool = True, extra: Sequence[str] = ()) -> list[str]:
    """The JupyterLab command ``fedtutor start`` runs, rooted at the workspace.

    As root (a Docker container, typically) JupyterLab refuses to start without ``--allow-root``;
    whoever runs the course as root already runs everything else as root, so we pass it.
    """
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={workspace}"]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command + list(extra)


def running_server(workspace: Path) -> str | None:
    """The address of a Jupyter server already serving ``workspace``, or None.

    Jupyter servers register themselves in Jupyter's runtime folder (``jpserver-*.json``, with
    their pid, URL, token and root folder); ``list_running_servers`` skips those whose process ended.
    """
    try:
        from jupyter_server.serverapp import list_running_servers

        target = workspace.expanduser().resolve()
        for info in list_running_servers():
            root = info.get("root_dir") or info.get("notebook_dir")
            if root and Path(root).expanduser().resolve() == target:
                token = info.get("token")
                return f"{info['url']}lab" + (f"?token={token}" if token else "")
    except (ImportError, OSError, ValueError, KeyError, TypeError):  # no jupyter_server, or a damaged file
        return None
    return None


def launch_jupyter(workspace: Path, open_browser: bool = True, extra: Sequence[str] = ()) -> int:
    try:
        import jupyterlab  # noqa: F401 - only to give a clear message when it is missing
    except ModuleNotFoundError:
        print(f'JupyterLab is not installed. Fix: pip install "jupyterlab>=4", then open {workspace}.')
        return 1
    print("Starting JupyterLab (stop it with Ctrl+C) ...", flush=True)
    process = subprocess.Popen(jupyter_command(workspace, open_browser, extra), cwd=workspace)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            # JupyterLab received the same Ctrl+C and shuts itself and its kernels down cleanly
            # (or asks to confirm); killing it here, as subprocess.call would, orphans kernels.
            continue
