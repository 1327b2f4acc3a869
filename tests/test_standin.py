"""The full-MNIST path, offline (issue 17): the 60,000-image stand-in from scripts/make_mnist_standin.py.

A learner with internet gets the full MNIST; CI has only the bundled MNIST-mini. The stand-in has
the full MNIST's sizes and file names, so it takes the same code path (reader, sizes, memory), but
it is not the official MNIST: it must be used for the run it is given to and never cached as MNIST.
The notebook tests (marked ``standin``) run course notebooks in quick mode on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient

from fedtutor import data
from fedtutor.course import datasource

REPO = Path(__file__).resolve().parent.parent
QUICK_ENV = {"CI": "true", "FEDTUTOR_QUICK": "1"}


def test_standin_has_full_mnist_sizes_and_torchvision_names(standin):
    from torchvision import datasets

    assert sorted(p.name for p in standin.iterdir()) == sorted(name for name, _ in datasets.MNIST.resources)
    images, labels = data.read_split(standin, train=True)
    assert images.shape == (60000, 28, 28) and torch.bincount(labels).tolist() == [6000] * 10
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # the official test set, as it is
        assert (standin / f"{stem}.gz").read_bytes() == (datasource.BUNDLED_MINI / f"{stem}.gz").read_bytes()


def test_standin_noise_is_seeded_and_on_the_ink_only(standin, standin_maker):
    images, labels = data.read_split(standin, train=True)
    mini_images, mini_labels = data.read_split(datasource.BUNDLED_MINI, train=True)
    assert torch.equal(labels, mini_labels.repeat(12))
    changes = []
    for k in range(12):  # copy k of mini image i is stand-in image k * 5000 + i
        copy = images[k * 5000 : (k + 1) * 5000]
        assert torch.equal(copy == 0, mini_images == 0), "background stays background, ink stays ink"
        changes.append((copy.short() - mini_images.short()).abs())
    change = torch.stack(changes)
    assert change.max().item() <= standin_maker.NOISE and change.float().mean().item() > 1  # some noise, a little
    del changes, change
    again, _ = standin_maker.standin_training_set(seed=0)
    assert np.array_equal(again, images.numpy())
    del again
    other, _ = standin_maker.standin_training_set(seed=1)
    assert not np.array_equal(other, images.numpy())


def test_standin_is_used_for_that_run_only_and_never_cached(standin, monkeypatch, capsys, isolated_data):
    monkeypatch.setenv("FEDTUTOR_DATA", str(standin))
    source = data.mnist_source()
    assert (source.name, source.n_train, source.n_test) == ("custom data", 60000, 10000)
    assert source.describe().startswith("a custom folder (not the official MNIST)")
    out = capsys.readouterr().out
    assert out.count("for this run only") == 1 and "60,000 training images" in out
    x, y = data.load_tensors(examples=600, seed=1)
    assert x.shape == (600, 1, 28, 28)
    assert not any(isolated_data.iterdir()), "nothing of the stand-in may land in the cache"
    monkeypatch.delenv("FEDTUTOR_DATA")
    data.forget_sources()
    assert data.mnist_source().is_mini, "without FEDTUTOR_DATA the learner is back on MNIST-mini"


def test_script_never_overwrites_files(standin, standin_maker, monkeypatch, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in standin.iterdir()}
    monkeypatch.setattr(sys, "argv", ["make_mnist_standin.py", str(standin)])
    assert standin_maker.main() == 2
    assert "already has train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in standin.iterdir()} == before


@pytest.mark.standin
@pytest.mark.parametrize("name", ["02-mnist-classifier", "06-federated-mnist", "07-non-iid-data"])
def test_notebook_runs_in_quick_mode_on_the_standin(name, standin, isolated_data, tmp_path):
    """Every cell runs and every assert holds with 60,000 training images, as for a learner with internet."""
    path = REPO / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={**os.environ, **QUICK_ENV, "FEDTUTOR_DATA": str(standin)})
    printed = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "60,000 training images" in printed, "the notebook did not run on the stand-in"
    assert not (isolated_data / "mnist").exists(), "the stand-in was cached as MNIST"
