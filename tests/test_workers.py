"""Virtual workers and pointers: sending, computing, retrieving, chains, logs, privacy, grids."""

from __future__ import annotations

import gc

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedtutor.plots import draw_workers, message_log
from fedtutor.workers import (
    Grid,
    Pointer,
    PointerError,
    RemoteError,
    SharedTensor,
    VirtualWorker,
    _tensors_in,
    average_models,
    mark,
    me,
    payload_bytes,
    sandbox,
    send,
    share_tensor,
)

matplotlib.use("Agg")


@pytest.fixture
def bob():
    return VirtualWorker("bob")


@pytest.fixture
def alice():
    return VirtualWorker("alice")


# ----------------------------------------------------------------------------- sending and pointers


def test_send_returns_pointer_with_location_id_and_owner_in_repr(bob):
    x = torch.tensor([1.0, 2.0, 3.0])
    ptr = bob.send(x)
    assert isinstance(ptr, Pointer)
    assert ptr.location is bob and ptr.owner is me
    assert ptr.id in bob.objects and torch.equal(bob.objects[ptr.id], x)
    assert f"me -> bob:#{ptr.id}" in repr(ptr) and "Tensor(3,) float32" in repr(ptr)


def test_send_copies_so_local_changes_do_not_reach_the_worker(bob):
    x = torch.zeros(3)
    ptr = bob.send(x)
    x += 5
    assert torch.equal(ptr.get(), torch.zeros(3))


def test_send_function_is_worker_send(bob):
    ptr = send(torch.ones(2), bob)
    assert ptr.location is bob
    with pytest.raises(TypeError, match="needs a VirtualWorker"):
        send(torch.ones(2), "bob")


def test_send_nothing_and_bad_worker_names_are_explained(bob):
    with pytest.raises(ValueError, match="Nothing to send"):
        bob.send()
    with pytest.raises(ValueError, match="non-empty name"):
        VirtualWorker("")


def test_send_keeps_requires_grad_of_leaf_tensors(bob):
    w = bob.send(torch.tensor([1.0, 2.0], requires_grad=True))
    (w * w).sum().backward()
    assert torch.equal(w.grad.get(), torch.tensor([2.0, 4.0]))


def test_model_and_optimizer_sent_together_stay_linked(bob):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model_ptr, opt_ptr = bob.send(model, opt)
    remote_model, remote_opt = bob.objects[model_ptr.id], bob.objects[opt_ptr.id]
    assert remote_model is not model
    assert remote_opt.param_groups[0]["params"][0] is remote_model.weight


# ----------------------------------------------------------------------------- computing through pointers


def test_operators_functions_and_methods_run_remotely(bob):
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    p = bob.send(x)
    checks = {
        "add": (p + p, x + x),
        "radd": (1 + p, 1 + x),
        "rsub": (1 - p, 1 - x),
        "matmul": (p @ p, x @ x),
        "pow": (p**2, x**2),
        "neg": (-p, -x),
        "torch.exp": (torch.exp(p), torch.exp(x)),
        "F.relu": (F.relu(p), F.relu(x)),
        "torch.cat": (torch.cat([p, p]), torch.cat([x, x])),
        "method": (p.sum(dim=0), x.sum(dim=0)),
        "getitem": (p[0, 1], x[0, 1]),
        "local tensor left": (torch.ones(2) + p, torch.ones(2) + x),
        "comparison": (p > 0, x > 0),
    }
    for name, (ptr, expected) in checks.items():
        assert isinstance(ptr, Pointer), name
        assert ptr.location is bob, name
        assert torch.equal(ptr.get(), expected), name


