"""Virtual workers and pointers: computing on data you cannot see, inside one Python process.

A ``VirtualWorker`` stands for another machine (a phone, a hospital); a ``Pointer`` is your handle on an
object it holds. Every operation on a pointer runs *on the worker* and gives you a new pointer: data stays
put, only commands travel (PySyft's classic idea, on plain PyTorch, without patching torch)::

    bob, alice = VirtualWorker("bob"), VirtualWorker("alice")   # `me` is the learner's worker
    x = bob.send(torch.tensor([1.0, 2.0]))            # a Pointer; (x * 2).sum() runs on bob
    model, opt = bob.send(model, optimizer)           # together: the optimizer steps bob's copy
    y.get(), y.copy(), x.move(alice), alice.send(x).remote_get()   # bring back, copy, move on
    data = bob.hold(x, private=True, tags=["#mnist"], description="...")  # bob's own data
    bob.release(ptr), bob.release(ptr, to=secure_worker)   # the owner lets a result leave
    bob.search("#mnist", "digits"), Grid([...]).search(...)  # tags and description words
    s = share_tensor(x_ptr, bob, alice, crypto_provider=carol)  # s + s, 2 * s, s * s, s @ w, s.get()
    start = mark(); ...; bob.log.since(start).where(kind="get")  # what moved since then

**Copies at every boundary**: whatever crosses between owners (send, hold, get, copy, move, remote_get,
arguments of commands) is copied, so no tensor memory is shared between owners.
**Privacy by provenance**: anything computed from a private object (results, trained models, gradients,
optimizer state, containers, earlier views of memory it was written into) is private too; ``get``, ``copy``
and ``move`` refuse it until its worker releases it, errors withhold values, and only the shapes of objects
a worker was given or holds are public. It all lives in one process, so ``bob.objects`` can always be read:
the rules model what a real worker enforces through its API; they are not a security boundary. Every message
is logged on both workers with its bytes of tensor payload (``numel * element_size``).
"""

from __future__ import annotations

import copy
import itertools
import re
import types
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fedtutor import privacy

__all__ = ["Grid", "Pointer", "PointerError", "RemoteError", "SharedTensor", "VirtualWorker", "average_models"]
__all__ += ["mark", "me", "payload_bytes", "sandbox", "send", "share_tensor"]

_next_id = itertools.count(1)  # ids are unique across all workers: "#12" names one object
_next_seq = itertools.count(1)  # every message gets the next number: marks are points in this order


class PointerError(RuntimeError):
    """A pointer was used in a way that cannot work; the message says why and what to do."""


class RemoteError(RuntimeError):
    """The worker tried to run the operation and it failed there (wrong shapes, dtypes, ...)."""


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # "send", "command", "get", "copy", "move", "delete", "release", "search" or "share"
    sender: str
    receiver: str
    nbytes: int  # bytes of tensor payload carried (0 for a command made of pointers only)
    detail: str = ""
    seq: int = 0  # position among all messages of the session (see ``mark``)


def mark() -> int:
    """A point in time: ``log.since(mark)`` keeps only the messages sent after it."""
    return next(_next_seq)


class MessageLog(list):
    """The messages a worker sent or received, oldest first, with filters and a summary."""

    def where(self, kind: str | None = None, sender: str | None = None, receiver: str | None = None) -> MessageLog:
        wanted = {"kind": kind, "sender": sender, "receiver": receiver}
        return MessageLog(m for m in self if all(v in (None, getattr(m, k)) for k, v in wanted.items()))

    def since(self, start: int) -> MessageLog:
        """The messages sent after ``start = mark()`` (clearing the log does not move marks)."""
        return MessageLog(m for m in self if m.seq > start)

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


def _storages(tensors: list[torch.Tensor]) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors} - {0}  # 0: empty tensors own no memory


def _copied(value: Any) -> Any:
    """The copy that crosses a boundary (a pointer is a handle: it travels as itself)."""
    return value if isinstance(value, Pointer) else copy.deepcopy(_values(value))


def _values(value: Any) -> Any:  # an autograd graph cannot travel: a computed tensor goes as its values
    return value.detach() if isinstance(value, torch.Tensor) and value.grad_fn is not None else value


