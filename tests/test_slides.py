"""``scripts/slides.py`` gives every notebook a usable reveal.js deck (applied to temporary copies)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def load_slides():
    spec = importlib.util.spec_from_file_location("slides", ROOT / "scripts" / "slides.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slide_roles():
    slides = load_slides()
    md, code = (lambda s: {"cell_type": "markdown", "source": s}), (lambda s: {"cell_type": "code", "source": s})
    assert slides.slide_type(md("# Title"), 0) == "slide"
    assert slides.slide_type(md("## 2. Autograd\ntext"), 5) == "slide"
    assert slides.slide_type(md("### A detail"), 5) == "subslide"
    assert slides.slide_type(md("Some prose."), 5) == "fragment"
    assert slides.slide_type(code("import fedtutor"), 1) == "skip"  # the setup cell
    assert slides.slide_type(code("x = 1"), 5) == "-"
    assert slides.slide_type(code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), 9) == "skip"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_converts_to_a_sensible_deck(notebook, tmp_path):
    slides = load_slides()
    copy = tmp_path / notebook.name
    shutil.copy(notebook, copy)
    before = json.loads(copy.read_text())
    count = slides.process(copy)
    after = json.loads(copy.read_text())
    assert [c["source"] for c in after["cells"]] == [c["source"] for c in before["cells"]]  # only metadata changes
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", "--output-dir", str(tmp_path), str(copy)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    html = (tmp_path / f"{notebook.stem}.slides.html").read_text()
    sections = len(re.findall(r"<section", html))
    assert 5 <= count <= 60, f"{notebook.name}: {count} slides"
    assert sections >= count  # reveal.js got every slide (subslides nest one section more)
    assert "### BEGIN SOLUTION" not in html  # exercise cells are skipped: no answers on the projector
