"""Plain data between a grade cell's judge and the student's code: the wire format and the worker's side.

When a lab is graded, a grade cell does not run in the student's kernel. It runs in the grader's own
process (the *judge*), with every name the student defined replaced by a stand-in; calling a stand-in
sends a request to the student's kernel (the *worker*), which calls the student's code there and
answers with an observation. Both directions carry only the values :func:`encode` produces: ``None``,
booleans, numbers, strings, lists and string-keyed dicts of those, tensors as dtype, shape and raw
bytes, and *references* (an integer naming an object that stays in the worker). No pickle, no code,
nothing executable: :func:`decode` rebuilds plain Python and torch values and refuses anything else
or anything too large.

In JupyterLab nothing of this runs: the grade cells call the student's functions directly.

Worker side: :func:`handle` answers one request (a JSON text) against the kernel's namespace. The
judge may also ask the worker to run a function of this library that must run next to the student's
objects (:func:`worker_side`), e.g. build a 100,000-node graph of the student's ``Value`` in one call.
Everything the worker answers is an observation of the student's code: it may lie, and the judge
never takes a verdict, an expected value or a score from it.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import math
import operator
import sys
from collections.abc import Callable
from typing import Any

MAX_TEXT = 64 * 1024 * 1024          # bytes of one request or answer
MAX_ELEMENTS = 16 * 1024 * 1024      # elements of one tensor
MAX_DEPTH = 32                       # nesting of lists and dicts
MAX_ITEMS = 1_000_000                # items of one list or dict
MAX_STRING = 1024 * 1024             # characters of one string


class _LazyTorch:
    """torch, imported on first use: a notebook that never imported torch (the worker answers requests in
    the student's process) does not get it (its memory, its address space) from the protocol."""

    def __getattr__(self, name: str) -> Any:
        import torch as module

        _capture(module)
        globals()["torch"] = module
        return getattr(module, name)


torch: Any = sys.modules.get("torch") or _LazyTorch()


def _torch_loaded() -> bool:
    return "torch" in sys.modules


_ORIGINAL: dict[str, Any] = {}


def _capture(module: Any) -> None:
    """torch's own functions as they were when the course library first saw torch (in a lab, the import
    block, before any student cell): the protocol's comparisons never go through what a student replaced."""
    if not _ORIGINAL:
        _ORIGINAL.update(equal=module.equal, detach=module.Tensor.detach, clone=module.Tensor.clone)


def _equal(a, b) -> bool:
    return _ORIGINAL["equal"](a, b) if _ORIGINAL else torch.equal(a, b)


def _detach(t):
    return _ORIGINAL["detach"](t) if _ORIGINAL else t.detach()


def _clone(t):
    return _ORIGINAL["clone"](t) if _ORIGINAL else t.clone()


if _torch_loaded():
    _capture(sys.modules["torch"])

_DTYPES: dict[str, Any] = {}


def dtypes() -> dict[str, Any]:
    if not _DTYPES:
        _DTYPES.update({
            "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
            "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
            "uint8": torch.uint8, "bool": torch.bool, "complex64": torch.complex64, "complex128": torch.complex128})
    return _DTYPES


def dtype_names() -> dict[Any, str]:
    return {v: k for k, v in dtypes().items()}


OPERATORS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "matmul": operator.matmul,
    "neg": operator.neg, "pos": operator.pos, "abs": operator.abs, "invert": operator.invert,
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq,
    "ne": operator.ne, "getitem": operator.getitem, "contains": operator.contains,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
}


class WireError(ValueError):
    """A message that does not follow the schema (too big, too deep, an unknown kind)."""


# -- encoding (both sides) -------------------------------------------------------------------------