def _kind(value: Any) -> str:
    """A short description: ``Tensor(64, 1, 28, 28) float32``, ``CNN``, ``Pointer to bob:#3``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Pointer):
        return f"Pointer to {value.location.name}:#{value.id}"
    return type(value).__name__


# ----------------------------------------------------------------------------- workers


@dataclass
class Entry:
    """One object a worker holds, with what the worker knows about it."""

    value: Any
    private: bool = False
    tags: tuple[str, ...] = ()
    description: str = ""
    may_go_to: list[VirtualWorker] = field(default_factory=list)  # the worker objects it was released to
    given: bool = False  # sent, held or moved here (not computed): its shape is declared metadata

    @property
    def kind(self) -> str:
        """What anyone may be told about the object: a computed private result's shape is withheld."""
        if self.private and not self.given:
            return f"{type(self.value).__name__} (computed from private data)"
        return _kind(self.value)

    def matches(self, terms: Sequence[str]) -> bool:
        words = {t.lower() for t in self.tags} | set(re.findall(r"[#\w-]+", self.description.lower()))
        return all(term.lower() in words for term in terms)


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
        """What this worker holds: ``{id: object}`` (a simulation can look; see the module docstring)."""
        return {i: e.value for i, e in self.store.items()}

    def describe(self) -> str:
        """A readable listing: one line per object with its id, kind, privacy, tags and description."""
        lines = [f"{self.name} holds {len(self.store)} object(s)"]
        for i, e in self.store.items():
            flag = "private" if e.private else "public"
            lines.append(f"  #{i:<5} {e.kind:<34} {flag:<8} {' '.join(e.tags)} {e.description}".rstrip())
        return "\n".join(lines)

    # ---- the learner's side of the protocol

    def send(self, *objs: Any, private: bool = False, tags: Sequence[str] = (), description: str = "") -> Any:
        """Send copies of ``objs`` here; returns one pointer (or a tuple, one per object). Objects sent in
        one call are copied together: ``bob.send(model, optimizer)`` steps bob's copy of the model, not yours."""
        if not objs:
            raise ValueError(f"Nothing to send: call {self.name}.send(obj) with a tensor, module or optimizer.")
        if any(isinstance(o, Pointer) for o in objs):
            if len(objs) > 1:
                raise PointerError("Send a pointer on its own: alice.send(ptr), one pointer per call.")
            return self._forward_pointer(objs[0])
        if any(_stale(o, objs) for o in objs):
            raise PointerError(f"This optimizer updates parameters that are not sent with it. {_fix(self)}")
        copies = _copied(tuple(_values(o) for o in objs))
        _post("send", me, self, payload_bytes(copies), ", ".join(_kind(o) for o in copies))
        pointers = tuple(self._add(c, me, private, tags, description, given=True) for c in copies)
        return pointers[0] if len(pointers) == 1 else pointers

    def hold(self, obj: Any, private: bool = True, tags: Sequence[str] = (), description: str = "") -> Pointer:
        """Store the worker's *own* object (a copy; no message: it never travels); returns a pointer.
        Dropping that pointer does not delete the worker's data, which is not yours to delete."""
        return self._add(_copied(obj), me, private, tags, description, collect=False, given=True)

    def release(self, target: Pointer | SharedTensor | int, to: VirtualWorker | None = None) -> None:
        """The data owner's decision: let this private object leave (to anyone, or only to worker ``to``)."""
        if to is not None and not isinstance(to, VirtualWorker):
            raise TypeError(f"release(ptr, to=worker) takes the worker object itself, got {type(to).__name__}.")
        if isinstance(target, SharedTensor):
            return target._release(self)
        object_id = target.id if isinstance(target, Pointer) else target
        if isinstance(target, Pointer) and target.location is not self:
            raise PointerError(
                f"{target!r} is on {target.location.name}, not {self.name}: only {target.location.name} can release it."
            )
        entry = self._entry(object_id)
        if to is None:
            entry.private = False
        else:
            entry.may_go_to.append(to)
        _post("release", self, to or self, 0, f"#{object_id} {entry.kind} to {to.name if to else 'anyone'}")

    def search(self, *terms: str) -> list[Pointer]:
        """Pointers to every object whose tags or description words include all ``terms``."""
        if not terms:
            raise ValueError(f'Search with at least one tag or word, e.g. {self.name}.search("#mnist").')
        _post("search", me, self, 0, " ".join(terms))
        return [Pointer(self, i, me, collect=False) for i, e in self.store.items() if e.matches(terms)]

    # ---- the worker's side: storing, finding and computing

    def _add(self, value, owner, private=False, tags=(), description="", collect=True, given=False) -> Pointer:
        if isinstance(value, Pointer):
            value.owner = self  # a pointer stored on a worker belongs to that worker
        object_id = next(_next_id)
        self.store[object_id] = Entry(value, private, tuple(tags), description, given=given)
        return Pointer(self, object_id, owner, collect)

    def _entry(self, object_id: int) -> Entry:
        if object_id not in self.store:
            raise PointerError(
                f"{self.name} no longer holds object #{object_id}: it was retrieved, moved or "
                "deleted through another pointer. Send the data again or recompute it."
            )
        return self.store[object_id]

    def _forward_pointer(self, ptr: Pointer) -> Pointer:
        ptr._check()
        if ptr.location is self:
            raise PointerError(
                f"{ptr!r} already points to {self.name}; {self.name} cannot hold a pointer to itself. "
                "Use the pointer directly, or send it to another worker."
            )
        result = self._add(Pointer(ptr.location, ptr.id, self, ptr.collect), me)
        ptr._gone = f"sent on to {self.name} (use the pointer that send returned)"
        _post("send", me, self, 0, f"pointer to {ptr.location.name}:#{ptr.id}")
        return result

    def _taint(self, receiver: Entry | None, written: list[torch.Tensor]) -> None:
        """After a command on private data: mark private what it wrote and every object sharing that memory
        (views, module parameters, gradients and optimizer state that pointers reached earlier)."""
        if receiver is not None:
            receiver.private = True
            written = written + _tensors_in(receiver.value)
        touched = _storages(written)
        for entry in self.store.values():
            if touched and not entry.private and _storages(_tensors_in(entry.value)) & touched:
                entry.private = True

    def _check_optimizer(self, opt: torch.optim.Optimizer) -> None:
        """Refuse to step an optimizer whose parameters belong to nothing this worker was given."""
        if _stale(opt, [e.value for e in self.store.values() if e.given]):
            raise PointerError(
                f"{self.name}'s optimizer steps parameters of no model {self.name} holds: the model was "
                f"sent separately, fetched with .get() or moved away since. {_fix(self)}"
            )


