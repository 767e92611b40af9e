"""Structural checks for a student's ``torch.autograd.Function`` (lab 5), with messages in words.

Gradient values are judged elsewhere (:func:`gradcheck` and ``checks.assert_close`` against
``torch.autograd`` on built-in operations). This module checks the *contract* a Function signs with
autograd, the part that finite differences do not see or report badly:

* ``forward`` and ``backward`` are static methods;
* ``forward`` does not modify its inputs, ``backward`` does not modify ``grad_output``;
* ``backward`` returns one gradient per argument of ``forward`` (after ``ctx``), ``None`` where an
  input is ``None`` or ``ctx.needs_input_grad`` is False, a tensor everywhere else;
* the classic slip of using ``ctx.saved_tensors`` (a tuple) as if it were a tensor;
* a Function that should save its output (sigmoid, tanh) does;
* a backward written in differentiable operations (:func:`gradgradcheck`).

``backward`` is called directly through the node autograd recorded (``output.grad_fn.apply``), so
the raw value it returns can be inspected before autograd trims or rejects it. Every message ends
with ``(diagnosis: <tag>)`` like those of :mod:`backproplab.checks`.

**Two halves.** Each check is split in two, on the desk and in the grader alike, so that both give the
same verdict and the same words:

* a *probe* (``_..._probe``, marked :func:`backproplab.remote.worker_side`) runs next to the student's
  code: it applies the student's Function on the inputs it is given and answers *observations* as
  plain data (the output, the tuple ``backward`` returned, whether ``grad_output`` changed, what
  ``ctx`` saved, forward values at the points it is asked for, the rows of the Jacobian its backward
  gives). A probe holds no expected value and decides nothing;
* the public function (``run_backward``, :func:`gradcheck`...) reads those observations where the test
  runs and decides: the reference values, finite differences and comparisons are computed there.

On the student's desk the probe is a plain call. In the grader the test runs in the judge and the probe
in the student's kernel (see :mod:`backproplab.remote`).

Nothing here knows a correct backward formula: the reference Functions built by
:func:`autograd_function` get their gradients from ``torch.autograd`` on built-in operations.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import torch

from backproplab import checks, remote

__all__ = [
    "FUNCTION_DIAGNOSES",
    "assert_close",
    "assert_grads_close",
    "assert_saves_output",
    "autograd_function",
    "check_static",
    "check_function_class",
    "compare",
    "grad",
    "gradcheck",
    "grads_by_name",
    "gradgradcheck",
    "graph_node_names",
    "magnitude_of",
    "run_backward",
    "run_forward",
    "substituted",
]

FUNCTION_DIAGNOSES = {
    "not_a_function": "the class must subclass torch.autograd.Function",
    "not_static": "forward and backward must be decorated with @staticmethod",
    "input_modified": "forward changed one of its inputs in place",
    "grad_output_modified": "backward changed grad_output in place",
    "wrong_gradient_count": "backward must return one gradient per input of forward",
    "gradient_not_none": "backward must return None for an input that needs no gradient",
    "missing_gradient": "backward returned None for an input that needs a gradient",
    "saved_tensors_tuple": "saved_tensors is a tuple: unpack it",
    "output_not_saved": "forward should save its output for backward",
    "not_double_differentiable": "backward must be written with differentiable torch operations",
    "no_graph": "the output is not connected to the inputs through the Function",
    "precision": checks.DIAGNOSES["precision"],
}

# Tags whose pattern is a logic mistake whatever the size of the error: never re-read as precision.
_STRUCTURAL = {"zero", "sign", "transposed", "batch_sum", "batch_mean_twice", "nan", "inf", "wrong_shape",
               "transposed_shape", "batch_dim_kept", "wrong_dtype", "not_a_tensor"}
# An error no larger than this share of the values is a matter of precision, not of logic.
PRECISION_SHARE = 1e-2


# --- the two halves ---------------------------------------------------------------------------------


def _in_worker() -> bool:
    """True while this process answers a judge's request (the student's kernel; in tests, the same process)."""
    return remote._WORKER.callback is not None


def _judging() -> bool:
    """True where a grade cell runs in the judge, away from the student's objects."""
    return remote.judging() and not _in_worker()


def _probe(fn: Callable) -> Callable:
    """:func:`remote.worker_side`, called directly when already next to the student's objects."""
    sent = remote.worker_side(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _in_worker():
            return fn(*args, **kwargs)
        return sent(*args, **kwargs)

    call.worker_key = sent.worker_key  # type: ignore[attr-defined]
    return call


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:4000]
    except Exception:  # noqa: BLE001 - a message that cannot be shown
        return "(an exception whose message cannot be shown)"


def _error(exc: BaseException) -> dict:
    """What the student's code raised, as data (the exception itself too on the desk, for the traceback)."""
    info = {"type": type(exc).__name__, "message": _text(exc), "not_implemented": isinstance(exc, NotImplementedError),
            "assertion": isinstance(exc, AssertionError), "timeout": isinstance(exc, TimeoutError),
            "tuple_kind": isinstance(exc, (TypeError, AttributeError, RuntimeError, IndexError))}
    if not _in_worker():
        info["exception"] = exc
    return info


def _cause(info: dict) -> BaseException | None:
    exc = info.get("exception")
    return exc if isinstance(exc, BaseException) else None