def _tensor(t: torch.Tensor) -> dict:
    t = t.detach()
    if t.layout != torch.strided or t.is_quantized:
        t = t.to_dense() if t.layout != torch.strided else t.dequantize()
    if t.dtype not in dtype_names():
        raise WireError(f"cannot send a tensor of dtype {t.dtype}")
    if t.numel() > MAX_ELEMENTS:
        raise WireError(f"a tensor of {t.numel()} elements is larger than the limit ({MAX_ELEMENTS})")
    plain = torch.Tensor._make_subclass(torch.Tensor, t) if type(t) is not torch.Tensor else t
    raw = plain.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if plain.numel() else b""
    return {"t": "tensor", "dtype": dtype_names()[t.dtype], "shape": list(t.shape), "data": base64.b64encode(raw).decode()}


def _number(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"t": "float", "v": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def encode(obj: Any, ref: Callable[[Any], dict] | None = None, depth: int = 0,
           tensor: Callable[[torch.Tensor], dict] | None = None,
           mirror: Callable[[dict], int] | None = None) -> Any:
    """``obj`` as plain JSON-able data. ``ref(obj)`` names objects that cannot travel by value (the
    worker's references, the judge's callbacks); without it such an object is a :class:`WireError`.
    ``tensor(t)``, if given, encodes every tensor (the judge adds its own bookkeeping)."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if obj is None or type(obj) is bool or type(obj) is str:
        return obj
    if type(obj) is int:
        return obj if abs(obj) < 2**63 else {"t": "bigint", "v": str(obj)}
    if type(obj) is float:
        return _number(obj)
    if ref is not None and getattr(type(obj), "_bpl_remote", False):  # a stand-in: its reference, never a copy
        return ref(obj)
    loaded = _torch_loaded()  # no torch imported: no tensor, dtype or size can exist
    if loaded and isinstance(obj, torch.Tensor) and tensor is not None:
        return tensor(obj)
    if loaded and isinstance(obj, torch.Tensor) and (ref is None or not _keep_as_ref(obj)):
        out = _tensor(obj)
        if obj.requires_grad:
            out["requires_grad"] = True
        return out
    if type(obj) in (list, tuple):
        if len(obj) > MAX_ITEMS:
            raise WireError("the list is too long")
        items = [encode(x, ref, depth + 1, tensor, mirror) for x in obj]
        return items if type(obj) is list else {"t": "tuple", "v": items}
    if type(obj) is dict and all(type(k) is str for k in obj):
        out = {"t": "dict", "v": {k: encode(v, ref, depth + 1, tensor, mirror) for k, v in obj.items()}}
        if mirror is not None:  # the judge's dict: entries the student's code replaces come back
            out["mirror"] = mirror(obj)
        return out
    if loaded and isinstance(obj, torch.dtype) and obj in dtype_names():
        return {"t": "dtype", "v": dtype_names()[obj]}
    if loaded and isinstance(obj, torch.Size):
        return {"t": "size", "v": [int(x) for x in obj]}
    if isinstance(obj, slice):
        return {"t": "slice", "v": [encode(obj.start, ref, depth + 1), encode(obj.stop, ref, depth + 1),
                                    encode(obj.step, ref, depth + 1)]}
    if obj is Ellipsis:
        return {"t": "ellipsis"}
    try:  # numpy values travel as tensors or numbers
        import numpy as np

        if isinstance(obj, np.ndarray) and obj.dtype.kind in "biuf":
            return {"t": "ndarray", "v": _tensor(torch.from_numpy(np.ascontiguousarray(obj)))}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return encode(obj.item(), ref, depth)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if ref is not None:
        return ref(obj)
    raise WireError(f"cannot send a {type(obj).__name__} by value")


def _keep_as_ref(t: torch.Tensor) -> bool:
    """A tensor inside an autograd graph stays in the worker (its graph cannot travel); its value is sent too."""
    return t.grad_fn is not None or (t.requires_grad and t.is_leaf and type(t) is torch.nn.Parameter)


def decode(data: Any, resolve: Callable[[dict], Any] | None = None, depth: int = 0) -> Any:
    """The value :func:`encode` described; ``resolve`` turns a reference or callback into an object."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if data is None or type(data) in (bool, int, float):
        return data
    if type(data) is str:
        if len(data) > MAX_STRING:
            raise WireError("a string is longer than the limit")
        return data
    if type(data) is list:
        if len(data) > MAX_ITEMS:
            raise WireError("the list is too long")
        return [decode(x, resolve, depth + 1) for x in data]
    if type(data) is not dict or type(data.get("t")) is not str:
        raise WireError("unexpected value in a message")
    kind = data["t"]
    if kind == "tensor":
        if "mirror" in data and resolve is not None:
            return resolve(data)
        return _decode_tensor(data)
    if kind == "ndarray":
        return _decode_tensor(data.get("v")).numpy()
    if kind == "tuple":
        return tuple(decode(_list(data.get("v")), resolve, depth + 1))
    if kind == "dict":
        items = data.get("v")
        if type(items) is not dict or len(items) > MAX_ITEMS:
            raise WireError("a dict in a message is malformed")
        value = {str(k): decode(v, resolve, depth + 1) for k, v in items.items()}
        if "mirror" in data and resolve is not None:
            return resolve({"t": "dictmirror", "mirror": data["mirror"], "value": value})
        return value
    if kind == "float":
        v = data.get("v")
        if v not in ("nan", "inf", "-inf"):
            raise WireError("a float in a message is malformed")
        return float(v)
    if kind == "bigint":
        text = data.get("v")
        if type(text) is not str or len(text) > 4000 or not text.lstrip("-").isdigit():
            raise WireError("an integer in a message is malformed")
        return int(text)
    if kind == "dtype":
        if data.get("v") not in dtypes():
            raise WireError("unknown dtype in a message")
        return dtypes()[data["v"]]
    if kind == "slice":
        parts = _list(data.get("v"))
        if len(parts) != 3:
            raise WireError("a slice in a message is malformed")
        return slice(*(decode(p, resolve, depth + 1) for p in parts))
    if kind == "ellipsis":
        return Ellipsis
    if kind == "size":
        return torch.Size(decode(_list(data.get("v")), resolve, depth + 1))
    if kind in ("ref", "callback", "generator") and resolve is not None:
        return resolve(data)
    raise WireError(f"unexpected kind {kind!r} in a message")


def _list(v: Any) -> list:
    if type(v) is not list:
        raise WireError("a list in a message is malformed")
    return v


def _decode_tensor(data: Any) -> torch.Tensor:
    if type(data) is not dict or data.get("t") != "tensor":
        raise WireError("a tensor in a message is malformed")
    dtype = dtypes().get(data.get("dtype"))
    shape = data.get("shape")
    text = data.get("data")
    if dtype is None or type(shape) is not list or not all(type(s) is int and 0 <= s for s in shape) \
            or type(text) is not str or len(shape) > 16:
        raise WireError("a tensor in a message is malformed")
    n = math.prod(shape)
    if n > MAX_ELEMENTS:
        raise WireError("a tensor in a message is larger than the limit")
    raw = base64.b64decode(text.encode(), validate=True)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != n * itemsize:
        raise WireError("a tensor's bytes do not match its shape and dtype")
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype) if n else torch.empty(0, dtype=dtype)
    out = flat.reshape(shape).clone()
    if data.get("requires_grad") is True and out.is_floating_point():
        out.requires_grad_(True)
    return out


