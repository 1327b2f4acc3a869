"""Grading a class: N students' copies of one course notebook, in parallel, against one copy alone.

Each copy is the notebook's own solution (the source notebook: every exercise answered), so
the run grades real work: a fresh kernel per copy in quick mode, the checks re-run. The
baseline, measured in the same run, is one copy graded alone; the ratio says how close
parallel grading gets to N x one copy / cores. Target: 30 copies of notebook 01 practical on a
2-core laptop (a few minutes).

Usage:  python benchmarks/grading.py [--copies 30] [--notebook 01] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--notebook", default="01", help="course notebook number (default: 01)")
    parser.add_argument("--jobs", type=int, default=None, help="default: the number of cores")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    (source,) = sorted((ROOT / "notebooks").glob(f"{args.notebook}-*.ipynb"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        one_s, one_rows = timed(class_of(source, 1, Path(tmp)), 1, args.timeout)
        all_s, rows = timed(class_of(source, args.copies, Path(tmp)), args.jobs or cores, args.timeout)
    passed = sum(r.passed for r in rows)
    print(f"\n{source.name}, {cores} cores, jobs={args.jobs or cores}")
    print(f"one copy alone:       {one_s:7.1f} s  ({sum(r.passed for r in one_rows)}/{len(one_rows)} checks passed)")
    print(f"{args.copies} copies in parallel: {all_s:7.1f} s  ({passed}/{len(rows)} checks passed)")
    print(f"ratio: {all_s / one_s:.1f}x one copy for {args.copies} copies ({all_s / args.copies:.1f} s per copy)")
    if passed != len(rows):
        print("WARNING: some checks failed on the course's own solutions:")
        for row in rows:
            if not row.passed:
                print(f"  {row.student} {row.exercise}: {row.feedback}")


if __name__ == "__main__":
    main()