def _name_of(obj: Any) -> str | None:
    try:
        name = getattr(obj, "__name__", None)
    except Exception:  # noqa: BLE001 - a hostile __getattr__
        return None
    return name if isinstance(name, str) else None


def _node_facts(output: Any) -> tuple[Any, dict]:
    node = getattr(output, "grad_fn", None) if isinstance(output, torch.Tensor) else None
    return node, {"node": None if node is None else type(node).__name__, "node_repr": repr(node),
                  "custom": node is not None and hasattr(node, "_forward_cls")}


def _raise_call(info: dict, label: str) -> None:
    """Raise what :func:`checks.call` raises when the student's code raised ``info``."""
    cause = _cause(info)
    if info["not_implemented"]:
        raise AssertionError(
            f"{label} is not written yet: {checks.DIAGNOSES['not_implemented']} (diagnosis: not_implemented)"
        ) from cause
    if info["assertion"] or info["timeout"]:
        if cause is not None:
            raise cause
        raise (AssertionError if info["assertion"] else TimeoutError)(info["message"])
    raise AssertionError(f"{label} raised {info['type']}: {info['message']} (diagnosis: crash)") from cause


# --- the class --------------------------------------------------------------------------------------


@_probe
def _class_probe(cls: Any) -> dict:
    """Whether ``cls`` is a ``torch.autograd.Function`` and how it defines forward and backward."""
    is_function = isinstance(cls, type) and issubclass(cls, torch.autograd.Function)
    methods = {}
    if is_function:
        for method in ("forward", "backward"):
            attr = inspect.getattr_static(cls, method, None)
            if attr is None or attr is inspect.getattr_static(torch.autograd.Function, method, None):
                methods[method] = "missing"
            else:
                methods[method] = "static" if isinstance(attr, staticmethod) else "plain"
    return {"name": _name_of(cls), "type": type(cls).__name__, "is_function": is_function, "methods": methods}


def _label(facts: dict, name: str | None) -> str:
    return name or facts.get("name") or "the Function"


def _judge_static(facts: dict, method: str, name: str | None) -> None:
    label = _label(facts, name)
    if not facts["is_function"]:
        raise AssertionError(
            f"{label} is {facts['type']}, not a subclass of torch.autograd.Function: keep the line "
            f"`class {label}(torch.autograd.Function):` (diagnosis: not_a_function)"
        )
    state = facts["methods"].get(method, "missing")
    if state == "missing":
        raise AssertionError(f"{label} does not define {method} (diagnosis: not_implemented)")
    if state != "static":
        raise AssertionError(
            f"{label}.{method} is not a @staticmethod: write `@staticmethod` on the line above "
            f"`def {method}(ctx, ...)`; autograd calls it on the class, never on an instance "
            "(diagnosis: not_static)"
        )


def check_static(cls: Any, method: str, name: str | None = None) -> None:
    """``cls`` subclasses ``torch.autograd.Function`` and defines ``method`` as a ``@staticmethod``.

    Forgetting ``@staticmethod`` happens to run (Python passes ``ctx`` as the first argument either
    way), but it is not the documented contract and breaks as soon as ``forward`` is called on an
    instance, so it is reported.
    """
    _judge_static(_class_probe(cls), method, name)


def check_function_class(cls: Any, name: str | None = None) -> None:
    """Both ``forward`` and ``backward`` are static methods of a ``torch.autograd.Function``."""
    facts = _class_probe(cls)
    _judge_static(facts, "forward", name)
    _judge_static(facts, "backward", name)


# --- forward and backward ---------------------------------------------------------------------------


def _snapshot(values: Sequence[Any]) -> list[Any]:
    return [v.detach().clone() if isinstance(v, torch.Tensor) else None for v in values]


def _changed(before: Any, after: Any) -> bool:
    """Whether ``after`` no longer equals the copy ``before`` taken earlier (NaN equals NaN)."""
    if before is None or not isinstance(after, torch.Tensor):
        return False
    now = after.detach()
    if now.shape != before.shape:
        return True
    same = now == before
    if now.is_floating_point():
        same = same | (now.isnan() & before.isnan())
    return not bool(same.all())


@_probe
def _forward_probe(cls: Any, inputs: list) -> dict:
    """``cls.apply(*inputs)``: its output (or what it raised) and which inputs it changed in place."""
    seen: dict[str, Any] = {"name": _name_of(cls)}
    apply = getattr(cls, "apply", None)
    if apply is None:
        seen["no_apply"] = True
        return seen
    before = _snapshot(inputs)
    try:
        output = apply(*inputs)
    except Exception as exc:  # noqa: BLE001 - an observation
        seen["raised"] = _error(exc)
        return seen
    seen["changed"] = [_changed(b, x) for b, x in zip(before, inputs)]
    seen["output"] = output
    return seen


