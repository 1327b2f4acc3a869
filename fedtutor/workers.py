"""Virtual workers and pointers: computing on data you cannot see, inside one Python process.

A ``VirtualWorker`` stands for another machine (a phone, a hospital); a ``Pointer`` is your
handle on an object that worker holds. Every operation on a pointer runs *on the worker* and
hands you back a new pointer, so data stays where it is and only commands travel. That is the
core idea of PySyft's classic tutorials, rebuilt here on plain PyTorch without patching torch.

Public API (stable; notebooks 03-06 use it)::

    bob, alice = VirtualWorker("bob"), VirtualWorker("alice")   # `me` is the learner's worker
    x = bob.send(torch.tensor([1.0, 2.0]))        # or send(tensor, bob); returns a Pointer
    model, opt = bob.send(model, optimizer)       # sent together, the optimizer keeps its model
    y = (x * 2).sum()                             # runs on bob: operators, torch.*, methods
    loss = F.cross_entropy(model(xb), yb); loss.backward(); opt.step()   # remote training
    y.get()      # bring the value here (bob forgets it)     y.copy()  # a copy, bob keeps his
    x.move(alice)                                 # bob sends it to alice directly
    alice.send(x)                                 # a pointer to a pointer: .get().get()
    bob.objects, bob.describe(), bob.log.summary(), bob.log.plot(), draw_workers([bob, alice])
    data = bob.hold(x, private=True, tags=["#mnist"], description="...")  # bob's own data
    bob.release(model)                            # bob lets a result leave (or to=secure_worker)
    grid = sandbox(sizes=(2000, 1000, 500)); grid.search("#mnist", "#images")  # -> pointers
    average_models([m1, m2], weights=[2000, 500])  # averaging where the models are
    bob.log.where(kind="get"), bob.log.nbytes(sender="bob"), payload_bytes(model)  # accounting

Errors: ``PointerError`` (a pointer used wrongly: after ``get``, on two workers at once, ...),
``RemoteError`` (the operation failed on the worker), ``PermissionError`` (private data).

Privacy is tracked by provenance: anything computed from a private object (results, models
trained on it, optimizers that stepped on its gradients, containers it was stored in) is
private too, and ``get``, ``copy`` and ``move`` refuse it with a ``PermissionError`` until its
worker releases it. Shapes and dtypes are metadata and stay public. (All of this lives in one
process, so ``bob.objects`` can always be read directly: the checks model what a real worker
enforces, they are not a security boundary.)

Sends, commands, replies and deletions are logged on both workers with the bytes of tensor
payload they carry (``numel * element_size``), so a notebook can prove what moved and what
did not. Nothing is serialized: whatever travels is copied, which is all isolation needs here.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

_next_id = itertools.count(1)  # ids are unique across all workers: "#12" names one object


class PointerError(RuntimeError):
    """A pointer was used in a way that cannot work; the message says why and what to do."""


class RemoteError(RuntimeError):
    """The worker tried to run the operation and it failed there (wrong shapes, dtypes, ...)."""


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # "send", "command", "get", "copy", "move", "delete", "release" or "search"
    sender: str
    receiver: str
    nbytes: int  # bytes of tensor payload carried (0 for a command made of pointers only)
    detail: str = ""


class MessageLog(list):
    """The messages a worker sent or received, oldest first, with filters and a summary."""

    def where(self, kind: str | None = None, sender: str | None = None, receiver: str | None = None) -> list[Message]:
        return [
            m
            for m in self
            if (kind is None or m.kind == kind)
            and (sender is None or m.sender == sender)
            and (receiver is None or m.receiver == receiver)
        ]

    def nbytes(self, kind: str | None = None, sender: str | None = None, receiver: str | None = None) -> int:
        """Total tensor payload of the matching messages."""
        return sum(m.nbytes for m in self.where(kind, sender, receiver))

    def totals(self) -> dict[tuple[str, str, str], list[int]]:
        """``{(kind, sender, receiver): [messages, bytes]}``, in order of first appearance."""
        totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for m in self:
            totals[m.kind, m.sender, m.receiver][0] += 1
            totals[m.kind, m.sender, m.receiver][1] += m.nbytes
        return dict(totals)

    def summary(self) -> str:
        lines = [f"{'kind':<8} {'from':>14} -> {'to':<14} {'messages':>8} {'bytes':>12}"]
        for (kind, sender, receiver), (count, nbytes) in self.totals().items():
            lines.append(f"{kind:<8} {sender:>14} -> {receiver:<14} {count:>8,} {nbytes:>12,}")
        lines.append(f"total: {len(self):,} messages, {self.nbytes():,} bytes of tensor payload")
        return "\n".join(lines)

    def plot(self, title: str = "Bytes moved"):
        """A horizontal bar per (kind, sender -> receiver): who sent how many bytes."""
        import matplotlib.pyplot as plt

        totals = self.totals()
        labels = [f"{k}: {s} -> {r}" for k, s, r in totals]
        values = [nbytes for _, nbytes in totals.values()]
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
        bars = ax.barh(labels, values, color=["C3" if v else "C7" for v in values])
        ax.bar_label(bars, [f"{v:,} B" for v in values], padding=3, fontsize=9)
        ax.invert_yaxis()
        ax.set(xlabel="bytes of tensor payload", title=title)
        ax.set_xlim(0, max(values + [1]) * 1.3)
        fig.tight_layout()
        return fig


def payload_bytes(obj: Any) -> int:
    """Bytes of tensor data in ``obj`` (tensors, modules, optimizers, containers): numel * element_size."""
    unique = {id(t): t for t in _tensors_in(obj, with_grads=False)}
    return sum(t.numel() * t.element_size() for t in unique.values())


def _tensors_in(obj: Any, with_grads: bool = True) -> list[torch.Tensor]:
    """Every tensor an object holds: its data, parameters, buffers, optimizer state (and grads)."""
    if isinstance(obj, torch.Tensor):
        tensors = [obj]
    elif isinstance(obj, nn.Module):
        tensors = [*obj.parameters(), *obj.buffers()]
    elif isinstance(obj, torch.optim.Optimizer):
        tensors = [p for group in obj.param_groups for p in group["params"]]
        tensors += [t for state in obj.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    elif isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors_in(item, with_grads)]
    elif isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors_in(item, with_grads)]
    else:
        return []
    grads = [t.grad for t in tensors if with_grads and t.is_leaf and t.grad is not None]
    return tensors + grads


# ----------------------------------------------------------------------------- workers


@dataclass
class Entry:
    """One object a worker holds, with what the worker knows about it."""

    value: Any
    private: bool = False
    tags: tuple[str, ...] = ()
    description: str = ""
    may_go_to: set[str] = field(default_factory=set)  # workers a private object may move to


class VirtualWorker:
    """A simulated machine: a name, the objects it holds (by id) and a log of its messages."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"A worker needs a non-empty name (a str), got {name!r}.")
        self.name = name
        self.store: dict[int, Entry] = {}
        self.log = MessageLog()

    def __repr__(self) -> str:
        private = sum(e.private for e in self.store.values())
        return f"<VirtualWorker {self.name}: {len(self.store)} objects, {private} private>"

    @property
    def objects(self) -> dict[int, Any]:
        """What this worker holds: ``{id: object}``."""
        return {i: e.value for i, e in self.store.items()}

    def describe(self) -> str:
        """A readable listing: one line per object with its id, kind, privacy, tags and description."""
        lines = [f"{self.name} holds {len(self.store)} object(s)"]
        for i, e in self.store.items():
            flag = "private" if e.private else "public"
            tags = " ".join(e.tags)
            lines.append(f"  #{i:<5} {_kind(e.value):<34} {flag:<8} {tags} {e.description}".rstrip())
        return "\n".join(lines)

    # ---- the learner's side of the protocol

    def send(
        self,
        *objs: Any,
        private: bool = False,
        tags: Sequence[str] = (),
        description: str = "",
        sender: VirtualWorker | None = None,
    ) -> Pointer | tuple[Pointer, ...]:
        """Send copies of ``objs`` here; returns one pointer (or a tuple, one per object).

        Objects sent in one call are copied together, so ``bob.send(model, optimizer)`` gives
        bob an optimizer that updates bob's copy of the model, not yours.
        """
        sender = sender or me
        if not objs:
            raise ValueError(f"Nothing to send: call {self.name}.send(obj) with a tensor, module or optimizer.")
        if any(isinstance(o, Pointer) for o in objs):
            if len(objs) > 1:
                raise PointerError("Send a pointer on its own: alice.send(ptr), one pointer per call.")
            return self._forward_pointer(objs[0], sender)
        copies = copy.deepcopy(tuple(_detached(o) for o in objs))
        _post("send", sender, self, payload_bytes(copies), ", ".join(_kind(o) for o in copies))
        pointers = tuple(self._add(c, sender, private, tags, description) for c in copies)
        return pointers[0] if len(pointers) == 1 else pointers

    def hold(self, obj: Any, private: bool = True, tags: Sequence[str] = (), description: str = "") -> Pointer:
        """Store the worker's *own* object (no message: it never travels); returns a pointer to it.

        Dropping that pointer does not delete the worker's data, which is not yours to delete.
        """
        return self._add(obj, me, private, tags, description, collect=False)

    def release(self, target: Pointer | int, to: VirtualWorker | None = None) -> None:
        """The data owner's decision: let this private object leave (to anyone, or only ``to``)."""
        object_id = target.id if isinstance(target, Pointer) else target
        if isinstance(target, Pointer) and target.location is not self:
            raise PointerError(
                f"{target!r} is on {target.location.name}, not {self.name}: only {target.location.name} can release it."
            )
        entry = self._entry(object_id)
        if to is None:
            entry.private = False
        else:
            entry.may_go_to.add(to.name)
        _post("release", self, to or self, 0, f"#{object_id} {_kind(entry.value)} to {to.name if to else 'anyone'}")

    def clear(self) -> None:
        """Forget every object (pointers to them will say so when used)."""
        self.store.clear()

    # ---- the worker's side: storing, finding and computing

    def _add(self, value, owner, private=False, tags=(), description="", collect=True) -> Pointer:
        if isinstance(value, Pointer):
            value.owner = self  # a pointer stored on a worker belongs to that worker
        object_id = next(_next_id)
        self.store[object_id] = Entry(value, private, tuple(tags), description)
        return Pointer(self, object_id, owner, collect)

    def _entry(self, object_id: int) -> Entry:
        try:
            return self.store[object_id]
        except KeyError:
            raise PointerError(
                f"{self.name} no longer holds object #{object_id}: it was retrieved, moved or "
                "deleted through another pointer. Send the data again or recompute it."
            ) from None

    def _forward_pointer(self, ptr: Pointer, sender: VirtualWorker) -> Pointer:
        ptr._check()
        if ptr.location is self:
            raise PointerError(
                f"{ptr!r} already points to {self.name}; {self.name} cannot hold a pointer to itself. "
                "Use the pointer directly, or send it to another worker."
            )
        result = self._add(Pointer(ptr.location, ptr.id, self, ptr.collect), sender)
        ptr._gone = f"sent on to {self.name} (use the pointer that send returned)"
        _post("send", sender, self, 0, f"pointer to {ptr.location.name}:#{ptr.id}")
        return result

    def _taint(self, entries: list[Entry], tensors: list[torch.Tensor]) -> None:
        """Mark private ``entries`` and every object sharing memory with them or with ``tensors``."""
        for entry in entries:
            entry.private = True
            tensors = tensors + _tensors_in(entry.value)
        touched = {t.untyped_storage().data_ptr() for t in tensors} - {0}
        for entry in self.store.values():
            if not entry.private and any(t.untyped_storage().data_ptr() in touched for t in _tensors_in(entry.value)):
                entry.private = True


