"""Write the 60,000-image MNIST stand-in, to run the full-MNIST path offline (tests, benchmarks).

Training set: the bundled MNIST-mini's 5,000 training images tiled twelve times (60,000), with
seeded noise on the ink pixels only (pixels > 0). The background stays exactly 0 and no digit
moves, so the task stays as easy as real MNIST's: shifting or blurring digits would make the
2NN's task harder and asserted accuracies fail for the wrong reason. Test set: the official
10,000 MNIST test images, as they are. The four IDX files are gzipped and named as torchvision
names them, so fedtutor reads them exactly as it reads a real download: same reader, same sizes,
same memory. The stand-in is not the official MNIST: fedtutor uses it for the runs it is given
to (``FEDTUTOR_DATA``) and never caches it as MNIST.

Usage:  python scripts/make_mnist_standin.py FOLDER [--seed 0]
then    FEDTUTOR_DATA=FOLDER jupyter lab      (or: python benchmarks/notebooks.py --standin)
The output is byte-for-byte reproducible for a given seed (gzip mtime 0).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

from fedtutor import data
from fedtutor.course import datasource

COPIES = 12  # 12 x 5,000 = the full MNIST's 60,000 training images
NOISE = 24  # ink pixels move by up to +-24 of 255 grey levels, and stay ink (>= 1)


def standin_training_set(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (60000, 28, 28) uint8 and labels (60000,) uint8: MNIST-mini tiled, noise on the ink only."""
    images, labels = data.read_split(datasource.BUNDLED_MINI, train=True)  # (5000, 28, 28), (5000,)
    noisy = np.tile(images.numpy(), (COPIES, 1, 1)).astype(np.int16)  # (60000, 28, 28): copy k = the 5,000 in order
    ink = noisy > 0
    noisy += np.random.default_rng(seed).integers(-NOISE, NOISE + 1, size=noisy.shape, dtype=np.int16)
    np.clip(noisy, 1, 255, out=noisy)  # ink stays ink (>= 1) ...
    noisy[~ink] = 0  # ... and the background stays exactly 0
    return noisy.astype(np.uint8), np.tile(labels.numpy().astype(np.uint8), COPIES)


def idx_gz(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (2 zero bytes, type 0x08, ndim, big-endian dims, data), gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes(), compresslevel=6, mtime=0)


def make_standin(folder: Path, seed: int = 0) -> Path:
    """Write the four ``.gz`` IDX files into ``folder`` (created; existing files are never overwritten)."""
    folder = Path(folder)
    names = [f"{stem}.gz" for stem in data.IDX_NAMES.values()]
    if taken := [n for n in names if (folder / n).exists()]:
        raise FileExistsError(f"{folder} already has {', '.join(taken)}; choose another folder or delete them.")
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = standin_training_set(seed)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(idx_gz(images))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(idx_gz(labels))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # the official test set, as it is
        shutil.copyfile(datasource.BUNDLED_MINI / name, folder / name)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the four IDX files (created if needed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pixel noise (default 0)")
    args = parser.parse_args()
    try:
        folder = make_standin(args.folder, args.seed)
    except FileExistsError as err:
        print(f"make_mnist_standin: {err}", file=sys.stderr)
        return 2
    print(f"wrote the 60,000-image MNIST stand-in to {folder}; use it with FEDTUTOR_DATA={folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
