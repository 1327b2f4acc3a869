"""Set slide metadata on the course notebooks, for ``jupyter nbconvert --to slides``.

The main ideas of a lesson are its sections, so each markdown cell that opens with a heading
of level 1 or 2 (``#``, ``##``) starts a slide; a level-3 heading starts a sub-slide (below
its section in reveal.js); other markdown appears as a fragment of the slide it is on; code
cells stay on their slide ("-"), except the setup cell, kept out of the deck ("skip"), and
exercise cells (solutions!), also skipped. Only ``metadata.slideshow`` changes: sources and
outputs are untouched, so re-running is harmless.

Usage:  python scripts/slides.py [NOTEBOOK ...]      (default: notebooks/*.ipynb)
        jupyter nbconvert --to slides notebooks/01-pytorch-basics.ipynb
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"^(#{1,6})\s")


def slide_type(cell: dict, index: int) -> str:
    """The reveal.js role of one cell (see the module docstring)."""
    source = "".join(cell.get("source", ""))
    if cell["cell_type"] == "markdown":
        first = source.lstrip().split("\n", 1)[0]
        match = HEADING.match(first)
        if index == 0 or (match and len(match.group(1)) <= 2):
            return "slide"
        return "subslide" if match and len(match.group(1)) == 3 else "fragment"
    if cell["cell_type"] == "code":
        if "### BEGIN SOLUTION" in source or "raise NotImplementedError" in source or index <= 1:
            return "skip"
        return "-"
    return "skip"


def add_slide_metadata(nb: dict) -> int:
    """Set ``metadata.slideshow.slide_type`` on every cell; returns the number of slides."""
    for index, cell in enumerate(nb["cells"]):
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": slide_type(cell, index)}
    return sum(cell["metadata"]["slideshow"]["slide_type"] in ("slide", "subslide") for cell in nb["cells"])


def process(path: Path) -> int:
    """Add the metadata to one notebook file in place, keeping its JSON layout (nbformat's)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    slides = add_slide_metadata(nb)
    text = nbformat.writes(nb) + "\n"
    if path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return slides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    for path in paths:
        try:
            print(f"{path.name}: {process(path)} slides")
        except (OSError, ValueError, json.JSONDecodeError) as err:
            print(f"{path}: cannot add slide metadata: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
