"""The ``fedtutor`` command (also ``python -m fedtutor``).

Subcommands: ``doctor`` checks this machine, ``start`` copies the notebooks into the learner's
own workspace and opens JupyterLab, ``student`` writes student versions, ``flower`` runs FedAvg
on Flower as real processes, ``demo`` runs FedAvg in the terminal. Each is an
``add_<name>_command(subparsers)`` function that registers its parser and sets ``func``.

One source of truth: the options of ``flower`` are generated from the fields of
``fedtutor.flower.DeploymentConfig``, those of ``demo`` from ``fedtutor.federated.FedAvg`` and
``DemoOptions`` (names, defaults, types, and help from the field comments), and their values are
checked by building those dataclasses, before any work starts. The library's ``ValueError``
becomes one usage line naming the option (``fedtutor demo: error: --lr: must be positive, got
0.0``) and exit status 2. ``main`` returns the exit status; no input ends in a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import io
import math
import os
import re
import stat
import sys
import tokenize
import typing
from collections.abc import Callable, Sequence
from pathlib import Path


class UsageError(Exception):
    """A bad option value: ``main`` prints it as one usage line and exits with status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for a misspelt choice (as Python 3.12's ``suggest_on_error``,
    which 3.10 lacks) and ``--lr: ...`` instead of ``argument --lr: ...``. No abbreviations: with
    options generated from dataclass fields, ``--client`` must not silently mean ``--clients``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", ")
            message += did_you_mean(choice.group(1), options)
        super().error(message)


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word.split("=", 1)[0], list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# ----------------------------------------------------------------------------- options from dataclasses


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number with more than 4,300 digits (Python's int limit)
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None


def finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


CONVERTERS: dict[type, Callable[[str], object]] = {int: whole_number, float: finite_number, str: str}


def or_none(convert: Callable[[str], object], words: Sequence[str]) -> Callable[[str], object]:
    """For an ``X | None`` field: ``words`` (e.g. "none", "inf") stand for None."""

    def parse(text: str) -> object:
        return None if text.strip().lower() in words else convert(text)

    return parse


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the class source: ``lr: float = 0.1  # client SGD learning rate``."""
    import inspect

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments, names = {}, {f.name for f in dataclasses.fields(cls)}
    line_start: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        row = token.start[0]
        if token.type == tokenize.NAME and row not in line_start:
            line_start[row] = token.string
        elif token.type == tokenize.COMMENT and line_start.get(row) in names:
            comments.setdefault(line_start[row], token.string.lstrip("# ").split("  #")[0])
    return comments


def add_dataclass_options(
    parser: argparse.ArgumentParser,
    cls: type,
    aliases: dict[str, Sequence[str]] | None = None,
    none_words: dict[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """One ``--field-name`` option per field of ``cls`` whose type the command line can hold.

    Returns ``{field: option}``; ``build`` later checks the values by building ``cls``.
    """
    aliases, none_words = aliases or {}, none_words or {}
    hints, comments, added = typing.get_type_hints(cls), field_comments(cls), {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        optional = type(None) in typing.get_args(kind)
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind) if optional else kind
        if base not in CONVERTERS or not f.init or f.default is dataclasses.MISSING:
            continue  # e.g. FedAvg.aggregator: a function is no command-line value
        convert = CONVERTERS[base]
        if optional:
            convert = or_none(convert, none_words.get(f.name, ("none",)))
        flag = "--" + f.name.replace("_", "-")
        about = f.metadata.get("help") or comments.get(f.name, "")
        shown = "none" if f.default is None else f.default
        help_text = f"{about} (default: {shown})".replace("%", "%%")  # argparse %-formats help
        parser.add_argument(
            flag, *aliases.get(f.name, ()), dest=f.name, type=convert, default=f.default, help=help_text
        )
        added[f.name] = flag
    return added


def option_message(err: Exception, options: dict[str, str]) -> str:
    """``lr must be positive, got 0.0.`` -> ``--lr: must be positive, got 0.0``: the library's words,
    attributed to the option whose field the message names first."""
    text = str(err).strip().rstrip(".")
    named = [(m.start(), name) for name in options if (m := re.search(rf"\b{name}\b", text))]
    if not named:
        return text
    name = min(named)[1]
    return f"{options[name]}: " + re.sub(rf"^{name}(?: \([A-Za-z]+\))? (?!\()", "", text)


def build(cls: type, args: argparse.Namespace, options: dict[str, str]):
    """``cls`` built from the parsed options: the library's own checks, as a usage error."""
    try:
        return cls(**{name: getattr(args, name) for name in options})
    except ValueError as err:
        raise UsageError(option_message(err, options)) from None


def path_problem(text: str) -> str | None:
    """Why ``text`` cannot name a file at all (empty, NUL, too long, unknown ~user); None when it can."""
    if not text.strip():
        return "the path is empty"
    if "\0" in text:
        return "the path contains a NUL character"
    try:
        os.stat(Path(text).expanduser())
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, RuntimeError) as err:  # RuntimeError: expanduser of an unknown ~user
        return f"{text[:80]!r} cannot be used: {getattr(err, 'strerror', None) or err}"
    return None


def given_path(name: str, text: str) -> Path:
    problem = path_problem(text)
    if problem:
        raise UsageError(f"{name}: {problem}")
    return Path(text).expanduser()


def folder_problem(text: str) -> str | None:
    """Why ``text`` cannot be (or become) a folder to write into; None when it can."""
    problem = path_problem(text)
    if problem:
        return problem
    path = probe = Path(text).expanduser()
    while True:  # climb to the part of the path that exists
        try:
            mode = os.stat(probe).st_mode
            break
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(probe):
                return f"{probe} is a broken symbolic link"
            probe = probe.parent
        except OSError as err:
            return f"{text[:80]!r} cannot be used: {err.strerror}"
    if not stat.S_ISDIR(mode):
        under = "" if probe == path else f", so {path} cannot be made under it"
        return f"{probe} is a file, not a folder{under}"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable for you"
    return None


def check_folder(option: str, text: str) -> Path:
    problem = folder_problem(text)
    if problem:
        raise UsageError(f"{option}: {problem}; give a folder (it is created if missing)")
    return Path(text).expanduser()


# ----------------------------------------------------------------------------- fedtutor doctor


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


# ----------------------------------------------------------------------------- fedtutor start


def start(args: argparse.Namespace) -> int:
    from fedtutor.course import student as st
    from fedtutor.course import workspace as ws

    course = None
    if args.course is not None:
        course = given_path("--course", args.course)
        if not course.is_dir() or not st.course_notebook_paths(course):
            raise UsageError(f"--course: {course} is not a folder of course notebooks (*.ipynb)")
    workspace = check_folder("DIR", args.dir) if args.dir is not None else ws.default_workspace()
    try:
        course = course or ws.course_notebooks_dir()
        ws.check_workspace(workspace, course)
    except st.CourseError as err:
        raise UsageError(f"DIR: {err}") from None
    try:  # from here on: work; a problem is reported, and exit status 1
        changes = ws.start_workspace(workspace, course)
    except (st.CourseError, st.MarkerError, OSError) as err:
        print(f"fedtutor start: {err}", file=sys.stderr)
        return 1
    print(ws.summary(workspace, changes))
    if args.copy_only:
        return 0
    running = ws.running_server(workspace)
    if running:
        print(
            f"\nJupyterLab is already running for this workspace: {running}\n"
            "Open that address in your browser (the notebooks copied just now are there too). A second "
            "server on the same folder would fight the first over your files; to restart, stop that one "
            "(Ctrl+C in its terminal, or close it from JupyterLab's File > Shut Down) and run `fedtutor start` again."
        )
        return 0
    return ws.launch_jupyter(workspace, open_browser=not args.no_browser)


def add_start_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "start",
        help="copy the course notebooks into your own workspace (never overwriting) and open JupyterLab",
        description="Copy the student version of every course notebook into DIR, your own folder, outside "
        "the course repository. Existing files are never overwritten: when the course changed a notebook "
        "you already have, the new version is saved beside yours and listed. Then opens JupyterLab in DIR "
        "(or, when JupyterLab already runs there, prints its address).",
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="your workspace folder (default: ~/fedtutor-course)")
    parser.add_argument("--no-browser", action="store_true", help="start JupyterLab without opening a browser")
    parser.add_argument("--copy-only", action="store_true", help="copy the notebooks, do not start JupyterLab")
    parser.add_argument("--course", metavar="NOTEBOOKS_DIR", help="take the notebooks from here instead")
    parser.set_defaults(func=start)


# ----------------------------------------------------------------------------- fedtutor student


def course_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """SRC and DEST of ``student`` and ``edition``, checked before any work: a bad one is a usage error."""
    from fedtutor.course.student import CourseError, check_paths

    src, dest = given_path("SRC", args.src), given_path("DEST", args.dest)
    check_folder("DEST", str(dest.parent if dest.suffix == ".ipynb" else dest))
    try:
        check_paths(src, dest)
    except CourseError as err:
        raise UsageError(str(err)) from None
    return src, dest


def student(args: argparse.Namespace) -> int:
    from fedtutor.course.student import CourseError, MarkerError, write_student_versions

    src, dest = course_paths(args)
    try:
        build = write_student_versions(src, dest, force=args.force)
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


# ----------------------------------------------------------------------------- fedtutor flower


def flower(args: argparse.Namespace) -> int:
    """``fedtutor flower``: FedAvg on Flower, a server and N client processes on this machine."""
    from fedtutor import flower as fl
    from fedtutor.course import launcher

    config = build(fl.DeploymentConfig, args, args.config_options)
    logs = None if args.logs is None else check_folder("--logs", args.logs)
    try:
        fl.require_flower("`fedtutor flower`")
    except fl.FlowerNotInstalled as err:
        print(f"fedtutor flower: {err}", file=sys.stderr)
        return 1
    options = {**args.config_options, **FLOWER_RUN_OPTIONS}
    try:  # this machine's limits (memory per client, an address of this host), before anything starts
        launcher.check_machine(config)
    except ValueError as err:
        raise UsageError(option_message(err, options)) from None
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"fedtutor flower: warning: listening on {config.host} WITHOUT TLS; use certificates on real networks.")
    try:
        launcher.run_deployment(config, kill_client_after_round=args.kill_client_after_round, workdir=logs)
    except ValueError as err:  # the launcher's own checks, made before it starts anything
        raise UsageError(option_message(err, options)) from None
    except fl.DeploymentError as err:
        print(f"fedtutor flower: error: {err}\nAll Flower processes were stopped.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfedtutor flower: interrupted; all Flower processes were stopped.", file=sys.stderr)
        return 130
    return 0