def run_forward(cls: Any, *inputs: Any, name: str | None = None, input_names: Sequence[str] | None = None):
    """``cls.apply(*inputs)`` with readable errors; checks that no input was modified in place."""
    seen = _forward_probe(cls, list(inputs))
    label = _label(seen, name)
    names = list(input_names or [f"input {i}" for i in range(len(inputs))])
    if seen.get("no_apply"):
        raise AssertionError(f"{label} has no .apply: is it a torch.autograd.Function? (diagnosis: not_a_function)")
    if "raised" in seen:
        info = seen["raised"]
        if info["not_implemented"]:
            raise AssertionError(
                f"{label}.forward is not written yet: replace `raise NotImplementedError()` with your code "
                "(diagnosis: not_implemented)"
            ) from _cause(info)
        raise AssertionError(f"{label}.forward raised {info['type']}: {info['message']} (diagnosis: crash)") \
            from _cause(info)
    for i, changed in enumerate(seen["changed"]):
        if changed:
            raise AssertionError(
                f"{label}.forward changed its argument {names[i]} in place: compute a new tensor instead "
                "of using an in-place operation (a method ending in _, or x[...] = ...) (diagnosis: input_modified)"
            )
    output = seen["output"]
    if not isinstance(remote.plain(output), torch.Tensor):
        raise AssertionError(
            f"{label}.forward returned {type(output).__name__}, expected a torch.Tensor (diagnosis: not_a_tensor)"
        )
    return output


def _reads_saved_tuple(info: dict) -> bool:
    return "tuple" in info["message"] and info["tuple_kind"]


@_probe
def _backward_probe(output: Any, grad_output: Any) -> dict:
    """``output.grad_fn.apply(grad_output)`` as the engine runs it: the raw tuple backward returned (or
    what it raised), whether ``grad_output`` changed, and ``ctx.needs_input_grad``."""
    node, seen = _node_facts(output)
    if not seen["custom"]:
        return seen
    pristine = grad_output.detach().clone() if isinstance(grad_output, torch.Tensor) else None
    try:
        with torch.no_grad():  # as the autograd engine runs it (no create_graph)
            raw = node.apply(grad_output)
    except Exception as exc:  # noqa: BLE001 - an observation
        seen["raised"] = _error(exc)
        try:
            seen["saved"] = len(node.saved_tensors)
        except Exception:  # noqa: BLE001
            seen["saved"] = 0
        return seen
    seen["grad_output_changed"] = _changed(pristine, grad_output)
    seen["grads"] = list(raw) if isinstance(raw, (tuple, list)) else [raw]
    seen["needs"] = [bool(n) for n in node.needs_input_grad]
    return seen


def run_backward(
    output: torch.Tensor,
    grad_output: torch.Tensor | None = None,
    inputs: Sequence[Any] = (),
    name: str | None = None,
    input_names: Sequence[str] | None = None,
) -> tuple[Any, ...]:
    """Call the Function's ``backward`` once, directly, and check what it returns.

    ``output`` comes from ``Cls.apply(*inputs)``; ``inputs`` are the arguments that were passed
    (used to know how many gradients are due and which must be ``None``). ``grad_output`` defaults
    to a random tensor shaped like ``output``. Returns the tuple of gradients, one per input
    (trailing ``None`` beyond the inputs, which autograd tolerates, are dropped).
    """
    if grad_output is None:
        value = remote.plain(output)
        grad_output = torch.randn_like(value) if isinstance(value, torch.Tensor) else None
    seen = _backward_probe(output, grad_output)
    node = seen["node"]
    label = name or (node.removesuffix("Backward") if node is not None else "the Function")
    names = list(input_names or [f"input {i}" for i in range(len(inputs))])
    names += [f"input {i}" for i in range(len(names), len(inputs))]
    if not seen["custom"]:
        raise AssertionError(
            f"the output of {label} has no custom-Function node in its graph (grad_fn={seen['node_repr']}): return "
            "the result of forward as computed, and call the Function through .apply (diagnosis: no_graph)"
        )
    if "raised" in seen:
        info = seen["raised"]
        if info["not_implemented"]:
            raise AssertionError(
                f"{label}.backward is not written yet: replace `raise NotImplementedError()` with your code "
                "(diagnosis: not_implemented)"
            ) from _cause(info)
        if _reads_saved_tuple(info) and seen["saved"] > 0:
            raise AssertionError(
                f"{label}.backward: saved_tensors is a tuple: unpack it, for example `x, = ctx.saved_tensors` or "
                "`x, W = ctx.saved_tensors`; it holds one entry per tensor given to save_for_backward "
                f"(diagnosis: saved_tensors_tuple)\nthe error was {info['type']}: {info['message']}"
            ) from _cause(info)
        raise AssertionError(f"{label}.backward raised {info['type']}: {info['message']} (diagnosis: crash)") \
            from _cause(info)
    if seen["grad_output_changed"]:
        raise AssertionError(
            f"{label}.backward changed grad_output in place (for example grad_output.mul_(...) or "
            "grad_output[...] = ...): autograd may hand the same tensor to other nodes, so build a new "
            "tensor instead (diagnosis: grad_output_modified)"
        )
    grads = tuple(seen["grads"])
    expected = len(inputs)
    if len(grads) > expected and all(g is None for g in grads[expected:]):
        grads = grads[:expected]
    if len(grads) != expected:
        word = "gradient" if len(grads) == 1 else "gradients"
        inputs_word = "input" if expected == 1 else "inputs"
        raise AssertionError(
            f"{label}.backward returned {len(grads)} {word} for {expected} {inputs_word}: return a tuple with one "
            f"entry per argument of forward after ctx ({', '.join(names)}), None for those that need no "
            "gradient (diagnosis: wrong_gradient_count)"
        )
    needs = tuple(seen["needs"])
    for i, (g, x) in enumerate(zip(grads, inputs)):
        if x is None and g is not None:
            raise AssertionError(
                f"{label}.backward returned a {type(g).__name__} for {names[i]}, which was None in forward: "
                "return None there; autograd refuses a gradient for an input that is not a tensor "
                "(diagnosis: gradient_not_none)"
            )
        if x is not None and i < len(needs) and not needs[i] and g is not None:
            raise AssertionError(
                f"{label}.backward returned a gradient for {names[i]} although ctx.needs_input_grad[{i}] is "
                f"False: test ctx.needs_input_grad[{i}] and return None there, which also skips the work "
                "(diagnosis: gradient_not_none)"
            )
        if i < len(needs) and needs[i] and g is None:
            raise AssertionError(
                f"{label}.backward returned None for {names[i]}, which needs a gradient "
                f"(ctx.needs_input_grad[{i}] is True) (diagnosis: missing_gradient)"
            )
    return grads


