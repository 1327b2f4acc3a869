"""fedtutor.training: batches, the training loop, evaluation, the history, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fedtutor import models, seed_everything
from fedtutor.training import (
    History,
    batches,
    confusion_matrix,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    train_epoch,
)


def test_batches_cover_every_example_once_and_are_seeded():
    x, y = torch.arange(10).float(), torch.arange(10)
    got = torch.cat([xb for xb, _ in batches(x, y, 3, torch.Generator().manual_seed(0))])
    again = torch.cat([xb for xb, _ in batches(x, y, 3, torch.Generator().manual_seed(0))])
    assert sorted(got.tolist()) == x.tolist() and torch.equal(got, again)
    assert [len(xb) for xb, _ in batches(x, y, None)] == [10]  # None = one full batch


def test_batches_reject_bad_input():
    with pytest.raises(ValueError, match="x has 3 examples but y has 2"):
        list(batches(torch.zeros(3), torch.zeros(2), 1))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(batches(torch.zeros(3), torch.zeros(3), 0))


def _separable_data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def test_train_epoch_reduces_loss_and_fit_learns():
    seed_everything(0)
    x, y = _separable_data()
    model = torch.nn.Linear(2, 2)
    before = F.cross_entropy(model(x), y).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    mean_loss = train_epoch(model, batches(x, y, 20, torch.Generator().manual_seed(0)), opt)
    assert 0 < mean_loss < before
    history = fit(model, (x, y), (x, y), epochs=5, lr=0.5, batch_size=20, progress=False)
    assert len(history) == 5 and history["epoch"] == [1, 2, 3, 4, 5]
    assert history.final["test_acc"] > 0.95
    assert evaluate(model, x, y)[1] == pytest.approx(history.final["test_acc"])


def test_fit_is_deterministic_for_a_seed():
    x, y = _separable_data()
    runs = []
    for _ in range(2):
        seed_everything(3)
        model = torch.nn.Linear(2, 2)
        runs.append(fit(model, (x, y), (x, y), epochs=2, seed=3, progress=False).records)
    assert runs[0] == runs[1]


def test_fit_rejects_zero_epochs():
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        fit(torch.nn.Linear(2, 2), _separable_data(), _separable_data(), epochs=0)


def test_history_plot_and_empty_history():
    h = History()
    with pytest.raises(ValueError, match="History is empty"):
        h.final  # noqa: B018
    h.append(epoch=1, train_loss=1.0, test_loss=1.1, test_acc=0.5)
    h.append(epoch=2, train_loss=0.5, test_loss=0.6, test_acc=0.8)
    fig = h.plot()
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2


def test_confusion_matrix_counts():
    preds = torch.tensor([0, 1, 1, 2])
    labels = torch.tensor([0, 1, 2, 2])
    m = confusion_matrix(preds, labels, classes=3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_checkpoint_round_trip_and_no_overwrite(tmp_path):
    model = models.MLP2NN()
    path = save_checkpoint(model, tmp_path / "m.pt")
    restored = load_checkpoint(models.MLP2NN(), path)
    for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    original = path.read_bytes()
    with pytest.raises(FileExistsError, match="not overwriting"):
        save_checkpoint(models.MLP2NN(), path)
    assert path.read_bytes() == original  # the learner's file is untouched


def test_loading_into_the_wrong_model_is_explained(tmp_path):
    path = save_checkpoint(models.MLP2NN(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="different architecture than CNN"):
        load_checkpoint(models.CNN(), path)
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(models.CNN(), tmp_path / "missing.pt")