def _stale(opt: Any, objects: Sequence[Any]) -> bool:
    """Whether ``opt`` is an optimizer with a parameter that is none of ``objects``' tensors."""
    if not isinstance(opt, torch.optim.Optimizer):
        return False
    tensors = {id(t) for o in objects if not isinstance(o, torch.optim.Optimizer) for t in _tensors_in(o, False)}
    return not all(id(p) in tensors for group in opt.param_groups for p in group["params"])


def _fix(worker: VirtualWorker) -> str:
    return (
        f"Send the model and an optimizer built for it together: model_ptr, opt_ptr = {worker.name}.send(model, "
        "torch.optim.SGD(model.parameters(), lr=...)), and build a new one after every model = model_ptr.get()."
    )


me = VirtualWorker("me")  # the learner's own worker: pointers you make belong to it


def send(obj: Any, worker: VirtualWorker, **options: Any) -> Pointer:
    """``send(x, bob)`` is ``bob.send(x)`` (torch.Tensor has no ``.send``: we never patch torch)."""
    if not isinstance(worker, VirtualWorker):
        raise TypeError(f"send(obj, worker) needs a VirtualWorker as second argument, got {type(worker).__name__}.")
    return worker.send(obj, **options)


def _post(kind: str, sender: VirtualWorker, receiver: VirtualWorker, nbytes: int, detail: str = "") -> None:
    message = Message(kind, sender.name, receiver.name, nbytes, detail, next(_next_seq))
    sender.log.append(message)
    if receiver is not sender:
        receiver.log.append(message)


