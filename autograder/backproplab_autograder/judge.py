"""The judge: grade cells run in the grader's own process, the student's code stays in its kernel.

A grade cell's source (public checks and hidden tests) is executed here, never in the student's
kernel. Its namespace holds the lab's imports and the instructor's definitions, run here too; every
other name it reads (``threshold_unit``, ``Value``, ``predicted_updates``) is looked up in the
student's kernel and comes back as plain data (numbers, strings, tensors as bytes) or as a
:class:`RemoteObject`, a stand-in whose calls, attribute reads and operators are requests to the
kernel (see :mod:`backproplab.remote` for the wire format). The kernel therefore sees only the
calls and their inputs, one request at a time; expected values, reference helpers and the hidden
source never enter it. Verdicts, scores and messages are made here from what the kernel answered.

The kernel can still lie about its own answers: that is the same as writing a function that returns
those answers. It cannot read, patch or skip the comparison.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from backproplab import remote
from backproplab.remote import WireError

CELL_FILE = "<grade cell>"
_BUILTIN_NAMES = set(dir(builtins))


class WorkerFault(BaseException):  # noqa: N818 - not an Exception: no check may swallow it
    """The worker did not answer: it timed out, died or broke the protocol. The grade cell stops here;
    ``reason`` is what the harness observed (never taken from the student's output)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


Channel = Callable[[str, Callable[[str], str], float | None], str]
"""``channel(request_text, on_callback, timeout_seconds) -> answer_text``; raises :class:`WorkerFault`
(or ``TimeoutError`` when ``timeout_seconds`` ran out, after stopping the call)."""


class RemoteObject:
    """A stand-in, in the judge, for an object that stays in the student's kernel."""

    __slots__ = ("_judge", "_id", "_callable", "_is_class", "_value", "_repr", "_cls", "__weakref__")
    _bpl_remote = True   # how backproplab.checks recognises a stand-in (lib cannot import the grader)

    # -- attribute access ------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in (
                "__name__", "__qualname__", "__doc__", "__module__", "__self__", "__func__", "__wrapped__"):
            raise AttributeError(name)
        return self._judge.request({"op": "getattr", "target": self._ref(), "name": name})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RemoteObject.__slots__:
            object.__setattr__(self, name, value)
        else:
            self._judge.request({"op": "setattr", "target": self._ref(), "name": name,
                                 "value": self._judge.encode(value)})

    def _ref(self) -> dict:
        return {"t": "ref", "id": self._id}

    @property
    def __class__(self):  # isinstance(model, nn.Sequential) in the judge, for library types only
        return self._cls if self._cls is not None else type(self)

    def __call__(self, *args, **kwargs):
        return self._judge.request({"op": "call", "target": self._ref(), "args": self._judge.encode(list(args)),
                                    "kwargs": self._judge.encode(dict(kwargs))})

    # -- what Python asks of an object -----------------------------------------------------------------
    def _builtin(self, name: str, *args: Any) -> Any:
        return self._judge.request({"op": "builtin", "name": name, "args": self._judge.encode([self, *args])})

    def __repr__(self) -> str:
        if self._repr is None:
            try:
                text = self._builtin("repr")
                object.__setattr__(self, "_repr", text if isinstance(text, str) else "<object>")
            except Exception:  # noqa: BLE001 - a repr that raises is shown as the type
                object.__setattr__(self, "_repr", f"<{type(self).__name__}>")
        return self._repr

    def __str__(self) -> str:
        text = self._builtin("str")
        return text if isinstance(text, str) else repr(self)

    def __format__(self, spec: str) -> str:
        if self._value is not None:
            return format(self._value, spec)
        return format(str(self), spec)

    def __len__(self) -> int:
        n = self._builtin("len")
        if type(n) is not int or n < 0:
            raise TypeError("len() of the student's object is not a whole number")
        return n

    def __iter__(self) -> Iterator:
        items = self._builtin("list")
        if not isinstance(items, list):
            raise TypeError("the student's object did not list its items")
        return iter(items)

    def __bool__(self) -> bool:
        return bool(self._builtin("bool"))

    def __float__(self) -> float:
        if self._value is not None:
            return float(self._value)
        v = self._builtin("float")
        if type(v) is not float:
            raise TypeError("float() of the student's object is not a number")
        return v

    def __int__(self) -> int:
        v = self._builtin("int")
        if type(v) is not int:
            raise TypeError("int() of the student's object is not a whole number")
        return v

    __index__ = __int__

    def __hash__(self) -> int:
        return hash((id(self._judge), self._id))

    def __instancecheck__(self, instance: Any) -> bool:
        if isinstance(instance, RemoteObject):
            return bool(self._judge.request({"op": "builtin", "name": "isinstance",
                                             "args": self._judge.encode([instance, self])}))
        return False

    def __subclasscheck__(self, cls: Any) -> bool:
        if isinstance(cls, RemoteObject):
            return bool(self._judge.request({"op": "builtin", "name": "issubclass",
                                             "args": self._judge.encode([cls, self])}))
        return False

    def __getitem__(self, key: Any) -> Any:
        return self._op("getitem", self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._judge.request({"op": "setitem", "target": self._ref(), "key": self._judge.encode(key),
                             "value": self._judge.encode(value)})

    def __contains__(self, item: Any) -> bool:
        return bool(self._op("contains", self, item))

    def _op(self, name: str, *operands: Any) -> Any:
        return self._judge.request({"op": "operator", "name": name, "args": self._judge.encode(list(operands))})

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """A torch function called in the judge on a stand-in for a tensor uses the tensor's value
        (a copy the judge holds): comparisons never run in the student's kernel."""
        return func(*plain(args), **plain(kwargs or {}))

    # The tensor's value, for code that reads it without a torch function.
    @property
    def value(self) -> Any:
        return self._value


def _binary(name: str, reflected: bool = False):
    if reflected:
        def method(self, other):
            return self._op(name, other, self)
    else:
        def method(self, other):
            return self._op(name, self, other)
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    setattr(RemoteObject, f"__{_name}__", _binary(_name))
    setattr(RemoteObject, f"__r{_name}__", _binary(_name, reflected=True))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(RemoteObject, f"__{_name}__", _binary(_name))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(RemoteObject, f"__{_name}__", lambda self, _n=_name: self._op(_n, self))


def plain(obj: Any) -> Any:
    """``obj`` with every stand-in for a tensor replaced by the judge's copy of its value."""
    if isinstance(obj, RemoteObject):
        return obj._value if obj._value is not None else obj
    if type(obj) in (list, tuple):
        return type(obj)(plain(x) for x in obj)
    if type(obj) is dict:
        return {k: plain(v) for k, v in obj.items()}
    return obj


_CLASSES: dict[str, type] = {}
_LIBRARY_ROOTS = ("torch", "numpy", "builtins", "collections", "math", "functools")


def _library_class(path: Any) -> type | None:
    """The judge's own class for a student's object whose type comes from torch, numpy or the standard
    library (``torch.nn.modules.container.Sequential``): never a class the student wrote."""
    if type(path) is not str or len(path) > 300 or path.split(".")[0] not in _LIBRARY_ROOTS:
        return None
    module_name, _, qualname = path.rpartition(":")
    if not module_name or module_name.split(".")[0] not in _LIBRARY_ROOTS:
        return None
    module = sys.modules.get(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj if isinstance(obj, type) else None


def _proxy_class(type_name: str) -> type:
    """A subclass of RemoteObject named like the student's type, so that messages read naturally."""
    safe = type_name if type_name.isidentifier() else "object"
    cls = _CLASSES.get(safe)
    if cls is None:
        cls = type(safe, (RemoteObject,), {"__slots__": ()})
        _CLASSES[safe] = cls
    return cls


class Judge:
    """Sends requests to the worker, turns its answers into values and stand-ins."""

    def __init__(self, channel: Channel, cell_timeout: float = 60.0) -> None:
        self.channel = channel
        self.cell_timeout = cell_timeout
        self.proxies: dict[int, RemoteObject] = {}
        self.callbacks: dict[int, Callable] = {}
        self.callback_ids: dict[int, int] = {}
        self.mirrors: dict[int, Any] = {}
        self.mirror_ids: dict[int, int] = {}
        self.deadlines: list[tuple[float, str | None]] = []
        self.in_callback = False
        self.requests = 0

    # -- encoding ------------------------------------------------------------------------------------
    def encode(self, obj: Any) -> Any:
        return remote.encode(obj, self._ref, tensor=self._tensor, mirror=self._mirror_number)

    def _mirror_number(self, obj: Any) -> int:
        """The number naming one of the judge's objects (tensor, dict, generator) whose changes come back."""
        key = id(obj)
        number = self.mirror_ids.get(key)
        if number is None or self.mirrors.get(number) is not obj:
            number = len(self.mirrors) + 1
            self.mirrors[number] = obj
            self.mirror_ids[key] = number
        return number


    def _ref(self, obj: Any) -> dict:
        if isinstance(obj, RemoteObject):
            if obj._judge is not self:
                raise WireError("a stand-in from another notebook")
            return obj._ref()
        if isinstance(obj, torch.Generator):
            return {"t": "generator", "mirror": self._mirror_number(obj), "state": remote._tensor(obj.get_state())}
        if callable(obj) and not isinstance(obj, type):
            key = id(obj)
            number = self.callback_ids.get(key)
            if number is None:
                number = len(self.callbacks) + 1
                self.callbacks[number] = obj
                self.callback_ids[key] = number
            return {"t": "callback", "id": number}
        raise WireError(f"a {type(obj).__name__} cannot be sent to the student's code")

    def _tensor(self, t: torch.Tensor) -> dict:
        data = remote._tensor(t)
        data["mirror"] = self._mirror_number(t)
        if t.requires_grad:
            data["requires_grad"] = True
            data["grad"] = None if t.grad is None else remote._tensor(t.grad)
        return data

    def _resolve(self, data: dict) -> Any:
        if data["t"] == "tensor":
            return remote._decode_tensor(data)
        if data["t"] != "ref":
            raise WireError("the worker sent a callback")
        number = data.get("id")
        if type(number) is not int:
            raise WireError("malformed reference")
        proxy = self.proxies.get(number)
        if proxy is None:
            name = data.get("type") if type(data.get("type")) is str else "object"
            proxy = object.__new__(_proxy_class(name))
            object.__setattr__(proxy, "_judge", self)
            object.__setattr__(proxy, "_id", number)
            object.__setattr__(proxy, "_callable", data.get("callable") is True)
            object.__setattr__(proxy, "_is_class", data.get("is_class") is True)
            object.__setattr__(proxy, "_repr", None)
            object.__setattr__(proxy, "_value", None)
            object.__setattr__(proxy, "_cls", _library_class(data.get("class")))
            self.proxies[number] = proxy
        if "value" in data:
            object.__setattr__(proxy, "_value", remote._decode_tensor(data["value"]))
        return proxy

    # -- requests --------------------------------------------------------------------------------------
    def request(self, req: dict) -> Any:
        if self.in_callback:
            raise RuntimeError("a function of the test called back into the student's code while the student's "
                               "code was calling it")
        req["grad_enabled"] = torch.is_grad_enabled()
        text = json.dumps(req)
        timeout, label = self._timeout()
        self.requests += 1
        try:
            answer_text = self.channel(text, self._on_callback, timeout)
        except TimeoutError as exc:
            detail = str(exc)
            more = detail.split(";", 1)[1].strip() if ";" in detail else ""
            if label is None:
                raise WorkerFault("timeout", f"the grade cell ran longer than {self.cell_timeout:g} s and was "
                                  f"stopped{'; ' + more if more else ''} (timeout)") from None
            raise TimeoutError(label + (f"; {more}" if more else "")) from None
        try:
            answer = remote.loads(answer_text)
            if type(answer) is not dict:
                raise WireError("the answer is not an object")
            self._apply_changes(answer.get("tensors"))
            if "error" in answer:
                raise_from = remote._rebuild_error(answer["error"])
            else:
                return remote.decode(answer.get("ok"), self._resolve)
        except (WireError, ValueError, TypeError, KeyError) as exc:
            raise AssertionError(f"the answer from your code could not be read ({exc}) (diagnosis: crash)") from None
        raise raise_from

    def _apply_changes(self, changes: Any) -> None:
        if not changes:
            return
        if type(changes) is not dict:
            raise WireError("malformed tensor changes")
        for key, change in changes.items():
            tensor = self.mirrors.get(int(key)) if str(key).isdigit() else None
            if tensor is None or type(change) is not dict:
                continue
            if isinstance(tensor, dict):  # entries the student's code set or removed in the judge's dict
                update = change.get("dict")
                if type(update) is dict:
                    for k, v in (update.get("set") or {}).items():
                        tensor[str(k)] = remote.decode(v, self._resolve)
                    for k in update.get("del") or []:
                        tensor.pop(str(k), None)
                continue
            if isinstance(tensor, torch.Generator):
                if "generator" in change:
                    with contextlib.suppress(RuntimeError, WireError):
                        tensor.set_state(remote._decode_tensor(change["generator"]))
                continue
            if "value" in change:
                new = remote._decode_tensor(change["value"])
                if new.shape == tensor.shape and new.dtype == tensor.dtype:
                    with torch.no_grad():
                        tensor.copy_(new)
            if "grad" in change and tensor.requires_grad:
                grad = change["grad"]
                try:
                    tensor.grad = None if grad is None else remote._decode_tensor(grad)
                except RuntimeError:  # a gradient of another shape or dtype than the tensor
                    tensor.grad = None

    def _on_callback(self, text: str) -> str:
        try:
            req = remote.loads(text)
            fn = self.callbacks.get(req.get("callback")) if type(req) is dict else None
            order = req.get("order", 0) if type(req) is dict else 0
            if fn is None or type(order) is not int or not 0 <= order <= 4:
                raise WireError("unknown callback")
            args = remote.decode(req.get("args"), self._resolve)
            kwargs = remote.decode(req.get("kwargs"), self._resolve)
            self.in_callback = True
            given = remote.tensors_in([args, kwargs]) if not order else []
            before = [t.detach().clone() for t in given]
            try:
                with torch.enable_grad() if order else contextlib.nullcontext():
                    result = _derivative(fn, order)(*(_leaves(args) if order else args), **kwargs)
                if isinstance(result, torch.Tensor):
                    result = result.detach()
            finally:
                self.in_callback = False
            answer: dict[str, Any] = {"ok": remote.encode(result, self._ref)}
            changed = {str(i): remote._tensor(t) for i, (t, b) in enumerate(zip(given, before, strict=True))
                       if t.shape == b.shape and not torch.equal(t.detach(), b)}
            if changed:  # in-place updates of the arguments, as the student's code would see them on the desk
                answer["changed"] = changed
            return json.dumps(answer)
        except WorkerFault:
            raise
        except BaseException as exc:  # noqa: BLE001 - the student's code sees the test function's error
            return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)[:2000]}})

    def get(self, name: str) -> Any:
        return self.request({"op": "get", "name": name})

    def call_worker_side(self, key: str, args: tuple, kwargs: dict) -> Any:
        return self.request({"op": "worker_side", "name": key, "args": self.encode(list(args)),
                             "kwargs": self.encode(dict(kwargs))})

    def release(self) -> None:
        """Forget every stand-in (end of a grade cell); the worker drops its references too."""
        self.proxies.clear()
        self.callbacks.clear()
        self.callback_ids.clear()
        self.mirrors.clear()
        self.mirror_ids.clear()
        with contextlib.suppress(Exception, WorkerFault):
            self.request({"op": "release"})

    # -- time --------------------------------------------------------------------------------------------
    def _timeout(self) -> tuple[float | None, str | None]:
        if not self.deadlines:
            return None, None
        deadline, label = min(self.deadlines, key=lambda d: d[0])
        return max(0.0, deadline - time.monotonic()), label

    @contextlib.contextmanager
    def deadline(self, seconds: float, label: str | None):
        self.deadlines.append((time.monotonic() + seconds, label))
        try:
            yield
        finally:
            self.deadlines.pop()


