"""Where the course's MNIST comes from: course machinery behind ``fedtutor.data.mnist_source()``.

MNIST resolves in this order, first hit wins:

1. ``$FEDTUTOR_DATA``: a folder you point at, holding the four IDX files (``.gz`` or not),
   directly or under ``MNIST/raw/`` (torchvision's layout). The official MNIST archives are
   copied into the cache; any other folder is used for this run only and never cached;
2. the user cache (``cache_dir()``), where the official MNIST landed earlier;
3. a torchvision download into the cache (progress bar, MD5-checked archives), tried only
   when the download host answers within a second or two, so offline never hangs;
4. the bundled **MNIST-mini**: 5,000 real training digits (500 per class) and the official
   10,000 test digits, shipped inside the package and SHA-256 checked before use.

Whatever the source, ``mnist_source()`` hands back a folder laid out as torchvision expects,
so ``torchvision.datasets.MNIST(source.root)`` works on it, and ``load_tensors()`` gives
normalized in-memory tensors, the fast path for training. ``read_idx`` checks each header
before reading any data, unpacked copies are sealed with SHA-256 sums that every process checks,
and a damaged or foreign file is reported by name with its fix, not as a shape error in torch.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import shutil
import socket
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fedtutor import data
from fedtutor.data import IDX_NAMES, DataError, _damaged, _find_idx, _regular_size, read_split

BUNDLED_MINI = Path(data.__file__).parent / "_data" / "mnist-mini"
SEAL = "SHA256SUMS"  # in each unpacked folder: its files' sums, written once they were checked in full
# The official MNIST archives (torchvision.datasets.MNIST.resources): only these are cached as
# "the full MNIST", so a stand-in or a different dataset can never take its place.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The official test set, uncompressed: a folder with another test split is another dataset.
MNIST_TEST_SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DOWNLOAD_PROBE = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror
CONNECT_TIMEOUT_S = 1.5
DOWNLOAD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DataSource:
    """Where MNIST was found. ``root`` is a torchvision root: ``root/MNIST/raw/<idx files>``."""

    name: str  # "MNIST" (the official full set), "MNIST-mini" or "custom data"
    origin: str  # "FEDTUTOR_DATA", "cache", "download" or "bundled"
    root: Path
    n_train: int
    n_test: int

    @property
    def is_mini(self) -> bool:
        return self.name == "MNIST-mini"

    def describe(self) -> str:
        """Which data set this is, and what that means for run times."""
        if self.name == "MNIST":
            what = (
                "the official full MNIST: the notebooks train on fixed, seeded subsets of it (each says how "
                "many), so they take about as long as on MNIST-mini unless you opt into all 60,000"
            )
        elif self.is_mini:
            what = "MNIST-mini, bundled with fedtutor (the full MNIST was not found): the fastest runs"
        else:
            what = "a custom folder (not the official MNIST): the notebooks train on fixed subsets of it"
        return f"{what}. {self.n_train:,} train / {self.n_test:,} test images ({self.origin}, {self.root})"


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
    """The cache folder or, when it cannot be written, ``<temp>/fedtutor-cache-<uid>`` (said in one line).

    Anyone can create folders in the temp folder, so that one is made private (mode 0700), and
    one that someone else made first, which could hold planted files, is refused."""
    wanted = cache_dir()
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=wanted).close()  # a uniquely named probe: other processes may probe too
        return wanted
    except OSError as err:
        reason = err.strerror
    folder = Path(tempfile.gettempdir()) / f"fedtutor-cache-{getattr(os, 'getuid', lambda: 'user')()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()  # lstat: a link planted under that name is not followed
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != getattr(os, "getuid", lambda: info.st_uid)():
        raise DataError(
            f"Cache folder {wanted} is not writable ({reason}), and {folder} is not a folder of yours (owner uid "
            f"{info.st_uid}, or a link), so its files cannot be trusted. Fix: set FEDTUTOR_CACHE to a folder you own."
        )
    folder.chmod(0o700)  # also closes up a folder that an older fedtutor made with the default umask
    print(
        f"fedtutor: cache folder {wanted} is not writable ({reason}); using {folder} for this session. "
        "Fix: set FEDTUTOR_CACHE to a folder you can write."
    )
    return folder


def _digest(path: Path, algorithm: str = "sha256") -> str:  # files here are at most 47 MB
    _regular_size(path)
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def verify_checksums(folder: Path, fix: str = "reinstall fedtutor") -> dict[str, str]:
    """Check every file listed in ``folder/SHA256SUMS`` against its sum; the sums (name -> hex) checked."""
    try:
        _regular_size(folder / SEAL)
        sums = {name: digest for digest, name in map(str.split, (folder / SEAL).read_text().splitlines())}
    except (DataError, UnicodeDecodeError, ValueError):
        raise DataError(f"{folder / SEAL} is missing or damaged. Fix: {fix}.") from None
    for name, digest in sums.items():
        actual = _digest(folder / name) if (folder / name).exists() else "(missing)"
        if actual != digest:
            raise DataError(
                f"Checksum mismatch for {folder / name}: expected sha256 {digest[:12]}..., got {actual[:12]}... "
                f"The file is missing, damaged or was changed. Fix: {fix}."
            )
    return sums


# ----------------------------------------------------------------------------- the cache


def _unpack(source: Path, raw: Path) -> dict[str, str]:
    """Check the four IDX files in ``source`` in full, write them uncompressed into ``raw`` and seal it
    with their SHA-256 sums (returned). Each file is written under a unique temporary name, then
    renamed: processes starting at the same moment never see each other's half-written files."""
    raw.mkdir(parents=True, exist_ok=True)
    sums = {}
    for train in (True, False):
        for kind, array in zip(("images", "labels"), read_split(source, train), strict=True):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            sums[IDX_NAMES[train, kind]] = _write_atomically(raw / IDX_NAMES[train, kind], header, array.byte().numpy())
    _write_atomically(raw / SEAL, "".join(f"{digest}  {name}\n" for name, digest in sums.items()).encode())
    return sums


