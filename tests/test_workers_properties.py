"""Property tests: whatever runs through a pointer gives exactly what runs locally.

Hypothesis draws shapes, dtypes, values and operations; each result computed on ``bob``
through pointers must be bit-for-bit the local result (same dtype, same shape, same values,
NaNs in the same places), because the worker runs the very same torch code on a copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fedtutor.workers import Pointer, VirtualWorker

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
