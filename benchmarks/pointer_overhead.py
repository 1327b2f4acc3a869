"""What do pointers cost? Training through them vs the same plain PyTorch loop, in one run.

Both loops train the MNIST CNN of McMahan et al. (B=64, one epoch on MNIST-mini, SGD) from the
same initial weights in the same batch order; the pointer loop's data is held by ``bob`` and
every step (cutting the batch, forward, loss, backward, step) runs through pointers, including
sending the model to bob and getting it back. The two runs must end with bit-identical
weights, so the ratio compares the same work.

The loops run in lockstep, batch by batch, alternating which goes first: on a machine shared
with other work, background load then hits both alike, which separate runs cannot promise.
Then the per-operation overhead: a pointer ``a + b`` on a 3-element tensor vs the local one.

Usage: python benchmarks/pointer_overhead.py [--epochs 1] [--batches N] [--threads T]
Target: ratio <= 1.10 (PySyft 0.2's own MNIST tutorial reported 1.9x).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from fedtutor.data import load_tensors
from fedtutor.models import CNN
from fedtutor.workers import VirtualWorker

LR = 0.05


@contextmanager
def clock(totals: list[float]):
    """Add the block's wall and CPU seconds to ``totals = [wall, cpu]``."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    totals[0] += time.perf_counter() - wall
    totals[1] += time.process_time() - cpu


def lockstep_epochs(x, y, order, initial, epochs):
    """Train a plain model and a model on bob side by side; returns both models and the timings."""
    times = {"plain": [0.0, 0.0], "pointers": [0.0, 0.0]}
    plain = CNN()
    plain.load_state_dict(initial)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=LR)
    bob = VirtualWorker("bob")
    x_ptr, y_ptr = bob.hold(x, private=False), bob.hold(y, private=False)  # bob's data: never sent
    with clock(times["pointers"]):
        remote = CNN()
        remote.load_state_dict(initial)
        model_ptr, opt_ptr = bob.send(remote, torch.optim.SGD(remote.parameters(), lr=LR))

    def plain_step(idx):
        xb, yb = x[idx], y[idx]  # (B, 1, 28, 28), (B,)
        plain_opt.zero_grad()
        loss = F.cross_entropy(plain(xb), yb)
        loss.backward()
        plain_opt.step()

    def pointer_step(idx):
        xb, yb = x_ptr[idx], y_ptr[idx]  # pointers: bob cuts the batch from his data
        opt_ptr.zero_grad()
        loss = F.cross_entropy(model_ptr(xb), yb)
        loss.backward()
        opt_ptr.step()

    for _ in range(epochs):
        for i, idx in enumerate(order.split(64)):
            steps = [("plain", plain_step), ("pointers", pointer_step)]
            for name, step in steps if i % 2 == 0 else reversed(steps):
                with clock(times[name]):
                    step(idx)
    with clock(times["pointers"]):
        trained = model_ptr.get()
    return plain, trained, times, len(bob.log)


def per_op_overhead_us(n: int = 20_000) -> tuple[float, float]:
    bob = VirtualWorker("bob")
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    pa, pb = bob.send(a), bob.send(b)
    results = {}
    for name, (u, v) in {"local": (a, b), "pointer": (pa, pb)}.items():
        best = float("inf")
        for _ in range(3):
            bob.log.clear()
            start = time.perf_counter()
            for _ in range(n):
                u + v  # noqa: B018 - the result (and for pointers its remote object) is freed at once
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        results[name] = best
    return results["local"], results["pointer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs over MNIST-mini (default 1)")
    parser.add_argument("--batches", type=int, default=None, help="limit each epoch to N batches (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = load_tensors()  # (5000, 1, 28, 28), (5000,)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    if args.batches:
        order = order[: 64 * args.batches]
    torch.manual_seed(0)
    initial = CNN().state_dict()
    lockstep_epochs(x, y, order[:128], initial, 1)  # warm-up: first batches pay one-time setup costs
    plain, trained, times, messages = lockstep_epochs(x, y, order, initial, args.epochs)
    for name, p in plain.state_dict().items():
        assert torch.equal(p, trained.state_dict()[name]), f"{name} differs: the loops did different work"
    n_batches = args.epochs * len(order.split(64))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"CNN, B=64, {args.epochs} epoch(s) of {len(order):,} images ({n_batches} batches), loops in lockstep:")
    for i, kind in enumerate(("wall", "CPU")):
        plain_s, pointer_s = times["plain"][i], times["pointers"][i]
        print(f"  {kind:>4} time: plain {plain_s:7.2f} s, pointers {pointer_s:7.2f} s, ratio {pointer_s / plain_s:.3f}")
    local_us, pointer_us = per_op_overhead_us()
    machinery = messages * (pointer_us - local_us) / 1e6
    print(f"  {messages / n_batches:.1f} messages per batch; identical final weights: yes; target ratio <= 1.10")
    print(
        f"  the machinery's share, from the per-op overhead: {messages} messages x {pointer_us - local_us:.1f} us "
        f"= {machinery:.3f} s per run ({100 * machinery / times['plain'][0]:.2f}% of the plain loop)"
    )
    print(
        f"small tensor add (3 floats): local {local_us:.2f} us, through a pointer {pointer_us:.2f} us, "
        f"overhead {pointer_us - local_us:.2f} us per operation"
    )


if __name__ == "__main__":
    main()