def _write_atomically(target: Path, *parts) -> str:
    """Write ``parts`` (bytes-like) to ``target`` via a unique temporary file and ``os.replace``; their SHA-256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
                digest.update(part)
        os.replace(tmp, target)  # atomic: the real name only ever holds a complete file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _sealed(raw: Path) -> bool:
    """True when ``_unpack`` sealed ``raw`` and every file still matches; DataError when one does not."""
    fix = f"delete the folder {raw} and run again (it is rebuilt from checked files)"
    if (raw / SEAL).exists() and sorted(verify_checksums(raw, fix)) != sorted(IDX_NAMES.values()):
        raise DataError(f"{raw / SEAL} does not list the four IDX files. Fix: {fix}.")
    return (raw / SEAL).exists()


def _is_official(folder: Path) -> bool:
    """True when ``folder`` holds the four official MNIST archives (torchvision's MD5s)."""
    paths = [folder / name for name in OFFICIAL_MD5]
    if not all(p.is_file() and p.stat().st_size < 2**24 for p in paths):  # the archives are under 10 MB
        return False
    return all(_digest(p, "md5") == md5 for p, md5 in zip(paths, OFFICIAL_MD5.values(), strict=True))


def _source(raw: Path, name: str, origin: str) -> DataSource:
    sizes = [(raw / IDX_NAMES[train, "images"]).stat().st_size for train in (True, False)]
    return DataSource(name, origin, raw.parent.parent, *((size - 16) // 784 for size in sizes))  # checked files


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


def _download(root: Path) -> None:
    """torchvision download into ``root`` with its MD5 checks; on any failure, one line why."""
    from torchvision import datasets  # only here: 2 s and 170 MB that offline use never pays

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled transfer must not hang the lesson
    try:
        for train in (True, False):
            datasets.MNIST(root=str(root), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any failure means "use the offline data"
        print(f"fedtutor: download failed ({type(err).__name__}: {err}).")
    finally:
        socket.setdefaulttimeout(old_timeout)


def _env_folder(given: str) -> Path:
    """The folder named by FEDTUTOR_DATA, or its ``MNIST/raw``, whichever holds the four IDX files."""
    folders = (Path(given).expanduser(), Path(given).expanduser() / "MNIST" / "raw")
    missing = {
        f: [s for s in IDX_NAMES.values() if not (f / s).exists() and not (f / f"{s}.gz").exists()] for f in folders
    }
    folder = min(folders, key=lambda f: len(missing[f]))  # the one with more of the files (the first on a tie)
    if missing[folder]:
        raise DataError(
            f"FEDTUTOR_DATA: {folder} has no {', '.join(missing[folder])} (.gz or not). Fix: point FEDTUTOR_DATA "
            "at a folder with the four MNIST IDX files (directly or under MNIST/raw/), or unset it."
        )
    return folder


def _custom(folder: Path) -> DataSource:
    """A folder that is not the official MNIST: checked, unpacked for this process only, never cached."""
    scratch = Path(tempfile.mkdtemp(prefix="fedtutor-data-"))  # private (0700), removed at exit
    atexit.register(shutil.rmtree, scratch, True)
    sums = _unpack(folder, scratch / "MNIST" / "raw")
    for stem, digest in MNIST_TEST_SHA256.items():
        if sums[stem] != digest:
            raise _damaged(_find_idx(folder, stem), "is not MNIST's test set (Fashion-MNIST, or another dataset?)")
    source = _source(scratch / "MNIST" / "raw", "custom data", "FEDTUTOR_DATA")
    print(
        f"fedtutor: using {folder} (FEDTUTOR_DATA) for this run only: {source.n_train:,} training images, "
        "not the official MNIST archives, so never cached."
    )
    return source


def _resolve(download: bool) -> DataSource:
    given = os.environ.get("FEDTUTOR_DATA")
    folder = _env_folder(given) if given else None
    if folder is not None and not _is_official(folder):
        return _custom(folder)
    home = writable_cache_dir()
    cached = home / "mnist" / "MNIST" / "raw"  # only ever the official MNIST, unpacked and sealed
    if not _sealed(cached):
        if folder is None and not _is_official(cached):
            if all((cached / s).exists() for s in IDX_NAMES.values()):  # torchvision would not download
                # e.g. a FEDTUTOR_DATA folder that an older fedtutor cached as MNIST
                print(f"fedtutor: ignoring {cached}: not the official MNIST. Fix: delete that folder.")
            elif download and _network_reachable(DOWNLOAD_PROBE):
                _download(home / "mnist")  # the archives land in ``cached``
        if folder is not None or _is_official(cached):
            _unpack(folder or cached, cached)
    if (cached / SEAL).exists():
        return _source(cached, "MNIST", "FEDTUTOR_DATA" if given else "cache")
    mini = home / "mnist-mini" / "MNIST" / "raw"
    if not _sealed(mini):
        verify_checksums(BUNDLED_MINI)
        _unpack(BUNDLED_MINI, mini)
    source = _source(mini, "MNIST-mini", "bundled")
    print(
        "fedtutor: full MNIST not found and no network; using the bundled MNIST-mini "
        f"({source.n_train:,} train / {source.n_test:,} test real MNIST images)."
    )
    return source


@functools.cache
def mnist_source(download: bool = True) -> DataSource:
    """Find MNIST (see the module docstring for the order); the answer is kept for the session."""
    return _resolve(download)
