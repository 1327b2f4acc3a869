"""Data resolution, the bundled MNIST-mini, the cache, and the errors for damaged, missing or foreign files."""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

from fedtutor import data
from fedtutor.course import datasource

MNIST_MINI = datasource.BUNDLED_MINI
REPO = Path(__file__).resolve().parents[1]


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def mini_folder(folder: Path) -> Path:
    """A copy of the bundled MNIST-mini's four .gz files (no SHA256SUMS): a folder FEDTUTOR_DATA can name."""
    folder.mkdir(parents=True)
    for f in MNIST_MINI.glob("*.gz"):
        shutil.copy(f, folder / f.name)
    return folder


def finishes_within(seconds: float, work) -> BaseException | None:
    """Run ``work`` in a thread; fail the test if it has not finished within ``seconds`` (a hang)."""
    outcome: list[BaseException | None] = []

    def target():
        try:
            work()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it hangs"
    assert time.perf_counter() - start < seconds
    return outcome[0]


# ----------------------------------------------------------------------------- finding the data


def test_offline_without_cache_uses_bundled_mini_fast(capsys, monkeypatch):
    # Simulate the network being down: connecting raises at once, like an unreachable host.
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    start = time.perf_counter()
    source = data.mnist_source()
    elapsed = time.perf_counter() - start
    assert source.is_mini and source.origin == "bundled"
    assert (source.n_train, source.n_test) == (5000, 10000)
    out = capsys.readouterr().out
    assert out.count("MNIST-mini") == 1, "the fallback is announced in exactly one line"
    assert elapsed < 10


def test_connect_probe_gives_up_quickly_and_finds_a_listening_host():
    """No patching: a host that never answers (TEST-NET-1) is given up on within the timeout."""
    start = time.perf_counter()
    assert datasource._network_reachable("https://192.0.2.1/", timeout=1.0) is False
    assert time.perf_counter() - start < 3
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert datasource._network_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=1.0) is True


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
    assert torch.allclose(data.denormalize(x[:3]).squeeze(1) * 255, data.read_split(MNIST_MINI, True)[0][:3].float())


def test_bundled_test_set_is_the_official_one():
    """The constants that tell MNIST's test set from another dataset's match the bundled files."""
    for stem, digest in datasource.MNIST_TEST_SHA256.items():
        assert hashlib.sha256(gzip.decompress((MNIST_MINI / f"{stem}.gz").read_bytes())).hexdigest() == digest


def test_torchvision_dataset_agrees_with_tensors():
    from torchvision import transforms

    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = data.torchvision_dataset(train=False, transform=t)
    xt, yt = data.load_tensors(train=False)
    assert len(ds) == 10000
    image, label = ds[123]
    assert label == yt[123].item() and torch.allclose(image, xt[123], atol=1e-6)


def test_describe_says_which_data_set_and_what_it_means_for_run_times(tmp_path, monkeypatch):
    mini = data.mnist_source()
    assert mini.describe().startswith("MNIST-mini") and "fastest" in mini.describe()
    official = datasource.DataSource("MNIST", "cache", tmp_path, 60000, 10000)
    assert official.describe().startswith("the official full MNIST") and "opt into all 60,000" in official.describe()
    monkeypatch.setenv("FEDTUTOR_DATA", str(mini_folder(tmp_path / "mine")))
    data.forget_sources()
    custom = data.mnist_source().describe()
    assert custom.startswith("a custom folder (not the official MNIST)") and "fixed subsets" in custom


def test_fedtutor_data_folder_is_used_for_this_run_only(tmp_path, monkeypatch, capsys, isolated_data):
    folder = tmp_path / "mydata" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f in MNIST_MINI.glob("*.gz"):
        (folder / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path / "mydata"))
    source = data.mnist_source()
    assert source.origin == "FEDTUTOR_DATA" and source.name == "custom data" and not source.is_mini
    assert (source.n_train, source.n_test) == (5000, 10000)
    assert capsys.readouterr().out.count(f"using {folder} (FEDTUTOR_DATA) for this run only") == 1
    assert len(data.load_tensors()[0]) == 5000
    assert not any(isolated_data.iterdir()), "nothing of a custom folder is copied into the cache"