def _derivative(fn: Callable, order: int) -> Callable:
    """``fn`` for order 0; for order n + 1, ``(args..., g) ->`` the vector-Jacobian product of the order-n
    function at ``args`` with ``g``, for every tensor argument, flattened and concatenated (what the
    worker's backward through a test's function asks for). The caller makes the tensor arguments leaves
    that require grad; inner orders use them as they are, so that every order stays differentiable."""
    if order == 0:
        return fn
    inner = _derivative(fn, order - 1)

    def vjp(*args, **kwargs):
        *xs, g = args
        tensors = [x for x in xs if isinstance(x, torch.Tensor)]
        out = inner(*xs, **kwargs)
        wrt = [t for t in tensors if t.requires_grad]
        grads = torch.autograd.grad(out, wrt, g, create_graph=True, allow_unused=True) if wrt else []
        by_id = {id(t): gr for t, gr in zip(wrt, grads, strict=True)}
        parts = [(by_id.get(id(t)) if by_id.get(id(t)) is not None else torch.zeros_like(t)).reshape(-1)
                 .to(torch.float64) for t in tensors]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    return vjp


def _leaves(args: list) -> list:
    return [x.detach().requires_grad_(True) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
            for x in args]


# -- the grade cell's namespace ----------------------------------------------------------------------