def loads(text: Any) -> Any:
    """Parse one message (a JSON text), refusing anything too large."""
    if type(text) is not str or len(text) > MAX_TEXT:
        raise WireError("a message is missing or larger than the limit")
    return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise WireError(f"{name} is not allowed in a message")


# -- functions of this library that run in the worker ----------------------------------------------

_ACTIVE: list[Any] = []       # the judge's channel while a grade cell is being judged (judge side only)
_SERVING: list[dict] = []     # the namespace of the request the worker is answering (worker side only)
_WORKER_SIDE: dict[str, Callable] = {}


def worker_side(fn: Callable) -> Callable:
    """Mark a library function that must run next to the student's objects.

    On the student's desk it is a plain call. In the judge, a call whose arguments include a stand-in
    for a student object is sent to the worker, which runs this same function there and answers with
    the result (by value or as a reference)."""
    key = f"{fn.__module__}.{fn.__qualname__}"
    _WORKER_SIDE[key] = fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _ACTIVE and not _SERVING:  # in the judge (a worker-side function calling another runs in place)
            return _ACTIVE[-1].call_worker_side(key, args, kwargs)
        return fn(*args, **kwargs)

    wrapper.worker_key = key  # type: ignore[attr-defined]
    return wrapper


def plain(obj: Any) -> Any:
    """``obj`` with each stand-in for a student's tensor (judge side) replaced by the judge's copy of its
    value; anything else unchanged. On the desk there are no stand-ins: ``obj`` itself."""
    if getattr(type(obj), "_bpl_remote", False):
        value = object.__getattribute__(obj, "_value")
        return value if value is not None else obj
    if type(obj) in (list, tuple):
        return type(obj)(plain(x) for x in obj)
    return obj


