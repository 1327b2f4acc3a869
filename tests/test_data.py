"""Data resolution, the bundled MNIST-mini, and the errors for damaged or missing files."""

from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fedtutor import data

MNIST_MINI = data.BUNDLED_MINI


def test_offline_without_cache_uses_bundled_mini_fast(capsys, monkeypatch):
    # Simulate the network being down: connecting raises at once, like an unreachable host.
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    import torchvision.datasets  # noqa: F401 - time the lookup, not a cold import of torchvision

    start = time.perf_counter()
    source = data.mnist_source()
    elapsed = time.perf_counter() - start
    assert source.is_mini and source.origin == "bundled"
    assert (source.n_train, source.n_test) == (5000, 10000)
    out = capsys.readouterr().out
    assert out.count("MNIST-mini") == 1, "the fallback is announced in exactly one line"
    assert elapsed < 10


def test_real_offline_machine_does_not_hang():
    """No patching: on a machine without internet the connect attempt must give up quickly."""
    start = time.perf_counter()
    reachable = data._network_reachable("https://ossci-datasets.s3.amazonaws.com/mnist/", timeout=1.5)
    assert time.perf_counter() - start < 5
    assert isinstance(reachable, bool)


def test_offline_env_switch_skips_network(monkeypatch):
    monkeypatch.setenv("FEDTUTOR_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network was touched"))
    assert data.mnist_source().is_mini


def test_mini_matches_its_provenance():
    x, y = data.load_tensors(train=True)
    xt, yt = data.load_tensors(train=False)
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [500] * 10
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test set's first labels
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # normalization: mean 0 and std 1 over the training pixels, up to the mini set's own statistics
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_torchvision_dataset_agrees_with_tensors():
    from torchvision import transforms

    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = data.torchvision_dataset(train=False, transform=t)
    xt, yt = data.load_tensors(train=False)
    assert len(ds) == 10000
    image, label = ds[123]
    assert label == yt[123].item() and torch.allclose(image, xt[123], atol=1e-6)


def test_bundled_checksums_hold():
    data.verify_checksums(MNIST_MINI)


def test_checksum_mismatch_names_file(tmp_path):
    copy = tmp_path / "mini"
    shutil.copytree(MNIST_MINI, copy)
    target = copy / "train-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip one byte: same size, different content
    target.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="Checksum mismatch.*train-labels-idx1-ubyte.gz"):
        data.verify_checksums(copy)


def test_truncated_idx_is_reported_with_file_and_fix(tmp_path):
    raw = gzip.decompress((MNIST_MINI / "t10k-images-idx3-ubyte.gz").read_bytes())
    broken = tmp_path / "t10k-images-idx3-ubyte"
    broken.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte holds .* promises .*Fix:"):
        data.read_idx(broken)


def test_truncated_gzip_is_reported(tmp_path):
    broken = tmp_path / "train-images-idx3-ubyte.gz"
    blob = (MNIST_MINI / "train-images-idx3-ubyte.gz").read_bytes()
    broken.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte.gz cannot be decompressed.*Fix:"):
        data.read_idx(broken)


def test_not_an_idx_file(tmp_path):
    bogus = tmp_path / "t10k-labels-idx1-ubyte"
    bogus.write_text("<html>404 not found</html>")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(bogus)


def test_fedtutor_data_folder_is_used(tmp_path, monkeypatch):
    folder = tmp_path / "mydata" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f in MNIST_MINI.glob("*.gz"):
        (folder / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path / "mydata"))
    source = data.mnist_source()
    assert source.origin == "FEDTUTOR_DATA" and source.root == tmp_path / "mydata"
    assert source.name == "MNIST" and source.n_train == 5000


def test_fedtutor_data_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.DataError, match="FEDTUTOR_DATA=.*has no MNIST IDX files.*Fix"):
        data.mnist_source()


