"""The FedAvg engine: exact aggregation, FedSGD = one big gradient step, determinism, faults, history."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedtutor import federated as fl
from fedtutor.models import CNN, MLP2NN, TinyLinear, count_parameters
from fedtutor.speedups import intra_op_threads


def toy_clients(sizes=(10, 10, 10, 10), features=4, classes=3, seed=0) -> list[fl.Client]:
    g = torch.Generator().manual_seed(seed)
    return [
        fl.Client(k, torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g))
        for k, n in enumerate(sizes)
    ]


def toy_test(features=4, classes=3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(99)
    return torch.randn(30, features, generator=g), torch.randint(0, classes, (30,), generator=g)


def toy_model(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def run(strategy, rounds=2, clients=None, model=None, **kwargs) -> tuple[fl.RoundHistory, nn.Module]:
    model = model or toy_model()
    kwargs = {"progress": False, "live": False, **kwargs}
    history = fl.run_federated(model, clients or toy_clients(), toy_test(), strategy, rounds=rounds, **kwargs)
    return history, model


# ----------------------------------------------------------------------------- exactness


def test_aggregate_equals_hand_computed_weighted_mean_of_random_models():
    torch.manual_seed(1)
    global_model, clients = MLP2NN(), [MLP2NN() for _ in range(3)]
    sizes = [5, 20, 75]
    start = fl.flat_params(global_model)
    deltas = [fl.flat_params(m) - start for m in clients]
    average = fl.FedAvg().aggregate(deltas, torch.tensor(sizes, dtype=torch.float64))
    fl.set_flat_params(global_model, start + average)
    # by hand, tensor by tensor: w = sum_k n_k w_k / sum_k n_k
    for name, value in global_model.state_dict().items():
        hand = sum(n * m.state_dict()[name] for n, m in zip(sizes, clients, strict=True)) / sum(sizes)
        torch.testing.assert_close(value, hand, rtol=1e-5, atol=1e-6)


def test_one_round_averages_the_clients_own_training_weighted_by_examples():
    clients = toy_clients(sizes=(3, 12, 7))
    strategy = fl.FedAvg(fraction=1.0, epochs=2, batch_size=4, lr=0.2)
    model = toy_model()
    start = copy.deepcopy(model)
    run(strategy, rounds=1, clients=clients, model=model, workers=1)
    # train each client by hand with the generator the engine promises, then average by hand
    trained = []
    for c in clients:
        m = copy.deepcopy(start)
        opt = torch.optim.SGD(m.parameters(), lr=0.2)
        g = torch.Generator().manual_seed(fl.derive_seed(0, 1, c.id))
        for _ in range(2):
            for idx in torch.randperm(len(c), generator=g).split(4):
                opt.zero_grad()
                F.cross_entropy(m(c.x[idx]), c.y[idx]).backward()
                opt.step()
        trained.append(fl.flat_params(m))
    sizes = torch.tensor([3.0, 12.0, 7.0])
    hand = (sizes[:, None] * torch.stack(trained)).sum(0) / sizes.sum()
    torch.testing.assert_close(fl.flat_params(model), hand, rtol=1e-5, atol=1e-6)


def test_fedsgd_round_equals_one_full_batch_gradient_step_on_the_union():
    clients = toy_clients(sizes=(10, 10, 10, 10))
    model = toy_model()
    central = copy.deepcopy(model)
    run(fl.FedSGD(fraction=1.0, lr=0.3), rounds=1, clients=clients, model=model)
    x = torch.cat([c.x for c in clients])  # (40, 4)
    y = torch.cat([c.y for c in clients])
    opt = torch.optim.SGD(central.parameters(), lr=0.3)
    F.cross_entropy(central(x), y).backward()
    opt.step()
    torch.testing.assert_close(fl.flat_params(model), fl.flat_params(central), rtol=1e-5, atol=1e-6)


def test_parallel_clients_give_exactly_the_sequential_result():
    clients = toy_clients(sizes=(30, 17, 25, 40, 9, 33))
    strategy = fl.FedAvg(fraction=0.5, epochs=2, batch_size=5, dropout=0.2, server_momentum=0.5)
    before = torch.get_num_threads()
    with intra_op_threads(1):  # equal intra-op threads: float sums then split the same way too
        h1, m1 = run(strategy, rounds=4, clients=clients, workers=1)
    h3, m3 = run(strategy, rounds=4, clients=clients, workers=3)
    assert torch.equal(fl.flat_params(m1), fl.flat_params(m3))
    assert h1.records == h3.records
    assert torch.get_num_threads() == before  # the engine restores torch's thread setting


def test_parallel_cnn_clients_give_exactly_the_sequential_result():
    """The model parallel threads are for: convolutions included."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(60, 1, 28, 28, generator=g)  # (60, 1, 28, 28)
    labels = torch.randint(0, 10, (60,), generator=g)
    clients = fl.make_clients(images, labels, [torch.arange(k, 60, 3) for k in range(3)])
    strategy = fl.FedAvg(fraction=1.0, epochs=1, batch_size=10, lr=0.05)
    models = [CNN(), CNN()]
    models[1].load_state_dict(models[0].state_dict())
    with intra_op_threads(1):
        fl.Server(models[0], clients, strategy, workers=1).round(1)
    fl.Server(models[1], clients, strategy, workers=3).round(1)
    assert torch.equal(fl.flat_params(models[0]), fl.flat_params(models[1]))