def worker_namespace() -> dict:
    """The student's namespace, for a worker-side function answering a request (else the kernel's)."""
    return _SERVING[-1] if _SERVING else _namespace()


def judging() -> bool:
    """True while a grade cell runs in the judge (the student's code is in another process)."""
    return bool(_ACTIVE)


# -- the worker ------------------------------------------------------------------------------------

class _Worker:
    """The worker's state: its references, the copies of the judge's tensors, and how it calls back."""

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self.ids: dict[int, int] = {}      # id(obj) -> reference number
        self.next = 1
        self.callback: Callable[[str], str] | None = None
        self.mirrors: dict[int, torch.Tensor] = {}          # the judge's tensor k, as the worker holds it
        self.snapshots: dict[int, torch.Tensor] = {}        # its value when this request received it
        self.reported: dict[int, Any] = {}                  # the .grad last reported for mirror k
        self.generators: dict[int, torch.Generator] = {}
        self.dicts: dict[int, dict] = {}
        self.dict_snapshots: dict[int, dict[str, int]] = {}
        self.generator_states: dict[int, torch.Tensor] = {}

    def ref(self, obj: Any) -> dict:
        key = id(obj)
        number = self.ids.get(key)
        if number is None:
            number = self.next
            self.next += 1
            self.objects[number] = obj
            self.ids[key] = number
        out = {"t": "ref", "id": number, "type": _type_name(obj), "callable": callable(obj),
               "is_class": isinstance(obj, type), "class": _class_path(obj)}
        if _torch_loaded() and isinstance(obj, torch.Tensor):
            try:
                out["value"] = _tensor(obj)
            except (WireError, RuntimeError):
                pass
        return out

    def resolve(self, data: dict) -> Any:
        kind = data["t"]
        if kind == "tensor":
            return self._mirror(data)
        if kind == "generator":
            return self._generator(data)
        if kind == "dictmirror":
            number = data.get("mirror")
            if type(number) is not int:
                raise WireError("malformed dict")
            value = data["value"]
            self.dicts[number] = value
            self.dict_snapshots[number] = {k: id(v) for k, v in value.items()}
            return value
        number = data.get("id")
        if kind == "ref":
            if type(number) is not int or number not in self.objects:
                raise WireError("unknown reference")
            return self.objects[number]
        if type(number) is not int:
            raise WireError("malformed callback")
        return _Callback(self, number)

    def _mirror(self, data: dict) -> torch.Tensor:
        """The worker's copy of one of the judge's tensors: the same object every time the judge sends
        it unchanged (so a gradient accumulated by one request is there for the next)."""
        number = data.get("mirror")
        if type(number) is not int:
            raise WireError("malformed tensor")
        value = _decode_tensor(data)
        old = self.mirrors.get(number)
        if old is not None and old.dtype == value.dtype and old.shape == value.shape \
                and old.requires_grad == value.requires_grad and _equal(_detach(old), _detach(value)):
            tensor = old
        else:
            tensor = value
            self.mirrors[number] = tensor
        if "grad" in data:
            grad = data["grad"]
            tensor.grad = None if grad is None else _decode_tensor(grad)
            self.reported[number] = _grad_key(tensor)
        self.snapshots[number] = _clone(_detach(tensor))
        return tensor

    def _generator(self, data: dict) -> torch.Generator:
        """The worker's copy of a random generator of the judge (its state travels, both ways)."""
        number = data.get("mirror")
        if type(number) is not int:
            raise WireError("malformed generator")
        state = _decode_tensor(data.get("state"))
        gen = self.generators.get(number)
        if gen is None:
            gen = torch.Generator()
            self.generators[number] = gen
        gen.set_state(state)
        self.generator_states[number] = state
        return gen

    def changes(self) -> dict:
        """What happened to the judge's tensors during this request: new values, new gradients."""
        out: dict[str, Any] = {}
        for number, before in self.snapshots.items():
            tensor = self.mirrors.get(number)
            if tensor is not None and not _equal(_detach(tensor), before):
                out.setdefault(str(number), {})["value"] = _tensor(tensor)
        for number, tensor in self.mirrors.items():
            key = _grad_key(tensor)
            if key != self.reported.get(number):
                self.reported[number] = key
                grad = tensor.grad
                out.setdefault(str(number), {})["grad"] = None if grad is None else _tensor(grad)
        self.snapshots.clear()
        for number, before in self.generator_states.items():
            state = self.generators[number].get_state()
            if not _equal(state, before):
                out.setdefault(str(number), {})["generator"] = _tensor(state)
        self.generator_states.clear()
        for number, before in self.dict_snapshots.items():
            d = self.dicts.get(number)
            if not isinstance(d, dict):
                continue
            changed = {k: encode(v, self.ref) for k, v in d.items() if type(k) is str and before.get(k) != id(v)}
            gone = [k for k in before if k not in d]
            if changed or gone:
                out.setdefault(str(number), {})["dict"] = {"set": changed, "del": gone}
        self.dict_snapshots.clear()
        return out

    def release(self) -> None:
        self.objects.clear()
        self.ids.clear()
        self.mirrors.clear()
        self.snapshots.clear()
        self.reported.clear()
        self.generators.clear()
        self.generator_states.clear()
        self.dicts.clear()
        self.dict_snapshots.clear()