# ----------------------------------------------------------------------------- pointers


class Pointer:
    """A handle on an object held by ``location`` under ``id``; ``owner`` is who holds the handle.
    Operators, ``torch.*`` functions and methods run on the location and return new pointers."""

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
        return f"<{where} | {entry.kind}{' | private' if entry.private else ''}>"

    # ---- what the location tells about the object (metadata, not data)

    private = property(lambda self: self._check().private, doc="Whether the object is private where it is.")
    tags = property(lambda self: self._check().tags, doc="The tags its worker gave it.")
    description = property(lambda self: self._check().description, doc="Its worker's description of it.")

    def _check(self) -> Entry:
        if self._gone:
            raise PointerError(
                f"This pointer to {self.location.name}:#{self.id} was {self._gone}; "
                "it cannot be used any more. Keep working with the value or pointer you got then."
            )
        return self.location._entry(self.id)

    def _refuse_if_private(self, action: str, to: VirtualWorker | None = None) -> Entry:
        entry = self._check()
        if entry.private and not any(w is to for w in entry.may_go_to):
            name = self.location.name
            raise PermissionError(
                f"Object #{self.id} ({entry.kind}) on {name} is private data or was computed from private data, "
                f"so {name} refuses to {action}. Only {name} may let it leave: {name}.release(ptr), or "
                f"{name}.release(ptr, to=worker)."
            )
        return entry

    # ---- bringing values back, moving them on

    def get(self) -> Any:
        """Retrieve (a copy of) the object; the location forgets it and this pointer is used up."""
        self._refuse_if_private("send it to you")
        value = _copied(self.location.store.pop(self.id).value)
        _post("get", self.location, self.owner, payload_bytes(value), _kind(value))
        self._gone = "retrieved with .get()"
        if isinstance(value, Pointer):
            value.owner = self.owner  # a pointer-to-pointer gives you the inner pointer: .get().get()
        return value

    def copy(self) -> Any:
        """Retrieve a copy; the location keeps the original and this pointer stays usable."""
        value = self._refuse_if_private("send you a copy").value
        if isinstance(value, Pointer):
            raise PointerError(f"{self!r} holds a pointer; a copy would point at the same object twice. Use .get().")
        value = _copied(value)
        _post("copy", self.location, self.owner, payload_bytes(value), _kind(value))
        return value

    def move(self, worker: VirtualWorker) -> Pointer:
        """Have the location send (a copy of) the object straight to ``worker``; this pointer follows it.
        What stays behind (an optimizer, a view) no longer reaches the moved object."""
        if worker is self.location:
            raise PointerError(f"{self!r} is already on {worker.name}; nothing to move.")
        entry = self._refuse_if_private(f"move it to {worker.name}", to=worker)
        if isinstance(entry.value, Pointer) and entry.value.location is worker:
            raise PointerError(
                f"{self!r} holds a pointer to {worker.name}; moving it there would make {worker.name} "
                "point to itself. Use .get() to unwrap it instead."
            )
        del self.location.store[self.id]
        _post("command", self.owner, self.location, 0, f"move #{self.id} to {worker.name}")
        _post("move", self.location, worker, payload_bytes(entry.value), entry.kind)
        entry.value, entry.may_go_to, entry.given = _copied(entry.value), [], True  # private stays private
        if isinstance(entry.value, Pointer):
            entry.value.owner = worker
        worker.store[self.id] = entry
        self.location = worker
        return self

    def remote_get(self) -> Pointer:
        """For a pointer to a pointer (me -> alice -> bob): bob sends the object to alice, who holds it."""
        inner = self._check().value
        if not isinstance(inner, Pointer):
            raise PointerError(f"{self!r} does not hold a pointer: remote_get needs a chain. Use .get().")
        inner.move(self.location)  # bob -> alice directly, copied; refused if private
        self.location.store[self.id] = self.location.store.pop(inner.id)
        inner._gone = f"brought to {self.location.name} with remote_get()"
        return self

    def __del__(self) -> None:  # garbage collection of the handle frees the remote object (and logs the "delete")
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
        entry = self._check()
        attribute = getattr(entry.value, name, _MISSING)
        if attribute is _MISSING:
            raise AttributeError(f"{self.location.name}'s object #{self.id} ({entry.kind}) has no attribute {name!r}.")
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


