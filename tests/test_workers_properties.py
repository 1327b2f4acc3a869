"""Property tests: whatever runs through a pointer gives exactly what runs locally.

Hypothesis draws shapes, dtypes, values and operations; each result computed on ``bob``
through pointers must be bit-for-bit the local result (same dtype, same shape, same values,
NaNs in the same places), because the worker runs the very same torch code on a copy. And it
draws whole sessions (sends, gets, copies, moves, views, in-place ops, a model trained, fetched
and moved across three workers): no tensor memory is ever shared between two owners, and every
value equals the same work done locally.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from fedtutor.workers import Pointer, PointerError, VirtualWorker, _tensors_in

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32}

# (name, function of one or two tensors, dtypes it accepts)
UNARY = {
    "neg": (lambda a: -a, "all"),
    "abs": (torch.abs, "all"),
    "sum": (lambda a: a.sum(), "all"),
    "sum dim 0": (lambda a: a.sum(dim=0), "all"),
    "mul scalar": (lambda a: a * 3, "all"),
    "rsub scalar": (lambda a: 2 - a, "all"),
    "pow": (lambda a: a**2, "all"),
    "transpose": (lambda a: a.t(), "all"),
    "reshape": (lambda a: a.reshape(-1), "all"),
    "index": (lambda a: a[0], "all"),
    "slice": (lambda a: a[:, 1:], "all"),
    "cumsum": (lambda a: torch.cumsum(a, dim=1), "all"),
    "clamp": (lambda a: a.clamp(min=0), "all"),
    "relu": (F.relu, "all"),
    "gt": (lambda a: a > 0, "all"),
    "max": (lambda a: a.max(), "all"),
    "float": (lambda a: a.float(), "all"),
    "exp": (torch.exp, "float"),
    "mean": (lambda a: a.mean(dim=1), "float"),
    "softmax": (lambda a: F.softmax(a, dim=-1), "float"),
    "sigmoid": (torch.sigmoid, "float"),
}
BINARY = {
    "add": (lambda a, b: a + b, "all"),
    "sub": (lambda a, b: a - b, "all"),
    "mul": (lambda a, b: a * b, "all"),
    "truediv": (lambda a, b: a / b, "all"),
    "maximum": (torch.maximum, "all"),
    "eq": (lambda a, b: a == b, "all"),
    "le": (lambda a, b: a <= b, "all"),
    "cat": (lambda a, b: torch.cat([a, b]), "all"),
    "stack": (lambda a, b: torch.stack((a, b), dim=1), "all"),
    "where": (lambda a, b: torch.where(a > b, a, b), "all"),
    "matmul": (lambda a, b: a @ b.t(), "all"),
    "mse": (F.mse_loss, "float"),
    "atan2": (torch.atan2, "float"),
}


@st.composite
def tensor_pairs(draw):
    """Two tensors of one dtype and shape (rows >= 1, cols >= 2), with small finite values."""
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    floats = st.floats(-100, 100, allow_nan=False, width=32)
    elements = floats if dtype.is_floating_point else st.integers(-100, 100)
    values = st.lists(elements, min_size=rows * cols, max_size=rows * cols)
    a = torch.tensor(draw(values), dtype=dtype).reshape(rows, cols)
    b = torch.tensor(draw(values), dtype=dtype).reshape(rows, cols)
    return a, b


def _same(remote: torch.Tensor, local: torch.Tensor) -> bool:
    return (
        remote.dtype == local.dtype
        and remote.shape == local.shape
        and torch.equal(torch.isnan(remote), torch.isnan(local))
        and torch.equal(remote[~torch.isnan(remote)], local[~torch.isnan(local)])
    )


def _allowed(kind: str, dtype: torch.dtype) -> bool:
    return kind == "all" or dtype.is_floating_point


@settings(max_examples=60, deadline=None)
@given(pair=tensor_pairs(), op=st.sampled_from(sorted(UNARY)))
def test_unary_ops_through_pointers_match_local(pair, op):
    a, _ = pair
    fn, kind = UNARY[op]
    assume(_allowed(kind, a.dtype))
    bob = VirtualWorker("bob")
    result = fn(bob.send(a))
    assert isinstance(result, Pointer) and result.location is bob
    assert _same(result.get(), fn(a)), op


@settings(max_examples=60, deadline=None)
@given(pair=tensor_pairs(), op=st.sampled_from(sorted(BINARY)), local_left=st.booleans())
def test_binary_ops_through_pointers_match_local(pair, op, local_left):
    a, b = pair
    fn, kind = BINARY[op]
    assume(_allowed(kind, a.dtype))
    bob = VirtualWorker("bob")
    # Both operands remote, or a local tensor on the left travelling with the command.
    left = a if local_left else bob.send(a)
    result = fn(left, bob.send(b))
    assert result.location is bob
    assert _same(result.get(), fn(a, b)), op


@settings(max_examples=30, deadline=None)
@given(pair=tensor_pairs(), ops=st.lists(st.sampled_from(["neg", "abs", "mul scalar", "relu", "clamp"]), max_size=4))
def test_chains_of_ops_and_pointer_chains_match_local(pair, ops):
    a, _ = pair
    bob, alice = VirtualWorker("bob"), VirtualWorker("alice")
    through_bob, through_alice, local = bob.send(a), alice.send(bob.send(a)), a
    for op in ops:
        fn = UNARY[op][0]
        through_bob, through_alice, local = fn(through_bob), fn(through_alice), fn(local)
    if not ops:
        through_bob = through_bob + 0
        through_alice, local = through_alice + 0, local + 0
    assert _same(through_bob.get(), local)
    assert _same(through_alice.get().get(), local)


@settings(max_examples=30, deadline=None)
@given(pair=tensor_pairs())
def test_payload_bytes_are_numel_times_element_size(pair):
    a, _ = pair
    bob = VirtualWorker("bob")
    bob.send(a).get()
    expected = a.numel() * a.element_size()
    assert bob.log.nbytes(kind="send") == expected == bob.log.nbytes(kind="get")


# ----------------------------------------------------------------------------- random sessions across three workers

ACTIONS = ["send", "get", "copy", "move", "view", "add_", "mul", "send_model", "step", "fetch_model", "move_model"]


def _owned_storages(workers, local_objects) -> dict[str, set[int]]:
    owners = {w.name: [t for v in w.objects.values() for t in _tensors_in(v)] for w in workers}
    owners["me"] = [t for v in local_objects for t in _tensors_in(v)]
    return {name: {t.untyped_storage().data_ptr() for t in ts} - {0} for name, ts in owners.items()}


def _value(handle):
    return handle.location.objects[handle.id] if isinstance(handle, Pointer) else handle


class Session:
    """The learner's objects (tensors, a model) in step with a shadow: the same work done locally."""

    def __init__(self):
        self.workers = [VirtualWorker(name) for name in ("bob", "alice", "carol")]
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(3, 4, generator=g), torch.randn(3, 1, generator=g)) for _ in self.workers]
        pairs = zip(self.workers, self.data, strict=True)
        self.held = [(w.hold(x, private=False), w.hold(y, private=False)) for w, (x, y) in pairs]
        self.items = [(torch.arange(4.0), torch.arange(4.0))]  # (your handle: tensor or pointer, shadow tensor)
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.shadow = nn.Linear(4, 1)
        self.shadow.load_state_dict(self.model.state_dict())
        self.opt, self.shadow_opt = self._optimizer(self.model), self._optimizer(self.shadow)
        self.model_ptr = self.opt_ptr = None
        self.stale = False  # the model moved away from its optimizer

    @staticmethod
    def _optimizer(model):
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def act(self, action: str, w: int, k: int) -> None:
        worker, (handle, shadow) = self.workers[w], self.items[k % len(self.items)]
        i = k % len(self.items)
        remote = isinstance(handle, Pointer)
        if action == "send" and not remote:
            self.items.append((worker.send(handle), shadow.clone()))
        elif action == "get" and remote:  # a copy arrives: views left on the worker no longer reach it
            self.items[i] = (handle.get(), shadow.clone())
        elif action == "copy" and remote:
            self.items.append((handle.copy(), shadow.clone()))
        elif action == "move" and remote and handle.location is not worker:
            self.items[i] = (handle.move(worker), shadow.clone())
        elif action == "view":
            self.items.append((handle[1:], shadow[1:]))  # same owner: sharing memory is allowed
        elif action == "add_":
            handle.add_(k % 7 - 3)
            shadow.add_(k % 7 - 3)
        elif action == "mul":
            self.items.append((handle * (k % 5), shadow * (k % 5)))
        elif action == "send_model" and self.model_ptr is None:
            self.model_ptr, self.opt_ptr = worker.send(self.model, self.opt)
        elif action == "step":
            self.step(w)
        elif action == "fetch_model" and self.model_ptr is not None:
            self.fetch()
        elif action == "move_model" and self.model_ptr is not None and self.model_ptr.location is not worker:
            self.model_ptr.move(worker)
            self.stale = True

    def step(self, w: int) -> None:
        if self.model_ptr is None:  # training here, on a copy of worker w's data
            x, y = self.data[w]
            model, opt = self.model, self.opt
        else:
            x, y = self.held[self.workers.index(self.model_ptr.location)]
            w = self.workers.index(self.model_ptr.location)
            model, opt = self.model_ptr, self.opt_ptr
        if self.stale:
            before = _value(self.model_ptr).weight.clone()
            with pytest.raises(PointerError, match=r"send\(model, torch\.optim"):
                opt.step()
            assert torch.equal(_value(self.model_ptr).weight, before)
            self.fetch()
            return self.step(w)
        for m, o, (xb, yb) in ((model, opt, (x, y)), (self.shadow, self.shadow_opt, self.data[w])):
            o.zero_grad()
            F.mse_loss(m(xb), yb).backward()
            o.step()

    def fetch(self) -> None:
        """Bring the model home; after a move its optimizer state is lost, so the shadow's is reset too."""
        self.model = self.model_ptr.get()
        if self.stale:
            self.opt, self.shadow_opt = self._optimizer(self.model), self._optimizer(self.shadow)
        else:
            fetched = self.opt_ptr.get()  # the worker's optimizer state comes home with it, rebound to the model
            self.opt = self._optimizer(self.model)
            self.opt.load_state_dict(fetched.state_dict())
        self.model_ptr = self.opt_ptr = None
        self.stale = False

    def check(self) -> None:
        local = [h for h, _ in self.items if not isinstance(h, Pointer)] + [self.model, self.opt]
        storages = _owned_storages(self.workers, local)
        names = sorted(storages)
        for a, b in itertools.combinations(names, 2):
            assert not storages[a] & storages[b], f"{a} and {b} share tensor memory"
        for handle, shadow in self.items:
            assert torch.equal(_value(handle), shadow)
        model = _value(self.model_ptr) if self.model_ptr is not None else self.model
        assert torch.equal(model.weight, self.shadow.weight) and torch.equal(model.bias, self.shadow.bias)


@settings(max_examples=40, deadline=None)
@given(
    actions=st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2), st.integers(0, 50)), min_size=1, max_size=14
    )
)
def test_random_sessions_keep_owners_apart_and_match_local_computation(actions):
    session = Session()
    for action, w, k in actions:
        session.act(action, w, k)
        session.check()
