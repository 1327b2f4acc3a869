"""Fashion-MNIST for the Flower benchmark (``flower_compare.py``) only: the course itself uses MNIST.

Read offline from Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``;
``apt-get install dataset-fashion-mnist``) through fedtutor's own IDX reader, so a damaged,
missing or foreign file gets the same ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fedtutor import data

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# Mean and std of Fashion-MNIST's training pixels in [0, 1] (MNIST's are in fedtutor.data).
MEAN, STD = 0.2860, 0.3530
PER_CLASS = {True: 6000, False: 1000}  # Fashion-MNIST is exactly balanced; MNIST is not


def fashion_mnist_folder(folder: Path = SYSTEM_FASHION_MNIST) -> Path | None:
    """``folder`` when it holds the four Fashion-MNIST IDX files (``.gz`` or not), else None."""
    present = [(folder / s).exists() or (folder / f"{s}.gz").exists() for s in data.IDX_NAMES.values()]
    return folder if all(present) else None


def load_fashion_mnist(
    train: bool = True, examples: int | None = None, seed: int = 0, folder: Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split: images (N, 1, 28, 28) float32 standardized, labels (N,) int64; ``examples`` as in
    ``fedtutor.data.load_tensors`` (a seeded subset, picked before converting to float)."""
    folder = folder or fashion_mnist_folder()
    if folder is None:
        raise data.DataError(
            f"Fashion-MNIST is not installed ({SYSTEM_FASHION_MNIST} has no IDX files). "
            "Fix: apt-get install dataset-fashion-mnist (Debian/Ubuntu)."
        )
    images, labels = data.read_split(folder, train)  # (N, 28, 28) uint8, (N,) int64, shapes checked
    counts = torch.bincount(labels, minlength=10).tolist()
    if counts != [PER_CLASS[train]] * 10:  # e.g. MNIST files put where Fashion-MNIST should be
        raise data.DataError(
            f"{folder} does not hold Fashion-MNIST: its {'training' if train else 'test'} labels count {counts} "
            f"per class, not {PER_CLASS[train]:,} each. Fix: reinstall dataset-fashion-mnist."
        )
    if examples is not None:
        images, labels = data.subset(images, labels, examples, seed)
    x = images.float().div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)  # (N, 1, 28, 28)
    return x, labels
