"""Where the course's data comes from, and the tensors it becomes.

MNIST resolves in this order, first hit wins:

1. ``$FEDTUTOR_DATA``: a folder you point at, holding the four IDX files (``.gz`` or not),
   directly or under ``MNIST/raw/`` (torchvision's layout);
2. the user cache (``cache_dir()``), where an earlier download landed;
3. a torchvision download into the cache (progress bar, MD5-checked archives), tried only
   when the download host answers within a second or two, so offline never hangs;
4. the bundled **MNIST-mini**: 5,000 real training digits (500 per class) and the official
   10,000 test digits, shipped inside the package and SHA-256 checked before use.

Whatever the source, ``mnist_source()`` hands back a folder laid out as torchvision expects,
so ``torchvision.datasets.MNIST(source.root)`` works on it, and ``load_tensors()`` gives
normalized in-memory tensors, the fast path for training. Every file is read through
``read_idx``, which checks the header against the file size, so a damaged or truncated file
is reported by name with its fix instead of surfacing later as a shape error inside torch.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import socket
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

BUNDLED_MINI = Path(__file__).parent / "_data" / "mnist-mini"
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {
    (True, "images"): "train-images-idx3-ubyte",
    (True, "labels"): "train-labels-idx1-ubyte",
    (False, "images"): "t10k-images-idx3-ubyte",
    (False, "labels"): "t10k-labels-idx1-ubyte",
}
# Per-dataset mean and std of the pixel values in [0, 1] over the training set; subtracting
# and dividing gives inputs of mean 0 and std 1, which plain SGD trains on much better.
NORMALIZATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
# torchvision's first download mirror for each dataset: a quick connect to it says whether a
# download is worth trying (torchvision itself, imported only then, does the download).
DOWNLOAD_PROBES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
CONNECT_TIMEOUT_S = 1.5
DOWNLOAD_TIMEOUT_S = 20.0


class DataError(RuntimeError):
    """A dataset file is missing, damaged or unusable; the message says which and the fix."""


@dataclass(frozen=True)
class DataSource:
    """Where a dataset was found. ``root`` is a torchvision root: ``root/<Name>/raw/<idx files>``."""

    name: str  # "MNIST", "MNIST-mini" or "FashionMNIST"
    origin: str  # "FEDTUTOR_DATA", "cache", "download", "bundled" or "system"
    root: Path
    n_train: int
    n_test: int

    @property
    def is_mini(self) -> bool:
        return self.name == "MNIST-mini"

    def describe(self) -> str:
        return f"{self.name}: {self.n_train:,} train / {self.n_test:,} test images ({self.origin}, {self.root})"


# ----------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """The per-user cache folder: ``$FEDTUTOR_CACHE``, else the usual place on each OS."""
    if os.environ.get("FEDTUTOR_CACHE"):
        return Path(os.environ["FEDTUTOR_CACHE"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "fedtutor" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fedtutor"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fedtutor"


def writable_cache_dir() -> Path:
    """The cache folder, or a private temporary one (said in one line) when it cannot be written."""
    wanted = cache_dir()
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        probe = wanted / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return wanted
    except OSError as err:
        fallback = Path(tempfile.gettempdir()) / f"fedtutor-cache-{_user_tag()}"
        fallback.mkdir(parents=True, exist_ok=True)
        print(
            f"fedtutor: cache folder {wanted} is not writable ({err.strerror}); using {fallback} "
            "for this session. Fix: set FEDTUTOR_CACHE to a folder you can write."
        )
        return fallback


def _user_tag() -> str:
    try:
        return str(os.getuid())
    except AttributeError:  # Windows has no uid
        return os.environ.get("USERNAME", "user")


# ----------------------------------------------------------------------------- reading IDX files


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) of unsigned bytes into a uint8 tensor.

    IDX header: two zero bytes, a type code (0x08 = ubyte), the number of dimensions, then
    one big-endian uint32 per dimension. We check all of it against the payload size.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except (EOFError, OSError, zlib.error) as err:
        raise _damaged(path, f"cannot be decompressed ({err})") from None
    shape, header_len = _idx_layout(path, raw, len(raw))
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)
    return torch.from_numpy(array.copy())


def idx_shape(path: Path) -> tuple[int, ...]:
    """The shape an uncompressed IDX file declares, checked against the file's size.

    Reads the header only: how a folder that is already unpacked is validated cheaply
    (``read_idx`` checks the file again when its data is actually loaded).
    """
    with open(path, "rb") as f:
        head = f.read(4 + 4 * 255)  # the longest possible header: 255 dimensions
    return _idx_layout(path, head, path.stat().st_size)[0]


def _idx_layout(path: Path, head: bytes, size: int) -> tuple[tuple[int, ...], int]:
    """(shape, header length) of an IDX file of ``size`` bytes that starts with ``head``."""
    if len(head) < 4 or head[0:2] != b"\x00\x00" or head[2] != 0x08:
        raise _damaged(path, "is not an IDX file of unsigned bytes (bad header)")
    header_len = 4 + 4 * head[3]
    if len(head) < header_len:
        raise _damaged(path, "is truncated inside its header")
    shape = struct.unpack(f">{head[3]}I", head[4:header_len])
    expected = int(np.prod(shape)) if shape else 0
    if size - header_len != expected:
        raise _damaged(path, f"holds {size - header_len:,} data bytes, its header promises {expected:,} (truncated?)")
    return shape, header_len


def _damaged(path: Path, what: str) -> DataError:
    return DataError(
        f"Data file {path} {what}. Fix: delete it and run again to restore it "
        "(the bundled MNIST-mini is used when nothing else is available), "
        "or point FEDTUTOR_DATA at a folder with intact files."
    )


def verify_checksums(folder: Path, algorithm: str = "sha256", sums: dict[str, str] | None = None) -> None:
    """Check files against ``sums`` (name -> hex digest), by default the folder's SHA256SUMS."""
    if sums is None:
        sums = {}
        for line in (folder / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split()
            sums[name] = digest
    for name, digest in sums.items():
        path = folder / name
        if not path.exists():
            raise DataError(f"{path} is missing. Fix: reinstall fedtutor (pip install --force-reinstall fedtutor).")
        actual = hashlib.new(algorithm, path.read_bytes()).hexdigest()
        if actual != digest:
            raise DataError(
                f"Checksum mismatch for {path}: expected {algorithm} {digest[:12]}..., got {actual[:12]}... "
                "The file is damaged or was changed. Fix: delete it and run again, or reinstall fedtutor."
            )


def read_split(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split in an IDX folder."""
    images = read_idx(_find_idx(folder, IDX_NAMES[train, "images"]))
    labels = read_idx(_find_idx(folder, IDX_NAMES[train, "labels"])).long()
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise _damaged(folder, f"has {tuple(images.shape)} images but {tuple(labels.shape)} labels")
    if labels.numel() and int(labels.max()) > 9:
        raise _damaged(folder, f"has a label {int(labels.max())}; labels must be 0-9")
    return images, labels


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder} has no {stem} (or {stem}.gz).")


def _has_idx(folder: Path) -> bool:
    return all((folder / s).exists() or (folder / f"{s}.gz").exists() for s in IDX_NAMES.values())


# ----------------------------------------------------------------------------- resolution


def _network_reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True when a TCP connection to the URL's host opens within ``timeout`` seconds."""
    if os.environ.get("FEDTUTOR_OFFLINE") == "1":
        return False
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _as_torchvision_root(folder: Path, name: str, origin: str) -> DataSource:
    """Expose an IDX folder as ``root/<name>/raw`` with uncompressed, header-checked files.

    A folder already laid out that way is used in place; otherwise each file is unpacked once
    into the cache (checked in full by ``read_idx`` on the way) and later calls reuse the copy.
    """
    raw = folder if folder.name == "raw" and folder.parent.name == _tv_name(name) else None
    if raw is None or not all((folder / s).exists() for s in IDX_NAMES.values()):
        raw = writable_cache_dir() / name.lower() / _tv_name(name) / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for stem in IDX_NAMES.values():
            if not (raw / stem).exists():
                _unpack_idx(_find_idx(folder, stem), raw / stem)
    shapes = {key: idx_shape(raw / stem) for key, stem in IDX_NAMES.items()}
    for train in (True, False):
        if shapes[train, "images"][0] != shapes[train, "labels"][0]:
            raise _damaged(raw, f"has {shapes[train, 'images'][0]} images but {shapes[train, 'labels'][0]} labels")
    return DataSource(name, origin, raw.parent.parent, shapes[True, "images"][0], shapes[False, "images"][0])


def _unpack_idx(source: Path, target: Path) -> None:
    """Write ``source`` (IDX, gzipped or not) uncompressed to ``target``, after checking it in full."""
    array = read_idx(source)  # raises DataError naming ``source`` if it is damaged
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(header + array.numpy().tobytes())
    tmp.replace(target)  # atomic: never leaves half a file under the real name


def _tv_name(name: str) -> str:
    """torchvision's folder name for a dataset (MNIST-mini mimics MNIST)."""
    return "FashionMNIST" if name == "FashionMNIST" else "MNIST"


def _idx_folder(candidate: Path, tv_name: str) -> Path | None:
    for folder in (candidate, candidate / tv_name / "raw"):
        if _has_idx(folder):
            return folder
    return None


def _download(tv_class, root: Path) -> bool:
    """torchvision download with its MD5 checks; False (and one line why) on any failure."""
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled transfer must not hang the lesson
    try:
        for train in (True, False):
            tv_class(root=str(root), train=train, download=True)
        return True
    except Exception as err:  # noqa: BLE001 - any failure means "use the offline data"
        print(f"fedtutor: download failed ({type(err).__name__}: {err}).")
        return False
    finally:
        socket.setdefaulttimeout(old_timeout)


def _verify_archives(folder: Path, kind: str) -> None:
    """Check the downloaded ``.gz`` archives still in a cache folder against torchvision's MD5s."""
    if not any(folder.glob("*.gz")):
        return  # nothing left to check (and no reason to import torchvision)
    tv_class = _torchvision_class(kind)
    sums = {Path(url).name: md5 for url, md5 in tv_class.resources if (folder / Path(url).name).exists()}
    verify_checksums(folder, "md5", sums)


def _torchvision_class(kind: str):
    # Imported only when needed (a download, an MD5 check, torchvision_dataset): importing
    # torchvision costs about 2 s and 170 MB, and `fedtutor doctor` must work without it.
    from torchvision import datasets

    return datasets.MNIST if kind == "mnist" else datasets.FashionMNIST


def _resolve(kind: str, download: bool) -> DataSource:
    name = "MNIST" if kind == "mnist" else "FashionMNIST"  # also torchvision's class and folder name
    env = os.environ.get("FEDTUTOR_DATA")
    if env:
        folder = _idx_folder(Path(env).expanduser(), name)
        if folder is not None:
            return _as_torchvision_root(folder, name, "FEDTUTOR_DATA")
        if kind == "mnist":  # the user asked for this folder: say so instead of silently ignoring it
            raise DataError(
                f"FEDTUTOR_DATA={env} has no MNIST IDX files (train-images-idx3-ubyte[.gz] and the other three, "
                "directly or under MNIST/raw/). Fix: point it at such a folder, or unset it."
            )
    if kind == "fashion-mnist" and _has_idx(SYSTEM_FASHION_MNIST):
        return _as_torchvision_root(SYSTEM_FASHION_MNIST, name, "system")
    cached = _idx_folder(cache_dir() / kind, name)
    if cached is not None:
        _verify_archives(cached, kind)
        return _as_torchvision_root(cached, name, "cache")
    if download and _network_reachable(DOWNLOAD_PROBES[kind]):
        root = writable_cache_dir() / kind
        if _download(_torchvision_class(kind), root):
            return _as_torchvision_root(root / name / "raw", name, "download")
    if kind == "fashion-mnist":
        raise DataError(
            "Fashion-MNIST is not available offline here. Fix: `apt-get install dataset-fashion-mnist` "
            "(Debian/Ubuntu), or connect to the internet once so it can be downloaded into the cache."
        )
    verify_checksums(BUNDLED_MINI)
    source = _as_torchvision_root(BUNDLED_MINI, "MNIST-mini", "bundled")
    print(
        "fedtutor: full MNIST not found and no network; using the bundled MNIST-mini "
        f"({source.n_train:,} train / {source.n_test:,} test real MNIST images)."
    )
    return source


@functools.cache
def _cached_source(kind: str, download: bool) -> DataSource:
    return _resolve(kind, download)


def mnist_source(download: bool = True) -> DataSource:
    """Find MNIST (see the module docstring for the order); the answer is kept for the session."""
    return _cached_source("mnist", download)


def fashion_mnist_source(download: bool = True) -> DataSource:
    """Find Fashion-MNIST: ``$FEDTUTOR_DATA``, the Debian package's folder, the cache, a download."""
    return _cached_source("fashion-mnist", download)


def forget_sources() -> None:
    """Drop the remembered sources and tensors (after changing FEDTUTOR_DATA, or in tests)."""
    _cached_source.cache_clear()
    load_tensors.cache_clear()


# ----------------------------------------------------------------------------- tensors


def normalize(images: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] then standardized."""
    mean, std = NORMALIZATION[dataset]
    x = images.float()  # the only full-size allocation: 60,000 images are 188 MB in float32
    return x.div_(255.0).sub_(mean).div_(std).unsqueeze(1)  # in place: no temporaries of that size


def denormalize(x: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """Inverse of ``normalize``: back to pixel values in [0, 1], for plotting."""
    mean, std = NORMALIZATION[dataset]
    return (x * std + mean).clamp(0, 1)


@functools.lru_cache(maxsize=8)
def load_tensors(
    dataset: str = "mnist", train: bool = True, examples: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split in memory: images (N, 1, 28, 28) float32 normalized, labels (N,) int64.

    ``examples``: only a seeded random subset of that many, the same one ``subset(x, y,
    examples, seed)`` picks; only those are converted to float (6,000 of Fashion-MNIST's 60,000
    take 19 MB instead of 188 MB). Shared between callers (kept for the session): treat them
    as read-only, ``.clone()`` to edit.
    """
    if dataset not in NORMALIZATION:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(NORMALIZATION)}.")
    source = mnist_source() if dataset == "mnist" else fashion_mnist_source()
    images, labels = read_split(source.root / _tv_name(source.name) / "raw", train)
    return normalized_subset(images, labels, dataset, examples, seed)


def normalized_subset(
    images: torch.Tensor, labels: torch.Tensor, dataset: str, examples: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and labels (N,): pick ``subset``'s examples first, then ``normalize`` them."""
    images, labels = subset(images, labels, examples, seed) if examples is not None else (images, labels)
    return normalize(images, dataset), labels


def torchvision_dataset(train: bool = True, transform=None, dataset: str = "mnist"):
    """The same data as a ``torchvision.datasets`` object (MNIST or FashionMNIST class)."""
    if dataset not in NORMALIZATION:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(NORMALIZATION)}.")
    source = mnist_source() if dataset == "mnist" else fashion_mnist_source()
    return _torchvision_class(dataset)(str(source.root), train=train, transform=transform)


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