def test_fedtutor_data_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.DataError, match="FEDTUTOR_DATA: .*empty has no train-images-idx3-ubyte, .*Fix"):
        data.mnist_source()


def test_two_of_four_files_names_the_missing_ones(tmp_path, monkeypatch):
    folder = mini_folder(tmp_path / "half")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("FEDTUTOR_DATA", str(folder))
    with pytest.raises(data.DataError) as caught:
        data.mnist_source()
    message = str(caught.value)
    assert "has no train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in message and "Fix:" in message
    assert "train-images" not in message and "t10k-labels" not in message


def test_unwritable_cache_falls_back_to_a_private_temp_folder(tmp_path, monkeypatch, capsys):
    # A regular *file* where the cache folder should be cannot be written, even by root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("FEDTUTOR_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    source = data.mnist_source()
    fallback = tmp_path / "tmp" / f"fedtutor-cache-{os.getuid()}"
    assert source.is_mini and source.root.is_relative_to(fallback)
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    out = capsys.readouterr().out
    assert "is not writable" in out and "FEDTUTOR_CACHE" in out
    assert len(data.load_tensors()[0]) == 5000


@pytest.mark.parametrize("planted", ["someone else's folder", "a link"])
def test_fallback_cache_folder_not_ours_is_refused(tmp_path, monkeypatch, planted):
    """Another user could create <temp>/fedtutor-cache-<uid> first and plant labels in it."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("FEDTUTOR_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fallback = tmp_path / "tmp" / f"fedtutor-cache-{os.getuid()}"
    if planted == "a link":
        (tmp_path / "elsewhere").mkdir()
        fallback.symlink_to(tmp_path / "elsewhere")
    else:
        fallback.mkdir()
        if os.getuid() == 0:
            os.chown(fallback, 65534, 65534)  # nobody: a real other owner
        else:
            real_uid = os.getuid()
            monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the folder is then not "ours"
            fallback = fallback.rename(tmp_path / "tmp" / f"fedtutor-cache-{real_uid + 1}")
    with pytest.raises(data.DataError, match=r"is not a folder of yours.*Fix: set FEDTUTOR_CACHE"):
        data.mnist_source()
    assert not any(fallback.iterdir()), "nothing is written into it either"


def test_cache_that_is_not_the_official_mnist_is_ignored(isolated_data, capsys):
    """An older fedtutor copied any FEDTUTOR_DATA folder into the cache as MNIST: never use it as such."""
    cached = isolated_data / "mnist" / "MNIST" / "raw"
    cached.mkdir(parents=True)
    for f in MNIST_MINI.glob("*.gz"):
        (cached / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    source = data.mnist_source()
    assert source.is_mini
    assert f"ignoring {cached}: not the official MNIST" in capsys.readouterr().out


def test_only_the_official_archives_are_adopted_into_the_cache(tmp_path, monkeypatch, isolated_data):
    """Pretend MNIST-mini's archives are the official ones: then, and only then, they are cached as MNIST."""
    folder = mini_folder(tmp_path / "official")
    sums = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in datasource.OFFICIAL_MD5}
    monkeypatch.setattr(datasource, "OFFICIAL_MD5", sums)
    monkeypatch.setenv("FEDTUTOR_DATA", str(folder))
    assert data.mnist_source().name == "MNIST"
    monkeypatch.delenv("FEDTUTOR_DATA")
    data.forget_sources()
    source = data.mnist_source()
    assert (source.name, source.origin, source.n_train) == ("MNIST", "cache", 5000)
    assert source.root == isolated_data / "mnist"


def test_official_md5s_and_download_probe_are_torchvisions():
    from torchvision import datasets

    assert dict(datasets.MNIST.resources) == datasource.OFFICIAL_MD5
    assert datasets.MNIST.mirrors[0] == datasource.DOWNLOAD_PROBE


# ----------------------------------------------------------------------------- the cache is verified