def _grad_key(t: torch.Tensor) -> Any:
    g = t.grad
    return None if g is None else (id(g), g._version)


def _class_path(obj: Any) -> str | None:
    """``module:qualname`` of the object's class when it is torch's, numpy's or the standard library's."""
    cls = type(obj)
    module = getattr(cls, "__module__", "")
    if type(module) is not str or module.split(".")[0] not in ("torch", "numpy", "builtins", "collections"):
        return None
    return f"{module}:{cls.__qualname__}"


def _type_name(obj: Any) -> str:
    try:
        name = type(obj).__name__ if not isinstance(obj, type) else obj.__name__
        return str(name)[:100]
    except Exception:  # noqa: BLE001 - a hostile __name__
        return "object"


class _Callback:
    """A function of the judge (a test's loss function, say) that the student's code may call.

    Called on tensors that require grad, it is differentiable to any order: the judge evaluates it on
    its own copies and answers vector-Jacobian products (themselves differentiable) when the student's
    code runs backward through it."""

    def __init__(self, worker: _Worker, number: int, order: int = 0) -> None:
        self.worker, self.number, self.order = worker, number, order
        self.__name__ = f"callback_{number}"

    def _send(self, args: tuple, kwargs: dict) -> Any:
        if self.worker.callback is None:
            raise RuntimeError("this function can only be called while the grader is waiting for an answer")
        request = json.dumps({"callback": self.number, "order": self.order,
                              "args": encode(list(args), self.worker.ref),
                              "kwargs": encode(dict(kwargs), self.worker.ref)})
        answer = loads(self.worker.callback(request))
        if type(answer) is not dict:
            raise WireError("malformed answer")
        changed = answer.get("changed")
        if type(changed) is dict:  # the test's function updated some of its tensor arguments in place
            mine = tensors_in([list(args), dict(kwargs)])
            for key, value in changed.items():
                if str(key).isdigit() and int(key) < len(mine):
                    new = _decode_tensor(value)
                    if new.shape == mine[int(key)].shape:
                        with torch.no_grad():
                            mine[int(key)].copy_(new)
        if "error" in answer:
            raise _rebuild_error(answer["error"])
        return decode(answer.get("ok"), self.worker.resolve)

    def __call__(self, *args, **kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)] if _torch_loaded() else []
        if tensors and any(_wrapped(a) for a in tensors) or (tensors and torch.is_grad_enabled() and any(a.requires_grad for a in tensors)):
            # differentiated, or under a torch.func transform: through _Differentiable
            slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
            out = _differentiable_class().apply(self, args, kwargs, slots, *[args[i] for i in slots])
            return out
        if not tensors:
            return self._send(args, kwargs)
        return self._send(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args), kwargs)