def test_set_flat_params_writes_in_place_and_checks_the_length():
    model = CNN()
    conv = model.features[0].weight
    vector = torch.randn(count_parameters(model))
    fl.set_flat_params(model, vector)
    assert torch.equal(fl.flat_params(model), vector)
    assert model.features[0].weight is conv  # the same tensor, so optimizers holding it still see it
    with pytest.raises(ValueError, match=r"vector has shape \(10,\), the model has 1663370 parameters"):
        fl.set_flat_params(model, torch.zeros(10))


def test_same_seed_same_numbers_other_seed_other_numbers():
    strategy = fl.FedAvg(fraction=0.5, epochs=1, batch_size=4)
    h_a, m_a = run(strategy, rounds=3, seed=7)
    h_b, m_b = run(strategy, rounds=3, seed=7)
    h_c, m_c = run(strategy, rounds=3, seed=8)
    assert h_a.records == h_b.records and torch.equal(fl.flat_params(m_a), fl.flat_params(m_b))
    assert h_a["clients"] != h_c["clients"]  # another seed samples other clients ...
    assert not torch.equal(fl.flat_params(m_a), fl.flat_params(m_c))  # ... and trains to other weights


# ----------------------------------------------------------------------------- strategies and faults


def test_client_fraction_and_bytes_communicated():
    clients = toy_clients(sizes=(5,) * 20)
    history, model = run(fl.FedAvg(fraction=0.1, epochs=1), rounds=3, clients=clients)
    model_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert [len(r["clients"]) for r in history.records] == [2, 2, 2]
    assert history["bytes_down"] == [2 * model_bytes] * 3
    assert history["bytes_up"] == [2 * model_bytes] * 3
    assert history.megabytes == pytest.approx(12 * model_bytes / 1e6)
    assert len({tuple(c) for c in history["clients"]}) > 1  # a new sample each round


def test_dropouts_average_only_the_returned_and_empty_rounds_keep_the_model(capsys):
    clients = toy_clients(sizes=(5,) * 10)
    history, _ = run(fl.FedAvg(fraction=1.0, epochs=1, dropout=0.5), rounds=6, clients=clients)
    for r in history.records:
        assert len(r["clients"]) + len(r["dropped"]) == 10
        assert r["bytes_up"] == len(r["clients"]) * r["bytes_down"] // 10  # only survivors upload
    assert 0 < sum(len(r["dropped"]) for r in history.records) < 60

    model = toy_model()
    start = fl.flat_params(model)
    history, _ = run(fl.FedAvg(fraction=1.0, dropout=0.999), rounds=2, clients=toy_clients(sizes=(5, 5)), model=model)
    assert history["skipped"] == [True, True] and history["clients"] == [[], []]
    assert history["bytes_up"] == [0, 0]
    assert torch.equal(fl.flat_params(model), start)
    assert "none of the 2 selected clients returned; model kept as is" in capsys.readouterr().out


def test_server_momentum_and_the_aggregation_hook():
    calls = []

    def ones(deltas, weights):  # a plug-in aggregator: ignores the updates, returns 1 everywhere
        calls.append((len(deltas), weights.dtype))
        return torch.ones_like(deltas[0])

    model = toy_model()
    start = fl.flat_params(model)
    history, _ = run(fl.FedAvg(fraction=1.0, server_momentum=0.5, aggregator=ones), rounds=2, model=model)
    assert history.config["aggregator"] == "function"  # recorded by name: the history stays JSON
    # v1 = 1, w1 = w0 + 1; v2 = 0.5 * 1 + 1, w2 = w1 + 1.5
    torch.testing.assert_close(fl.flat_params(model), start + 2.5)
    assert calls == [(4, torch.float64), (4, torch.float64)]

    class Halved(fl.FedAvg):  # the subclass route, as a privacy strategy would use it
        def aggregate(self, deltas, weights):
            return 0.5 * super().aggregate(deltas, weights)

    m_full, m_half = toy_model(), toy_model()
    run(fl.FedAvg(fraction=1.0), rounds=1, model=m_full)
    run(Halved(fraction=1.0), rounds=1, model=m_half)
    torch.testing.assert_close(fl.flat_params(m_half) - start, 0.5 * (fl.flat_params(m_full) - start))