def _saved_tensors(node: Any) -> list[torch.Tensor]:
    found = []
    try:
        found.extend(t for t in node.saved_tensors if isinstance(t, torch.Tensor))
    except RuntimeError:
        pass
    for value in vars(node).values() if hasattr(node, "__dict__") else ():
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


@_probe
def _saved_probe(output: Any) -> dict:
    """The tensors the Function's node kept (``save_for_backward`` and tensors set on ``ctx``), by value."""
    node, seen = _node_facts(output)
    if seen["custom"]:
        seen["saved"] = [t.detach() for t in _saved_tensors(node)]
    return seen


def assert_saves_output(output: torch.Tensor, name: str | None = None) -> None:
    """``forward`` kept a tensor equal to its output (through ``save_for_backward`` or on ``ctx``)."""
    seen = _saved_probe(output)
    node = seen["node"]
    label = name or (node.removesuffix("Backward") if node is not None else "the Function")
    if not seen["custom"]:
        raise AssertionError(f"the output of {label} has no custom-Function node (diagnosis: no_graph)")
    saved = seen["saved"]
    out = remote.plain(output).detach()
    if any(isinstance(t, torch.Tensor) and t.shape == out.shape and bool(torch.equal(t, out)) for t in saved):
        return
    what = "nothing" if not saved else f"{len(saved)} tensor(s), none equal to the output"
    raise AssertionError(
        f"{label}.forward saved {what}: save the output (`ctx.save_for_backward(y)`) and write the "
        "derivative from it, since the derivative of this function is a function of its output; it "
        "saves recomputing it in backward (diagnosis: output_not_saved)"
    )


@_probe
def _grad_probe(outputs: Any, inputs: Any, grad_outputs: Any, create_graph: bool, allow_unused: bool) -> dict:
    """``torch.autograd.grad`` through the student's Functions: the gradients, or what was raised."""
    try:
        return {"grads": torch.autograd.grad(outputs, inputs, grad_outputs, create_graph=create_graph,
                                             allow_unused=allow_unused)}
    except Exception as exc:  # noqa: BLE001 - an observation
        return {"raised": _error(exc)}


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, *, name: str | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Any, ...]:
    """``torch.autograd.grad(outputs, inputs, grad_outputs)`` run where the student's Functions are (their
    backward is the student's code), with the messages of :func:`checks.call`. With ``create_graph`` the
    gradients keep their graph there, so they can be differentiated again with this function."""
    label = name or "torch.autograd.grad"
    checks._guard()
    seen = _grad_probe(outputs, inputs, grad_outputs, create_graph, allow_unused)
    if "raised" in seen:
        _raise_call(seen["raised"], label)
    checks._guard()
    return tuple(seen["grads"])


@_probe
def _grads_by_name_probe(outputs: Any, owner: Any, names: list, grad_outputs: Any, allow_unused: bool) -> dict:
    try:
        wrt = [getattr(owner, k) for k in names]
    except Exception as exc:  # noqa: BLE001 - an observation
        return {"raised": _error(exc)}
    return _grad_probe(outputs, wrt, grad_outputs, False, allow_unused)


def grads_by_name(outputs: Any, owner: Any, names: Sequence[str], grad_outputs: Any = None, *, name: str | None = None,
                  allow_unused: bool = False) -> dict[str, Any]:
    """:func:`grad` with respect to the attributes ``names`` of ``owner`` (a module's parameters), by name.

    The parameters are looked up where they live (in the grader, a stand-in for a parameter would be
    sent as a copy of its value, which is not in the graph)."""
    label = name or "torch.autograd.grad"
    checks._guard()
    seen = _grads_by_name_probe(outputs, owner, list(names), grad_outputs, allow_unused)
    if "raised" in seen:
        _raise_call(seen["raised"], label)
    checks._guard()
    return dict(zip(names, seen["grads"]))


@_probe
def _graph_probe(output: Any) -> dict:
    """How many times each node type occurs in ``output``'s graph (``output.grad_fn`` and what it leads to)."""
    seen: set[int] = set()
    counts: Counter = Counter()
    stack = [output.grad_fn] if output.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        counts[type(node).__name__] += 1
        stack.extend(nxt for nxt, _ in node.next_functions)
    return dict(counts)


def graph_node_names(output: torch.Tensor) -> Counter:
    """How many times each node type (``type(grad_fn).__name__``) occurs in ``output``'s graph."""
    return Counter(_graph_probe(output))


# --- finite differences (gradcheck and gradgradcheck) --------------------------------------------------