_MISSING = object()
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
    private = any(e.private for e in entries) and not _is_metadata(func, name, entries)
    receiver = entries[0] if args and isinstance(args[0], Pointer) and _writes_receiver(func, name) else None
    values = {id(p): e.value for p, e in zip(pointers, entries, strict=True)}
    args, kwargs = _resolve(args, values, location), _resolve(kwargs, values, location)
    leaves = _graph_leaves(args[0]) if private and name == "backward" else []  # backward writes their .grad
    if func is _call_method and name == "step" and isinstance(args[0], torch.optim.Optimizer):
        location._check_optimizer(args[0])
    try:
        result = func(*args, **kwargs)
    except (PointerError, PermissionError, RemoteError):
        raise  # already explained (pointer chains fail one worker further down)
    except Exception as err:  # noqa: BLE001 - any failure on the worker becomes one clear message
        if private:  # torch's message may quote values or data-dependent sizes: the worker keeps it
            raise RemoteError(
                f"{location.name} could not run {name} on private data ({type(err).__name__}); the details stay "
                "on the worker because they could reveal the data. Check your code against the declared shapes."
            ) from None
        kinds = ", ".join(_kind(v) for v in values.values())
        raise RemoteError(f"{location.name} could not run {name} on {kinds}: {type(err).__name__}: {err}") from None
    finally:
        if private:  # whatever this operation wrote into now holds private data too
            location._taint(receiver, _tensors_in(leaves) + _tensors_in(kwargs.get("out")))
    # backward(), step(), zero_grad() return None: nothing to point at
    return None if result is None else location._add(result, owner, private=private)


TENSOR_METADATA = {"shape", "dtype", "ndim", "device", "size", "numel", "dim"}  # facts about a tensor, not its values
WRITING_DUNDERS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__call__"}


def _is_metadata(func, name: str, entries: list[Entry]) -> bool:
    """A shape or dtype query on a tensor the worker was given: the real torch attribute, nothing by name."""
    value = entries[0].value
    one_given_tensor = len(entries) == 1 and entries[0].given and isinstance(value, torch.Tensor)
    real_attribute = name in TENSOR_METADATA and getattr(type(value), name, None) is getattr(torch.Tensor, name)
    return one_given_tensor and real_attribute and func in (getattr, _call_method)


def _writes_receiver(func, name: str) -> bool:
    """Whether the operation may store its inputs in its first argument. In-place torch functions end with one
    ``_``. Any *named method* may keep what it is given (``list.append``, ``Tensor.copy_``, ``load_state_dict``;
    a module's forward updates BatchNorm statistics), so we assume it does; operators like ``+`` never do."""
    if func is _call_method:
        return not name.startswith("__") or name in WRITING_DUNDERS
    return name.endswith("_") and not name.endswith("__")


def _collect(obj: Any, pointers: list[Pointer]) -> int:
    """Append the pointers in (nested) arguments; return the bytes of the local tensors sent along."""
    if isinstance(obj, Pointer):
        pointers.append(obj)
        return 0
    if type(obj) in (list, tuple):
        return sum(_collect(o, pointers) for o in obj)
    if type(obj) is dict:
        return sum(_collect(o, pointers) for o in obj.values())
    return payload_bytes(obj) if isinstance(obj, (torch.Tensor, nn.Module, torch.optim.Optimizer)) else 0


ATOMS = (int, float, complex, bool, str, bytes, type(None), slice, type(...), torch.dtype, torch.device, torch.Size)