def test_fedprox_keeps_clients_closer_to_the_global_model():
    clients = toy_clients(sizes=(40,))
    moved = {}
    for mu in (0.0, 5.0):
        model = toy_model()
        start = fl.flat_params(model)
        run(fl.FedAvg(fraction=1.0, epochs=5, batch_size=5, lr=0.2, mu=mu), rounds=1, clients=clients, model=model)
        moved[mu] = (fl.flat_params(model) - start).norm().item()
    assert moved[5.0] < 0.7 * moved[0.0]


def test_clients_from_a_partition():
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    clients = fl.make_clients(x, y, [torch.tensor([0, 5]), torch.arange(6, 12), torch.tensor([1, 2, 3, 4])])
    assert [len(c) for c in clients] == [2, 6, 4]
    assert torch.equal(clients[1].x, x[6:])
    assert "labels=[0, 1, 2]" in repr(clients[1])


# ----------------------------------------------------------------------------- history


def test_history_rounds_to_json_and_plot(tmp_path):
    history, _ = run(fl.FedAvg(fraction=1.0, epochs=3, batch_size=5, lr=0.3), rounds=4, label="toy")
    accs = history["test_acc"]
    best = max(accs)
    assert history.rounds_to(best) == accs.index(best) + 1
    assert fl.RoundHistory([{"round": 1, "test_acc": 0.5}, {"round": 2, "test_acc": 0.7}]).rounds_to(0.8) is None
    path = history.save_json(tmp_path / "h.json")
    saved = json.loads(path.read_text())
    assert saved["rounds"] == json.loads(json.dumps(history.records)) and saved["label"] == "toy"
    assert saved["config"]["epochs"] == 3 and saved["config"]["rounds"] == 4
    assert saved["config"]["strategy"] == "FedAvg" and saved["config"]["aggregator"] is None
    with pytest.raises(FileExistsError, match="already exists"):
        history.save_json(path)
    fig = history.plot(target=0.5)
    assert fig.axes[0].get_xlabel() == "communication round"
    assert len(fig.axes[0].lines[0].get_xdata()) == 4
    assert "4 rounds" in repr(history)
    with pytest.raises(ValueError, match="target is an accuracy"):
        history.rounds_to(90)


def test_stop_at_target():
    history, _ = run(
        fl.FedAvg(fraction=1.0, epochs=3, batch_size=5, lr=0.3), rounds=30, target=0.01, stop_at_target=True
    )
    assert len(history) == 1


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fraction": 0.0}, "fraction must be in \\(0.0, 1.0\\]"),
        ({"fraction": 1.5}, "fraction must be in"),
        ({"epochs": 0}, "epochs \\(E\\) must be a positive integer"),
        ({"batch_size": 0}, "batch_size \\(B\\) must be a positive integer or None"),
        ({"dropout": 1.0}, "dropout must be in \\[0.0, 1.0\\)"),
        ({"lr": -0.1}, "lr must be positive"),
        ({"mu": -1.0}, "mu \\(FedProx\\) must be >= 0"),
        ({"server_momentum": 1.0}, "server_momentum must be in"),
    ],
)
def test_bad_strategy_values_get_specific_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fl.FedAvg(**kwargs)


def test_bad_run_arguments():
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        run(fl.FedAvg(), rounds=0)
    with pytest.raises(ValueError, match="No clients"):
        fl.run_federated(TinyLinear(4, 3), [], toy_test(), progress=False, live=False)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run(fl.FedAvg(), workers=0)
    with pytest.raises(ValueError, match="x has 3 examples but y has 2"):
        fl.make_clients(torch.randn(3, 4), torch.zeros(2), [torch.tensor([0])])


def test_parallel_clients_each_run_with_one_intra_op_thread():
    seen = []

    class Recording(nn.Module):  # records the intra-op thread count its forward runs with
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return self.linear(x)

    torch.manual_seed(0)
    with intra_op_threads(2):  # as on a 2-core laptop: without the engine's care each client would use 2
        fl.Server(Recording(), toy_clients(), fl.FedAvg(fraction=1.0, epochs=1, batch_size=5), workers=2).round(1)
        assert torch.get_num_threads() == 2  # restored after the round
    assert len(seen) == 8 and set(seen) == {1}  # 4 clients x 2 batches, each on one intra-op thread


def test_a_client_without_data_downloads_but_returns_nothing():
    clients = toy_clients(sizes=(6, 0, 6))  # a skewed Dirichlet split can leave a client empty
    history, _ = run(fl.FedAvg(fraction=1.0, epochs=1, batch_size=3), rounds=1, clients=clients)
    record = history.records[0]
    assert record["clients"] == [0, 2] and record["dropped"] == [1]
    assert record["bytes_down"] == 3 * record["bytes_up"] // 2
