"""MNIST as tensors, and the partitions that share it out among clients.

- ``read_idx`` / ``read_split``: MNIST's IDX files (optionally gzipped) into uint8 tensors. The
  header is checked before any data is read, so a damaged or foreign file is reported by name
  with its fix, not as a shape error deep in torch.
- ``load_tensors()``: one split, normalized, in memory: the fast path for training.
- ``iid`` / ``shards`` / ``dirichlet``: McMahan et al.'s IID and pathological non-IID splits,
  and Dirichlet(alpha) label skew; ``label_counts`` and ``describe_partition`` summarize them.

*Where* MNIST comes from (``$FEDTUTOR_DATA``, the cache, a download, or the bundled
MNIST-mini: 5,000 real training digits and the official 10,000 test digits) is course
machinery, in ``fedtutor.course.datasource``; ``mnist_source()`` asks it.
"""

from __future__ import annotations

import functools
import gzip
import math
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["DataError", "describe_partition", "dirichlet", "iid", "label_counts", "load_tensors", "mnist_source"]
__all__ += ["normalize", "read_idx", "shards", "subset"]
IDX_NAMES = {
    (True, "images"): "train-images-idx3-ubyte",
    (True, "labels"): "train-labels-idx1-ubyte",
    (False, "images"): "t10k-images-idx3-ubyte",
    (False, "labels"): "t10k-labels-idx1-ubyte",
}
# Mean and std of MNIST's training pixels in [0, 1]: standardized inputs train much better with SGD.
MEAN, STD = 0.1307, 0.3081
MAX_IDX_BYTES = 2**30  # a header promising more is damaged: the full MNIST's largest file holds 47 MB


class DataError(RuntimeError):
    """A dataset file is missing, damaged or unusable; the message says which and the fix."""


# ----------------------------------------------------------------------------- reading IDX files


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) of unsigned bytes into a uint8 tensor.

    IDX header: two zero bytes, a type code (0x08 = ubyte), the number of dimensions, then one
    big-endian uint32 per dimension. It is checked before any data is read: a file promising
    more than it holds, or than memory allows, is refused at once."""
    path = Path(path)
    size, gz = _regular_size(path), path.suffix == ".gz"
    try:
        with gzip.open(path) if gz else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08" or head[3] == 0:
                raise _damaged(path, "is not an IDX file of unsigned bytes (bad header)")
            dims = f.read(4 * head[3])
            if len(dims) < 4 * head[3]:
                raise _damaged(path, "is truncated inside its header")
            shape = struct.unpack(f">{head[3]}I", dims)
            expected = math.prod(shape)  # Python ints: a header of 65536^4 items cannot overflow
            if expected > MAX_IDX_BYTES:
                raise _damaged(path, f"has a header promising {expected:,} data bytes, far more than MNIST's")
            if not gz and size - 4 - len(dims) != expected:  # checked before reading anything
                raise _damaged(path, f"holds {size - 4 - len(dims):,} data bytes, its header promises {expected:,}")
            payload = bytearray(expected)
            got, extra = f.readinto(payload), f.read(1)
    except (EOFError, OSError, zlib.error) as err:
        raise _damaged(path, f"cannot be {'decompressed' if gz else 'read'} ({err})") from None
    if got != expected or extra:
        raise _damaged(path, f"holds {'more' if extra else f'{got:,}'} data bytes, its header promises {expected:,}")
    return torch.from_numpy(np.frombuffer(payload, dtype=np.uint8).reshape(shape))  # no copy


def _regular_size(path: Path) -> int:
    """The size of ``path``, once it is known to be a regular file (opening a named pipe would hang)."""
    try:
        info = path.stat()
    except OSError as err:
        raise _damaged(path, f"cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a named pipe, socket or device"
        raise _damaged(path, f"is {kind}, not a data file")
    return info.st_size


def _damaged(path: Path, what: str) -> DataError:
    return DataError(
        f"Data file {path} {what}. Fix: delete or replace it and run again (the bundled MNIST-mini is used "
        "when nothing else is available), or point FEDTUTOR_DATA at a folder with intact files."
    )


def read_split(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split in an IDX folder, checked to be MNIST's shapes."""
    image_file, label_file = (_find_idx(folder, IDX_NAMES[train, kind]) for kind in ("images", "labels"))
    images, labels = read_idx(image_file), read_idx(label_file).long()
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise _damaged(image_file, f"holds images of shape {tuple(images.shape[1:])}; MNIST images are 28x28")
    if labels.ndim != 1 or len(labels) != len(images):
        raise _damaged(label_file, f"holds labels of shape {tuple(labels.shape)} for {len(images):,} images")
    if labels.numel() and int(labels.max()) > 9:
        raise _damaged(label_file, f"has a label {int(labels.max())}; labels must be 0-9")
    return images, labels


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder} has no {stem} (or {stem}.gz). Fix: add it, or point FEDTUTOR_DATA elsewhere.")


def mnist_source():
    """Where MNIST is on this machine: a ``DataSource`` (see ``fedtutor.course.datasource``)."""
    from fedtutor.course.datasource import mnist_source

    return mnist_source()


def forget_sources() -> None:
    """Forget the data found so far (after changing FEDTUTOR_DATA, or in tests)."""
    from fedtutor.course.datasource import mnist_source

    mnist_source.cache_clear()
    load_tensors.cache_clear()


# ----------------------------------------------------------------------------- tensors


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] then standardized."""
    x = images.float()  # the only full-size allocation: 60,000 images are 188 MB in float32
    return x.div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)  # in place: no temporaries of that size


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize``: back to pixel values in [0, 1], for plotting."""
    return (x * STD + MEAN).clamp(0, 1)