me = VirtualWorker("me")  # the learner's own worker: pointers you make belong to it


def send(obj: Any, worker: VirtualWorker, **options: Any) -> Pointer:
    """``send(x, bob)`` is ``bob.send(x)`` (torch.Tensor has no ``.send``: we never patch torch)."""
    if not isinstance(worker, VirtualWorker):
        raise TypeError(f"send(obj, worker) needs a VirtualWorker as second argument, got {type(worker).__name__}.")
    return worker.send(obj, **options)


def _post(kind: str, sender: VirtualWorker, receiver: VirtualWorker, nbytes: int, detail: str = "") -> None:
    message = Message(kind, sender.name, receiver.name, nbytes, detail)
    sender.log.append(message)
    if receiver is not sender:
        receiver.log.append(message)


def _detached(value: Any) -> Any:
    """Results of remote computation carry an autograd graph, which cannot travel: send the values."""
    return value.detach() if isinstance(value, torch.Tensor) and value.grad_fn is not None else value


def _kind(value: Any) -> str:
    """A short description: ``Tensor(64, 1, 28, 28) float32``, ``CNN``, ``Pointer to bob:#3``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Pointer):
        return f"Pointer to {value.location.name}:#{value.id}"
    return type(value).__name__


# ----------------------------------------------------------------------------- pointers


class Pointer:
    """A handle on an object held by ``location`` under ``id``; ``owner`` is who holds the handle.

    Operators, ``torch.*`` functions and methods run on the location and return new pointers.
    """

    __slots__ = ("location", "id", "owner", "collect", "_gone", "__weakref__")

    def __init__(self, location: VirtualWorker, object_id: int, owner: VirtualWorker, collect: bool = True) -> None:
        self.location, self.id, self.owner, self.collect = location, object_id, owner, collect
        self._gone: str | None = None  # why this pointer may no longer be used

    def __repr__(self) -> str:
        where = f"Pointer {self.owner.name} -> {self.location.name}:#{self.id}"
        if self._gone:
            return f"<{where} | unusable: {self._gone}>"
        entry = self.location.store.get(self.id)
        if entry is None:
            return f"<{where} | {self.location.name} no longer holds it>"
        return f"<{where} | {_kind(entry.value)}{' | private' if entry.private else ''}>"

    # ---- what the location tells about the object (metadata, not data)

    @property
    def private(self) -> bool:
        return self._check().private

    @property
    def tags(self) -> tuple[str, ...]:
        return self._check().tags

    @property
    def description(self) -> str:
        return self._check().description

    def _check(self) -> Entry:
        if self._gone:
            raise PointerError(
                f"This pointer to {self.location.name}:#{self.id} was {self._gone}; "
                "it cannot be used any more. Keep working with the value or pointer you got then."
            )
        return self.location._entry(self.id)

    def _refuse_if_private(self, action: str, to: VirtualWorker | None = None) -> None:
        entry = self._check()
        if entry.private and (to is None or to.name not in entry.may_go_to):
            raise PermissionError(
                f"Object #{self.id} ({_kind(entry.value)}) on {self.location.name} is private data or was computed "
                f"from private data, so {self.location.name} refuses to {action}. Only {self.location.name} may "
                f"let it leave: {self.location.name}.release(ptr), or {self.location.name}.release(ptr, to=worker)."
            )

    # ---- bringing values back, moving them on

    def get(self) -> Any:
        """Retrieve the object; the location forgets it and this pointer is used up."""
        self._refuse_if_private("send it to you")
        value = self.location.store.pop(self.id).value
        _post("get", self.location, self.owner, payload_bytes(value), _kind(value))
        self._gone = "retrieved with .get()"
        if isinstance(value, Pointer):
            value.owner = self.owner  # a pointer-to-pointer gives you the inner pointer: .get().get()
        return value

    def copy(self) -> Any:
        """Retrieve a copy; the location keeps the original and this pointer stays usable."""
        self._refuse_if_private("send you a copy")
        value = self._check().value
        if isinstance(value, Pointer):
            raise PointerError(f"{self!r} holds a pointer; a copy would point at the same object twice. Use .get().")
        value = copy.deepcopy(_detached(value))
        _post("copy", self.location, self.owner, payload_bytes(value), _kind(value))
        return value

    def move(self, worker: VirtualWorker) -> Pointer:
        """Have the location send the object straight to ``worker``; this pointer follows it."""
        if worker is self.location:
            raise PointerError(f"{self!r} is already on {worker.name}; nothing to move.")
        self._refuse_if_private(f"move it to {worker.name}", to=worker)
        entry = self.location.store.pop(self.id)
        if isinstance(entry.value, Pointer) and entry.value.location is worker:
            self.location.store[self.id] = entry
            raise PointerError(
                f"{self!r} holds a pointer to {worker.name}; moving it there would make "
                f"{worker.name} point to itself. Use .get() to unwrap it instead."
            )
        _post("command", self.owner, self.location, 0, f"move #{self.id} to {worker.name}")
        _post("move", self.location, worker, payload_bytes(entry.value), _kind(entry.value))
        entry.may_go_to = set()  # a private object arriving stays private for its new holder
        if isinstance(entry.value, Pointer):
            entry.value.owner = worker
        worker.store[self.id] = entry
        self.location = worker
        return self

    def __del__(self) -> None:
        # Garbage collection of the handle frees the remote object (and logs the "delete").
        try:
            if self.collect and self._gone is None and self.location.store.pop(self.id, None) is not None:
                _post("delete", self.owner, self.location, 0, f"#{self.id}")
        except Exception:  # noqa: BLE001, S110 - at interpreter exit the module may be half torn down
            pass

    # ---- computing through the pointer

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _execute(func, args, kwargs or {}, getattr(func, "__name__", repr(func)))

    def __getattr__(self, name: str):
        if name.startswith("_"):  # Python and Jupyter probe for hooks like _repr_html_: not remote attributes
            raise AttributeError(f"'Pointer' object has no attribute {name!r}")
        value = self._check().value
        missing = object()
        attribute = getattr(value, name, missing)
        if attribute is missing:
            raise AttributeError(
                f"{self.location.name}'s object #{self.id} ({_kind(value)}) has no attribute {name!r}."
            )
        if callable(attribute) and not isinstance(attribute, nn.Module):
            return lambda *args, **kwargs: _execute(_call_method, (self, name, *args), kwargs, name)
        return _execute(getattr, (self, name), {}, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in Pointer.__slots__:
            raise TypeError(
                f"Setting .{name} through a pointer is not supported. Call a method on the worker "
                f"instead, e.g. ptr.requires_grad_() or ptr.copy_(new_values_ptr)."
            )
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return _execute(_call_method, (self, "__call__", *args), kwargs, "__call__")

    def _unsupported(self, *args):
        raise TypeError(
            f"{self!r} cannot be turned into a Python value here (bool, len, iteration, int, float): the object "
            f"lives on {self.location.name}. Compute on the pointer, or bring the value back with .get()."
        )

    __bool__ = __len__ = __iter__ = __int__ = __float__ = __index__ = __contains__ = _unsupported

    def __reduce_ex__(self, protocol):  # copy.deepcopy and pickle would duplicate the worker itself
        raise TypeError(f"{self!r} cannot be copied or pickled. Use ptr.copy() for a copy of the value it points to.")

    __hash__ = object.__hash__  # __eq__ below returns a pointer; identity hashing keeps dict keys working


BINARY = ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"]
OTHERS = ["neg", "pos", "abs", "invert", "lt", "le", "gt", "ge", "eq", "ne", "getitem", "setitem"]
IN_PLACE = ["iadd", "isub", "imul", "itruediv"]
OPERATORS = [f"__{op}__" for op in BINARY + OTHERS + IN_PLACE] + [f"__r{op}__" for op in BINARY]


def _operator(name: str):
    def forward(self, *args):
        return _execute(_call_method, (self, name, *args), {}, name)

    forward.__name__ = name
    return forward


for _name in OPERATORS:
    setattr(Pointer, _name, _operator(_name))


def _call_method(obj: Any, name: str, /, *args: Any, **kwargs: Any) -> Any:
    return getattr(obj, name)(*args, **kwargs)


# ----------------------------------------------------------------------------- remote execution


def _execute(func, args: tuple, kwargs: dict, name: str) -> Pointer | None:
    """Run ``func(*args, **kwargs)`` where the pointers among the arguments live; return a pointer."""
    pointers: list[Pointer] = []
    local_bytes = _collect(args, pointers) + _collect(kwargs, pointers)
    if not pointers:
        raise PointerError(
            f"{name} was given pointers inside an argument fedtutor cannot look into; "
            "pass them directly, or in a list, tuple or dict."
        )
    location, owner = pointers[0].location, pointers[0].owner
    entries = [p._check() for p in pointers]
    others = {p.location.name for p in pointers} - {location.name}
    if others:
        raise PointerError(
            f"{name} mixes objects on {location.name} and on {', '.join(sorted(others))}: a worker can only "
            f"compute on what it holds. Move one first, e.g. ptr.move({location.name}), or .get() both."
        )
    _post("command", owner, location, local_bytes, name)
    values = {id(p): e.value for p, e in zip(pointers, entries, strict=True)}
    original_first = args[0] if args else None
    args, kwargs = _resolve(args, values), _resolve(kwargs, values)
    private = any(e.private for e in entries) and name not in METADATA
    if private:  # whatever this operation may write into now holds private data too
        receiver = entries[0] if isinstance(original_first, Pointer) and _writes_receiver(func, name) else None
        location._taint([receiver] if receiver else [], _written(name, args, kwargs))
    try:
        result = func(*args, **kwargs)
    except (PointerError, PermissionError, RemoteError):
        raise  # already explained (pointer chains fail one worker further down)
    except Exception as err:  # noqa: BLE001 - any failure on the worker becomes one clear message
        raise RemoteError(
            f"{location.name} could not run {name} on {', '.join(_kind(v) for v in values.values())}: "
            f"{type(err).__name__}: {err}"
        ) from None
    if result is None:
        return None  # backward(), step(), zero_grad(): nothing to point at
    return location._add(result, owner, private=private)


METADATA = {"shape", "dtype", "ndim", "device", "size", "numel", "dim"}  # facts about a tensor, not its values
WRITING_DUNDERS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__call__"}


def _writes_receiver(func, name: str) -> bool:
    """Whether the operation may store its inputs in its first argument.

    In-place torch functions end with one ``_``. Any *named method* may keep what it is given
    (``list.append``, ``Tensor.copy_``, ``Module.load_state_dict``; a module's forward updates
    BatchNorm statistics), so we assume it does; operators like ``+`` never do.
    """
    if func is _call_method:
        return not name.startswith("__") or name in WRITING_DUNDERS
    return name.endswith("_") and not name.endswith("__")


def _written(name: str, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """Tensors written besides the receiver: ``out=``, and for backward the .grad of every leaf."""
    return _tensors_in(kwargs.get("out")) + (_graph_leaves(args[0]) if name == "backward" else [])


def _collect(obj: Any, pointers: list[Pointer]) -> int:
    """Append the pointers in (nested) arguments; return the bytes of the local tensors sent along."""
    if isinstance(obj, Pointer):
        pointers.append(obj)
        return 0
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if type(obj) in (list, tuple):
        return sum(_collect(o, pointers) for o in obj)
    if type(obj) is dict:
        return sum(_collect(o, pointers) for o in obj.values())
    return 0


def _resolve(obj: Any, values: dict[int, Any]) -> Any:
    """Replace each pointer in (nested) arguments by the object it points to, copy local tensors."""
    if isinstance(obj, Pointer):
        return values[id(obj)]
    if isinstance(obj, torch.Tensor):  # it travels with the command: the worker gets its own copy
        return obj.detach().clone().requires_grad_(obj.requires_grad)
    if type(obj) in (list, tuple):
        return type(obj)(_resolve(o, values) for o in obj)
    if type(obj) is dict:
        return {k: _resolve(v, values) for k, v in obj.items()}
    return obj


def _graph_leaves(tensor: Any) -> list[torch.Tensor]:
    """The leaf tensors (parameters, inputs with requires_grad) that autograd reaches from ``tensor``."""
    leaves, seen = [], set()
    stack = [getattr(tensor, "grad_fn", None)]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad: the node that writes a leaf's .grad
            leaves.append(node.variable)
        stack.extend(child for child, _ in node.next_functions)
    return leaves


# ----------------------------------------------------------------------------- averaging, grids, pictures


def average_models(models: list[Pointer], weights: list[float] | None = None) -> Pointer:
    """Average the parameters of models held by one worker, there; returns a pointer to the average.

    ``weights`` (e.g. each worker's sample count) make a weighted average, FedAvg's rule; without
    them every model counts the same. The models themselves are left as they were.
    """
    if not models:
        raise ValueError("average_models needs at least one model pointer.")
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models) or min(weights) < 0 or sum(weights) == 0:
        raise ValueError(f"Need one non-negative weight per model ({len(models)}), not all zero; got {weights}.")
    places = {m.location.name for m in models}
    if len(places) > 1:
        raise PointerError(
            f"The models are on {sorted(places)}; average_models needs them on one worker, the "
            "aggregator. Move them there first: ptr.move(secure_worker)."
        )
    states = [m.state_dict() for m in models]  # pointers on the aggregator: nothing leaves it
    total = sum(weights)
    average = {
        name: sum(state[name] * (w / total) for state, w in zip(states, weights, strict=True))
        for name in states[0]._check().value  # the parameter names: metadata, not data
    }
    result = _execute(copy.deepcopy, (models[0],), {}, "deepcopy")  # a fresh model on the aggregator
    result.load_state_dict(average)
    return result


class Grid:
    """Several workers searched as one: ``grid.search("#mnist")`` finds data you cannot see."""

    def __init__(self, workers: list[VirtualWorker]) -> None:
        self.workers = list(workers)

    def __repr__(self) -> str:
        return f"<Grid of {len(self.workers)} workers: {', '.join(w.name for w in self.workers)}>"

    def __getitem__(self, name: str) -> VirtualWorker:
        for worker in self.workers:
            if worker.name == name:
                return worker
        raise KeyError(f"No worker {name!r} in this grid; it has {[w.name for w in self.workers]}.")

    def search(self, *tags: str) -> list[Pointer]:
        """Pointers to every object tagged with all of ``tags``, worker by worker."""
        if not tags:
            raise ValueError('Search with at least one tag, e.g. grid.search("#mnist").')
        found = []
        for worker in self.workers:
            _post("search", me, worker, 0, " ".join(tags))
            for object_id, entry in worker.store.items():
                if set(tags) <= set(entry.tags):
                    found.append(Pointer(worker, object_id, me, collect=False))
        return found

    def describe(self) -> str:
        return "\n".join(worker.describe() for worker in self.workers)


def sandbox(
    sizes: Sequence[int] = (2500, 1500, 1000),
    names: Sequence[str] | None = None,
    digits: Sequence[Sequence[int] | None] | None = None,
    private: bool = True,
    seed: int = 0,
) -> Grid:
    """Hospitals holding disjoint random shares of MNIST-mini's training set, tagged and described.

    ``digits`` optionally limits each hospital to some classes, e.g. ``(None, None, (0, 1, 2))``:
    a small clinic whose patients wrote only 0s, 1s and 2s.
    """
    from fedtutor.data import load_tensors

    x, y = load_tensors()  # (5000, 1, 28, 28), (5000,)
    names = names or [f"hospital_{chr(ord('a') + i)}" for i in range(len(sizes))]
    digits = digits or [None] * len(sizes)
    if not len(names) == len(digits) == len(sizes) or min(sizes) < 1 or sum(sizes) > len(x):
        raise ValueError(
            f"Need one name (and digits entry) per size, sizes >= 1 and at most {len(x):,} images in all; "
            f"got sizes={tuple(sizes)}, names={names}, digits={digits}."
        )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    taken = torch.zeros(len(x), dtype=torch.bool)
    workers = []
    for name, size, allowed in zip(names, sizes, digits, strict=True):
        pool = order[~taken[order]]  # what earlier hospitals left, still in random order
        if allowed is not None:
            pool = pool[torch.isin(y[pool], torch.tensor(allowed))]
        if len(pool) < size:
            raise ValueError(f"Only {len(pool):,} images left for {name} (digits {allowed}); asked for {size:,}.")
        idx = pool[:size]
        taken[idx] = True
        worker = VirtualWorker(name)
        about = f"{size:,} MNIST digits of {name}'s patients" + (f" (only {allowed})" if allowed else "")
        worker.hold(x[idx].clone(), private, ("#mnist", "#images", f"#{name}"), f"images: {about}")
        worker.hold(y[idx].clone(), private, ("#mnist", "#labels", f"#{name}"), f"labels: {about}")
        workers.append(worker)
    return Grid(workers)


def draw_workers(workers: list[VirtualWorker], title: str = "Who holds what"):
    """A diagram: one column per worker, a box per object (red: private), arrows for pointers."""
    import matplotlib.pyplot as plt

    rows = max([len(w.store) for w in workers] + [1])
    fig, ax = plt.subplots(figsize=(3.4 * len(workers), 0.55 * rows + 1.8))
    boxes = {}  # object id -> (column, text artist), so arrows can start and end at box edges
    for col, worker in enumerate(workers):
        ax.text(col, 0.2, worker.name, ha="center", fontsize=13, weight="bold")
        for row, (object_id, entry) in enumerate(worker.store.items(), start=1):
            style = {"boxstyle": "round", "facecolor": "#f4c7c3" if entry.private else "#d9ead3", "edgecolor": "gray"}
            label = f"#{object_id} {_kind(entry.value)}"
            boxes[object_id] = col, ax.text(col, -0.6 * row, label, ha="center", va="center", fontsize=8, bbox=style)
    for worker in workers:
        for object_id, entry in worker.store.items():
            if isinstance(entry.value, Pointer) and entry.value.id in boxes:
                (from_col, source), (to_col, target) = boxes[object_id], boxes[entry.value.id]
                ends = ((1, 0.5), (0, 0.5)) if to_col < from_col else ((0, 0.5), (1, 0.5))
                ax.annotate(
                    "",
                    xy=ends[0],
                    xycoords=target,
                    xytext=ends[1],
                    textcoords=source,
                    arrowprops={"arrowstyle": "->", "color": "C0", "lw": 1.5},
                )
    ax.text(
        0.5,
        0.0,
        "green: public   red: private   arrow: a pointer held there",
        transform=ax.transAxes,
        ha="center",
        fontsize=9,
        color="gray",
    )
    ax.set(xlim=(-0.6, len(workers) - 0.4), ylim=(-0.6 * rows - 0.6, 0.6), title=title)
    ax.axis("off")
    fig.tight_layout()
    return fig