def _as_tuple(x: Any) -> tuple:
    if isinstance(x, tuple):
        return x
    if isinstance(x, list):
        return tuple(x)
    return (x,)


def _evaluate(fn: Callable, args: Sequence[Any], kind: str, n_vs: int) -> tuple:
    """What gradcheck differentiates: ``fn(*args)`` itself (``kind`` "apply"), or (``kind`` "vjp", as in
    ``torch.autograd.gradgradcheck``) the gradients of ``fn``'s outputs with respect to its inputs that
    require one, the last ``n_vs`` arguments being the grad_outputs, with ``create_graph=True``."""
    if kind == "apply":
        return _as_tuple(fn(*args))
    cut = len(args) - n_vs
    xs, vs = list(args[:cut]), list(args[cut:])
    outs = tuple(o for o in _as_tuple(fn(*xs)) if o.requires_grad)
    diff = [x for x in xs if isinstance(x, torch.Tensor) and x.requires_grad]
    grads = torch.autograd.grad(outs, diff, vs, create_graph=True, allow_unused=True)
    return tuple(g for g in grads if g is not None)


@_probe
def _jacobian_probe(fn: Callable, inputs: list, points: list, kind: str = "apply", n_vs: int = 0,
                    analytical: bool = True) -> dict:
    """The observations gradcheck needs, for the function :func:`_evaluate` describes.

    ``outputs`` (values) and ``differentiable`` (whether each requires grad); ``values``: the outputs at
    each point ``[input index, flat element index, new value]`` (the input with that one element
    replaced); ``rows``: twice over, for each differentiable output and each element of it, the
    gradients with respect to the inputs that require one given a one-hot grad_output (None where the
    backward gave none); ``zero``: the gradients given all-zero grad_outputs. What is raised is
    answered instead, and where."""
    seen: dict[str, Any] = {}
    try:
        with torch.enable_grad():
            outs = _evaluate(fn, inputs, kind, n_vs)
    except Exception as exc:  # noqa: BLE001 - an observation
        return {"raised": _error(exc)}
    for o in outs:
        if not isinstance(o, torch.Tensor):
            return {"not_tensor": type(o).__name__}
    seen["outputs"] = [o.detach() for o in outs]
    seen["differentiable"] = [bool(o.requires_grad) for o in outs]
    if not analytical:
        return seen
    diff = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    try:
        values = []
        for i, k, value in points:
            args = list(inputs)
            p = inputs[i].detach().clone().contiguous()
            p.view(-1)[k] = value
            args[i] = p.requires_grad_(inputs[i].requires_grad)
            with torch.enable_grad() if kind != "apply" else torch.no_grad():
                values.append([o.detach() for o in _evaluate(fn, args, kind, n_vs)])
        seen["values"] = values
        rows = []
        for _ in range(2):  # twice: a backward must give the same values every time (reentrant)
            per_output = []
            for o in outs:
                if not o.requires_grad:
                    continue
                base = torch.zeros_like(o, memory_format=torch.legacy_contiguous_format)
                flat = base.view(-1)
                per_input: list[list] = [[] for _ in diff]
                for j in range(flat.numel()):
                    flat.zero_()
                    flat[j] = 1
                    with torch.enable_grad():
                        gs = torch.autograd.grad(o, diff, base, retain_graph=True, allow_unused=True)
                    for d, g in enumerate(gs):
                        per_input[d].append(None if g is None else g.detach().clone())
                per_output.append(per_input)
            rows.append(per_output)
        seen["rows"] = rows
    except Exception as exc:  # noqa: BLE001 - an observation
        seen["raised"] = _error(exc)
        return seen
    diff_outs = [o for o in outs if o.requires_grad]
    if diff_outs and diff:
        try:
            with torch.enable_grad():
                zero = torch.autograd.grad(diff_outs, diff, [torch.zeros_like(o, memory_format=torch.legacy_contiguous_format)
                                                             for o in diff_outs], allow_unused=True)
            seen["zero"] = [None if g is None else g.detach() for g in zero]
        except Exception as exc:  # noqa: BLE001 - an observation
            seen["zero_raised"] = _error(exc)
    return seen


class _Mismatch(Exception):
    """What ``torch.autograd.gradcheck`` would raise as a GradcheckError (its text)."""


class _Raised(Exception):
    """The student's code raised while being checked (``info`` as :func:`_error` describes it)."""

    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


_NONDET = ("Backward is not reentrant, i.e., running backward with same input and grad_output multiple times gives "
           "different values, although analytical gradient matches numerical gradient.The tolerance for "
           "nondeterminism was {}.")


def _stack(rows: list, inputs: list[torch.Tensor], numel_out: int) -> tuple[list[torch.Tensor], bool]:
    """The analytical Jacobians (input numel, output numel), one per input, from the rows; sizes right?"""
    sizes_ok = True
    out = []
    for inp, per_element in zip(inputs, rows):
        jac = torch.zeros(inp.numel(), numel_out, dtype=inp.dtype)
        for j, g in enumerate(per_element):
            if g is None:
                continue
            if not isinstance(g, torch.Tensor) or g.size() != inp.size():
                sizes_ok = False
            if isinstance(g, torch.Tensor) and g.numel() == inp.numel():
                jac[:, j] = g.reshape(-1).to(inp.dtype)
        out.append(jac)
    return out, sizes_ok