def _resolve(obj: Any, values: dict[int, Any], location: VirtualWorker) -> Any:
    """Replace each pointer in (nested) arguments by the object it points to; copy everything local."""
    if isinstance(obj, Pointer):
        return values[id(obj)]
    if isinstance(obj, ATOMS):
        return obj
    if isinstance(obj, torch.Tensor):  # it travels with the command: the worker gets its own copy
        return obj.detach().clone().requires_grad_(obj.requires_grad)
    if type(obj) in (list, tuple):
        return type(obj)(_resolve(o, values, location) for o in obj)
    if type(obj) is dict:
        return {k: _resolve(v, values, location) for k, v in obj.items()}
    if isinstance(obj, (types.FunctionType, types.MethodType)) and not obj.__module__.startswith("torch"):
        raise PointerError(
            f"{obj.__qualname__} is your own code: here it would run on {location.name} yet still reach your "
            "objects (its closure and globals), which code sent to a real worker cannot. Use torch functions "
            "and methods on the pointer instead."
        )
    return copy.deepcopy(obj)  # modules, optimizers, other objects: the worker gets a copy, never yours


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


# ----------------------------------------------------------------------------- secret-shared tensors


def share_tensor(
    value: torch.Tensor | Pointer,
    *holders: VirtualWorker,
    crypto_provider: VirtualWorker | None = None,
    max_abs: float = 1e3,
) -> SharedTensor:
    """Split a tensor (yours, or the one ``value`` points to) into additive shares, one per holder.

    Through a pointer, the data's own worker encodes it in fixed point (a command, run there) and deals the
    shares itself: the value never leaves it in the clear. ``max_abs`` is the public bound on every |value|;
    ``crypto_provider`` deals the Beaver triples that ``*`` and ``@`` need."""
    if len(holders) < 2 or len({id(w) for w in holders}) < len(holders):
        raise ValueError(f"Secret sharing needs two or more different workers as holders, got {len(holders)}.")
    if not all(isinstance(w, VirtualWorker) for w in (*holders, crypto_provider or me)):
        raise TypeError("share_tensor(value, bob, alice, crypto_provider=carol) takes VirtualWorker objects.")
    if isinstance(value, Pointer):
        dealer, private, dtype = value.location, value.private, value._check().value.dtype
        try:
            encoded = _execute(privacy.encode, (value,), {"max_abs": max_abs}, "encode")  # fixed precision, there
        except RemoteError:
            raise OverflowError(
                f"{dealer.name} could not encode its values within the public bound ±{max_abs:g} (one is larger or "
                f"not finite). Share with a larger max_abs, below ±{privacy.fixed_point_limit():g}."
            ) from None
        ring, encoded._gone = dealer.store.pop(encoded.id).value, "shared"
    else:
        value = torch.as_tensor(value)
        dealer, private, dtype, ring = me, False, value.dtype, privacy.encode(value, max_abs=max_abs)
    pointers = []
    for i, (worker, piece) in enumerate(zip(holders, privacy.share(ring, len(holders)), strict=True)):
        if worker is not dealer:  # a share is uniformly random: it tells its holder nothing
            _post("share", dealer, worker, payload_bytes(piece), f"share {i + 1}/{len(holders)}")
        pointers.append(worker._add(piece, me, private=private, given=True))
    return SharedTensor(pointers, crypto_provider, privacy.FRAC_BITS, max_abs, dtype, [dealer] if private else [])


