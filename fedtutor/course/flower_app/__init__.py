"""The Flower app of notebook 11 as two files a learner reads and edits: client_app.py, server_app.py.

``copy_app(folder)`` puts them in the learner's folder, never replacing a file that is already
there; ``fedtutor.course.launcher.run_deployment(..., app=folder)`` runs them on real processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FILES = ("client_app.py", "server_app.py")
TEMPLATE = Path(__file__).resolve().parent


def copy_app(folder: str | Path) -> dict[str, str]:
    """Copy the app's files into ``folder`` where missing; returns {file name: "written" or "kept"}."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder. Fix: choose another folder for the Flower app.")
    folder.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in FILES:
        target = folder / name
        if target.exists() or target.is_symlink():
            done[name] = "kept"  # the learner's file, as it is
            continue
        with open(TEMPLATE / name, "rb") as source, open(target, "xb") as out:  # "x": never overwrite
            shutil.copyfileobj(source, out)
        done[name] = "written"
    return done