def _allclose(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    """gradcheck's own comparison, with the tolerances its caller passed (gradcheck's, see below)."""
    common = torch.promote_types(a.dtype, b.dtype)
    return bool(torch.allclose(a.to(common), b.to(common), rtol=rtol, atol=atol))


def _finite_differences(fn: Callable, inputs: tuple, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                        nondet_tol: float = 0.0, kind: str = "apply", n_vs: int = 0) -> None:
    """``torch.autograd.gradcheck``'s slow mode, its comparisons made here from the probe's observations.

    ``eps``, ``atol``, ``rtol`` and ``nondet_tol`` are ``torch.autograd.gradcheck``'s own defaults, not a
    course tolerance: the verdict must be the one the student gets from the tool the lab teaches.

    Raises :class:`_Mismatch` with gradcheck's words, :class:`_Raised` when the student's code raised,
    ``ValueError`` when no input requires a gradient."""
    diff = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of the them "
                         "have requires_grad=True.")
    points = []
    for i in diff:
        flat = inputs[i].detach().reshape(-1)
        for k in range(flat.numel()):
            orig = flat[k]
            points += [[i, k, float(orig - eps)], [i, k, float(orig + eps)]]
    seen = _jacobian_probe(fn, list(inputs), points, kind, n_vs)
    if "not_tensor" in seen:
        raise _Raised({"type": "TypeError", "message": f"the function returned a {seen['not_tensor']}, not a tensor",
                       "not_implemented": False, "assertion": False, "timeout": False, "tuple_kind": True})
    if "raised" in seen:
        raise _Raised(seen["raised"])
    outs, differentiable, values = seen["outputs"], seen["differentiable"], seen["values"]
    numerical: list[list[torch.Tensor]] = []  # [output][input that requires grad]: (input numel, output numel)
    for o, out in enumerate(outs):
        per_input, p = [], 0
        for i in diff:
            n = inputs[i].numel()
            jac = torch.zeros(n, out.numel(), dtype=out.dtype)
            for k in range(n):
                a, b = values[p][o], values[p + 1][o]
                p += 2
                jac[k] = ((b - a) / (2 * eps)).detach().reshape(-1)
            per_input.append(jac)
        numerical.append(per_input)
    if not any(differentiable):
        if any(bool(torch.ne(jac, 0).sum() > 0) for per_input in numerical for jac in per_input):
            raise _Mismatch("Numerical gradient for function expected to be zero")
        return
    numerical = [nj for nj, d in zip(numerical, differentiable) if d]
    diff_inputs = [inputs[i] for i in diff]
    diff_outs = [out for out, d in zip(outs, differentiable) if d]
    for o, out in enumerate(diff_outs):
        jac1, sizes_ok = _stack(seen["rows"][0][o], diff_inputs, out.numel())
        jac2, _ = _stack(seen["rows"][1][o], diff_inputs, out.numel())
        reentrant = all(j1.numel() == 0 or float((j1 - j2).abs().max()) <= nondet_tol for j1, j2 in zip(jac1, jac2))
        if not sizes_ok:
            raise _Mismatch("Analytical gradient has incorrect size")
        if not reentrant:
            raise _Mismatch(_NONDET.format(nondet_tol))
        for d, (a, n) in enumerate(zip(jac1, numerical[o])):
            if not _allclose(a, n, rtol, atol):
                raise _Mismatch(f"Jacobian mismatch for output {o:d} with respect to input {d:d},\n"
                                f"numerical:{n}\nanalytical:{a}\n")
    if "zero_raised" in seen:
        raise _Raised(seen["zero_raised"])
    for gi, di in zip(seen.get("zero", []), diff_inputs):
        if gi is None:
            continue
        if not bool(gi.eq(0).all()):
            raise _Mismatch("backward not multiplied by grad_output")
        if gi.dtype != di.dtype:
            raise _Mismatch("grad is incorrect type")
        if gi.size() != di.size():
            raise _Mismatch("grad is incorrect size")


def _fn_label(fn: Any, attr: str) -> str:
    try:
        value = getattr(fn, attr, None)
    except Exception:  # noqa: BLE001
        value = None
    return value if isinstance(value, str) else "function"


def gradcheck(fn: Callable, inputs: tuple, name: str | None = None, **kwargs) -> bool:
    """``torch.autograd.gradcheck`` (float64, slow mode) with a message a student can read; True or raises.

    The student's function runs where it lives and answers its outputs at the points finite differences
    need and the rows of the Jacobian its backward gives; the comparison, with gradcheck's tolerances
    (``eps``, ``atol``, ``rtol``, ``nondet_tol``), is made here. The messages are those of
    :func:`backproplab.checks.gradcheck`. Float32 inputs are refused up front: finite differences in
    float32 are too coarse for the default tolerances, so gradcheck would fail even for a correct backward.
    """
    label = name or _fn_label(fn, "__name__")
    checks.refuse_single_precision(label, inputs)
    try:
        _finite_differences(fn, tuple(inputs), **kwargs)
    except _Mismatch as exc:
        raise checks.gradcheck_failure(label, str(exc)) from None
    except _Raised as exc:
        info = exc.info
        if info["not_implemented"]:
            raise AssertionError(
                f"gradcheck({label}): {checks.DIAGNOSES['not_implemented']} (diagnosis: not_implemented)"
            ) from _cause(info)
        raise AssertionError(f"gradcheck({label}) raised {info['type']}: {info['message']} (diagnosis: crash)") \
            from _cause(info)
    return True