class SharedTensor:
    """A tensor held as additive shares over the ring Z_2^64, one share per holder (PySyft's
    ``x.fix_precision().share(bob, alice, crypto_provider=...)``); made by ``share_tensor``.

    Each holder keeps a uniformly random int64 tensor; only the sum of all of them decodes to the value.
    ``+``, ``-`` and products with public values are local to each holder; ``*`` and ``@`` of two shared
    tensors use a Beaver triple (a, b, a*b) that ``crypto_provider`` deals in shares. Products are not
    truncated: their fixed-point scales add up (``frac_bits``), and the public bound ``bound`` on |value|
    is checked before any result could wrap around the ring."""

    def __init__(self, shares, crypto_provider, frac_bits, bound, dtype, owners) -> None:
        self.shares: list[Pointer] = shares
        self.crypto_provider: VirtualWorker | None = crypto_provider
        self.frac_bits, self.bound, self.dtype = frac_bits, float(bound), dtype
        self.owners: list[VirtualWorker] = owners  # whose private data it holds: each must release it
        self.holders = [p.location for p in shares]
        self.shape: torch.Size = shares[0]._check().value.shape  # every share has the value's shape: public

    def __repr__(self) -> str:
        private = f" | private to {', '.join(w.name for w in self.owners)}" if self.owners else ""
        return f"<SharedTensor{tuple(self.shape)} over {', '.join(w.name for w in self.holders)}{private}>"

    def get(self) -> torch.Tensor:
        """Every holder sends you its share; their sum, decoded, is the value."""
        if self.owners:
            names = ", ".join(w.name for w in self.owners)
            raise PermissionError(
                f"This shared tensor holds private data of {names}: adding its shares would reveal it. "
                f"Each owner decides: {self.owners[0].name}.release(shared)."
            )
        parts = []
        for ptr in self.shares:
            parts.append(ptr.location.store.pop(ptr._check() and ptr.id).value)
            _post("get", ptr.location, me, payload_bytes(parts[-1]), "share")
            ptr._gone = "retrieved with SharedTensor.get()"
        value = privacy.decode(privacy.reconstruct(parts), self.frac_bits)
        return value.to(self.dtype) if self.dtype.is_floating_point else value.round().to(self.dtype)

    def _release(self, worker: VirtualWorker) -> None:
        if not any(w is worker for w in self.owners):
            raise PointerError(f"{worker.name} has no private data in {self!r}: only its owners release it.")
        self.owners = [w for w in self.owners if w is not worker]
        _post("release", worker, worker, 0, "shared tensor to anyone")

    # ---- computing on shares

    def _each(self, name: str, fn, frac_bits: int, bound: float, other=None, payload: int = 0) -> SharedTensor:
        """Every holder computes ``fn(i, its share)`` locally (one command each; no data moves)."""
        if bound * 2.0**frac_bits >= 2.0**63:
            raise OverflowError(
                f"{name}: the result could reach ±{bound:g}, and with {frac_bits} fractional bits the ring holds "
                f"only ±{2.0 ** (63 - frac_bits):g}: it would wrap around. get() and share it again, or share "
                "smaller values (max_abs)."
            )
        owners = self.owners + [w for w in getattr(other, "owners", []) if w not in self.owners]
        dtype = torch.promote_types(self.dtype, getattr(other, "dtype", torch.float32))
        shares = []
        for i, ptr in enumerate(self.shares):
            _post("command", me, ptr.location, payload if i == 0 else 0, name)
            shares.append(ptr.location._add(fn(i, ptr._check().value), me, private=bool(owners)))
        provider = self.crypto_provider or other and other.crypto_provider
        return SharedTensor(shares, provider, frac_bits, bound, dtype, owners)

    def _other_shares(self, other: SharedTensor) -> list[torch.Tensor]:
        if [id(w) for w in other.holders] != [id(w) for w in self.holders]:
            raise PointerError(
                f"{self!r} and {other!r} are shared among different workers: share both among the same ones."
            )
        return [p._check().value for p in other.shares]

    def __add__(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            theirs, frac = self._other_shares(other), max(self.frac_bits, other.frac_bits)
            lift_a, lift_b = 2 ** (frac - self.frac_bits), 2 ** (frac - other.frac_bits)  # same scale first
            bound = self.bound + other.bound
            return self._each("add", lambda i, s: s * lift_a + theirs[i] * lift_b, frac, bound, other)
        public = torch.as_tensor(other)
        encoded = privacy.encode(public, self.frac_bits)  # a public value: one holder adds it to its share
        bound, nbytes = self.bound + public.abs().max().item(), payload_bytes(encoded)
        return self._each("add", lambda i, s: s + encoded if i == 0 else s.clone(), self.frac_bits, bound, None, nbytes)

    __radd__ = __add__

    def __neg__(self) -> SharedTensor:
        return self._each("neg", lambda i, s: -s, self.frac_bits, self.bound)

    def __sub__(self, other: Any) -> SharedTensor:
        return self + (-other)

    def __rsub__(self, other: Any) -> SharedTensor:
        return -self + other

    def __mul__(self, other: Any) -> SharedTensor:
        return self._product(other, torch.mul, "mul")

    __rmul__ = __mul__

    def __matmul__(self, other: Any) -> SharedTensor:
        return self._product(other, torch.matmul, "matmul")

    def _product(self, other: Any, op, name: str) -> SharedTensor:
        inner = self.shape[-1] if name == "matmul" else 1  # terms summed per output element
        if not isinstance(other, SharedTensor):  # a public factor: every holder multiplies its share
            public = torch.as_tensor(other)
            scaled = public.is_floating_point()
            factor = privacy.encode(public) if scaled else public.to(torch.int64)
            frac = self.frac_bits + (privacy.FRAC_BITS if scaled else 0)
            bound = self.bound * public.abs().max().item() * inner
            return self._each(name, lambda i, s: op(s, factor), frac, bound, None, payload_bytes(factor))
        return self._beaver(other, op, name, inner)

    def _beaver(self, other: SharedTensor, op, name: str, inner: int) -> SharedTensor:
        """x op y from shares of x and y, with a triple (a, b, c = a op b) dealt by the crypto provider.

        The holders open eps = x - a and delta = y - b (uniformly random: they reveal nothing); then
        c + eps op b + a op delta + eps op delta = x op y, and each term is local to a holder."""
        provider = self.crypto_provider or other.crypto_provider
        if provider is None or any(provider is w for w in self.holders):
            raise ValueError(
                f"{name} of two shared tensors needs a crypto provider that holds no share, to deal a Beaver "
                "triple: share_tensor(x, bob, alice, crypto_provider=carol)."
            )
        xs, ys, n = [p._check().value for p in self.shares], self._other_shares(other), len(self.shares)
        a, b = privacy.random_ring(xs[0].shape), privacy.random_ring(ys[0].shape)  # the provider's randomness
        a_sh, b_sh, c_sh = (privacy.share(t, n) for t in (a, b, op(a, b)))
        for i, worker in enumerate(self.holders):
            nbytes = payload_bytes([a_sh[i], b_sh[i], c_sh[i]])
            _post("share", provider, worker, nbytes, f"Beaver triple for {name}, share {i + 1}/{n}")
        eps_parts = [x - s for x, s in zip(xs, a_sh, strict=True)]
        delta_parts = [y - s for y, s in zip(ys, b_sh, strict=True)]
        for i, sender in enumerate(self.holders):  # opening: each holder sends its masked parts to every other
            for receiver in (w for w in self.holders if w is not sender):
                _post("share", sender, receiver, payload_bytes([eps_parts[i], delta_parts[i]]), "open x - a, y - b")
        eps, delta = sum(eps_parts), sum(delta_parts)

        def local(i: int, _share: torch.Tensor) -> torch.Tensor:
            z = c_sh[i] + op(eps, b_sh[i]) + op(a_sh[i], delta)
            return z + op(eps, delta) if i == 0 else z

        return self._each(name, local, self.frac_bits + other.frac_bits, self.bound * other.bound * inner, other)


# ----------------------------------------------------------------------------- averaging and grids


def average_models(models: list[Pointer], weights: list[float] | None = None) -> Pointer:
    """Average the parameters of models held by one worker, there; returns a pointer to the average.

    ``weights`` (e.g. each worker's sample count) make a weighted average, FedAvg's rule; without them every
    model counts the same. The models themselves are left as they were."""
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

    def search(self, *terms: str) -> list[Pointer]:
        """Pointers to every object whose tags or description words include all ``terms``, worker by worker."""
        if not terms:
            raise ValueError('Search with at least one tag or word, e.g. grid.search("#mnist").')
        return [ptr for worker in self.workers for ptr in worker.search(*terms)]

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
    a small clinic whose patients wrote only 0s, 1s and 2s."""
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
        worker.hold(x[idx], private, ("#mnist", "#images", f"#{name}"), f"images: {about}")
        worker.hold(y[idx], private, ("#mnist", "#labels", f"#{name}"), f"labels: {about}")
        workers.append(worker)
    return Grid(workers)
