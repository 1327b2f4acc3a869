"""Wall time and peak memory of every notebook, in quick and full mode.

Each notebook runs in a fresh process (nbclient, kernel python3). Two peaks are reported: the
kernel's own resident memory (getrusage(RUSAGE_CHILDREN) once it has exited), and the whole
process tree's, runner and kernel plus anything the notebook starts (notebook 11 starts Flower's
server and client processes), summed as PSS and sampled every 0.2 s (``process_tree.py``).
The kernel's CPU seconds (user + system) are printed too: on a machine shared with other jobs
they say more than the wall time, which then grows with the load.
The 2 GB target applies to the tree: a learner's machine pays for all of it. The baseline,
measured in the same run, is an almost empty notebook (kernel start-up plus `import fedtutor`),
so the ratio says how much of the time is the lesson itself on this machine, whatever its speed.
Targets (2-core CPU): full mode under 180 s and 2 GB per notebook; quick mode for the whole
course under 300 s.

``--standin`` runs every notebook in full mode on the 60,000-image MNIST stand-in
(``scripts/make_mnist_standin.py``, given through ``FEDTUTOR_DATA``): the path a learner with
internet takes, with the full MNIST's sizes, against the same targets.

Usage:  python benchmarks/notebooks.py [--mode quick|full|both] [--standin [FOLDER]] [NOTEBOOK ...]
(no NOTEBOOK: all of them). The results end with a markdown table to paste into docs/benchmarks.md.
Linux and macOS (uses the `resource` module).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

import nbformat
from process_tree import run_measured  # benchmarks/process_tree.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
FULL_BUDGET_S, FULL_BUDGET_GB, QUICK_SUITE_BUDGET_S = 180.0, 2.0, 300.0
STANDIN_FILES = [
    f"{stem}.gz"
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
]

RUNNER = r"""
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
seconds = time.perf_counter() - start
kernel = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, reaped by now
peak_mb = kernel.ru_maxrss / 1024 if sys.platform != "darwin" else kernel.ru_maxrss / 2**20
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "cpu_s": kernel.ru_utime + kernel.ru_stime}))
"""


class NotebookError(RuntimeError):
    """A notebook raised (its kernel's last output is in the message)."""


def run_notebook(path: Path, quick: bool, data_folder: Path | None = None) -> dict[str, float]:
    env = dict(os.environ, FEDTUTOR_QUICK="1" if quick else "0", CI="true" if quick else "false")
    if data_folder is not None:
        env["FEDTUTOR_DATA"] = str(data_folder)
    run = run_measured([sys.executable, "-c", RUNNER, str(path), str(path.parent)], timeout=1800, env=env)
    if run.returncode != 0:
        raise NotebookError(f"{path.name} failed in {'quick' if quick else 'full'} mode:\n{run.stderr[-3000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "tree_mb": run.peak_mb}


def baseline_notebook() -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import fedtutor\nfedtutor.seed_everything(0)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(tempfile.mkdtemp()) / "baseline.ipynb"
    nbformat.write(nb, path)
    return path


def standin_folder(given: str | bool) -> Path:
    """The stand-in's folder: FOLDER when it already holds the four files, else written there (or in a temp folder)."""
    folder = Path(tempfile.mkdtemp()) / "mnist-standin" if given is True else Path(given)
    if not all((folder / name).exists() for name in STANDIN_FILES):
        maker = runpy.run_path(str(ROOT / "scripts" / "make_mnist_standin.py"))
        maker["make_standin"](folder)
    return folder


def markdown_table(
    results: dict[tuple[str, str], dict[str, float] | None], base: dict[str, float], standin: bool
) -> str:
    """The rows as docs/benchmarks.md has them, to paste there: one row per notebook, quick and full side by side."""
    modes = sorted({mode for _, mode in results}, key=["quick", "full"].index)
    heads = {"quick": "quick", "full": "full on the stand-in" if standin else "full"}
    head = ["notebook"] + [h for m in modes for h in (f"{heads[m]} s", f"{heads[m]} kernel / tree MB")]
    head += [f"{heads['full']} × baseline"] if "full" in modes else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name in dict.fromkeys(name for name, _ in results):
        row = [name.removesuffix(".ipynb")]
        for mode in modes:
            r = results[name, mode]
            if r is None:
                row += ["FAILED", ""]
                continue
            over = mode == "full" and (r["seconds"] > FULL_BUDGET_S or r["tree_mb"] > FULL_BUDGET_GB * 1000)
            row += [
                f"**{r['seconds']:.1f}**" if over else f"{r['seconds']:.1f}",
                f"{r['peak_mb']:.0f} / {r['tree_mb']:.0f}",
            ]
        if "full" in modes:
            full = results[name, "full"]
            row.append(f"{full['seconds'] / base['seconds']:.1f}" if full else "")
        lines.append("| " + " | ".join(row) + " |")
    if "quick" in modes:
        total = sum(r["seconds"] for (_, mode), r in results.items() if mode == "quick" and r)
        lines.append(
            f"| **quick suite** | **{total:.1f}** (target {QUICK_SUITE_BUDGET_S:.0f}) |" + " |" * (len(head) - 2)
        )
    lines.append(
        f"\nBaseline (kernel start + `import fedtutor`): {base['seconds']:.1f} s, kernel {base['peak_mb']:.0f} MB, "
        f"tree {base['tree_mb']:.0f} MB. Bold: over {FULL_BUDGET_S:.0f} s or {FULL_BUDGET_GB:.0f} GB."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["quick", "full", "both"], default="both")
    parser.add_argument(
        "--standin",
        nargs="?",
        const=True,
        metavar="FOLDER",
        help="full mode on the 60,000-image MNIST stand-in (written to FOLDER, or a temporary folder, if absent)",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="notebooks to run (default: all); e.g. notebooks/02-mnist-classifier.ipynb",
    )
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    if missing := [str(p) for p in notebooks if not p.is_file()]:
        parser.error(f"no such notebook: {', '.join(missing)}")
    modes = ["quick", "full"] if args.mode == "both" else [args.mode]
    data_folder = None
    if args.standin:
        data_folder, modes = standin_folder(args.standin), ["full"]
        print(f"data: the 60,000-image MNIST stand-in in {data_folder} (FEDTUTOR_DATA), full mode\n")
    base = run_notebook(baseline_notebook(), quick=True)
    print(
        f"baseline (kernel start + import fedtutor): {base['seconds']:.1f} s, kernel {base['peak_mb']:.0f} MB, "
        f"tree {base['tree_mb']:.0f} MB peak\n"
    )
    print(
        f"{'notebook':<34} {'mode':<6} {'wall s':>8} {'x base':>7} {'kernel MB':>10} {'tree MB':>8} "
        f"{'kernel CPU s':>12}  verdict"
    )
    results: dict[tuple[str, str], dict[str, float] | None] = {}  # None: the notebook failed
    for mode in modes:
        total = 0.0
        for path in notebooks:
            try:
                r = results[path.name, mode] = run_notebook(path, quick=mode == "quick", data_folder=data_folder)
            except (NotebookError, TimeoutError) as err:  # one broken notebook must not cost the others' figures
                print(f"{path.name:<34} {mode:<6} FAILED\n{err}", flush=True)
                results[path.name, mode] = None
                continue
            total += r["seconds"]
            verdict = ""
            if mode == "full":
                ok = r["seconds"] <= FULL_BUDGET_S and r["tree_mb"] <= FULL_BUDGET_GB * 1000
                verdict = "ok" if ok else f"OVER ({FULL_BUDGET_S:.0f} s / {FULL_BUDGET_GB:.0f} GB)"
            ratio = r["seconds"] / base["seconds"]
            print(
                f"{path.name:<34} {mode:<6} {r['seconds']:>8.1f} {ratio:>7.1f} {r['peak_mb']:>10.0f} "
                f"{r['tree_mb']:>8.0f} {r['cpu_s']:>12.1f}  {verdict}",
                flush=True,
            )
        if mode == "quick":
            verdict = "ok" if total <= QUICK_SUITE_BUDGET_S else f"OVER {QUICK_SUITE_BUDGET_S:.0f} s"
            row = f"{'quick suite total':<34} {'quick':<6} {total:>8.1f} {total / base['seconds']:>7.1f} {'':>19}"
            print(f"{row}  {verdict}")
    print("\nFor docs/benchmarks.md:\n")
    print(markdown_table(results, base, standin=bool(args.standin)))
    if failed := [f"{name} ({mode})" for (name, mode), r in results.items() if r is None]:
        raise SystemExit(f"\nfailed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
