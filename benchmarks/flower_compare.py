"""fedtutor's FedAvg engine vs Flower's simulation on the same workload, same machine, one run.

Workload (McMahan et al.'s client size): 10 clients x 600 examples (Fashion-MNIST when the Debian
package is installed, else MNIST-mini's 5,000 as 10 x 500), the paper's CNN, E=1, B=10, lr=0.05,
all clients in every round, 5 rounds, test accuracy on the full test set after every round. Both
sides start from the same model and the same partition and call the same client training function
(``fedtutor.federated.train_client``), so they also reach the same accuracy.

Flower runs twice: with its default client resources (2 CPUs per client, so on a 2-core
machine one client trains at a time) and with 1 CPU per client (as many at once as there are
cores, the way fedtutor's engine trains them); the targets are checked against both.

Each side runs in its own fresh Python process, so neither pays for the other's imports; its
peak memory is that of the process and all its descendants (Ray starts several), summed as PSS
on Linux (see ``process_tree.py``).

Flower's simulation needs Ray: ``pip install "flwr[simulation]"``. Without flwr (or Ray) the
benchmark says so and exits 0. ``--deployment`` also times ``fedtutor.course.launcher.run_deployment``
(real SuperLink/SuperNode processes on 127.0.0.1) on the same workload.

Data: every side reads the same IDX folder through ``fedtutor.flower.load_split``, which reads
the folder named by ``FEDTUTOR_FLOWER_DATA`` (set here in each side's process, inherited by Ray's
and Flower's processes; the deployment gets it as ``data_folder``). That folder is Fashion-MNIST's
(``fashion_mnist.py``, beside this script) when installed, checked once by its loader; otherwise
the variable is left unset and every side uses the course's MNIST. ``load_split`` standardizes
with MNIST's mean and std either way: the same for every side, so the comparison is fair.

Usage: python benchmarks/flower_compare.py [--rounds 5] [--model cnn] [--deployment]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from fashion_mnist import fashion_mnist_folder, load_fashion_mnist  # beside this script
from process_tree import run_measured  # benchmarks/process_tree.py, beside this script

REPO = Path(__file__).resolve().parent.parent
CLIENTS, PER_CLIENT = 10, 600


def workload(rounds: int, model: str):
    from fedtutor.flower import DeploymentConfig

    fashion = fashion_mnist_folder() is not None
    return DeploymentConfig(
        clients=CLIENTS,
        rounds=rounds,
        model=model,
        train_examples=CLIENTS * PER_CLIENT if fashion else 0,  # MNIST-mini: all 5,000
        epochs=1,
        batch_size=10,
        lr=0.05,
        seed=0,
        min_clients=CLIENTS,
        straggler_timeout=600.0,
        port=9180,
    )


# ----------------------------------------------------------------------------- one side, in a child process


def run_fedtutor(config) -> dict:
    from fedtutor import federated, flower

    clients = [flower.partition_for(config, k, config.clients) for k in range(config.clients)]
    model = flower.initial_model(config)
    strategy = federated.FedAvg(fraction=1.0, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr)
    ends = []
    started = time.perf_counter()
    history = federated.run_federated(
        model,
        clients,
        flower.load_split(train=False),
        strategy,
        config.rounds,
        config.seed,
        progress=False,
        live=False,
        on_round=lambda record: ends.append(time.perf_counter()),
    )
    return {"per_round_s": (ends[-1] - started) / len(ends), "accuracy": history["test_acc"]}


def run_flower_simulation(config, cpus_per_client: int | None = None) -> dict:
    """Flower's simulation engine (Ray). ``cpus_per_client=None`` keeps Flower's default resources."""
    import logging

    from flwr.simulation import run_simulation

    from fedtutor import flower

    logging.getLogger("flwr").setLevel(logging.WARNING)
    progress = Path(tempfile.mkdtemp()) / "progress.jsonl"
    started = time.perf_counter()
    resources = {"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0}} if cpus_per_client else None
    run_simulation(
        server_app=flower.build_server_app(config, progress_file=progress),
        client_app=flower.build_client_app(config),
        num_supernodes=config.clients,
        backend_config=resources,
    )
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in progress.read_text().splitlines()]
    rounds = [r for r in records if "round" in r]
    if len(rounds) != config.rounds:
        raise RuntimeError(f"Flower's simulation finished {len(rounds)} of {config.rounds} rounds: {records[-1:]}")
    # server_s counts from the start of the ServerApp's loop, after Ray's start-up.
    return {
        "wall_s": wall,
        "per_round_s": rounds[-1]["server_s"] / len(rounds),
        "accuracy": [r["test_acc"] for r in rounds],
    }


def run_deployment(config) -> dict:
    from fedtutor.course import launcher
    from fedtutor.flower import DATA_FOLDER_ENV

    started = time.perf_counter()
    history = launcher.run_deployment(config, echo=lambda line: None, data_folder=os.environ.get(DATA_FOLDER_ENV))
    rounds = history.records
    return {
        "wall_s": time.perf_counter() - started,
        "per_round_s": (rounds[-1]["server_s"] - rounds[0]["server_s"]) / max(len(rounds) - 1, 1),
        "accuracy": history["test_acc"],
    }


SIDES = {
    "fedtutor": run_fedtutor,
    # Flower 1.42's default gives each client 2 CPUs: on a 2-core machine, one client at a time.
    "flower-simulation": run_flower_simulation,
    # Tuned: 1 CPU per client, so as many clients train at once as there are cores, like fedtutor.
    "flower-sim-1cpu": lambda config: run_flower_simulation(config, cpus_per_client=1),
    "flower-deployment": run_deployment,
}


# ----------------------------------------------------------------------------- the parent: measure each side


def measure(side: str, args: argparse.Namespace) -> dict:
    """Run one side in a fresh interpreter; wall time of the whole process and peak memory of its tree."""
    command = [sys.executable, __file__, "--side", side, "--rounds", str(args.rounds), "--model", args.model]
    try:
        run = run_measured(command, args.timeout, cwd=REPO)
    except TimeoutError as err:
        raise SystemExit(f"{side}: {err}") from None
    if run.returncode != 0:
        errors = [line for line in run.stderr.splitlines() if "Error" in line or "error" in line][:20]
        tail = run.stderr[-2000:]
        raise SystemExit(f"{side} failed (exit {run.returncode}):\n" + "\n".join(errors) + f"\n...\n{tail}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result.update(process_wall_s=run.wall_s, peak_mb=run.peak_mb)
    return result


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="cnn", choices=["cnn", "2nn"])
    parser.add_argument("--deployment", action="store_true", help="also time the real-process deployment")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per side (default 1800)")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)  # internal: one child
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    folder = fashion_mnist_folder()
    if args.side:  # child process: run one side, print one JSON line
        if folder is not None:
            from fedtutor.flower import DATA_FOLDER_ENV

            os.environ[DATA_FOLDER_ENV] = str(folder)  # read by load_split here and in every child process
        result = SIDES[args.side](workload(args.rounds, args.model))
        print(json.dumps(result))
        return 0

    missing = [name for name in ("flwr", "ray") if importlib.util.find_spec(name) is None]
    if missing:
        print(f'skipped: Flower\'s simulation needs {" and ".join(missing)}; pip install "flwr[simulation]"')
        return 0
    if folder is not None:  # a DataError naming the file, now, rather than in every client process
        load_fashion_mnist(train=True, folder=folder), load_fashion_mnist(train=False, folder=folder)
    config = workload(args.rounds, args.model)
    n_train = config.train_examples or 5000
    print(
        f"workload: {config.clients} clients x {n_train // config.clients} "
        f"{'Fashion-MNIST' if folder else 'MNIST-mini'} examples, "
        f"{config.model.upper()}, E={config.epochs}, B={config.batch_size}, {config.rounds} rounds, "
        "every client every round"
    )
    sides = ["fedtutor", "flower-simulation", "flower-sim-1cpu"] + (["flower-deployment"] if args.deployment else [])
    results = {side: measure(side, args) for side in sides}

    print(f"\n{'':<19}{'wall (process)':>15}{'per round':>11}{'peak mem':>11}{'final acc':>11}")
    for side, r in results.items():
        print(
            f"{side:<19}{r['process_wall_s']:>13.1f} s{r['per_round_s']:>9.2f} s"
            f"{r['peak_mb']:>8.0f} MB{r['accuracy'][-1]:>10.2%}"
        )
    ours = results["fedtutor"]
    for side, label in (("flower-simulation", "Flower's defaults"), ("flower-sim-1cpu", "1 CPU per client")):
        theirs = results[side]
        wall = ours["process_wall_s"] / theirs["process_wall_s"]
        per_round = ours["per_round_s"] / theirs["per_round_s"]
        memory = ours["peak_mb"] / theirs["peak_mb"]
        print(
            f"\nfedtutor / Flower simulation ({label}): wall {wall:.2f}x (target <= 0.50 {_verdict(wall, 0.5)}), "
            f"per round {per_round:.2f}x, peak memory {memory:.2f}x (target <= 0.33 {_verdict(memory, 0.33)})"
        )
        gap = max(abs(a - b) for a, b in zip(ours["accuracy"], theirs["accuracy"], strict=True))
        print(f"largest per-round accuracy difference: {gap:.4f} (same seed, same client code)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
