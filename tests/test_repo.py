"""Repository-level promises: lint-clean code and notebooks, stripped notebooks, CI = README."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_is_clean():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_notebooks_are_committed_stripped_with_python3_kernel():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"


def test_notebook_names_follow_the_course_order():
    names = [p.name for p in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", n) for n in names), names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(len(names))]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Run the tests**", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = _readme_test_command()
    assert "pytest" in command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run does not run the README's test command: {command}"


def _line_budget():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import line_budget
    finally:
        sys.path.pop(0)
    return line_budget


def test_library_and_course_machinery_stay_within_their_line_budgets():
    budget = _line_budget()
    library, course = sum(budget.library().values()), sum(budget.course().values())
    assert library <= budget.LIBRARY_BUDGET, f"fedtutor/*.py has {library:,} non-blank lines (budget 2,500)"
    assert course <= budget.COURSE_BUDGET, f"fedtutor/course has {course:,} non-blank lines"


def test_contributing_shows_the_current_line_counts():
    contributing = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
    assert _line_budget().tables() in contributing, "run `python scripts/line_budget.py` and paste its tables"


def test_every_library_module_lists_its_public_names_and_they_exist():
    import importlib

    for path in sorted((ROOT / "fedtutor").glob("*.py")):
        if path.stem.startswith("__"):
            continue
        module = importlib.import_module(f"fedtutor.{path.stem}")
        assert module.__all__, f"fedtutor/{path.name} has an empty __all__"
        missing = [
            name for name in module.__all__ if not hasattr(module, name) and name not in ("client_app", "server_app")
        ]
        assert not missing, f"fedtutor/{path.name} lists names it does not define: {missing}"