FLOWER_RUN_OPTIONS = {"kill_client_after_round": "--kill-client-after-round", "workdir": "--logs"}


def add_flower_command(subparsers) -> None:
    from fedtutor.flower import DeploymentConfig

    parser = subparsers.add_parser(
        "flower",
        help="run FedAvg on Flower: a server and N client processes on this machine (needs fedtutor[flower])",
        description="Start a Flower SuperLink (the server) and one SuperNode per client as separate processes on "
        "this machine, each client holding its own partition of MNIST, run ROUNDS of FedAvg with the course's "
        "model and training code, print the test accuracy after every round, and stop every process at the end "
        "(also on Ctrl-C or a failure). The options are the fields of fedtutor.flower.DeploymentConfig.",
    )
    options = add_dataclass_options(parser, DeploymentConfig, aliases={"batch_size": ["--batch"]})
    parser.add_argument(
        "--kill-client-after-round",
        type=whole_number,
        metavar="K",
        help="demo: kill the last client's process after round K",
    )
    parser.add_argument("--logs", metavar="DIR", help="keep every process's log in DIR (default: a temporary folder)")
    parser.set_defaults(func=flower, config_options=options)


# ----------------------------------------------------------------------------- fedtutor demo

PARTITIONS = ("iid", "shards", "dirichlet")


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """What ``fedtutor demo`` adds to the settings of ``fedtutor.federated.FedAvg``."""

    clients: int = 100  # K: number of clients, each holding its own part of the training set
    rounds: int = 20  # communication rounds
    partition: str = "iid"  # how the data is split: iid, shards (mostly 2 digits per client) or dirichlet
    alpha: float = 0.5  # Dirichlet concentration for --partition dirichlet (0.1 = very skewed, 100 = nearly IID)
    model: str = "2nn"  # the paper's 2nn (fast) or cnn
    target: float = 0.9  # the test accuracy whose first round the summary reports
    seed: int = 0  # seeds the model, the partition and the choice of clients
    out: str = "fedtutor-demo"  # folder for the plot (PNG) and the history (JSON); files are never overwritten

    def __post_init__(self) -> None:
        import torch

        from fedtutor import data, models

        for name in ("clients", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.partition not in PARTITIONS:
            raise ValueError(f"Unknown partition {self.partition!r}; choose one of {list(PARTITIONS)}.")
        if self.model not in models.MODELS:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {sorted(models.MODELS)}.")
        data.dirichlet(torch.zeros(1, dtype=torch.long), 1, self.alpha)  # the partitioner's own check of alpha
        if not 0 < self.target <= 1:
            raise ValueError(f"target must be an accuracy in (0, 1], got {self.target}.")
        if not 0 <= self.seed < 2**64:  # what torch.manual_seed and numpy's SeedSequence both accept
            raise ValueError(f"seed must be a whole number from 0 to 2**64 - 1, got {self.seed}.")
        problem = folder_problem(self.out)
        if problem:
            raise ValueError(f"out must be a folder you can write to: {problem}; give a folder.")


def demo(args: argparse.Namespace) -> int:
    from fedtutor import federated

    options = build(DemoOptions, args, args.demo_options)
    strategy = build(federated.FedAvg, args, args.fedavg_options)
    return run_demo(options, strategy)


def run_demo(options: DemoOptions, strategy) -> int:
    """The demo's work: one federated MNIST experiment; a PNG plot and a JSON history in ``options.out``."""
    import matplotlib

    matplotlib.use("Agg")  # a terminal has no display: draw into files only
    from fedtutor import data, federated, seed_everything
    from fedtutor.models import build_model

    x, y = data.load_tensors()
    if options.clients > len(y):
        raise UsageError(f"--clients: {options.clients} is more than the {len(y):,} training examples")
    if options.partition == "shards" and 2 * options.clients > len(y):
        raise UsageError(f"--partition: shards needs 2 examples per client; use --clients <= {len(y) // 2}")
    k, seed = options.clients, options.seed
    parts = {
        "iid": lambda: data.iid(y, k, seed),
        "shards": lambda: data.shards(y, k, seed=seed),
        "dirichlet": lambda: data.dirichlet(y, k, options.alpha, seed),
    }[options.partition]()
    label = f"{options.model} {options.partition} {strategy.describe()}"
    print(f"fedtutor demo: {strategy.describe()}, {options.model}, {options.partition} partition, seed {seed}")
    print(f"  clients: {data.describe_partition(y, parts)}")
    seed_everything(seed)
    model = build_model(options.model)
    clients, test = federated.make_clients(x, y, parts), data.load_tensors(train=False)
    history = federated.run_federated(
        model, clients, test, strategy, rounds=options.rounds, seed=seed, target=options.target, live=False, label=label
    )
    out = Path(options.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"fedavg-{options.model}-{options.partition}-K{k}-seed{seed}"
    json_path = history.save_json(_free_path(out, stem, ".json"))
    png_path = _free_path(out, stem, ".png")
    history.plot(target=options.target).savefig(png_path, dpi=120)
    reached = history.rounds_to(options.target)
    rows = [
        ("rounds run", f"{len(history)}"),
        ("final test accuracy", f"{history.final['test_acc']:.2%}"),
        ("best test accuracy", f"{max(history['test_acc']):.2%}"),
        (f"rounds to {options.target:.0%}", "not reached" if reached is None else str(reached)),
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


def _free_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix``, ``stem-3`` ...: never an existing file."""
    candidate, n = folder / f"{stem}{suffix}", 2
    while os.path.lexists(candidate):
        candidate, n = folder / f"{stem}-{n}{suffix}", n + 1
    return candidate


def add_demo_command(subparsers) -> None:
    from fedtutor.federated import FedAvg

    parser = subparsers.add_parser(
        "demo",
        help="run a federated MNIST experiment (FedAvg) in the terminal",
        description="Federated averaging on MNIST in the terminal: progress per round, a summary table, "
        "and the accuracy plot (PNG) and history (JSON) written to --out (existing files are never overwritten). "
        "The options are the fields of fedtutor.federated.FedAvg and of fedtutor.course.cli.DemoOptions.",
    )
    demo_options = add_dataclass_options(parser, DemoOptions)
    fedavg_options = add_dataclass_options(
        parser,
        FedAvg,
        aliases={"batch_size": ["--batch"], "server_momentum": ["--momentum"]},
        none_words={"batch_size": ("none", "inf", "full")},
    )
    parser.set_defaults(func=demo, demo_options=demo_options, fedavg_options=fedavg_options)


# ----------------------------------------------------------------------------- dispatch

COMMANDS: list[Callable] = [
    add_doctor_command,
    add_start_command,
    add_student_command,
    add_flower_command,
    add_demo_command,
    lambda subparsers: __import__("fedtutor.course.classroom", fromlist=["_"]).add_classroom_command(subparsers),
    lambda subparsers: __import__("fedtutor.course.grading", fromlist=["_"]).add_grade_command(subparsers),
    lambda subparsers: __import__("fedtutor.course.edition", fromlist=["_"]).add_edition_command(subparsers),
]


def build_parser() -> Parser:
    parser = Parser(prog="fedtutor", description="The fedtutor federated-learning course.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add_command in COMMANDS:
        add_command(subparsers)
    parser.commands = subparsers.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status: 0 done, 1 a problem while working, 2 a bad option."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        command = parser.commands[args.command]
        if unknown:
            options = [s for action in command._actions for s in action.option_strings]
            typo = next((word for word in unknown if word.startswith("-")), "")
            command.error(f"unrecognized arguments: {' '.join(unknown)}" + did_you_mean(typo, options))
        try:
            return args.func(args)
        except UsageError as err:
            command.error(str(err))
    except SystemExit as done:  # argparse's way out: --help (0) and usage errors (2)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