def test_unpacked_copy_is_reused_and_its_damage_reported(isolated_data):
    first = data.mnist_source()
    copy = first.root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    assert copy.is_relative_to(isolated_data)  # the bundled .gz files were unpacked into the cache
    unpacked_at = copy.stat().st_mtime_ns
    data.forget_sources()
    assert data.mnist_source() == first and copy.stat().st_mtime_ns == unpacked_at  # not unpacked again
    copy.write_bytes(copy.read_bytes()[:-7])  # e.g. a disk that filled up while it was written
    data.forget_sources()
    with pytest.raises(data.DataError, match=r"Checksum mismatch for .*train-labels-idx1-ubyte.*Fix: delete"):
        data.mnist_source()


def test_cache_copy_altered_in_place_is_detected(isolated_data):
    """Same size, same modification time, one label changed: still caught."""
    raw = data.mnist_source().root / "MNIST" / "raw"
    target = raw / "train-labels-idx1-ubyte"
    before = target.stat()
    blob = bytearray(target.read_bytes())
    blob[100] = (blob[100] + 1) % 10  # a valid label, just the wrong one
    target.write_bytes(bytes(blob))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    data.forget_sources()
    with pytest.raises(data.DataError, match=rf"Checksum mismatch for {target}.*Fix: delete the folder {raw}"):
        data.mnist_source()


def _first_use(cache: str, barrier, errors) -> None:
    """One of several processes that start on the same empty cache at the same moment."""
    try:
        os.environ.update(FEDTUTOR_CACHE=cache, FEDTUTOR_OFFLINE="1")
        data.forget_sources()
        barrier.wait(timeout=60)
        source = data.mnist_source()
        images, labels = data.read_split(source.root / "MNIST" / "raw", train=True)
        assert (source.n_train, len(images), len(labels)) == (5000, 5000, 5000)
    except BaseException:  # noqa: BLE001 - reported to the parent
        errors.put(traceback.format_exc())
        raise


def test_concurrent_first_use_from_several_processes(tmp_path):
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    for repetition in range(4):
        cache = tmp_path / f"cache{repetition}"
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_first_use, args=(str(cache), barrier, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert [p.exitcode for p in procs] == [0] * 4, f"repetition {repetition}: {failures}"
        raw = cache / "mnist-mini" / "MNIST" / "raw"
        assert sorted(p.name for p in raw.iterdir()) == sorted([*data.IDX_NAMES.values(), datasource.SEAL])
        datasource.verify_checksums(raw)  # no half-written file survived under a real name, no temporary left


# ----------------------------------------------------------------------------- bad files


def test_bundled_checksums_hold():
    assert sorted(datasource.verify_checksums(MNIST_MINI)) == sorted(f"{s}.gz" for s in data.IDX_NAMES.values())


def test_checksum_mismatch_names_file(tmp_path):
    copy = tmp_path / "mini"
    shutil.copytree(MNIST_MINI, copy)
    target = copy / "train-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip one byte: same size, different content
    target.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="Checksum mismatch.*train-labels-idx1-ubyte.gz"):
        datasource.verify_checksums(copy)


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


@pytest.mark.parametrize("gz", [False, True])
def test_oversized_header_is_refused_at_once(tmp_path, gz):
    """A header claiming 65536^4 items (2^64 bytes) must not be believed, allocated or read."""
    header = struct.pack(">HBB", 0, 0x08, 4) + struct.pack(">4I", 65536, 65536, 65536, 65536)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(header + bytes(1000)) if gz else header + bytes(1000))
    err = finishes_within(1.0, lambda: data.read_idx(path))
    assert isinstance(err, data.DataError), err
    assert str(path) in str(err) and "18,446,744,073,709,551,616" in str(err) and "Fix:" in str(err)


def test_wrong_shape_images_are_refused(tmp_path, monkeypatch):
    folder = mini_folder(tmp_path / "cifar-like")
    images = np.zeros((5000, 32, 32), dtype=np.uint8)  # 32x32, like CIFAR, not MNIST's 28x28
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    monkeypatch.setenv("FEDTUTOR_DATA", str(folder))
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte.gz holds images of shape \(32, 32\).*Fix:"):
        data.mnist_source()