def gradgradcheck(fn: Callable, inputs: tuple, name: str | None = None, **kwargs) -> bool:
    """``torch.autograd.gradgradcheck`` (float64, slow mode) with a message a student can read; True or raises.

    As :func:`gradcheck`, on the function ``(inputs, v) -> gradients of fn at inputs given grad_output v``
    (the student's backward, run with ``create_graph=True``), ``v`` drawn here uniformly in [-1, 1)."""
    label = name or _fn_label(fn, "__qualname__")
    checks.refuse_single_precision(label, inputs, "gradgradcheck")
    hint = (
        "backward must be written with differentiable torch operations on the saved tensors, so that "
        "autograd can differentiate it again: no .detach(), .data, .item(), numpy or torch.no_grad() "
        "(diagnosis: not_double_differentiable)"
    )
    try:
        base = _jacobian_probe(fn, list(inputs), [], "apply", 0, False)
        if "raised" in base:
            raise _Raised(base["raised"])
        if "not_tensor" in base:
            raise _Mismatch(f"the function returned a {base['not_tensor']}, not a tensor")
        outs = [o for o, d in zip(base["outputs"], base["differentiable"]) if d]
        vs = tuple(torch.testing.make_tensor(o.shape, dtype=o.dtype if o.is_floating_point() else torch.double,
                                             device="cpu", low=-1, high=1, requires_grad=True) for o in outs)
        _finite_differences(fn, tuple(inputs) + vs, kind="vjp", n_vs=len(vs), **kwargs)
    except _Mismatch as exc:
        first = (str(exc).strip().splitlines() or ["gradgradcheck failed"])[0]
        raise AssertionError(f"gradgradcheck({label}) failed: {first}\n{hint}") from None
    except _Raised as exc:
        info = exc.info
        if info["not_implemented"]:
            raise AssertionError(f"gradgradcheck({label}): not written yet (diagnosis: not_implemented)") \
                from _cause(info)
        raise AssertionError(f"gradgradcheck({label}) raised {info['type']}: {info['message']}\n{hint}") \
            from _cause(info)
    return True


# --- reference Functions and substitution ------------------------------------------------------------

_TORCH_MODULES = ("torch.nn.functional", "torch", "torch.special", "torch.linalg")


def _torch_path(fn: Any) -> list[str] | None:
    """``[module, name]`` when ``fn`` is a function of torch (so the student's side can find its own copy)."""
    import importlib

    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    for module_name in _TORCH_MODULES:
        if getattr(importlib.import_module(module_name), name, None) is fn:
            return [module_name, name]
    return None


def _reference(name: str, fn: Callable[..., torch.Tensor]) -> type:
    def forward(ctx, *args):
        ctx.args = args
        with torch.no_grad():
            return fn(*args)

    def backward(ctx, *grad_outputs):
        needs = ctx.needs_input_grad
        with torch.enable_grad():
            leaves = [
                a.detach().requires_grad_(bool(n)) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a, n in zip(ctx.args, needs)
            ]
            out = fn(*leaves)
            wanted = [leaf for leaf, n in zip(leaves, needs) if n]
            grads = iter(torch.autograd.grad(out, wanted, grad_outputs, allow_unused=True))
        return tuple(next(grads) if n else None for n in needs)

    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__doc__": f"Reference {name} whose gradients come from torch.autograd.",
    })


@_probe
def _reference_probe(name: str, fn: Any) -> type:
    """:func:`autograd_function` built next to the student's code (``fn``: a torch path, or the test's function)."""
    if isinstance(fn, list):
        import importlib

        module_name, attr = fn
        if module_name not in _TORCH_MODULES:
            raise ValueError(f"not a torch function: {module_name}.{attr}")
        fn = getattr(importlib.import_module(module_name), attr)
    return _reference(name, fn)


def autograd_function(name: str, fn: Callable[..., torch.Tensor]) -> type:
    """A ``torch.autograd.Function`` subclass called ``name`` computing ``fn``, for use as a reference.

    Its backward recomputes ``fn`` on detached copies of the inputs and asks ``torch.autograd`` for
    the gradients, so it contains no hand-written derivative. Grade cells substitute it for a
    student's Function (see :func:`substituted`) to test code that uses the Function on its own.
    In the grader it is built next to the student's code (a stand-in here), ``fn`` being torch's own
    function there when it is one of torch's, else a call back to the test's ``fn``.
    """
    if _judging():
        return _reference_probe(name, _torch_path(fn) or fn)
    return _reference(name, fn)


def _namespace_of(anchors: Sequence[Any]) -> dict:
    """The namespace the student's objects look their names up in (a function's globals; for a class,
    those of one of its methods); the kernel's own namespace when no anchor tells."""
    for obj in anchors:
        candidates = [obj]
        if isinstance(obj, type):
            candidates += list(vars(obj).values())
        for cand in candidates:
            fn = getattr(cand, "__func__", cand)
            ns = getattr(fn, "__globals__", None) if callable(fn) else None
            if type(ns) is dict:
                return ns
    return remote._namespace()


_MISSING = object()
_STASH: dict[int, tuple[dict, dict]] = {}