def tensors_in(obj: Any, out: list | None = None, depth: int = 0) -> list:
    """The tensors inside ``obj`` (lists, tuples, dict values), in a fixed order: both sides of a callback
    walk its arguments the same way, so an index names the same tensor on both."""
    out = [] if out is None else out
    if depth > MAX_DEPTH:
        return out
    if _torch_loaded() and isinstance(obj, torch.Tensor) and not getattr(type(obj), "_bpl_remote", False):
        if not _keep_as_ref(obj):  # a tensor in a graph travels as a reference: not one of these
            out.append(obj)
    elif type(obj) in (list, tuple):
        for x in obj:
            tensors_in(x, out, depth + 1)
    elif type(obj) is dict:
        for x in obj.values():
            tensors_in(x, out, depth + 1)
    return out


def _wrapped(t: torch.Tensor) -> bool:
    """A tensor of a torch.func transform (vmap's batched tensor, grad's tracking tensor)."""
    try:
        return bool(torch._C._functorch.is_functorch_wrapped_tensor(t))
    except (AttributeError, RuntimeError):
        return False


_DIFFERENTIABLE: list[type] = []


def _differentiable_class() -> type:
    """The autograd Function wrapping a test's function (made on first use: torch may not be imported)."""
    if _DIFFERENTIABLE:
        return _DIFFERENTIABLE[0]

    class _Differentiable(torch.autograd.Function):
        """A test's function, called by the student's code on tensors that require grad: the judge evaluates
        it; backward asks the judge for the vector-Jacobian product (itself differentiable). Written in the
        ``setup_context`` form with a ``vmap`` rule, so ``torch.func`` transforms (``grad``, ``vmap``) of the
        student's code work through it too."""

        @staticmethod
        def forward(cb, args, kwargs, slots, *tensors):
            full = list(args)
            for i, t in zip(slots, tensors, strict=True):
                full[i] = t.detach()
            out = cb._send(tuple(full), kwargs)
            if not isinstance(out, torch.Tensor):
                raise TypeError("a test's function must return a tensor when it is differentiated")
            return out.detach()

        @staticmethod
        def setup_context(ctx, inputs, output):
            cb, args, kwargs, slots, *tensors = inputs
            ctx.cb, ctx.args, ctx.kwargs, ctx.slots = cb, args, kwargs, slots
            ctx.save_for_backward(*tensors)

        @staticmethod
        def backward(ctx, grad_out):
            tensors = ctx.saved_tensors
            full = list(ctx.args)
            for i, t in zip(ctx.slots, tensors, strict=True):
                full[i] = t
            vjp = _Callback(ctx.cb.worker, ctx.cb.number, ctx.cb.order + 1)
            if torch.is_grad_enabled():
                flat = vjp(*full, grad_out, **ctx.kwargs)
            else:
                flat = vjp._send(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in (*full, grad_out)),
                                 ctx.kwargs)
            # the judge answers the gradients of every tensor argument, flattened and concatenated
            tensor_args = [a for a in (*full, grad_out) if isinstance(a, torch.Tensor)][: len(ctx.slots)]
            sizes = [t.numel() for t in tensor_args]
            if not isinstance(flat, torch.Tensor) or flat.numel() < sum(sizes):
                raise RuntimeError("the test's function did not give a gradient for every input")
            pieces = torch.split(flat.reshape(-1)[: sum(sizes)], sizes)
            grads = [p.reshape(t.shape).to(t.dtype) for p, t in zip(pieces, tensor_args, strict=True)]
            return (None, None, None, None, *grads)

        @staticmethod
        def vmap(info, in_dims, cb, args, kwargs, slots, *tensors):
            """Under ``torch.vmap``: the judge's function is evaluated once per batch element."""
            dims = in_dims[4:]
            size = info.batch_size
            outs = []
            for b in range(size):
                row = [t.select(d, b) if d is not None else t for t, d in zip(tensors, dims, strict=True)]
                outs.append(_Differentiable.apply(cb, args, kwargs, slots, *row))
            return torch.stack(outs), 0

    _DIFFERENTIABLE.append(_Differentiable)
    return _Differentiable


