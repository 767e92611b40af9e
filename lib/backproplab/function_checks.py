"""Structural checks for a student's ``torch.autograd.Function`` (lab 5), with messages in words.

Gradient values are judged elsewhere (``checks.gradcheck`` and ``checks.assert_close`` against
``torch.autograd`` on built-in operations). This module checks the *contract* a Function signs with
autograd, the part that finite differences do not see or report badly:

* ``forward`` and ``backward`` are static methods;
* ``forward`` does not modify its inputs, ``backward`` does not modify ``grad_output``;
* ``backward`` returns one gradient per argument of ``forward`` (after ``ctx``), ``None`` where an
  input is ``None`` or ``ctx.needs_input_grad`` is False, a tensor everywhere else;
* the classic slip of using ``ctx.saved_tensors`` (a tuple) as if it were a tensor;
* a Function that should save its output (sigmoid, tanh) does;
* a backward written in differentiable operations (``gradgradcheck``).

``backward`` is called directly through the node autograd recorded (``output.grad_fn.apply``), so
the raw value it returns can be inspected before autograd trims or rejects it. Every message ends
with ``(diagnosis: <tag>)`` like those of :mod:`backproplab.checks`.

Nothing here knows a correct backward formula: the reference Functions built by
:func:`autograd_function` get their gradients from ``torch.autograd`` on built-in operations.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import torch

from backproplab import checks

__all__ = [
    "FUNCTION_DIAGNOSES",
    "assert_close",
    "assert_grads_close",
    "assert_saves_output",
    "autograd_function",
    "check_static",
    "check_function_class",
    "compare",
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


def _label(cls: Any, name: str | None) -> str:
    return name or getattr(cls, "__name__", "the Function")


def check_static(cls: Any, method: str, name: str | None = None) -> None:
    """``cls`` subclasses ``torch.autograd.Function`` and defines ``method`` as a ``@staticmethod``.

    Forgetting ``@staticmethod`` happens to run (Python passes ``ctx`` as the first argument either
    way), but it is not the documented contract and breaks as soon as ``forward`` is called on an
    instance, so it is reported.
    """
    label = _label(cls, name)
    if not (isinstance(cls, type) and issubclass(cls, torch.autograd.Function)):
        raise AssertionError(
            f"{label} is {type(cls).__name__}, not a subclass of torch.autograd.Function: keep the line "
            f"`class {label}(torch.autograd.Function):` (diagnosis: not_a_function)"
        )
    attr = inspect.getattr_static(cls, method, None)
    if attr is None or attr is inspect.getattr_static(torch.autograd.Function, method, None):
        raise AssertionError(f"{label} does not define {method} (diagnosis: not_implemented)")
    if not isinstance(attr, staticmethod):
        raise AssertionError(
            f"{label}.{method} is not a @staticmethod: write `@staticmethod` on the line above "
            f"`def {method}(ctx, ...)`; autograd calls it on the class, never on an instance "
            "(diagnosis: not_static)"
        )


def check_function_class(cls: Any, name: str | None = None) -> None:
    """Both ``forward`` and ``backward`` are static methods of a ``torch.autograd.Function``."""
    check_static(cls, "forward", name)
    check_static(cls, "backward", name)


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


def run_forward(cls: Any, *inputs: Any, name: str | None = None, input_names: Sequence[str] | None = None):
    """``cls.apply(*inputs)`` with readable errors; checks that no input was modified in place."""
    label = _label(cls, name)
    names = list(input_names or [f"input {i}" for i in range(len(inputs))])
    before = _snapshot(inputs)
    apply = getattr(cls, "apply", None)
    if apply is None:
        raise AssertionError(f"{label} has no .apply: is it a torch.autograd.Function? (diagnosis: not_a_function)")
    try:
        output = apply(*inputs)
    except NotImplementedError as exc:
        raise AssertionError(
            f"{label}.forward is not written yet: replace `raise NotImplementedError()` with your code "
            "(diagnosis: not_implemented)"
        ) from exc
    except Exception as exc:
        raise AssertionError(f"{label}.forward raised {type(exc).__name__}: {exc} (diagnosis: crash)") from exc
    for i, (b, x) in enumerate(zip(before, inputs)):
        if _changed(b, x):
            raise AssertionError(
                f"{label}.forward changed its argument {names[i]} in place: compute a new tensor instead "
                "of using an in-place operation (a method ending in _, or x[...] = ...) (diagnosis: input_modified)"
            )
    if not isinstance(output, torch.Tensor):
        raise AssertionError(
            f"{label}.forward returned {type(output).__name__}, expected a torch.Tensor (diagnosis: not_a_tensor)"
        )
    return output


def _reads_saved_tuple(exc: BaseException) -> bool:
    text = str(exc)
    return "tuple" in text and isinstance(exc, (TypeError, AttributeError, RuntimeError, IndexError))


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
    node = getattr(output, "grad_fn", None)
    label = name or (type(node).__name__.removesuffix("Backward") if node is not None else "the Function")
    names = list(input_names or [f"input {i}" for i in range(len(inputs))])
    names += [f"input {i}" for i in range(len(names), len(inputs))]
    if node is None or not hasattr(node, "_forward_cls"):
        raise AssertionError(
            f"the output of {label} has no custom-Function node in its graph (grad_fn={node!r}): return the "
            "result of forward as computed, and call the Function through .apply (diagnosis: no_graph)"
        )
    if grad_output is None:
        grad_output = torch.randn_like(output)
    pristine = grad_output.detach().clone()
    try:
        with torch.no_grad():  # as the autograd engine runs it (no create_graph)
            raw = node.apply(grad_output)
    except NotImplementedError as exc:
        raise AssertionError(
            f"{label}.backward is not written yet: replace `raise NotImplementedError()` with your code "
            "(diagnosis: not_implemented)"
        ) from exc
    except Exception as exc:
        if _reads_saved_tuple(exc) and len(node.saved_tensors) > 0:
            raise AssertionError(
                f"{label}.backward: saved_tensors is a tuple: unpack it, for example `x, = ctx.saved_tensors` or "
                "`x, W = ctx.saved_tensors`; it holds one entry per tensor given to save_for_backward "
                f"(diagnosis: saved_tensors_tuple)\nthe error was {type(exc).__name__}: {exc}"
            ) from exc
        raise AssertionError(f"{label}.backward raised {type(exc).__name__}: {exc} (diagnosis: crash)") from exc
    if _changed(pristine, grad_output):
        raise AssertionError(
            f"{label}.backward changed grad_output in place (for example grad_output.mul_(...) or "
            "grad_output[...] = ...): autograd may hand the same tensor to other nodes, so build a new "
            "tensor instead (diagnosis: grad_output_modified)"
        )
    grads = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
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
    needs = tuple(node.needs_input_grad)
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


def assert_saves_output(output: torch.Tensor, name: str | None = None) -> None:
    """``forward`` kept a tensor equal to its output (through ``save_for_backward`` or on ``ctx``)."""
    node = getattr(output, "grad_fn", None)
    label = name or (type(node).__name__.removesuffix("Backward") if node is not None else "the Function")
    if node is None or not hasattr(node, "_forward_cls"):
        raise AssertionError(f"the output of {label} has no custom-Function node (diagnosis: no_graph)")
    saved = _saved_tensors(node)
    out = output.detach()
    if any(t.shape == out.shape and bool(torch.equal(t.detach(), out)) for t in saved):
        return
    what = "nothing" if not saved else f"{len(saved)} tensor(s), none equal to the output"
    raise AssertionError(
        f"{label}.forward saved {what}: save the output (`ctx.save_for_backward(y)`) and write the "
        "derivative from it, since the derivative of this function is a function of its output; it "
        "saves recomputing it in backward (diagnosis: output_not_saved)"
    )


def gradgradcheck(fn: Callable, inputs: tuple, name: str | None = None, **kwargs) -> bool:
    """``torch.autograd.gradgradcheck`` (float64) with a message a student can read; True or raises."""
    label = name or getattr(fn, "__qualname__", None) or "function"
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != torch.float64:
            raise AssertionError(
                f"gradgradcheck({label}): input {i} is {x.dtype}; use float64 inputs (diagnosis: wrong_dtype)"
            )
    hint = (
        "backward must be written with differentiable torch operations on the saved tensors, so that "
        "autograd can differentiate it again: no .detach(), .data, .item(), numpy or torch.no_grad() "
        "(diagnosis: not_double_differentiable)"
    )
    from torch.autograd.gradcheck import GradcheckError  # torch.autograd.gradcheck is also a function

    try:
        return bool(torch.autograd.gradgradcheck(fn, inputs, raise_exception=True, **kwargs))
    except NotImplementedError as exc:
        raise AssertionError(f"gradgradcheck({label}): not written yet (diagnosis: not_implemented)") from exc
    except GradcheckError as exc:
        first = (str(exc).strip().splitlines() or ["gradgradcheck failed"])[0]
        raise AssertionError(f"gradgradcheck({label}) failed: {first}\n{hint}") from exc
    except RuntimeError as exc:
        raise AssertionError(f"gradgradcheck({label}) raised RuntimeError: {exc}\n{hint}") from exc


def graph_node_names(output: torch.Tensor) -> Counter:
    """How many times each node type (``type(grad_fn).__name__``) occurs in ``output``'s graph."""
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
    return counts


def autograd_function(name: str, fn: Callable[..., torch.Tensor]) -> type:
    """A ``torch.autograd.Function`` subclass called ``name`` computing ``fn``, for use as a reference.

    Its backward recomputes ``fn`` on detached copies of the inputs and asks ``torch.autograd`` for
    the gradients, so it contains no hand-written derivative. Grade cells substitute it for a
    student's Function (see :func:`substituted`) to test code that uses the Function on its own.
    """

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


@contextlib.contextmanager
def substituted(namespace: MutableMapping[str, Any], **replacements: Any) -> Iterator[None]:
    """Temporarily bind ``replacements`` in ``namespace`` (a notebook's ``globals()``), then restore.

    Code that looks the names up when it runs (a method calling ``LinearFunction.apply``) sees the
    replacements inside the block; the previous bindings come back afterwards, even on failure.
    """
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