class Namespace(dict):
    """A grade cell's globals: the judge's own names, and the student's looked up on first use."""

    def __init__(self, judge: Judge, own: dict) -> None:
        super().__init__(own)
        self.judge = judge
        self.fetched: set[str] = set()

    def __contains__(self, name: object) -> bool:  # ``"x" in globals()``
        if dict.__contains__(self, name):
            return True
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def get(self, name: Any, default: Any = None) -> Any:  # ``globals().get("x")``
        try:
            return self[name]
        except KeyError:
            return default

    def __missing__(self, name: str) -> Any:
        if name in _BUILTIN_NAMES or name.startswith("__"):
            raise KeyError(name)
        try:
            value = self.judge.get(name)
        except NameError:
            raise KeyError(name) from None
        dict.__setitem__(self, name, value)
        self.fetched.add(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        """A grade cell that rebinds one of the student's names (``softmax = torch.softmax`` while it checks
        ``forward`` alone, then the student's back) rebinds it where the student's code reads it, as on the desk."""
        dict.__setitem__(self, name, value)
        if name in self.fetched:
            self.judge.request({"op": "setglobal", "name": name, "value": self.judge.encode(value)})


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def instructor_definitions(source: str) -> ast.Module | None:
    """The statements of an instructor's cell the judge runs too: imports, definitions, assignments."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return None
    keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                                             ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                                                             ast.AnnAssign))]
    return ast.Module(body=keep, type_ignores=[])


@dataclass
class Verdict:
    """What the judge found in one grade cell."""

    passed: bool
    score: float | None = None            # a partial score the cell computed (self-scoring cells)
    outputs: list[dict] = field(default_factory=list)
    ename: str = ""
    evalue: str = ""
    line: int | None = None               # the line of the grade cell that raised
    fault: str | None = None              # a reason the harness observed (timeout, crash, ...)
    requests: int = 0
    seconds: float = 0.0


class Session:
    """One notebook's judging: the judge's namespace, kept from cell to cell like a kernel's."""

    def __init__(self, channel: Channel, cell_timeout: float = 60.0) -> None:
        self.judge = Judge(channel, cell_timeout)
        self.own: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}

    def absorb(self, source: str) -> None:
        """Run an instructor cell's definitions here (its imports, functions, classes, constants)."""
        tree = instructor_definitions(source)
        if tree is None:
            return
        ns = Namespace(self.judge, self.own)
        remote._ACTIVE.append(self.judge)
        try:
            for node in tree.body:
                code = compile(ast.Module(body=[node], type_ignores=[]), "<instructor cell>", "exec")
                try:
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        exec(code, ns)  # noqa: S102 - the instructor's own code, in the judge
                except (Exception, WorkerFault):  # noqa: BLE001, S112 - a name that cannot be made here is looked up in the kernel
                    continue
        finally:
            remote._ACTIVE.pop()
            self.judge.release()
        for name, value in ns.items():
            if name not in ns.fetched:
                self.own[name] = value

    def run(self, source: str) -> Verdict:
        """Judge one grade cell."""
        start = time.monotonic()
        judge = self.judge
        before = judge.requests
        ns = Namespace(judge, self.own)
        out, err = io.StringIO(), io.StringIO()
        verdict = Verdict(passed=False)
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError as exc:
            verdict.ename, verdict.evalue = "SyntaxError", f"the grade cell does not parse: {exc}"
            return verdict
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        body = ast.Module(body=tree.body[:-1] if last is not None else tree.body, type_ignores=[])
        remote._ACTIVE.append(judge)
        judge.deadlines.append((start + judge.cell_timeout, None))
        value = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(body, CELL_FILE, "exec"), ns)  # noqa: S102 - the trusted test, in the judge
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), CELL_FILE, "eval"), ns)  # noqa: S307
            verdict.passed = True
        except WorkerFault as exc:
            verdict.ename, verdict.evalue, verdict.fault = {
                "timeout": "Timeout", "output_cap": "OutputLimitExceeded"}.get(exc.reason, "KernelDied"), \
                exc.message, exc.reason
        except BaseException as exc:  # noqa: BLE001 - a failed check, whatever it raised
            verdict.ename = type(exc).__name__ if not isinstance(exc, remote.RemoteError) else exc.type_name
            verdict.evalue = str(exc)
            verdict.line = _cell_line(exc)
        finally:
            judge.deadlines.pop()
            remote._ACTIVE.pop()
            judge.release()
        if verdict.passed and last is not None and _is_number(value) and not _is_print(last):
            verdict.score = float(value)
        for name, value_ in ns.items():
            if name not in ns.fetched and not isinstance(value_, RemoteObject):
                self.own[name] = value_
        verdict.outputs = _outputs(out.getvalue(), err.getvalue(), value if last is not None and not _is_print(last)
                                   else None)
        verdict.requests = judge.requests - before
        verdict.seconds = time.monotonic() - start
        return verdict


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and value == value