def test_attributes_give_pointers_and_in_place_ops_change_the_remote_object(bob):
    p = bob.send(torch.zeros(2, 3))
    assert p.shape.get() == torch.Size([2, 3])
    p += 1
    p[0, 0] = 7.0
    assert torch.equal(p.get(), torch.tensor([[7.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))


def test_module_pointer_forward_and_remote_autograd_match_local_training(bob):
    torch.manual_seed(0)
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    local = nn.Linear(2, 1)
    local_opt = torch.optim.SGD(local.parameters(), lr=0.1, momentum=0.9)
    model_ptr, opt_ptr = bob.send(local, local_opt)
    x_ptr, y_ptr = bob.send(x, y)
    for _ in range(5):
        local_opt.zero_grad()
        F.mse_loss(local(x), y).backward()
        local_opt.step()
        opt_ptr.zero_grad()
        loss_ptr = F.mse_loss(model_ptr(x_ptr), y_ptr)
        assert loss_ptr.backward() is None and opt_ptr.step() is None
    trained = model_ptr.get()
    assert torch.equal(trained.weight, local.weight) and torch.equal(trained.bias, local.bias)


def test_local_module_on_remote_input_sends_its_weights_along(bob):
    lin = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    out = lin(bob.send(x))
    assert torch.equal(out.get(), lin(x))
    assert bob.log.where(kind="command")[-1].nbytes == payload_bytes(lin)


# ----------------------------------------------------------------------------- get, copy, move, chains, deletion


def test_get_retrieves_and_removes_and_pointer_is_used_up(bob):
    p = bob.send(torch.ones(2))
    object_id = p.id
    assert torch.equal(p.get(), torch.ones(2))
    assert object_id not in bob.objects
    with pytest.raises(PointerError, match=r"retrieved with \.get\(\)"):
        p.get()
    with pytest.raises(PointerError, match=rf"bob:#{object_id}"):
        p + 1  # noqa: B018


def test_copy_leaves_the_original(bob):
    p = bob.send(torch.ones(2))
    c = p.copy()
    c += 1
    assert p.id in bob.objects and torch.equal(p.get(), torch.ones(2))


def test_move_sends_directly_between_workers(bob, alice):
    p = bob.send(torch.arange(3.0))
    moved = p.move(alice)
    assert moved is p and p.location is alice
    assert p.id in alice.objects and p.id not in bob.objects
    assert alice.log.where(kind="move", sender="bob", receiver="alice")[0].nbytes == 12
    assert torch.equal(p.get(), torch.arange(3.0))
    with pytest.raises(PointerError, match="already on alice"):
        alice.send(torch.ones(1)).move(alice)


def test_pointer_chain_get_get(bob, alice):
    p = bob.send(torch.tensor([5.0]))
    pp = alice.send(p)
    assert isinstance(alice.objects[pp.id], Pointer)
    assert "Pointer to bob" in repr(pp)
    with pytest.raises(PointerError, match="sent on to alice"):
        p.get()
    doubled = pp + pp  # alice forwards the command to bob
    inner = doubled.get()
    assert isinstance(inner, Pointer) and inner.location is bob and inner.owner is me
    assert torch.equal(inner.get(), torch.tensor([10.0]))
    assert torch.equal(pp.get().get(), torch.tensor([5.0]))


def test_sending_a_pointer_to_its_own_location_is_refused_and_harmless(bob):
    p = bob.send(torch.ones(1))
    with pytest.raises(PointerError, match="already points to bob"):
        bob.send(p)
    gc.collect()
    assert torch.equal(p.get(), torch.ones(1))  # the failed send did not free the object


def test_deleting_a_pointer_frees_the_remote_object_and_logs_it(bob):
    p = bob.send(torch.ones(3))
    object_id = p.id
    del p
    gc.collect()
    assert object_id not in bob.objects
    assert bob.log[-1].kind == "delete" and bob.log[-1].detail == f"#{object_id}"


def test_intermediate_results_are_freed_when_their_pointers_die(bob):
    p = bob.send(torch.ones(3))
    for _ in range(10):
        (p * 2 + 1).sum()
    gc.collect()
    assert list(bob.objects) == [p.id]


def test_chain_deletion_cascades(bob, alice):
    pp = alice.send(bob.send(torch.ones(2)))
    del pp
    gc.collect()
    assert not alice.objects and not bob.objects


def test_describe_lists_what_a_worker_holds(bob):
    bob.hold(torch.zeros(4, 2), tags=["#toy"], description="bob's points")
    text = bob.describe()
    assert "bob holds 1 object(s)" in text and "Tensor(4, 2) float32" in text
    assert "private" in text and "#toy" in text and "bob's points" in text
    assert repr(bob) == "<VirtualWorker bob: 1 objects, 1 private>"


# ----------------------------------------------------------------------------- clear errors


def test_pointers_on_different_workers_cannot_be_combined(bob, alice):
    a, b = bob.send(torch.ones(2)), alice.send(torch.ones(2))
    with pytest.raises(PointerError, match="bob and on alice.*move"):
        a + b  # noqa: B018
    with pytest.raises(PointerError, match="bob and on alice"):
        torch.cat([a, b])


def test_worker_that_no_longer_holds_the_object(bob):
    p = bob.send(torch.ones(2))
    bob.store.clear()  # the worker forgets everything
    with pytest.raises(PointerError, match=f"bob no longer holds object #{p.id}"):
        p.get()
    assert "no longer holds it" in repr(p)


def test_unsupported_operations_say_what_to_do(bob):
    p = bob.send(torch.ones(2))
    for operation in (bool, len, iter, float):
        with pytest.raises(TypeError, match=r"lives on bob.*\.get\(\)"):
            operation(p)
    with pytest.raises(TypeError, match="Setting .requires_grad through a pointer"):
        p.requires_grad = True
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        p.nope  # noqa: B018


def test_failures_on_the_worker_become_one_clear_error(bob):
    a, b = bob.send(torch.ones(3)), bob.send(torch.ones(2))
    with pytest.raises(RemoteError, match=r"bob could not run __add__.*Tensor\(3,\).*Tensor\(2,\).*size"):
        a + b  # noqa: B018


# ----------------------------------------------------------------------------- message log


def test_message_log_counts_bytes_of_tensor_payload(bob):
    x = torch.zeros(10, 3)  # 120 bytes of float32
    p = bob.send(x)
    (p * torch.ones(3)).get()  # the local ones(3) travels with the command: 12 bytes; the reply 120
    assert bob.log.nbytes(kind="send", sender="me", receiver="bob") == 120
    assert bob.log.where(kind="command")[0].nbytes == 12
    assert bob.log.nbytes(kind="get", sender="bob", receiver="me") == 120
    summary = bob.log.summary()
    assert "send" in summary and "me -> bob" in summary and "252 bytes" in summary
    assert bob.log.totals()["send", "me", "bob"] == [1, 120]


def test_training_on_held_data_never_moves_the_data(bob):
    x, y = torch.randn(100, 2), torch.randn(100, 1)
    x_ptr, y_ptr = bob.hold(x, private=False), bob.hold(y, private=False)
    model = nn.Linear(2, 1)
    model_ptr, opt_ptr = bob.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        opt_ptr.zero_grad()
        F.mse_loss(model_ptr(x_ptr), y_ptr).backward()
        opt_ptr.step()
    model_ptr.get()
    sent_by_bob = bob.log.nbytes(sender="bob")
    assert sent_by_bob == payload_bytes(model) == 12  # only the model came back, never the 1,200 data bytes


def test_log_figure_and_worker_diagram(bob, alice):
    pp = alice.send(bob.send(torch.ones(2)))
    bob.hold(torch.ones(3))
    fig = draw_workers([bob, alice])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "bob" in texts and "alice" in texts and any("Pointer to bob" in t for t in texts)
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 1  # one arrow: alice's pointer to bob's tensor
    fig = message_log(bob.log)
    assert len(fig.axes[0].patches) == len(bob.log.totals())
    del pp


# ----------------------------------------------------------------------------- privacy


@pytest.fixture
def secret(bob):
    return bob.hold(torch.arange(4.0), private=True, description="salaries")


ESCAPES = {
    "get": lambda s, w: s.get(),
    "copy": lambda s, w: s.copy(),
    "times one": lambda s, w: (s * 1).get(),
    "clone": lambda s, w: s.clone().get(),
    "sum": lambda s, w: s.sum().get(),
    "detach": lambda s, w: s.detach().get(),
    "attribute": lambda s, w: s.data.get(),
    "tolist": lambda s, w: s.tolist().get(),
    "index": lambda s, w: s[0].get(),
    "torch function": lambda s, w: torch.add(s, 0).get(),
    "with a local tensor": lambda s, w: (torch.zeros(4) + s).get(),
    "move": lambda s, w: s.move(w),
    "chain": lambda s, w: w.send(s).get().get(),
}


@pytest.mark.parametrize("escape", ESCAPES)
def test_private_data_and_everything_computed_from_it_stays(escape, secret, alice):
    with pytest.raises(PermissionError, match=r"on bob is private.*bob\.release"):
        ESCAPES[escape](secret, alice)


def test_in_place_writes_and_shared_memory_carry_privacy(bob, secret):
    public = bob.send(torch.zeros(4))
    view = public[:2]  # shares memory with `public`
    public.add_(secret)
    for escape in (public, view):
        with pytest.raises(PermissionError):
            escape.get()


def test_models_trained_on_private_data_are_private_until_released(bob):
    x = bob.hold(torch.randn(8, 2), private=True)
    y = bob.hold(torch.randn(8, 1), private=True)
    model = nn.Linear(2, 1)
    model_ptr, opt_ptr = bob.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    weight_ptr = model_ptr.weight  # taken while still public
    assert not weight_ptr.private
    opt_ptr.zero_grad()
    F.mse_loss(model_ptr(x), y).backward()
    opt_ptr.step()
    for escape in (model_ptr, weight_ptr, opt_ptr):
        with pytest.raises(PermissionError, match="private"):
            escape.get()
    bob.release(model_ptr)
    assert bob.log[-1].kind == "release"
    trained = model_ptr.get()
    assert not torch.equal(trained.weight, model.weight)


def test_release_to_one_worker_allows_only_that_move(bob, alice, secret):
    secure_worker = VirtualWorker("secure_worker")
    total = secret.sum()
    bob.release(total, to=secure_worker)
    with pytest.raises(PermissionError):
        total.move(alice)
    with pytest.raises(PermissionError):
        total.get()
    total.move(secure_worker)
    assert total.private  # still private for its new holder
    with pytest.raises(PermissionError, match="on secure_worker"):
        total.get()
    secure_worker.release(total)
    assert total.get().item() == 6.0


def test_only_the_holder_can_release(bob, alice, secret):
    with pytest.raises(PointerError, match="only bob can release"):
        alice.release(secret)


def test_public_results_from_public_data_stay_public(bob, secret):
    public = bob.send(torch.ones(4))
    _ = public + secret  # reading `public` does not make it private
    assert not public.private
    assert torch.equal((public * 2).get(), torch.full((4,), 2.0))


# ----------------------------------------------------------------------------- averaging and grids


def test_average_models_weighted_and_plain(bob):
    secure_worker = VirtualWorker("secure_worker")
    models = [nn.Linear(2, 1) for _ in range(3)]
    ptrs = [secure_worker.send(m) for m in models]
    weighted = average_models(ptrs, weights=[1, 2, 5]).get()
    expected = sum(m.weight * w for m, w in zip(models, [1, 2, 5], strict=True)) / 8
    assert torch.allclose(weighted.weight, expected, atol=1e-7, rtol=0)
    plain = average_models(ptrs).get()
    assert torch.allclose(plain.bias, sum(m.bias for m in models) / 3, atol=1e-7, rtol=0)
    assert all(p.id in secure_worker.objects for p in ptrs)  # the inputs are left as they were


def test_average_models_explains_bad_input(bob, alice):
    a, b = bob.send(nn.Linear(2, 1)), alice.send(nn.Linear(2, 1))
    with pytest.raises(PointerError, match=r"on \['alice', 'bob'\].*move"):
        average_models([a, b])
    with pytest.raises(ValueError, match="one non-negative weight per model"):
        average_models([a], weights=[1, 2])


def test_average_of_private_models_stays_private_until_the_aggregator_releases_it(bob):
    secure_worker = VirtualWorker("secure_worker")
    ptrs = [secure_worker.send(nn.Linear(2, 1), private=True) for _ in range(2)]
    average = average_models(ptrs)
    with pytest.raises(PermissionError, match="secure_worker"):
        average.get()
    secure_worker.release(average)
    assert isinstance(average.get(), nn.Linear)


def test_sandbox_search_finds_data_you_cannot_see():
    grid = sandbox(sizes=(300, 200), seed=1)
    assert isinstance(grid, Grid) and [w.name for w in grid.workers] == ["hospital_a", "hospital_b"]
    images, labels = grid.search("#mnist", "#images"), grid.search("#mnist", "#labels")
    assert [p.location.name for p in images] == ["hospital_a", "hospital_b"]
    assert images[0].private and "#images" in images[0].tags and "300 MNIST digits" in images[0].description
    assert images[1].shape.get() == torch.Size([200, 1, 28, 28])  # metadata is public, values are not
    assert labels[0].size(0).get() == 300 and not labels[0].numel().private
    assert labels[0].bincount(minlength=10).sum().location is grid["hospital_a"]
    with pytest.raises(PermissionError):
        images[0].get()
    assert len(grid.search("#hospital_b")) == 2 and grid.search("#nothing") == []
    held = len(grid["hospital_a"].objects)
    del images, labels
    gc.collect()
    assert len(grid["hospital_a"].objects) == held  # dropping search results keeps the hospital's data
    with pytest.raises(ValueError, match="at least one tag"):
        grid.search()
    with pytest.raises(KeyError, match="hospital_a"):
        grid["nope"]


def test_sandbox_shares_are_disjoint_and_deterministic():
    def shares(seed):
        grid = sandbox(sizes=(100, 50), seed=seed)
        return [grid[n].objects[grid.search(f"#{n}", "#labels")[0].id] for n in ("hospital_a", "hospital_b")]

    first, again, other = shares(0), shares(0), shares(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    with pytest.raises(ValueError, match="at most 5,000 images"):
        sandbox(sizes=(4000, 2000))


def test_methods_that_store_private_arguments_make_their_receiver_private(bob, secret):
    box = bob.send([])
    box.append(secret)
    with pytest.raises(PermissionError):
        box.get()
    public = bob.send(torch.zeros(4))
    public.copy_(secret)
    with pytest.raises(PermissionError):
        public.get()


def test_local_tensors_travel_as_copies_so_private_results_cannot_land_in_them(bob, secret):
    mine = torch.zeros(4)
    result = mine.add_(secret)  # runs on bob, on bob's copy of `mine`
    assert torch.equal(mine, torch.zeros(4))
    with pytest.raises(PermissionError):
        result.get()


def test_sandbox_can_limit_a_hospital_to_some_digits():
    grid = sandbox(sizes=(100, 40), digits=(None, (0, 1)), seed=0)
    clinic_labels = grid["hospital_b"].objects[grid.search("#hospital_b", "#labels")[0].id]
    assert set(clinic_labels.tolist()) == {0, 1} and len(clinic_labels) == 40
    assert "only (0, 1)" in grid.search("#hospital_b", "#images")[0].description
    with pytest.raises(ValueError, match="Only .* images left for hospital_b"):
        sandbox(sizes=(10, 600), digits=(None, (3,)))
    with pytest.raises(ValueError, match="one name \\(and digits entry\\) per size"):
        sandbox(sizes=(10, 20), digits=((1,),))


def test_pointer_to_pointer_edge_cases_are_explained(bob, alice):
    pp = alice.send(bob.send(torch.ones(1)))
    with pytest.raises(PointerError, match="a copy would point at the same object twice"):
        pp.copy()
    with pytest.raises(PointerError, match="moving it there would make bob point to itself"):
        pp.move(bob)
    assert pp.id in alice.objects  # the refused move left it where it was
    with pytest.raises(PointerError, match="one pointer per call"):
        alice.send(bob.send(torch.ones(1)), torch.ones(1))


def test_send_with_privacy_tags_and_description(bob):
    ptr = bob.send(torch.ones(2), private=True, tags=["#a", "#b"], description="two ones")
    assert ptr.private and ptr.tags == ("#a", "#b") and ptr.description == "two ones"
    assert "#a #b two ones" in bob.describe()
    bob.release(ptr.id)  # by id works too
    assert not ptr.private


def test_pointers_refuse_to_be_deep_copied_or_pickled(bob):
    import copy
    import pickle

    p = bob.send(torch.ones(1))
    with pytest.raises(TypeError, match=r"Use ptr\.copy\(\)"):
        copy.deepcopy(p)
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        pickle.dumps(p)
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        bob.send([p])  # a container of pointers cannot travel either


# ----------------------------------------------------------------------------- copies at every boundary (issue 13)


def _storages(obj):
    return {t.untyped_storage().data_ptr() for t in _tensors_in(obj)} - {0}


def test_get_copy_move_and_hold_never_share_memory(bob, alice):
    mine = torch.arange(6.0)
    held = bob.hold(mine, private=False)
    assert not _storages(bob.objects[held.id]) & _storages(mine)
    view = held[:3]  # shares memory with `held` on bob
    fetched = view.get()
    assert not _storages(fetched) & _storages(bob.objects[held.id])
    moved = held[3:].move(alice)
    assert not _storages(alice.objects[moved.id]) & _storages(bob.objects[held.id])
    copied = held.copy()
    copied += 1
    assert torch.equal(bob.objects[held.id], torch.arange(6.0))


def test_after_a_move_the_optimizer_left_behind_is_stale_and_says_how_to_fix_it(bob, alice):
    model = nn.Linear(2, 1)
    model_ptr, opt_ptr = bob.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    F.mse_loss(model_ptr(bob.send(torch.ones(4, 2))), bob.send(torch.zeros(4, 1))).backward()
    model_ptr.move(alice)
    before = alice.objects[model_ptr.id].weight.clone()
    with pytest.raises(PointerError, match=r"no model bob holds.*moved.*bob\.send\(model, torch\.optim\.SGD"):
        opt_ptr.step()
    assert torch.equal(alice.objects[model_ptr.id].weight, before)  # nothing left behind reached it


def test_after_get_the_workers_optimizer_cannot_step_your_model(bob):
    model = nn.Linear(2, 1)
    model_ptr, opt_ptr = bob.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    F.mse_loss(model_ptr(bob.send(torch.ones(4, 2))), bob.send(torch.zeros(4, 1))).backward()
    mine = model_ptr.get()
    before = mine.weight.clone()
    with pytest.raises(PointerError, match="fetched with .get()"):
        opt_ptr.step()
    assert torch.equal(mine.weight, before)


def test_pysyft_part_2_optimizer_made_once_is_a_clear_error_not_silent_staleness(bob, alice):
    """PySyft part 2: one optimizer, the model sent and fetched every round (here: sent with it)."""
    torch.manual_seed(0)
    data = [(bob.send(torch.randn(8, 2)), bob.send(torch.randn(8, 1))), (alice.send(torch.randn(8, 2)), None)]
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data[0]
    model_ptr, opt_ptr = bob.send(model, opt)  # first visit: the optimizer was built for this model
    opt_ptr.zero_grad()
    F.mse_loss(model_ptr(x), y).backward()
    opt_ptr.step()
    model = model_ptr.get()
    with pytest.raises(PointerError, match=r"not sent with it.*build a new one after every model = model_ptr\.get"):
        bob.send(model, opt)  # the old optimizer points at the old model: caught before anything runs
    with pytest.raises(PointerError, match="not sent with it"):
        bob.send(opt)  # an optimizer alone would step copies that belong to nothing


def test_local_objects_passed_to_commands_are_copied_and_your_code_is_refused(bob):
    box = bob.send([])
    mine = nn.Linear(2, 1)
    box.append(mine)
    assert bob.objects[box.id][0] is not mine
    leak = []
    with pytest.raises(PointerError, match="your own code"):
        bob.send(nn.Linear(2, 1)).apply(lambda m: leak.append(m))
    assert leak == []


# ----------------------------------------------------------------------------- private means private (issue 13)


def test_errors_on_private_data_withhold_torch_messages(bob, secret):
    with pytest.raises(RemoteError) as caught:
        torch.arange(4.0)[secret.long() * 3]  # IndexError: index 9 is out of bounds ...
    assert "IndexError" in str(caught.value) and "9" not in str(caught.value) and "private data" in str(caught.value)
    table = bob.send({1: "a"})
    with pytest.raises(RemoteError) as caught:
        table[secret.sum().long()]  # KeyError(6) would print the private sum
    assert "6" not in str(caught.value).replace("#", "")


def test_shapes_of_results_computed_from_private_data_are_private(bob, secret):
    assert secret.shape.get() == torch.Size([4])  # declared by bob: public metadata
    big = secret[secret > 1]  # how many are > 1 is a fact about the values
    for probe in (big.shape, big.size(0), big.numel(), torch.numel(big), secret.nonzero().shape):
        with pytest.raises(PermissionError):
            probe.get()
    for text in (repr(big), bob.describe()):
        assert "Tensor(2,)" not in text
    assert "computed from private data" in repr(big)
    with pytest.raises(PermissionError) as caught:
        big.get()
    assert "(2,)" not in str(caught.value)


class Record:
    """A private object whose methods are *named* like metadata accessors."""

    def __init__(self, values):
        self.values = values

    def size(self):
        return self.values.sum()

    @property
    def shape(self):
        return self.values.tolist()


def test_metadata_is_exempt_only_for_real_tensor_attributes(bob):
    record = bob.hold(Record(torch.tensor([3.0, 4.0])), private=True)
    for probe in (record.size(), record.shape):
        with pytest.raises(PermissionError):
            probe.get()
    module = bob.hold(nn.Linear(2, 1), private=True)
    with pytest.raises(PermissionError):
        module.weight.sum().get()


def test_earlier_public_views_and_pointers_become_private_when_private_data_is_written(bob, secret):
    public = bob.send(torch.zeros(4))
    view = public[1:]  # taken while public
    public.copy_(secret)
    with pytest.raises(PermissionError):
        view.get()
    # gradients and optimizer state reached before a private step
    model = nn.Linear(4, 1)
    model_ptr, opt_ptr = bob.send(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    F.mse_loss(model_ptr(bob.send(torch.ones(1, 4))), bob.send(torch.ones(1, 1))).backward()
    grad, state, groups = model_ptr.weight.grad, opt_ptr.state, opt_ptr.param_groups
    assert not grad.private and not state.private
    F.mse_loss(model_ptr(secret.unsqueeze(0)), bob.send(torch.ones(1, 1))).backward()
    opt_ptr.step()
    for escape in (grad, state, groups):
        with pytest.raises(PermissionError):
            escape.get()


def test_a_private_loss_through_a_public_model_makes_its_gradients_private(bob, secret):
    model = bob.send(nn.Linear(4, 1))
    out = model(bob.send(torch.ones(1, 4)))  # public forward
    F.mse_loss(out, secret.sum().reshape(1, 1)).backward()  # private target
    with pytest.raises(PermissionError):
        model.weight.grad.get()


def test_results_of_remote_calls_on_private_data_are_private(bob, secret):
    public = bob.send(torch.ones(4))
    for result in (public + secret, secret.tolist(), torch.where(secret > 1, public, public), public.dot(secret)):
        assert result.private


def test_release_goes_to_the_worker_object_not_a_name(bob, secret):
    real = VirtualWorker("secure_worker")
    impostor = VirtualWorker("secure_worker")
    total = secret.sum()
    bob.release(total, to=real)
    with pytest.raises(PermissionError):
        total.move(impostor)
    with pytest.raises(TypeError, match="worker object"):
        bob.release(total, to="secure_worker")
    assert total.move(real).location is real


def test_private_pointer_chains_and_remote_get_are_refused(bob, alice, secret):
    chain = alice.send(secret)
    with pytest.raises(PermissionError):
        chain.remote_get()
    assert isinstance(alice.objects[chain.id], Pointer)  # refused: nothing moved


# ----------------------------------------------------------------------------- PySyft parity: remote_get, search, marks


def test_remote_get_brings_the_object_one_hop_and_copies_it(bob, alice):
    chain = alice.send(bob.send(torch.tensor([1.0, 2.0])))
    assert chain.remote_get() is chain
    assert torch.equal(alice.objects[chain.id], torch.tensor([1.0, 2.0])) and not bob.objects
    assert alice.log.where(kind="move", sender="bob", receiver="alice")[-1].nbytes == 8
    assert torch.equal(chain.get(), torch.tensor([1.0, 2.0]))
    with pytest.raises(PointerError, match="remote_get needs a chain"):
        alice.send(torch.ones(1)).remote_get()


def test_search_matches_tags_and_description_words_on_a_worker_and_a_grid(bob, alice):
    bob.hold(torch.ones(2), tags=["#xray"], description="Chest scans from 2019")
    alice.hold(torch.ones(3), tags=["#xray", "#ct"], description="CT volumes")
    assert len(bob.search("#xray", "chest")) == 1 and bob.search("#ct") == []
    grid = Grid([bob, alice])
    assert [p.location for p in grid.search("#xray")] == [bob, alice]
    assert [p.location for p in grid.search("volumes")] == [alice]
    assert grid.search("#xray", "2019")[0].description == "Chest scans from 2019"
    assert bob.log.where(kind="search")[0].detail == "#xray chest"
    with pytest.raises(ValueError, match="at least one tag or word"):
        bob.search()


def test_marks_keep_only_later_messages_even_after_a_clear(bob):
    kept = [bob.send(torch.ones(2))]
    start = mark()
    bob.log.clear()
    kept.append(bob.send(torch.ones(3)))
    later = bob.log.since(start)
    assert [m.nbytes for m in later] == [12] and bob.log.where(kind="send").nbytes() == 12


# ----------------------------------------------------------------------------- secret-shared tensors (PySyft 9-10)


@pytest.fixture
def provider():
    return VirtualWorker("crypto_provider")


def test_shared_tensor_arithmetic_matches_plain_torch(bob, alice, provider):
    charlie = VirtualWorker("charlie")
    x, y = torch.tensor([[1.5, -2.0], [0.25, 3.0]]), torch.tensor([[0.5, 4.0], [-1.0, 2.0]])
    xs = share_tensor(x, bob, alice, charlie, crypto_provider=provider, max_abs=10)
    ys = share_tensor(y, bob, alice, charlie, crypto_provider=provider, max_abs=10)
    cases = {
        "add": (xs + ys, x + y),
        "sub": (xs - ys, x - y),
        "public add": (xs + 1.0, x + 1),
        "rsub": (2 - xs, 2 - x),
        "int scalar": (xs * 3, x * 3),
        "float scalar": (0.5 * xs, 0.5 * x),
        "mul": (xs * ys, x * y),
        "matmul": (xs @ ys, x @ y),
        "public matmul": (xs @ y, x @ y),
        "chain": ((xs * ys + xs) @ ys, (x * y + x) @ y),
    }
    for name, (shared, expected) in cases.items():
        assert isinstance(shared, SharedTensor) and shared.holders == [bob, alice, charlie], name
        assert torch.allclose(shared.get(), expected, atol=1e-4), name


def test_no_holder_sees_the_value_and_every_share_message_is_logged(bob, alice, provider):
    secret_x = bob.hold(torch.tensor([3.0, -1.0, 2.0]), private=True)
    secret_w = alice.hold(torch.tensor([[0.5], [2.0], [-1.0]]), private=True)
    start = mark()
    xs = share_tensor(secret_x, bob, alice, crypto_provider=provider)
    ws = share_tensor(secret_w, bob, alice, crypto_provider=provider)
    result = xs @ ws
    assert "encode" in [m.detail for m in bob.log.since(start).where(kind="command")]  # fixed point, on bob
    shares = [m for w in (bob, alice, provider) for m in w.log.since(start) if m.kind == "share"]
    assert {(m.sender, m.receiver) for m in shares} >= {("bob", "alice"), ("alice", "bob"), ("crypto_provider", "bob")}
    assert all(m.nbytes > 0 for m in shares)
    assert bob.log.since(start).where(kind="share", sender="bob", receiver="alice")[0].nbytes == 24  # 3 int64
    moved_in_clear = [m for w in (bob, alice) for m in w.log.since(start) if m.kind in ("get", "copy", "move")]
    assert moved_in_clear == []
    for worker, own in ((bob, secret_x), (alice, secret_w)):  # besides its own data, a holder keeps ring noise
        assert all(v.dtype == torch.int64 for i, v in worker.objects.items() if i != own.id)
    with pytest.raises(PermissionError, match="private data of bob, alice"):
        result.get()
    bob.release(result)
    with pytest.raises(PointerError, match="only its owners"):
        provider.release(result)
    alice.release(result)
    assert torch.allclose(result.get(), torch.tensor([1.5 - 2.0 - 2.0]), atol=1e-4)
    for share_ptr in xs.shares:  # a single share of private data cannot be fetched either
        with pytest.raises(PermissionError):
            share_ptr.get()


def test_shared_tensors_explain_misuse(bob, alice, provider):
    xs = share_tensor(torch.ones(2), bob, alice)
    with pytest.raises(ValueError, match="needs a crypto provider"):
        xs * xs
    with pytest.raises(ValueError, match="two or more different workers"):
        share_tensor(torch.ones(2), bob, bob)
    other = share_tensor(torch.ones(2), bob, provider)
    with pytest.raises(PointerError, match="different workers"):
        xs + other
    with pytest.raises(OverflowError, match=r"±1e\+06"):
        share_tensor(torch.tensor([2e6]), bob, alice, max_abs=1e6)
    big = share_tensor(torch.ones(2), bob, alice, crypto_provider=provider, max_abs=1e6)
    with pytest.raises(OverflowError, match=r"could reach ±1e\+12.*wrap"):
        (big * big) * big
    with pytest.raises(OverflowError, match="public bound ±10"):
        share_tensor(bob.hold(torch.tensor([50.0])), bob, alice, max_abs=10)
