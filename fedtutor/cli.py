"""The ``fedtutor`` command (also ``python -m fedtutor``).

``fedtutor doctor`` checks the learner's machine and prints one line per check with the fix
for anything wrong; its exit status is 0 only when every required check passes. Each
subcommand is a ``add_<name>_command(subparsers)`` function that registers its parser and
sets ``func``; ``main`` only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB = 1.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "warn")
        text = f"[{mark}] {self.name:<14} {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n       fix: {self.fix}"


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    shown = ".".join(map(str, version))
    ok = tuple(version[:2]) >= MIN_PYTHON
    fix = "install Python 3.10 or newer (python.org or conda), make a fresh venv with it, reinstall fedtutor"
    return Check("python", ok, f"{shown} ({platform.python_implementation()})", fix)


def check_package(module: str, pip_name: str | None = None, required: bool = True, minimum: str = "") -> Check:
    """Import ``module`` and report its version (or the pip command that fixes it)."""
    pip_name = pip_name or module
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a broken install raises more than ImportError
        reason = "not installed" if isinstance(err, ModuleNotFoundError) else f"fails to import: {err}"
        return Check(module, False, reason, f'pip install "{pip_name}{minimum}"', required)
    version = getattr(mod, "__version__", "?")
    if minimum and version != "?" and _version_tuple(version) < _version_tuple(minimum.lstrip(">=")):
        return Check(module, False, f"{version} is too old", f'pip install -U "{pip_name}{minimum}"', required)
    return Check(module, True, version, required=required)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_torch_device() -> Check:
    import torch

    if torch.cuda.is_available():
        return Check("accelerator", True, f"CUDA: {torch.cuda.get_device_name(0)} (not needed; the course runs on CPU)")
    return Check("accelerator", True, "CPU only (that is all the course needs)", required=False)


def check_widgets_extension() -> Check:
    """ipywidgets 8 renders in JupyterLab through the jupyterlab_widgets prebuilt extension."""
    try:
        import jupyterlab_widgets
    except ModuleNotFoundError:
        return Check(
            "widgets ext",
            False,
            "jupyterlab_widgets not installed: sliders would show as text",
            'pip install "ipywidgets>=8" (it brings jupyterlab_widgets), then restart JupyterLab',
        )
    return Check("widgets ext", True, f"jupyterlab_widgets {jupyterlab_widgets.__version__}")


def check_data() -> Check:
    from fedtutor.data import DataError, mnist_source

    try:
        source = mnist_source()
    except DataError as err:
        return Check("data", False, str(err), "see the message above; `unset FEDTUTOR_DATA` restores the default")
    if source.is_mini:
        detail = f"{source.describe()}; full MNIST downloads automatically when online"
        return Check("data", True, detail)
    return Check("data", True, source.describe())


def check_disk(path: str | None = None, minimum_gb: float = MIN_FREE_DISK_GB) -> Check:
    from fedtutor.data import cache_dir

    target = path or str(_existing_parent(cache_dir()))
    free_gb = shutil.disk_usage(target).free / 1e9
    fix = f"free at least {minimum_gb:.0f} GB on the drive holding {target}, or set FEDTUTOR_CACHE to another drive"
    return Check("disk", free_gb >= minimum_gb, f"{free_gb:.1f} GB free at {target}", fix)


def _existing_parent(path):
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_mode() -> Check:
    from fedtutor import quick_mode

    if quick_mode():
        why = "FEDTUTOR_QUICK=1" if os.environ.get("FEDTUTOR_QUICK") == "1" else "CI=true"
        return Check("mode", True, f"quick ({why}): small data and few rounds, for demos and CI", required=False)
    return Check("mode", True, "full: the real experiments (set FEDTUTOR_QUICK=1 for a fast demo)", required=False)


def run_doctor() -> list[Check]:
    checks = [check_python()]
    packages = [
        ("torch", "torch", ">=2.2"),
        ("torchvision", "torchvision", ">=0.17"),
        ("ipywidgets", "ipywidgets", ">=8.0"),
        ("matplotlib", "matplotlib", ">=3.7"),
        ("tqdm", "tqdm", ">=4.66"),
        ("jupyterlab", "jupyterlab", ">=4.0"),
    ]
    checks += [check_package(module, pip, minimum=minimum) for module, pip, minimum in packages]
    installed = {c.name: c.ok for c in checks}
    if installed["torch"]:  # the rest needs torch
        checks.append(check_torch_device())
        checks.append(check_widgets_extension())
        if installed["torchvision"]:  # finding the data goes through torchvision's dataset classes
            checks.append(check_data())
    checks += [check_disk(), check_mode()]
    return checks


def doctor(args: argparse.Namespace) -> int:
    checks = run_doctor()
    print("fedtutor doctor: checking this machine for the course\n")
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.required and not c.ok]
    print()
    if failed:
        print(
            f"{len(failed)} problem(s) to fix: {', '.join(c.name for c in failed)}. Then run `fedtutor doctor` again."
        )
        return 1
    print("All required checks passed. Open the course with: fedtutor start")
    return 0


def add_doctor_command(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check Python, packages, data, disk and mode, with fixes")
    parser.set_defaults(func=doctor)


def start(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedtutor import classroom

    workspace = Path(args.dir).expanduser() if args.dir else classroom.default_workspace()
    try:
        changes = classroom.start_workspace(workspace, Path(args.course) if args.course else None)
    except (classroom.CourseError, classroom.MarkerError, OSError) as err:
        print(f"fedtutor start: {err}", file=sys.stderr)
        return 1
    print(classroom.summary(workspace, changes))
    if args.copy_only:
        return 0
    return classroom.launch_jupyter(workspace, open_browser=not args.no_browser)


def add_start_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "start",
        help="copy the course notebooks into your own workspace (never overwriting) and open JupyterLab",
        description="Copy the student version of every course notebook into DIR, your own folder, outside "
        "the course repository. Existing files are never overwritten: when the course changed a notebook "
        "you already have, the new version is saved beside yours and listed. Then opens JupyterLab in DIR.",
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="your workspace folder (default: ~/fedtutor-course)")
    parser.add_argument("--no-browser", action="store_true", help="start JupyterLab without opening a browser")
    parser.add_argument("--copy-only", action="store_true", help="copy the notebooks, do not start JupyterLab")
    parser.add_argument("--course", metavar="NOTEBOOKS_DIR", help="take the notebooks from here instead")
    parser.set_defaults(func=start)


def student(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedtutor import classroom

    try:
        build = classroom.write_student_versions(Path(args.src), Path(args.dest), force=args.force)
    except (classroom.CourseError, classroom.MarkerError, OSError) as err:
        print(f"fedtutor student: {err}", file=sys.stderr)
        return 1
    if build.conflicts:
        listed = "".join(f"\n  {path}" for path in build.conflicts)
        print(
            f"fedtutor student: these files exist and differ from the new student versions:{listed}\n"
            "Nothing was written. Re-run with --force to replace them (learners' own copies are made by "
            "`fedtutor start`, which never overwrites).",
            file=sys.stderr,
        )
        return 1
    for path in build.written:
        print(f"wrote     {path}")
    for path in build.unchanged:
        print(f"unchanged {path}")
    return 0


def add_student_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "student",
        help="write student notebooks: solutions replaced by placeholders, outputs stripped",
        description="Write the student version of SRC (a notebook, or a folder of notebooks) to DEST. Each "
        "region between '### BEGIN SOLUTION' and '### END SOLUTION' becomes a placeholder that raises "
        "NotImplementedError with a hint; everything else is kept as it is. Malformed markers are reported "
        "with notebook, cell and line, and then nothing is written.",
    )
    parser.add_argument("src", metavar="SRC", help="a source notebook, or a folder of them (e.g. notebooks/)")
    parser.add_argument("dest", metavar="DEST", help="output folder (or a .ipynb path when SRC is one notebook)")
    parser.add_argument("--force", action="store_true", help="replace existing DEST files that differ")
    parser.set_defaults(func=student)


def flower(args: argparse.Namespace) -> int:
    """``fedtutor flower``: FedAvg on Flower, a server and N client processes on this machine."""
    from fedtutor import flower as fl

    try:
        config = fl.DeploymentConfig(
            clients=args.clients,
            rounds=args.rounds,
            model=args.model,
            partition=args.partition,
            alpha=args.alpha,
            epochs=args.epochs,
            batch_size=args.batch,
            lr=args.lr,
            seed=args.seed,
            min_clients=args.min_clients,
            straggler_timeout=args.straggler_timeout,
            port=args.port,
            host=args.host,
        )
        fl.require_flower("`fedtutor flower`")
    except ValueError as err:
        print(f"fedtutor flower: {err}", file=sys.stderr)
        return 2
    except fl.FlowerNotInstalled as err:
        print(f"fedtutor flower: {err}", file=sys.stderr)
        return 1
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"fedtutor flower: warning: listening on {config.host} WITHOUT TLS; use certificates on real networks.")
    try:
        fl.run_deployment(config, kill_client_after_round=args.kill_client_after_round, workdir=args.logs)
    except ValueError as err:
        print(f"fedtutor flower: {err}", file=sys.stderr)
        return 2
    except fl.DeploymentError as err:
        print(f"fedtutor flower: error: {err}\nAll Flower processes were stopped.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfedtutor flower: interrupted; all Flower processes were stopped.", file=sys.stderr)
        return 130
    return 0


def add_flower_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "flower",
        help="run FedAvg on Flower: a server and N client processes on this machine (needs fedtutor[flower])",
        description="Start a Flower SuperLink (the server) and one SuperNode per client as separate processes on "
        "this machine, each client holding its own partition of MNIST, run ROUNDS of FedAvg with the course's "
        "model and training code, print the test accuracy after every round, and stop every process at the end "
        "(also on Ctrl-C or a failure). Client i listens on PORT+1+i for its local runtime API.",
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default: 3)")
    parser.add_argument("--model", default="2nn", choices=["2nn", "cnn"], help="model (default: 2nn)")
    parser.add_argument("--partition", default="iid", choices=["iid", "shards", "dirichlet"], help="default: iid")
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha (default: 0.5)")
    parser.add_argument("--epochs", type=int, default=1, help="local epochs E (default: 1)")
    parser.add_argument("--batch", type=int, default=10, help="local batch size B, 0 = full batch (default: 10)")
    parser.add_argument("--lr", type=float, default=0.05, help="client learning rate (default: 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the model and the partition (default: 0)")
    parser.add_argument("--min-clients", type=int, default=1, help="stop with an error below this (default: 1)")
    parser.add_argument(
        "--straggler-timeout", type=float, default=30.0, help="seconds a round waits after its first reply (30)"
    )
    parser.add_argument("--port", type=int, default=9100, help="SuperLink port; clients use the next ones (9100)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument(
        "--kill-client-after-round", type=int, metavar="K", help="demo: kill the last client's process after round K"
    )
    parser.add_argument("--logs", metavar="DIR", help="keep every process's log in DIR (default: a temporary folder)")
    parser.set_defaults(func=flower)


# ----------------------------------------------------------------------------- fedtutor demo


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _batch_size(text: str) -> int | None:
    """A positive integer, or ``inf``/``full`` for one full batch per client (FedSGD)."""
    if text.lower() in ("inf", "full", "none"):
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'inf' (full batch), got {text!r}") from None


def _unit_interval(low_open: bool, high_open: bool) -> Callable[[str], float]:
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}") from None
        if not ((value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)):
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    return _number(text, allow_zero=False)


def _nonnegative_float(text: str) -> float:
    return _number(text, allow_zero=True)


def _number(text: str, allow_zero: bool) -> float:
    kind = "a number >= 0" if allow_zero else "a positive number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not ((value >= 0 if allow_zero else value > 0) and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
    return value


def _free_path(folder, stem: str, suffix: str):
    """``folder/stem.suffix``, or ``stem-2.suffix``, ``stem-3`` ...: never an existing file."""
    candidate, n = folder / f"{stem}{suffix}", 2
    while candidate.exists():
        candidate, n = folder / f"{stem}-{n}{suffix}", n + 1
    return candidate


def _demo_error(message: str) -> int:
    """The one-line error and exit status 2 of a bad option that only the data can reveal."""
    print(f"fedtutor demo: error: {message}", file=sys.stderr)
    return 2


def demo(args: argparse.Namespace) -> int:
    """Run one federated MNIST experiment in the terminal; write a PNG plot and a JSON history."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")  # a terminal has no display: draw into files only
    from fedtutor import data, federated, seed_everything
    from fedtutor.models import build_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _demo_error(f"--out {out} is a file; give a folder (it is created if missing).")
    x, y = data.load_tensors()
    if args.clients > len(y):
        return _demo_error(f"--clients {args.clients} is more than the {len(y):,} training examples.")
    if args.partition == "shards" and 2 * args.clients > len(y):
        return _demo_error(f"--partition shards needs 2 examples per client; use --clients <= {len(y) // 2}.")
    parts = {
        "iid": lambda: data.iid(y, args.clients, args.seed),
        "shards": lambda: data.shards(y, args.clients, seed=args.seed),
        "dirichlet": lambda: data.dirichlet(y, args.clients, args.alpha, args.seed),
    }[args.partition]()
    strategy = federated.FedAvg(
        fraction=args.fraction,
        epochs=args.epochs,
        batch_size=args.batch,
        lr=args.lr,
        mu=args.mu,
        server_momentum=args.momentum,
        dropout=args.dropout,
    )
    print(f"fedtutor demo: {strategy.describe()}, {args.model}, {args.partition} partition, seed {args.seed}")
    print(f"  clients: {data.describe_partition(y, parts)}")
    seed_everything(args.seed)
    model = build_model(args.model)
    history = federated.run_federated(
        model,
        federated.make_clients(x, y, parts),
        data.load_tensors(train=False),
        strategy,
        rounds=args.rounds,
        seed=args.seed,
        target=args.target,
        live=False,
        label=f"{args.model} {args.partition} {strategy.describe()}",
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = f"fedavg-{args.model}-{args.partition}-K{args.clients}-seed{args.seed}"
    json_path = history.save_json(_free_path(out, stem, ".json"))
    fig = history.plot(target=args.target)
    png_path = _free_path(out, stem, ".png")
    fig.savefig(png_path, dpi=120)
    reached = history.rounds_to(args.target)
    rows = [
        ("rounds run", f"{len(history)}"),
        ("final test accuracy", f"{history.final['test_acc']:.2%}"),
        ("best test accuracy", f"{max(history['test_acc']):.2%}"),
        (f"rounds to {args.target:.0%}", "not reached" if reached is None else str(reached)),
        ("clients per round (mean)", f"{sum(len(c) for c in history['clients']) / len(history):.1f}"),
        ("rounds with no client back", f"{sum(history['skipped'])}"),
        ("MB uploaded", f"{sum(history['bytes_up']) / 1e6:.1f}"),
        ("MB downloaded", f"{sum(history['bytes_down']) / 1e6:.1f}"),
        ("plot", str(png_path)),
        ("history", str(json_path)),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "\n".join(f"  {name:<{width}}  {value}" for name, value in rows))
    return 0


def add_demo_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a federated MNIST experiment (FedAvg) in the terminal",
        description="Federated averaging on MNIST in the terminal: progress per round, a summary table, "
        "and the accuracy plot (PNG) and history (JSON) written to --out (existing files are never overwritten).",
    )
    parser.add_argument("--clients", type=_positive_int, default=100, metavar="K", help="number of clients (100)")
    parser.add_argument(
        "--fraction", type=_unit_interval(True, False), default=0.1, metavar="C", help="clients per round (0.1)"
    )
    parser.add_argument("--rounds", type=_positive_int, default=20, help="communication rounds (20)")
    parser.add_argument("--epochs", type=_positive_int, default=5, metavar="E", help="local epochs (5)")
    parser.add_argument("--batch", type=_batch_size, default=10, metavar="B", help="local batch size or 'inf' (10)")
    parser.add_argument("--lr", type=_positive_float, default=0.1, help="client learning rate (0.1)")
    parser.add_argument("--partition", choices=["iid", "shards", "dirichlet"], default="iid", help="data split (iid)")
    parser.add_argument("--alpha", type=_positive_float, default=0.5, help="Dirichlet alpha for --partition dirichlet")
    parser.add_argument("--model", choices=["2nn", "cnn"], default="2nn", help="the paper's 2nn (fast; default) or cnn")
    parser.add_argument("--mu", type=_nonnegative_float, default=0.0, help="FedProx proximal strength (0)")
    parser.add_argument("--momentum", type=_unit_interval(False, True), default=0.0, help="server momentum (0)")
    parser.add_argument(
        "--dropout", type=_unit_interval(False, True), default=0.0, help="chance a client does not return (0)"
    )
    parser.add_argument("--target", type=_unit_interval(True, False), default=0.9, help="target test accuracy (0.9)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", default="fedtutor-demo", help="output folder (fedtutor-demo)")
    parser.set_defaults(func=demo)


COMMANDS: list[Callable] = [
    add_doctor_command,
    add_start_command,
    add_student_command,
    add_flower_command,
    add_demo_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedtutor", description="The fedtutor federated-learning course.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