def _is_print(node: ast.Expr) -> bool:
    return isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and \
        node.value.func.id in ("print", "display")


def _cell_line(exc: BaseException) -> int | None:
    """The line of the grade cell itself (its outermost frame) that raised."""
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == CELL_FILE:
            return line
    return None


def _outputs(stdout: str, stderr: str, value: Any) -> list[dict]:
    outs: list[dict] = []
    if stdout:
        outs.append({"output_type": "stream", "name": "stdout", "text": stdout})
    if stderr:
        outs.append({"output_type": "stream", "name": "stdout",
                     "text": "".join(f"[stderr] {ln}" for ln in stderr.splitlines(keepends=True))})
    if value is not None:
        outs.append({"output_type": "execute_result", "execution_count": None, "metadata": {},
                     "data": {"text/plain": repr(value)[:2000]}})
    return outs


# -- a worker in this process (tests, and the desk's own checks of the protocol) ---------------------------

def local_channel(namespace: dict) -> Channel:
    """A channel to a worker that runs in this process on ``namespace`` (no isolation: for tests)."""

    def channel(text: str, on_callback: Callable[[str], str], timeout: float | None) -> str:
        if timeout is None or threading.current_thread() is not threading.main_thread():
            return remote.handle(text, namespace, callback=on_callback)
        fired = []

        def alarm(signum, frame):
            fired.append(True)
            raise KeyboardInterrupt  # what the grader's interrupt of a kernel raises

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 1e-3))
        try:
            answer = remote.handle(text, namespace, callback=on_callback)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if fired:
            raise TimeoutError("the call ran out of time")
        return answer

    return channel


def run_notebook_locally(cells: list[tuple[str, str]], cell_timeout: float = 60.0) -> dict[str, Verdict]:
    """Judge a notebook given as ``(kind, source)`` pairs (``kind``: ``student``, ``instructor`` or a
    grade id), the student's cells executed in a fresh namespace of this process. For tests."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    session = Session(local_channel(ns), cell_timeout)
    verdicts: dict[str, Verdict] = {}
    for kind, source in cells:
        if kind in ("student", "instructor"):
            try:
                exec(compile(_strip_magics(source), "<cell>", "exec"), ns)  # noqa: S102 - test helper
            except Exception:  # noqa: BLE001,S110 - a failing cell, as in a notebook
                pass
            if kind == "instructor":
                session.absorb(source)
        else:
            verdicts[kind] = session.run(source)
    return verdicts


__all__ = ["Judge", "RemoteObject", "Session", "Verdict", "WorkerFault", "local_channel", "plain",
           "run_notebook_locally"]
