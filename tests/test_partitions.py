"""Partitioners in fedtutor.data: every example exactly once, seeded, with the promised label skew."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedtutor import data


def sorted_labels(per_class: int = 30, classes: int = 10) -> torch.Tensor:
    return torch.arange(classes).repeat_interleave(per_class)  # (classes * per_class,), sorted like MNIST-mini


def assert_exact_cover(parts: list[torch.Tensor], n: int) -> None:
    everything = torch.cat(parts)
    assert everything.dtype == torch.int64
    assert len(everything) == n, "some example is missing or assigned twice"
    assert torch.equal(everything.sort().values, torch.arange(n))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(20, 400),
    num_clients=st.integers(1, 10),
    alpha=st.floats(0.01, 100),
    seed=st.integers(0, 2**31),
)
def test_every_partitioner_assigns_each_example_exactly_once(n, num_clients, alpha, seed):
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))
    assert_exact_cover(data.iid(labels, num_clients, seed), n)
    assert_exact_cover(data.dirichlet(labels, num_clients, alpha, seed), n)
    assert_exact_cover(data.shards(labels, num_clients, 2, seed), n)


@pytest.mark.parametrize(
    "make",
    [
        lambda y, s: data.iid(y, 7, seed=s),
        lambda y, s: data.shards(y, 7, seed=s),
        lambda y, s: data.dirichlet(y, 7, alpha=0.5, seed=s),
    ],
)
def test_same_seed_same_split_other_seed_other_split(make):
    y = sorted_labels()
    first, again, other = make(y, 3), make(y, 3), make(y, 4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_iid_sizes_differ_by_at_most_one_and_mix_classes():
    y = sorted_labels(per_class=50)
    parts = data.iid(y, 7)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert (data.label_counts(y, parts) > 0).sum(1).min() >= 8  # 71 random examples hit most of 10 classes


def test_shards_give_each_client_at_most_two_classes_on_sorted_labels():
    y = sorted_labels(per_class=60)  # 600 examples: 20 shards of 30 never straddle a class boundary
    parts = data.shards(y, 10, shards_per_client=2)
    counts = data.label_counts(y, parts)
    assert counts.shape == (10, 10)
    assert ((counts > 0).sum(1) <= 2).all()
    assert torch.equal(counts.sum(0), torch.full((10,), 60))


def test_dirichlet_alpha_controls_skew():
    y = sorted_labels(per_class=200)

    def top_class_share(alpha: float) -> float:
        """How much of a client's data its most common class makes up, averaged over clients."""
        counts = data.label_counts(y, data.dirichlet(y, 10, alpha, seed=1)).float()  # (10, 10)
        counts = counts[counts.sum(1) > 0]  # clients left without data have no top class
        return (counts.max(1).values / counts.sum(1)).mean().item()

    assert top_class_share(0.05) > 0.5  # nearly one class per client
    assert top_class_share(100.0) < 0.2  # close to the IID 0.1


def test_label_counts_and_summary():
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    parts = [torch.tensor([0, 3]), torch.tensor([1, 2, 4, 5])]
    counts = data.label_counts(y, parts, classes=3)
    assert counts.tolist() == [[1, 0, 1], [1, 1, 2]]
    assert data.describe_partition(y, parts, classes=3).startswith("2 clients, 6 examples, 2-4 each")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda y: data.iid(y, 0), "num_clients must be an integer from 1"),
        (lambda y: data.iid(y, 10_000), "num_clients must be an integer from 1"),
        (lambda y: data.iid(y.float().reshape(2, -1), 3), "labels must be a 1-D tensor"),
        (lambda y: data.shards(y, 301), "num_clients must be an integer from 1 to the number of examples \\(300\\)"),
        (lambda y: data.shards(y, 200, shards_per_client=2), "num_clients \\* shards_per_client <= 300"),
        (lambda y: data.shards(y, 10, shards_per_client=0), "shards_per_client must be a positive integer"),
        (lambda y: data.dirichlet(y, 5, alpha=0), "alpha must be a positive number"),
        (lambda y: data.dirichlet(y, 5, alpha=-1.0), "alpha must be a positive number"),
    ],
)
def test_bad_arguments_get_specific_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(sorted_labels())
