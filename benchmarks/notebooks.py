"""Wall time and peak memory of every notebook, in quick and full mode.

Each notebook runs in a fresh process (nbclient, kernel python3). Two peaks are reported: the
kernel's own resident memory (getrusage(RUSAGE_CHILDREN) once it has exited), and the whole
process tree's, runner and kernel plus anything the notebook starts (notebook 09 starts Flower's
server and client processes), summed as PSS and sampled every 0.2 s (``process_tree.py``).
The 2 GB target applies to the tree: a learner's machine pays for all of it. The baseline,
measured in the same run, is an almost empty notebook (kernel start-up plus `import fedtutor`),
so the ratio says how much of the time is the lesson itself on this machine, whatever its speed.
Targets (2-core CPU): full mode under 180 s and 2 GB per notebook; quick mode for the whole
course under 300 s.

``--standin`` runs every notebook in full mode on the 60,000-image MNIST stand-in
(``scripts/make_mnist_standin.py``, given through ``FEDTUTOR_DATA``): the path a learner with
internet takes, with the full MNIST's sizes, against the same targets.

Usage:  python benchmarks/notebooks.py [--mode quick|full|both] [--standin [FOLDER]] [NOTEBOOK ...]
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
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped by now
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20}))
"""


def run_notebook(path: Path, quick: bool, data_folder: Path | None = None) -> dict[str, float]:
    env = dict(os.environ, FEDTUTOR_QUICK="1" if quick else "0", CI="true" if quick else "false")
    if data_folder is not None:
        env["FEDTUTOR_DATA"] = str(data_folder)
    run = run_measured([sys.executable, "-c", RUNNER, str(path), str(path.parent)], timeout=1800, env=env)
    if run.returncode != 0:
        raise SystemExit(f"{path.name} failed in {'quick' if quick else 'full'} mode:\n{run.stderr[-3000:]}")
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
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
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
    print(f"{'notebook':<34} {'mode':<6} {'wall s':>8} {'x base':>7} {'kernel MB':>10} {'tree MB':>8}  verdict")
    for mode in modes:
        total = 0.0
        for path in notebooks:
            r = run_notebook(path, quick=mode == "quick", data_folder=data_folder)
            total += r["seconds"]
            verdict = ""
            if mode == "full":
                ok = r["seconds"] <= FULL_BUDGET_S and r["tree_mb"] <= FULL_BUDGET_GB * 1000
                verdict = "ok" if ok else f"OVER ({FULL_BUDGET_S:.0f} s / {FULL_BUDGET_GB:.0f} GB)"
            ratio = r["seconds"] / base["seconds"]
            print(
                f"{path.name:<34} {mode:<6} {r['seconds']:>8.1f} {ratio:>7.1f} {r['peak_mb']:>10.0f} "
                f"{r['tree_mb']:>8.0f}  {verdict}",
                flush=True,
            )
        if mode == "quick":
            verdict = "ok" if total <= QUICK_SUITE_BUDGET_S else f"OVER {QUICK_SUITE_BUDGET_S:.0f} s"
            row = f"{'quick suite total':<34} {'quick':<6} {total:>8.1f} {total / base['seconds']:>7.1f} {'':>19}"
            print(f"{row}  {verdict}")


if __name__ == "__main__":
    main()