@_probe
def _bind_probe(anchors: list, replacements: dict) -> int:
    """Bind ``replacements`` in the student's namespace; a token to restore the previous bindings."""
    ns = _namespace_of(anchors)
    previous = {k: ns.get(k, _MISSING) for k in replacements}
    ns.update(replacements)
    token = max(_STASH, default=0) + 1
    _STASH[token] = (ns, previous)
    return token


@_probe
def _unbind_probe(token: int) -> None:
    ns, previous = _STASH.pop(token, ({}, {}))
    for key, value in previous.items():
        if value is _MISSING:
            ns.pop(key, None)
        else:
            ns[key] = value


@contextlib.contextmanager
def _bound(namespace: MutableMapping[str, Any], replacements: dict) -> Iterator[None]:
    missing = object()
    previous = {k: namespace.get(k, missing) for k in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is missing:
                namespace.pop(key, None)
            else:
                namespace[key] = value


@contextlib.contextmanager
def substituted(namespace: MutableMapping[str, Any], **replacements: Any) -> Iterator[None]:
    """Temporarily bind ``replacements`` in ``namespace`` (a notebook's ``globals()``), then restore.

    Code that looks the names up when it runs (a method calling ``LinearFunction.apply``) sees the
    replacements inside the block; the previous bindings come back afterwards, even on failure.
    In the grader, where ``globals()`` is the judge's, the names are bound in the student's namespace
    too (where the student's code looks them up): stand-ins as the objects they stand for, the test's
    functions as calls back to it.
    """
    if not (_judging() and hasattr(namespace, "judge")):
        with _bound(namespace, replacements):
            yield
        return
    anchors = [a for a in (namespace.get(k) for k in replacements) if getattr(type(a), "_bpl_remote", False)]
    token = _bind_probe(anchors, dict(replacements))
    try:
        with _bound(namespace, replacements):
            yield
    finally:
        with contextlib.suppress(Exception):
            _unbind_probe(token)


# --- comparisons at the inputs' magnitude ----------------------------------------------------------


def magnitude_of(inputs: Sequence[Any]) -> float:
    """The largest finite absolute value among the floating-point tensors (or numbers) in ``inputs``."""
    largest = 0.0
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
            finite = x.detach()[torch.isfinite(x.detach())]
            if finite.numel():
                largest = max(largest, float(finite.abs().max()))
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            largest = max(largest, abs(float(x)))
    return largest


def _precision_only(actual: Any, expected: torch.Tensor, tag: str) -> bool:
    """Over tolerance, but by no more than ``PRECISION_SHARE`` of the values, and with no logic pattern."""
    if tag in _STRUCTURAL or not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return False
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if not bool(torch.isfinite(a).all()):
        return False
    scale = float(e.abs().max()) if e.numel() else 0.0
    return scale > 0 and float((a - e).abs().max()) <= PRECISION_SHARE * scale


def compare(actual: Any, expected: torch.Tensor, *, inputs: Sequence[Any] = (), magnitude: float | None = None,
            dtype: torch.dtype | None = None, batch_size: int | None = None) -> checks.Mismatch | None:
    """:func:`checks.compare` with tolerances from :func:`checks.tolerances_at` at the inputs' magnitude.

    A correct evaluation in float32 at logits of 1e4 is off by about 1e-3 (one unit in the last place
    of the input), so the tolerance grows with the inputs. A result over that tolerance but within
    ``PRECISION_SHARE`` of the values, with no recognisable logic pattern, is tagged ``precision``.
    """
    actual = remote.plain(actual)
    want = dtype if dtype is not None else expected.dtype
    got = actual.dtype if isinstance(actual, torch.Tensor) and actual.is_floating_point() else want
    size = magnitude_of(inputs) if magnitude is None else float(magnitude)
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    rtol, atol = checks.tolerances_at(got, size, reference_scale=scale)
    mismatch = checks.compare(actual, expected, dtype=dtype, rtol=rtol, atol=atol, batch_size=batch_size)
    if mismatch is None or not _precision_only(actual, expected, mismatch.tag):
        return mismatch
    err = float((actual.detach().to(torch.float64) - expected.detach().to(torch.float64)).abs().max())
    return checks.Mismatch(
        "precision",
        f"largest error {err:.3g}, {err / scale:.2g} of the values, over what {got} allows at inputs of size "
        f"{size:.3g}; {checks.DIAGNOSES['precision']}",
        mismatch.details,
    )


def assert_close(actual: Any, expected: torch.Tensor, name: str = "result", **kwargs) -> None:
    """Raise an ``AssertionError`` in words if ``actual`` differs from ``expected`` (see :func:`compare`)."""
    mismatch = compare(actual, expected, **kwargs)
    if mismatch is not None:
        raise AssertionError(mismatch.message(name))


def assert_grads_close(actual: Any, expected: dict[str, torch.Tensor], name: str = "grads", **kwargs) -> None:
    """:func:`assert_close` key by key on a dict of gradients; every failing key is reported."""
    if not isinstance(actual, dict):
        raise AssertionError(f"{name}: expected a dict with keys {sorted(expected)}, got {type(actual).__name__} "
                             "(diagnosis: not_a_tensor)")
    problems = []
    for key, ref in expected.items():
        mismatch = compare(actual.get(key), ref, **kwargs)
        if mismatch is not None:
            problems.append(mismatch.message(f"{name}[{key!r}]"))
    if problems:
        raise AssertionError("\n".join(problems))
