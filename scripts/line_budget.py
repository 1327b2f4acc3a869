"""Count the non-blank lines of the library and of the course machinery, against their budgets.

    python scripts/line_budget.py            # print the tables docs/contributing.md holds
    python scripts/line_budget.py --check    # exit 1 when a budget is exceeded

The library (``fedtutor/*.py``) is what learners read: at most 2,500 non-blank lines. The
course machinery (``fedtutor/course/``) runs the course: at most 6,000. tests/test_repo.py
checks both budgets and that docs/contributing.md shows the current counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_BUDGET = 2_500
COURSE_BUDGET = 6_000


def non_blank_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def counts(folder: Path, pattern: str) -> dict[str, int]:
    """``{relative path: non-blank lines}`` for the files matching ``pattern`` under ``folder``."""
    return {str(p.relative_to(folder)): non_blank_lines(p) for p in sorted(folder.glob(pattern))}


def library() -> dict[str, int]:
    return counts(ROOT / "fedtutor", "*.py")


def course() -> dict[str, int]:
    return counts(ROOT / "fedtutor" / "course", "**/*.py")


def table(title: str, rows: dict[str, int], budget: int) -> str:
    lines = [f"| {title} | non-blank lines |", "|---|---:|"]
    lines += [f"| `{name}` | {n:,} |" for name, n in rows.items()]
    lines.append(f"| **total** (budget {budget:,}) | **{sum(rows.values()):,}** |")
    return "\n".join(lines)


def tables() -> str:
    return (
        table("library module (`fedtutor/`)", library(), LIBRARY_BUDGET)
        + "\n\n"
        + table("course machinery (`fedtutor/course/`)", course(), COURSE_BUDGET)
    )


def main(argv: list[str]) -> int:
    print(tables())
    over = [
        f"{name}: {total:,} > {budget:,}"
        for name, total, budget in (
            ("library", sum(library().values()), LIBRARY_BUDGET),
            ("course machinery", sum(course().values()), COURSE_BUDGET),
        )
        if total > budget
    ]
    if over and "--check" in argv:
        print("over budget: " + "; ".join(over), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
