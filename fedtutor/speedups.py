"""Speed-ups the federated engine uses on purpose; none of them changes what is computed.

The code a notebook points you to (``federated.train_client``, ``training.evaluate``) is plain
PyTorch: ``copy.deepcopy``, ``torch.optim.SGD``, a loop. The engine (``federated.Server``,
``run_federated``) and the Flower apps pass the pieces below to it explicitly instead, and
tests check that the results stay the same. What each buys is measured by
``benchmarks/fedavg_overhead.py`` and recorded in ``docs/benchmarks.md``:

- ``PlainSGD``: ``w <- w - lr * grad``, bit for bit ``torch.optim.SGD(params, lr)`` (no momentum,
  no weight decay). Building the first ``torch.optim`` optimizer in a process imports
  ``torch._dynamo``: memory and start-up time paid again by every Flower client process.
- ``fast_copy``: a deep copy with its conv weights stored channels-last (NHWC), for which CPU
  convolutions (oneDNN) pick faster kernels. Only the engine's own copies use it: some torch
  utilities (``.view(-1)``, ``parameters_to_vector``) fail on a channels-last weight.
- ``evaluate``: through a ``fast_copy``, in chunks of 100 examples, which was as fast as any chunk
  size measured while bounding a convolution's working memory.
- ``intra_op_threads``: one torch thread per client while clients train side by side in threads,
  so the cores are not oversubscribed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PlainSGD", "evaluate", "fast_copy", "intra_op_threads"]


class PlainSGD:
    """``torch.optim.SGD(params, lr)`` without momentum or weight decay, in a few lines."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        self.params, self.lr = list(params), lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # like torch.optim's default: a fresh gradient, not a zeroed one

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)


def fast_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose 4-D (conv) weights (O, I, kH, kW) are stored channels-last in memory."""
    return copy.deepcopy(model).to(memory_format=torch.channels_last)  # only 4-D tensors change


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 100) -> tuple[float, float]:
    """Same as ``training.evaluate``: (mean cross-entropy, accuracy), computed faster."""
    model.eval()
    if any(p.dim() == 4 for p in model.parameters()):
        model = fast_copy(model)
    logits = torch.cat([model(xb) for xb in x.split(chunk)])  # (N, classes)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's (process-wide) intra-op thread count, restoring it afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