def test_labels_that_do_not_fit_are_refused(tmp_path):
    folder = mini_folder(tmp_path / "bad-labels")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(9999, 3))))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz holds labels of shape \(9999,\) for 10,000"):
        data.read_split(folder, train=False)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(10000, 12))))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz has a label 12"):
        data.read_split(folder, train=False)


def test_another_dataset_in_fedtutor_data_is_refused(tmp_path, monkeypatch):
    """Fashion-MNIST (or any other 28x28 set) has its own test set: it is not silently taken for MNIST."""
    folder = mini_folder(tmp_path / "fashion-like")
    images, _ = data.read_split(MNIST_MINI, train=False)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(255 - images.numpy()), compresslevel=1))
    monkeypatch.setenv("FEDTUTOR_DATA", str(folder))
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.gz is not MNIST's test set.*Fix:"):
        data.mnist_source()


@pytest.mark.parametrize("kind", ["folder", "named pipe"])
def test_non_regular_file_in_place_of_an_idx_file(tmp_path, monkeypatch, kind):
    """A folder or a named pipe where a data file should be: a DataError at once, never a hang."""
    folder = mini_folder(tmp_path / "odd")
    target = folder / "train-images-idx3-ubyte.gz"
    target.unlink()
    if kind == "folder":
        target.mkdir()
    else:
        if not hasattr(os, "mkfifo"):
            pytest.skip("this OS has no named pipes")
        os.mkfifo(target)
    err = finishes_within(1.0, lambda: data.read_idx(target))
    assert isinstance(err, data.DataError) and f"{target} is a {kind}" in str(err) and "Fix:" in str(err)
    monkeypatch.setenv("FEDTUTOR_DATA", str(folder))
    err = finishes_within(1.0, data.mnist_source)
    assert isinstance(err, data.DataError) and str(target) in str(err) and "Fix:" in str(err)


# ----------------------------------------------------------------------------- tensors and scripts


def test_subset_is_seeded_and_bounded():
    x, y = torch.arange(100).float(), torch.arange(100)
    a, _ = data.subset(x, y, 10, seed=1)
    b, _ = data.subset(x, y, 10, seed=1)
    c, _ = data.subset(x, y, 10, seed=2)
    assert torch.equal(a, b) and len(a) == 10 and len(set(a.tolist())) == 10 and not torch.equal(a, c)
    assert len(data.subset(x, y, 1000)[0]) == 100


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


def test_mini_builder_is_reproducible(tmp_path, require_system):
    """scripts/build_mnist_mini.py rebuilds the bundled files byte for byte from ../shared/data/mnist-mini."""
    source = REPO.parent / "shared" / "data" / "mnist-mini"
    if not source.is_dir():
        require_system(f"needs the reference files at {source} (beside the checkout, not in a fresh clone)")
    scratch = tmp_path / "repo"
    (scratch / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "build_mnist_mini.py", scratch / "scripts")
    subprocess.run([sys.executable, str(scratch / "scripts" / "build_mnist_mini.py"), str(source)], check=True)
    built = scratch / "fedtutor" / "_data" / "mnist-mini"
    assert (built / "SHA256SUMS").read_text() == (MNIST_MINI / "SHA256SUMS").read_text()


def test_fashion_mnist_for_the_flower_benchmark(fashion_mnist, require_system):
    folder = fashion_mnist.fashion_mnist_folder()
    if folder is None:
        require_system("needs Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)")
    x, y = fashion_mnist.load_fashion_mnist(train=False)
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10
    assert abs(fashion_mnist.load_fashion_mnist(examples=6000)[0].mean().item()) < 0.05  # its own normalization


def test_fashion_loader_refuses_mnist_and_names_the_fix(fashion_mnist, tmp_path):
    assert fashion_mnist.fashion_mnist_folder(tmp_path) is None
    with pytest.raises(data.DataError, match=r"does not hold Fashion-MNIST.*Fix: reinstall dataset-fashion-mnist"):
        fashion_mnist.load_fashion_mnist(train=False, folder=MNIST_MINI)
