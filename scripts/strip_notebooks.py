"""Strip outputs and execution counts from notebooks, in place (the course commits clean notebooks).

Usage: python scripts/strip_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
Also sets the kernel to ``python3`` so nbval and ``fedtutor start`` find it on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def strip(path: Path) -> bool:
    """Returns True when the file changed."""
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("*.ipynb"))
    changed = [str(p) for p in paths if strip(p)]
    print(f"stripped {len(changed)} of {len(paths)} notebook(s)" + (f": {', '.join(changed)}" if changed else ""))