def test_cached_download_is_preferred_and_md5_checked(isolated_data):
    cached = isolated_data / "mnist" / "MNIST" / "raw"
    cached.mkdir(parents=True)
    for f in MNIST_MINI.glob("*.gz"):
        shutil.copy(f, cached / f.name)  # gz files whose MD5 differs from the real MNIST archives
    with pytest.raises(data.DataError, match="Checksum mismatch.*md5"):
        data.mnist_source()


def test_unwritable_cache_falls_back_to_temp_dir(tmp_path, monkeypatch, capsys):
    # A regular *file* where the cache folder should be cannot be written, even by root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("FEDTUTOR_CACHE", str(blocker / "cache"))
    source = data.mnist_source()
    assert source.is_mini and not str(source.root).startswith(str(blocker))
    out = capsys.readouterr().out
    assert "is not writable" in out and "FEDTUTOR_CACHE" in out
    x, _ = data.load_tensors()
    assert len(x) == 5000


def test_fashion_mnist_from_system_folder():
    if not data._has_idx(data.SYSTEM_FASHION_MNIST):
        pytest.fail("install the Debian package dataset-fashion-mnist (.ci/run does)")
    x, y = data.load_tensors("fashion-mnist", train=False)
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
        data.load_tensors("cifar")


def test_subset_is_seeded_and_bounded():
    x, y = torch.arange(100).float(), torch.arange(100)
    a, _ = data.subset(x, y, 10, seed=1)
    b, _ = data.subset(x, y, 10, seed=1)
    assert torch.equal(a, b) and len(a) == 10 and len(set(a.tolist())) == 10
    assert len(data.subset(x, y, 1000)[0]) == 100


def test_mini_builder_is_reproducible(tmp_path):
    """scripts/build_mnist_mini.py rebuilds the bundled files byte for byte from shared/."""
    source = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-mini"
    if not source.exists():
        pytest.fail(f"reference files missing at {source}")
    repo = Path(__file__).resolve().parents[1]
    scratch = tmp_path / "repo"
    (scratch / "scripts").mkdir(parents=True)
    shutil.copy(repo / "scripts" / "build_mnist_mini.py", scratch / "scripts")
    subprocess.run([sys.executable, str(scratch / "scripts" / "build_mnist_mini.py"), str(source)], check=True)
    built = scratch / "fedtutor" / "_data" / "mnist-mini"
    assert (built / "SHA256SUMS").read_text() == (MNIST_MINI / "SHA256SUMS").read_text()


def test_a_subset_is_loaded_without_converting_the_rest():
    """``load_tensors(examples=n)`` gives exactly ``subset`` of the full tensors, seeded."""
    x, y = data.load_tensors()
    xs, ys = data.load_tensors(examples=300, seed=4)
    expected_x, expected_y = data.subset(x, y, 300, seed=4)
    assert torch.equal(xs, expected_x) and torch.equal(ys, expected_y)
    with pytest.raises(ValueError, match="positive number of examples"):
        data.load_tensors(examples=0)


def test_finding_and_loading_data_does_not_import_torchvision():
    """torchvision costs ~2 s and 170 MB per process; only downloads and torchvision_dataset need it."""
    code = "import sys; from fedtutor import data; data.load_tensors(); print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_unpacked_copy_is_reused_and_its_damage_reported(isolated_data):
    first = data.mnist_source()
    copy = first.root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    assert copy.is_relative_to(isolated_data)  # the bundled .gz files were unpacked into the cache
    unpacked_at = copy.stat().st_mtime_ns
    data.forget_sources()
    assert data.mnist_source() == first and copy.stat().st_mtime_ns == unpacked_at  # not unpacked again
    copy.write_bytes(copy.read_bytes()[:-7])  # e.g. a disk that filled up while it was written
    data.forget_sources()
    with pytest.raises(data.DataError, match=r"train-labels-idx1-ubyte holds 4,993 data bytes.*Fix:"):
        data.mnist_source()


def test_download_probes_are_torchvisions_mirrors():
    from torchvision import datasets

    mirrors = {"mnist": datasets.MNIST.mirrors[0], "fashion-mnist": datasets.FashionMNIST.mirrors[0]}
    assert mirrors == data.DOWNLOAD_PROBES