_BUILTIN_ERRORS = {name: getattr(__builtins__, name, None) if not isinstance(__builtins__, dict)
                   else __builtins__.get(name) for name in (
                       "ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "AttributeError",
                       "ZeroDivisionError", "OverflowError", "AssertionError", "NotImplementedError",
                       "ArithmeticError", "RecursionError", "NameError", "StopIteration", "TimeoutError",
                       "MemoryError", "LookupError", "FloatingPointError", "UnboundLocalError")}


def _rebuild_error(info: Any) -> BaseException:
    """An exception of a builtin type named in a message (else RuntimeError), carrying its text."""
    if type(info) is not dict:
        return RuntimeError("the code raised an error")
    name = info.get("type") if type(info.get("type")) is str else "Exception"
    message = info.get("message") if type(info.get("message")) is str else ""
    cls = _BUILTIN_ERRORS.get(name) or RuntimeError
    exc = cls(message[:20000]) if cls is not RuntimeError or name == "RuntimeError" else \
        RemoteError(name[:100], message[:20000])
    return exc


class RemoteError(RuntimeError):
    """An exception of a type the judge does not know, raised by the student's code."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __str__(self) -> str:  # pragma: no cover - trivial
        return super().__str__()


_WORKER = _Worker()


def _namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            return shell.user_ns
    except ImportError:  # pragma: no cover
        pass
    import __main__

    return __main__.__dict__


CALLBACK_PROMPT = "\x1bbackproplab-callback:"
READY_PROMPT = "\x1bbackproplab-ready"
ANSWER_PROMPT = "\x1bbackproplab-answer:"
STOP = "\x1bbackproplab-stop"


def _kernel_callback(request: str) -> str:
    return input(CALLBACK_PROMPT + request)


def handle(text: str, namespace: dict | None = None, callback: Callable[[str], str] | None = None) -> str:
    """Answer one request of the judge (JSON text in, JSON text out). Runs in the student's kernel."""
    worker = _WORKER
    ns = _namespace() if namespace is None else namespace
    previous = worker.callback
    worker.callback = callback or _kernel_callback
    _SERVING.append(ns)
    try:
        request = loads(text)
        result = _serve(worker, ns, request)
        answer = {"ok": encode(result, worker.ref)}
    except BaseException as exc:  # noqa: BLE001 - everything the student's code raises becomes an observation
        if isinstance(exc, KeyboardInterrupt):
            answer = {"error": {"type": "KeyboardInterrupt", "message": "interrupted"}}
        else:
            answer = {"error": {"type": _type_name(exc), "message": _safe_str(exc)}}
    finally:
        worker.callback = previous
        _SERVING.pop()
    try:
        answer["tensors"] = worker.changes()
        return json.dumps(answer)
    except Exception:  # noqa: BLE001
        return json.dumps({"error": {"type": "WireError", "message": "the answer could not be sent"}})


_ANSWER: list[str] = []


def serve(text: str) -> None:
    """Answer one request inside an execute request (the kernel forwards ``input()`` to the judge only
    while code runs, which callbacks need); the answer is read back by :func:`take` as a user expression.
    What the student's code printed is flushed first, so the grader sees it before the reply."""
    import sys

    try:
        _ANSWER[:] = [handle(text)]
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a stream the student replaced
                pass


