"""fedtutor: federated learning from first principles, on plain PyTorch.

The library the course's notebooks teach from. One flat module per concern:

- ``data``       find MNIST (full, or the bundled MNIST-mini); in-memory tensors; the ``iid`` /
                 ``shards`` / ``dirichlet`` partitioners
- ``models``     the 2NN and CNN of McMahan et al. 2017, and a tiny linear model for toy data
- ``training``   train / evaluate / fit with progress bars and a plottable history
- ``workers``    virtual workers, pointers and a message log: computing on data you cannot see
- ``federated``  FedAvg / FedSGD / FedProx, server momentum, sampling, dropouts, a ``RoundHistory``
- ``speedups``   what the federated engine does to run faster, kept out of the code you read
- ``privacy``    gradient inversion, secret sharing, secure aggregation, DP-FedAvg
- ``flower``     the same client code as a Flower ClientApp and ServerApp (optional extra)
- ``plots``, ``widgets``  the figures and ipywidgets controls the notebooks use

The course machinery (the ``fedtutor`` command, doctor, workspaces, student versions, exercise
checkers, the Flower process launcher) lives beside it in ``fedtutor.course``; notebooks use
it only for ``from fedtutor.course import check, hint, solution``.
"""

from __future__ import annotations

import os
import random

import torch

__version__ = "0.1.0"
__all__ = ["quick_mode", "seed_everything"]


def quick_mode() -> bool:
    """True when notebooks should shrink data and rounds: ``FEDTUTOR_QUICK=1`` or ``CI=true``."""
    return os.environ.get("FEDTUTOR_QUICK") == "1" or os.environ.get("CI", "").lower() == "true"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's and torch's global generators; returns a fresh generator with the same seed.

    Passing that generator explicitly (to DataLoaders, partitioners, ...) keeps results the same
    even when cells run in another order, which global seeding alone cannot promise.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
