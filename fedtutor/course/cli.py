"""The ``fedtutor`` command (also ``python -m fedtutor``).

``fedtutor doctor`` checks the learner's machine and prints one line per check with the fix
for anything wrong; its exit status is 0 only when every required check passes. Each
subcommand is a ``add_<name>_command(subparsers)`` function that registers its parser and
sets ``func``; ``main`` only dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def doctor(args: argparse.Namespace) -> int:
    from fedtutor.course.doctor import run_doctor

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

    from fedtutor.course import workspace as ws
    from fedtutor.course.student import CourseError, MarkerError

    workspace = Path(args.dir).expanduser() if args.dir else ws.default_workspace()
    try:
        changes = ws.start_workspace(workspace, Path(args.course) if args.course else None)
    except (CourseError, MarkerError, OSError) as err:
        print(f"fedtutor start: {err}", file=sys.stderr)
        return 1
    print(ws.summary(workspace, changes))
    if args.copy_only:
        return 0
    return ws.launch_jupyter(workspace, open_browser=not args.no_browser)


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

    from fedtutor.course.student import CourseError, MarkerError, write_student_versions

    try:
        build = write_student_versions(Path(args.src), Path(args.dest), force=args.force)
    except (CourseError, MarkerError, OSError) as err:
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
