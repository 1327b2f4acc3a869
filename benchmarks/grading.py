"""Grading a class: N students' copies of one course notebook, in parallel, against one copy alone.

Each copy is the notebook's own solution (the source notebook: every exercise answered), so
the run grades real work: a fresh kernel per copy in quick mode, the checks re-run. The
baseline, measured in the same run, is one copy graded alone; the ratio says how close
parallel grading gets to N x one copy / cores. Target: 30 copies of notebook 01 practical on a
2-core laptop (a few minutes).

Usage:  python benchmarks/grading.py [--copies 30] [--notebook 01] [--jobs N] [--timeout S]
It ends with a markdown row to paste into docs/benchmarks.md, and exits 1 when a check of the
course's own solutions failed (then the times measure the wrong thing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fedtutor.course import grading

ROOT = Path(__file__).resolve().parents[1]


def class_of(source: Path, copies: int, folder: Path) -> Path:
    subs = folder / f"class-{copies}"
    for i in range(copies):
        (subs / f"student{i:02d}").mkdir(parents=True)
        shutil.copy(source, subs / f"student{i:02d}" / source.name)
    return subs


def timed(subs: Path, jobs: int, timeout: float) -> tuple[float, list[grading.Row]]:
    start = time.perf_counter()
    rows = grading.grade(subs, ROOT / "notebooks", jobs=jobs, limits=grading.Limits(timeout_s=timeout))
    return time.perf_counter() - start, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30, help="students' copies graded together (default: 30)")
    parser.add_argument("--notebook", default="01", help="course notebook number (default: 01)")
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per notebook (default: 300)")
    args = parser.parse_args()
    if args.copies < 1 or (args.jobs is not None and args.jobs < 1):
        parser.error(f"--copies and --jobs must be at least 1, got {args.copies} and {args.jobs}")
    found = sorted((ROOT / "notebooks").glob(f"{args.notebook}-*.ipynb"))
    if len(found) != 1:
        parser.error(f"--notebook {args.notebook!r} matches {len(found)} course notebooks; give its number, e.g. 01")
    source = found[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = args.jobs or cores
    with tempfile.TemporaryDirectory() as tmp:
        one_s, one_rows = timed(class_of(source, 1, Path(tmp)), 1, args.timeout)
        all_s, rows = timed(class_of(source, args.copies, Path(tmp)), jobs, args.timeout)
    passed = sum(r.passed for r in rows)
    one_after_another = args.copies * one_s
    print(f"\n{source.name}, {cores} cores, jobs={jobs}")
    print(f"one copy alone:          {one_s:7.1f} s  ({sum(r.passed for r in one_rows)}/{len(one_rows)} checks passed)")
    print(f"{args.copies} copies in parallel:  {all_s:7.1f} s  ({passed}/{len(rows)} checks passed)")
    print(f"{args.copies} x one copy would be: {one_after_another:7.1f} s one after another")
    print(
        f"total: {all_s / one_s:.1f}x one copy for {args.copies} copies ({all_s / args.copies:.1f} s per copy), "
        f"{one_after_another / all_s:.2f}x faster than one after another"
    )
    print("\nFor docs/benchmarks.md:\n")
    print("| benchmark | figure | target |\n|---|---|---|")
    print(
        f"| `grading.py`, {args.copies} copies of notebook {args.notebook} graded in parallel ({jobs} jobs, "
        f"{cores} cores) | {all_s:.1f} s vs {one_s:.1f} s for one ({all_s / args.copies:.1f} s per copy, "
        f"{one_after_another / all_s:.2f}x faster than one after another) | practical on 2 cores |"
    )
    if passed != len(rows) or sum(r.passed for r in one_rows) != len(one_rows):
        print("\nFAILED: some checks failed on the course's own solutions:", file=sys.stderr)
        for row in [*one_rows, *rows]:
            if not row.passed:
                print(f"  {row.student} {row.exercise}: {row.feedback}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
