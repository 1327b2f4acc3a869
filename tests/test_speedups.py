"""fedtutor.speedups computes what the plain code computes: the engine may use it, results stay the same."""

from __future__ import annotations

import copy

import torch

from fedtutor import federated, models, speedups, training


def test_plain_sgd_takes_exactly_torch_sgds_steps():
    torch.manual_seed(0)
    ours, theirs = models.CNN(), models.CNN()
    theirs.load_state_dict(ours.state_dict())
    start = ours.features[0].weight.clone()
    x, y = torch.randn(20, 1, 28, 28), torch.randint(0, 10, (20,))
    for model, optimizer in (
        (ours, speedups.PlainSGD(ours.parameters(), lr=0.1)),
        (theirs, torch.optim.SGD(theirs.parameters(), lr=0.1)),
    ):
        training.train_epoch(model, training.batches(x, y, 5), optimizer)
    assert not torch.equal(ours.features[0].weight, start)  # it did train
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fast_copy_keeps_values_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = models.CNN()
    fast = speedups.fast_copy(model)
    assert fast.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.features[0].weight.is_contiguous()  # the learner's model keeps the ordinary layout
    assert torch.nn.utils.parameters_to_vector(model.parameters()).shape == (1_663_370,)  # needs .view(-1)
    for a, b in zip(model.parameters(), fast.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_fast_evaluate_agrees_with_plain_evaluate():
    torch.manual_seed(0)
    x, y = torch.randn(230, 1, 28, 28), torch.randint(0, 10, (230,))
    for model in (models.CNN(), models.MLP2NN()):
        plain_loss, plain_acc = training.evaluate(model, x, y)
        fast_loss, fast_acc = speedups.evaluate(model, x, y, chunk=7)  # a chunk size that does not divide 230
        assert abs(plain_loss - fast_loss) < 1e-4 and plain_acc == fast_acc


def test_engine_client_training_equals_the_plain_train_client():
    """What the engine runs (PlainSGD + fast_copy) gives the update the plain code gives."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    client = federated.Client(0, x, y)
    strategy = federated.FedAvg(epochs=2, batch_size=8, lr=0.05)
    for model in (models.MLP2NN(), models.CNN()):
        before = copy.deepcopy(model.state_dict())
        plain = federated.train_client(model, client, strategy, torch.Generator().manual_seed(1))
        fast = federated.train_client(
            model, client, strategy, torch.Generator().manual_seed(1), speedups.PlainSGD, speedups.fast_copy
        )
        assert plain.delta.abs().sum() > 0  # it trained
        torch.testing.assert_close(fast.delta, plain.delta, rtol=1e-4, atol=1e-5)
        assert abs(plain.train_loss - fast.train_loss) < 1e-5
        for key, value in model.state_dict().items():  # the global model was not touched
            assert torch.equal(value, before[key])


def test_intra_op_threads_restores_the_setting_even_after_an_error():
    before = torch.get_num_threads()
    try:
        with speedups.intra_op_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before