def serve_loop() -> None:
    """Answer the judge's requests one after another inside one execute request (one per grade cell).

    Each request arrives as the reply to an ``input()`` whose prompt carries the previous answer, so a
    request costs one stdin round trip (about 0.6 ms) instead of an execute request (about 3 ms). The
    judge ends the loop with :data:`STOP`; an interrupt (a request past its time limit) arrives as an
    error answer, or, between requests, ends the loop and the judge starts another."""
    import builtins

    prompt = READY_PROMPT
    while True:
        text = builtins.input(prompt)
        if text == STOP:
            return
        prompt = ANSWER_PROMPT + handle(text)


def take() -> str:
    """The answer :func:`serve` stored (once), or an error if the request did not complete."""
    if not _ANSWER:
        return json.dumps({"error": {"type": "KeyboardInterrupt", "message": "the request did not complete"}})
    return _ANSWER.pop()


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:20000]
    except Exception:  # noqa: BLE001
        return "(an exception whose message cannot be shown)"


def _serve(worker: _Worker, ns: dict, req: Any) -> Any:
    if type(req) is not dict or type(req.get("op")) is not str:
        raise WireError("malformed request")
    op = req["op"]
    grad = req.get("grad_enabled")
    with torch.set_grad_enabled(bool(grad)) if type(grad) is bool and _torch_loaded() else _null():
        if op == "get":
            name = req.get("name")
            if type(name) is not str:
                raise WireError("malformed request")
            if name not in ns:
                raise NameError(f"name {name!r} is not defined")
            return ns[name]
        if op == "setglobal":
            name = req.get("name")
            if type(name) is not str or not name.isidentifier():
                raise WireError("malformed request")
            ns[name] = decode(req.get("value"), worker.resolve)
            return None
        if op == "release":
            worker.release()
            return None
        target = decode(req.get("target"), worker.resolve) if "target" in req else None
        if op == "call":
            args = decode(_list(req.get("args", [])), worker.resolve)
            kwargs = decode(req.get("kwargs", {"t": "dict", "v": {}}), worker.resolve)
            return target(*args, **kwargs)
        if op == "worker_side":
            key = req.get("name")
            if type(key) is not str or not key.startswith("backproplab."):
                raise WireError("unknown library function")
            if key not in _WORKER_SIDE:
                parts = key.split(".")
                for cut in range(len(parts) - 1, 1, -1):
                    try:
                        importlib.import_module(".".join(parts[:cut]))
                        break
                    except ImportError:
                        continue
            fn = _WORKER_SIDE.get(key)
            if fn is None:
                raise WireError(f"{key} is not a worker-side function")
            args = decode(_list(req.get("args", [])), worker.resolve)
            kwargs = decode(req.get("kwargs", {"t": "dict", "v": {}}), worker.resolve)
            return fn(*args, **kwargs)
        if op == "getattr":
            name = req.get("name")
            if type(name) is not str:
                raise WireError("malformed request")
            return getattr(target, name)
        if op == "setattr":
            name = req.get("name")
            if type(name) is not str:
                raise WireError("malformed request")
            setattr(target, name, decode(req.get("value"), worker.resolve))
            return None
        if op == "setitem":
            target[decode(req.get("key"), worker.resolve)] = decode(req.get("value"), worker.resolve)
            return None
        if op == "operator":
            fn = OPERATORS.get(req.get("name"))
            if fn is None:
                raise WireError("unknown operator")
            operands = decode(_list(req.get("args", [])), worker.resolve)
            return fn(*operands)
        if op == "builtin":
            name = req.get("name")
            fns = {"len": len, "list": list, "bool": bool, "float": float, "int": int, "repr": repr, "str": str,
                   "hash": hash, "isinstance": isinstance, "hasattr": hasattr, "dir": dir, "type_name": _type_name,
                   "callable": callable, "issubclass": issubclass}
            if name not in fns:
                raise WireError("unknown builtin")
            operands = decode(_list(req.get("args", [])), worker.resolve)
            out = fns[name](*operands)
            if name in ("repr", "str"):
                out = str(out)[:4000]
            return out
        raise WireError(f"unknown operation {op!r}")


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
