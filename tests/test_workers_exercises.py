"""The checkers of notebooks 03-05 accept right answers and explain wrong ones specifically."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedtutor.course.exercises import Wrong, check
from fedtutor.models import CNN, TinyLinear, count_parameters
from fedtutor.workers import VirtualWorker, sandbox


def test_03_1_remote_dot_product():
    alice = VirtualWorker("alice")
    v = alice.send(torch.arange(6.0))
    assert check("03.1", (v @ v).get(), alice)
    greedy = VirtualWorker("alice")
    w = greedy.send(torch.arange(6.0)).get()  # brought the whole vector home
    with pytest.raises(Wrong, match="24 bytes at once"):
        check("03.1", w @ w, greedy)
    with pytest.raises(Wrong, match="dot is 15"):
        check("03.1", torch.arange(6.0).sum(), alice)


def test_03_2_chain():
    bob, alice = VirtualWorker("bob"), VirtualWorker("alice")
    assert check("03.2", alice.send(bob.send(torch.tensor([42.0]))))
    with pytest.raises(Wrong, match="points to bob; it should point to alice"):
        check("03.2", bob.send(torch.tensor([42.0])))
    with pytest.raises(Wrong, match=r"expected tensor\(\[42\.\]\)"):
        check("03.2", alice.send(bob.send(torch.tensor([41.0]))))


def test_03_3_private_mean():
    bob = VirtualWorker("bob")
    salaries = bob.hold(torch.tensor([1.0, 2.0, 6.0]), private=True)
    mean_ptr = salaries.mean()
    bob.release(mean_ptr)
    assert check("03.3", mean_ptr.get().item(), salaries)
    with pytest.raises(Wrong, match="not the mean"):
        check("03.3", 2.0, salaries)
    bob.release(salaries)
    with pytest.raises(Wrong, match="released the raw salaries"):
        check("03.3", 3.0, salaries)


def test_04_1_alice_fit():
    alice = VirtualWorker("alice")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    x_ptr, y_ptr = alice.hold(x, private=False), alice.hold(x @ torch.tensor([[3.0], [-2.0]]) + 1, private=False)
    model = TinyLinear(2, 1)
    model_ptr, opt_ptr = alice.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(200):
        opt_ptr.zero_grad()
        F.mse_loss(model_ptr(x_ptr), y_ptr).backward()
        opt_ptr.step()
    assert check("04.1", model_ptr.get(), alice)
    with pytest.raises(Wrong, match="from the best fit"):
        check("04.1", TinyLinear(2, 1), alice)


def test_04_2_round_bytes():
    params = count_parameters(CNN())
    assert check("04.2", 8 * params)
    with pytest.raises(Wrong, match="one way only"):
        check("04.2", 4 * params)
    with pytest.raises(Wrong, match="4 bytes"):
        check("04.2", params)


def test_04_3_recovered_point():
    carol = VirtualWorker("carol")
    carol.hold(torch.tensor([[1.5, -0.4, 0.9]]), private=True)
    assert check("04.3", torch.tensor([1.5, -0.4, 0.9]), carol)
    with pytest.raises(Wrong, match="off by up to"):
        check("04.3", torch.tensor([1.5, -0.4, 1.9]), carol)


def test_05_exercises_on_a_small_grid():
    grid = sandbox(sizes=(60, 40), seed=3)
    labels_b = grid.search("#hospital_b", "#labels")[0]
    truth = int((grid["hospital_b"].objects[labels_b.id] == 7).sum())
    assert check("05.1", truth, grid)
    with pytest.raises(Wrong, match="not the number of 7s"):
        check("05.1", truth + 1, grid)
    grid["hospital_b"].release(labels_b)
    with pytest.raises(Wrong, match="released all its labels"):
        check("05.1", truth, grid)
    assert check("05.2", [0.6, 0.4], grid)
    with pytest.raises(Wrong, match="add up to"):
        check("05.2", [60, 40], grid)


def test_05_3_weighted_average():
    a, b = nn.Linear(4, 2), nn.Linear(4, 2)
    assert check("05.3", ((3 * a.weight + b.weight) / 4).detach(), a, b)
    with pytest.raises(Wrong, match="plain average"):
        check("05.3", ((a.weight + b.weight) / 2).detach(), a, b)