@functools.lru_cache(maxsize=8)
def load_tensors(train: bool = True, examples: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of MNIST in memory: images (N, 1, 28, 28) float32 normalized, labels (N,) int64.

    ``examples``: only a seeded random subset of that many, the same one ``subset(x, y,
    examples, seed)`` picks; only those are converted to float (6,000 of the full MNIST's
    60,000 take 19 MB instead of 188 MB). Shared between callers (kept for the session): treat
    them as read-only, ``.clone()`` to edit.
    """
    images, labels = read_split(mnist_source().root / "MNIST" / "raw", train)
    return normalized_subset(images, labels, examples, seed)


def normalized_subset(
    images: torch.Tensor, labels: torch.Tensor, examples: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and labels (N,): pick ``subset``'s examples first, then ``normalize`` them."""
    images, labels = subset(images, labels, examples, seed) if examples is not None else (images, labels)
    return normalize(images), labels


def torchvision_dataset(train: bool = True, transform=None):
    """The same data as a ``torchvision.datasets.MNIST`` object."""
    from torchvision import datasets  # imported only when asked for: torchvision is slow to import

    return datasets.MNIST(str(mnist_source().root), train=train, transform=transform)


def subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random class-mixed subset of ``n`` examples (all of them when ``n >= len``)."""
    if n >= len(x):
        return x, y
    if n < 1:
        raise ValueError(f"n must be a positive number of examples, got {n!r}.")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


# ----------------------------------------------------------------------------- partitions
# How a federated experiment splits one dataset between clients. Each partitioner takes the
# labels (N,) and returns one int64 index tensor per client; every example lands in exactly one
# client, and the seed alone fixes the split.


def _check_partition_args(labels: torch.Tensor, num_clients: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D tensor (N,), got {type(labels).__name__} {getattr(labels, 'shape', '')}."
        )
    if not isinstance(num_clients, int) or not 1 <= num_clients <= len(labels):
        raise ValueError(
            f"num_clients must be an integer from 1 to the number of examples ({len(labels)}), got {num_clients!r}."
        )


def iid(labels: torch.Tensor, num_clients: int, seed: int = 0) -> list[torch.Tensor]:
    """Shuffle, then deal out equal-size parts (sizes differ by at most one): every client sees every class."""
    _check_partition_args(labels, num_clients)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in order.tensor_split(num_clients)]


def shards(labels: torch.Tensor, num_clients: int, shards_per_client: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """McMahan et al.'s pathological non-IID split: sort by label, cut ``num_clients * shards_per_client``
    equal shards, give each client ``shards_per_client`` random ones (so mostly 2 classes each)."""
    _check_partition_args(labels, num_clients)
    num_shards = num_clients * shards_per_client
    if not isinstance(shards_per_client, int) or shards_per_client < 1 or num_shards > len(labels):
        raise ValueError(
            f"shards_per_client must be a positive integer with num_clients * shards_per_client <= {len(labels)} "
            f"examples, got {shards_per_client!r} (x {num_clients} clients)."
        )
    by_label = torch.sort(labels, stable=True).indices  # (N,): all 0s, then all 1s, ...
    pieces = by_label.tensor_split(num_shards)
    deal = torch.randperm(num_shards, generator=torch.Generator().manual_seed(seed)).reshape(num_clients, -1)
    return [torch.cat([pieces[s] for s in row.tolist()]).sort().values for row in deal]


def dirichlet(labels: torch.Tensor, num_clients: int, alpha: float, seed: int = 0) -> list[torch.Tensor]:
    """Label skew of tunable strength: each class is split between clients in proportions drawn from
    Dirichlet(alpha, ..., alpha). Large alpha (100) is close to IID; small alpha (0.1) gives each
    client a few dominant classes, and some clients may get no examples at all."""
    _check_partition_args(labels, num_clients)
    if not isinstance(alpha, (int, float)) or not 0 < alpha < float("inf"):
        raise ValueError(f"alpha must be a positive number (0.1 = very skewed, 100 = nearly IID), got {alpha!r}.")
    rng = np.random.default_rng(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(num_clients)]
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).squeeze(1)  # (n_c,)
        members = members[torch.from_numpy(rng.permutation(len(members)))]
        shares = rng.dirichlet(np.full(num_clients, float(alpha)))  # (K,), sums to 1
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for k, piece in enumerate(np.split(members.numpy(), cuts)):
            parts[k].append(torch.from_numpy(piece))
    return [torch.cat(p).sort().values for p in parts]


def label_counts(labels: torch.Tensor, parts: list[torch.Tensor], classes: int = 10) -> torch.Tensor:
    """(num_clients, classes) table: row k counts client k's examples of each class."""
    return torch.stack([torch.bincount(labels[p], minlength=classes) for p in parts])


def describe_partition(labels: torch.Tensor, parts: list[torch.Tensor], classes: int = 10) -> str:
    """One summary line: clients, sizes, and how many classes a typical client holds."""
    counts = label_counts(labels, parts, classes)  # (K, classes)
    sizes = counts.sum(1)
    present = (counts > 0).sum(1).float()
    return (
        f"{len(parts)} clients, {int(sizes.sum()):,} examples, {int(sizes.min())}-{int(sizes.max())} each "
        f"(median {int(sizes.median())}); classes per client: median {present.median().item():.0f}, "
        f"min {int(present.min())}, max {int(present.max())}"
    )
