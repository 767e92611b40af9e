"""Checks that compare a student's tensors with a reference and explain the difference in words.

Every grade cell of every lab goes through this module, so that a failure reads the same way
everywhere: the first line names the tensor and what is wrong with it, the next lines give the
numbers, and a ``(diagnosis: <tag>)`` marker names the likely mistake when the error has a
recognisable pattern (transposed, scaled by the batch size, sign flipped, ...). The grading tools
count those tags to tell an instructor what the class got wrong.

The reference is meant to be computed by the test itself in float64 with ``torch.autograd``; it is
never read from the student.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from . import remote

__all__ = [
    "DIAGNOSES",
    "integrity_problems",
    "Mismatch",
    "assert_close",
    "assert_grads_close",
    "assert_equal",
    "assert_python_float",
    "call",
    "compare",
    "grad_table",
    "gradcheck",
    "time_limit",
    "tolerances",
    "tolerances_at",
]

# Tag -> sentence shown to the student. Tags are stable: the class report counts them.
DIAGNOSES = {
    "not_implemented": "the exercise still raises NotImplementedError: replace it with your code",
    "not_a_tensor": "the result must be a plain torch.Tensor",
    "wrong_shape": "the result has the wrong shape",
    "transposed_shape": "the shape is the transpose of the expected one: check the order of the matrix product",
    "batch_dim_kept": "the result still has a batch dimension: sum (or average) over the batch",
    "wrong_dtype": "the result does not keep the input dtype",
    "nan": "the result contains NaN: look for 0/0, log(0) or inf - inf",
    "inf": "the result contains inf: look for an overflow (exp of a large number) or a division by 0",
    "zero": "the result is all zeros: the gradient never reached this tensor",
    "sign": "the result has the right magnitude but the opposite sign",
    "transposed": "the values are the transpose of the expected ones: check the order of the matrix product",
    "batch_sum": "the result is B times too large: average over the batch instead of summing",
    "batch_mean_twice": "the result is B times too small: the batch mean is taken twice",
    "scaled": "the result is off by a constant factor",
    "some_rows": "only some rows are right: check the computation that differs between rows",
    "some_columns": "only some columns are right: check the computation that differs between columns",
    "values": "the values are wrong",
    # used by grade cells with their own wording; listed so that reports can explain every tag
    "crash": "the function raised an exception",
    "timeout": "the function did not finish in time (an endless loop?)",
    "policy": "the exercise forbids what the code uses (autograd or torch.optim)",
    "modified_input": "the function modified one of its inputs in place",
    "not_callable": "the result should be a function",
    "forward_difference": "a one-sided difference instead of the central one",
    "local_model_curvature": "the quadratic term of the local model is wrong",
    "last_only": "only the last iterate is returned",
    "missing_w0": "the starting point is missing from the iterates",
    "aliasing": "every row is the same tensor (append a copy, not the tensor updated in place)",
    "lambda_min": "lambda_min is used where lambda_max decides",
    "border": "the border case (equality) is classified wrongly",
    "wrong_return": "the function returns the wrong kind of object",
    "architecture": "the network's layers differ from the specification",
    "step_count": "the number of steps or losses is wrong",
    "broadcast": "shapes broadcast into a matrix (a missing .view(-1)?)",
    "grad_not_zeroed": "gradients are not zeroed where they should be",
    "not_learning": "the loss does not go down",
    "missing_tanh_derivative": "the hidden delta lacks the tanh derivative 1 - h^2",
    "bias_not_summed": "the bias gradient is not summed over the batch",
    "used_autograd": "autograd was used where gradients must be written by hand",
    "overwrite_not_accumulate": "a backward rule assigns (=) instead of accumulating (+=)",
    "recursion": "recursion too deep: make the traversal iterative",
    "visited_twice": "a node is visited more than once",
    "nonleaf_not_reset": "intermediate gradients are not reset between backward calls",
    "leaf_reset": "leaf gradients are reset: they must accumulate across backward calls",
    "missing_reflected": "a reflected operator (number + Value, ...) is missing",
    "order": "the order is not topological",
    "seed": "forward mode must seed one input at a time",
    "stale_grad": "gradients left from before were not cleared first",
    "overflow": "overflow: use the numerically stable form",
    "not_stable": "not numerically stable for large inputs",
    "relu_grad_at_zero": "the ReLU gradient at 0 must be 0",
    "builtin_used": "a built-in was used where your own Function is required",
    "zero_init": "the parameters are initialised to zero",
    "wrong_parameters": "the module's parameters have the wrong names or shapes",
    "wrong_gradient_count": "backward must return one gradient per forward input",
    "gradient_not_none": "backward must return None where no gradient is needed",
    "grad_output_modified": "backward modified grad_output in place",
    "input_modified": "forward modified its input in place",
    "not_static": "forward and backward must be @staticmethod",
    "saved_tensors_tuple": "ctx.saved_tensors is a tuple: unpack it",
    "not_double_differentiable": "the backward is not differentiable (detach/.data/no_grad/numpy)",
    "uses_autograd": "autograd was used where gradients must be written by hand",
    "modifies_input": "the function modified one of its inputs in place",
    "not_in_place": "the update must change the tensors in place",
    "ignores_generator": "random draws must use the generator argument",
    "no_memo": "the recursion recomputes values: memoise them",
    "not_bottom_up": "the table must be filled bottom-up, without recursion",
    "wrong_dim": "the operation runs over the wrong dimension",
    # --- wave 2, lab 1 ---
    # --- wave 2, lab 2 ---
    "momentum_order": "the velocity is updated after the weights: z[t+1] must be computed first, then used",
    "momentum_ema": "the velocity is an average (1 - beta) g: heavy ball adds the whole gradient, z = beta z + g",
    "momentum_on_w": "beta multiplies the weights instead of the velocity",
    "momentum_ignored": "beta is ignored: the iterates are those of plain gradient descent",
    "heavy_ball_matrix": "the 2x2 iteration matrix is wrong: [[beta, lambda], [-eta beta, 1 - eta lambda]]",
    "spectral_radius": "the maximum is taken over the wrong thing: the largest modulus of the eigenvalues, worst lambda",
    "eigenvalues_sorted": "the eigenvalues were assumed sorted: look at every one of them",
    "adam_bias_correction": "the bias correction m / (1 - b1^t), v / (1 - b2^t) is missing or wrong",
    "adam_eps_inside": "eps is inside the square root: the denominator is sqrt(vhat) + eps",
    "adam_step_count": "the step count t is wrong: 1 after the first step, one more at every step",
    # --- wave 2, lab 3 ---
    "reversed_order": "the list is in reverse order (it must start with the first layer)",
    "squared_norm": "the squared norm was returned: take the square root",
    "normal_not_uniform": "the weights are drawn from a normal law instead of a uniform one",
    "wrong_bound": "the weights do not fill [-a, a] with a = sqrt(6 / (fan_in + fan_out))",
    # --- wave 2, lab 4 ---
    "graph_broken": "a parameter is not connected to the output: a Value rebuilt from .data cuts the graph",
    "bias_not_in_parameters": "a neuron's bias is missing from parameters()",
    "parameter_count": "parameters() has the wrong number of entries",
    "parameter_order": "parameters() lists the weights and biases in the wrong order",
    "bias_init": "biases must start at 0",
    "init_range": "initial weights must be uniform on [-1, 1]",
    "not_random_module": "initial weights must come from Python's random module (random.seed fixes them)",
    "single_output": "with one output, return the Value itself, not a list of one",
    "missing_relu": "relu is missing where nonlin is True",
    "nonlin_ignored": "relu is applied where nonlin=False asks for the affine value",
    "relu_last_layer": "the last layer of the MLP must be linear (no relu)",
    "bias_ignored": "the bias is not added to the weighted sum",
    "forward": "the forward value is wrong",
    "zero_grad_incomplete": "zero_grad() leaves some parameters' gradients untouched",
    "not_a_bool": "the check must return a Python bool (True or False)",
    "missing_nodes": "some nodes reachable from the root are missing from the order",
    # --- wave 2, lab 5 ---
    "precision": "close but not within what float32 can represent here: compute in the numerically stable form "
                 "(subtract the row maximum before exp)",
    # --- wave 2, lab 6 ---
    "softmax_twice": "softmax is applied to outputs that are already probabilities: the loss takes the raw logits",
    "sum_not_mean": "the per-epoch value adds the batch losses up: average them",
    "optimizer_reset": "the Adam state is started again during the run: keep one state per parameter for the whole run",
    "percentage": "the result is a percentage: return a fraction between 0 and 1",
    "not_shuffled": "the mini-batches come in the same order every time: shuffle them with the generator",
    "adam_unused": "the parameters are not updated with the notebook's adam_step",
    "not_xavier": "the weights do not come from xavier_init",
    # --- wave 2, predictions and bug hunts ---
    "prediction": "the prediction differs from what the experiment shows",
    "missed_bug": "the check accepted a wrong implementation",
    "rejected_right": "the check rejected a right implementation",
    # --- tags the labs used before the vocabulary was enforced (tests/test_checks.py) ---
    "not_a_function": "this must be a torch.autograd.Function subclass, called through .apply",
    "no_graph": "the output is not connected to the custom Function: return forward's result and call .apply",
    "missing_gradient": "backward returned None for an input that needs a gradient",
    "output_not_saved": "save the output in forward (ctx.save_for_backward) instead of recomputing it in backward",
    "not_a_value": "the operation must return a Value",
    "not_a_dual": "the operation must return a Dual",
    "not_a_list": "the result must be a list",
    "extra_nodes": "the order holds nodes that are not in the graph",
    "passes": "forward mode needs one pass per input: check the number of passes",
    "batches": "the gradient must be accumulated over every mini-batch",
}


@dataclass
class Mismatch:
    """What :func:`compare` found wrong, or ``None`` fields when the tensors agree."""

    tag: str
    summary: str
    details: str = ""

    def message(self, name: str) -> str:
        first = f"{name}: {self.summary} (diagnosis: {self.tag})"
        return first + ("\n" + self.details if self.details else "")


# --- integrity guard ------------------------------------------------------------------------------
# Originals captured when this module is imported (the import block runs before any student code).
# The guard refuses to give a verdict while the state a comparison depends on has been changed:
# an active torch function/dispatch mode (which can rewrite every tensor operation, the test's own
# reference computation included), replaced torch functions, or IPython input transformers added
# after the import (which can rewrite or blank the test cells themselves). This is defence in
# depth; the class grader's source scan and sandbox are the main line (see autograder/README.md).
_ORIGINALS = {
    name: getattr(torch.Tensor, name)
    for name in ("__sub__", "__mul__", "__add__", "__eq__", "__ne__", "__le__", "__bool__", "abs", "all", "any",
                 "to", "detach", "reshape", "item", "tolist", "clone")
}
_TORCH_ORIGINALS = {name: getattr(torch, name) for name in ("allclose", "equal", "isclose", "isnan", "isinf", "where")}


def _ipython_transformer_count() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None:
        return None
    return len(getattr(ip, "input_transformers_post", [])) + len(getattr(ip, "input_transformers_cleanup", []))


_TRANSFORMERS_AT_IMPORT = _ipython_transformer_count()


def integrity_problems() -> list[str]:
    """What has been changed that a fair comparison depends on; empty when all is as imported."""
    found = []
    if torch._C._len_torch_function_stack() > 0:
        found.append("a TorchFunctionMode is active")
    if torch._C._len_torch_dispatch_stack() > 0:
        found.append("a TorchDispatchMode is active")
    changed = [f"torch.Tensor.{n}" for n, f in _ORIGINALS.items() if getattr(torch.Tensor, n, None) is not f]
    changed += [f"torch.{n}" for n, f in _TORCH_ORIGINALS.items() if getattr(torch, n, None) is not f]
    if changed:
        found.append("replaced: " + ", ".join(changed))
    now = _ipython_transformer_count()
    if _TRANSFORMERS_AT_IMPORT is not None and now is not None and now > _TRANSFORMERS_AT_IMPORT:
        found.append("IPython input transformers were added")
    return found


def _guard() -> None:
    problems = integrity_problems()
    if problems:
        raise AssertionError(
            "integrity: the checks cannot be trusted because " + "; ".join(problems)
            + ". Remove the code that does this and run the notebook again (diagnosis: policy)"
        )


# --- the one precision rule ---------------------------------------------------------------------
# Every comparison in the labs and the library takes its tolerances from here (tests/test_checks.py
# refuses a literal rtol/atol anywhere else). The defaults are what a correct evaluation of the formula
# in that dtype, in any order, reaches against a float64 reference at inputs of order one; the keyword
# arguments say why a particular comparison needs more, in the quantities that cause it.
_DEFAULTS = {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 1e-5),
             torch.float16: (1e-2, 1e-2), torch.bfloat16: (1e-2, 1e-2)}


def tolerances(
    dtype: torch.dtype = torch.float64,
    *,
    magnitude: float = 1.0,
    steps: int = 1,
    reference_scale: float = 0.0,
    safety: float = 4.0,
) -> tuple[float, float]:
    """``(rtol, atol)`` in :func:`compare`'s convention for a result computed in ``dtype``.

    * ``dtype``: the precision the student's code computes in (Python floats are ``torch.float64``).
    * ``magnitude``: how large the quantities the computation rounds are, compared with 1. A correct
      evaluation rounds each to within ``eps * |x|``, so a result that moves at most as much as them
      (softplus, a mean cross-entropy, a softmax) can be off by ``eps * magnitude`` in absolute terms:
      at logits of 1e4 in float32 that is 1e-3. A finite difference ``(f(w+h) - f(w-h)) / 2h`` rounds
      ``f``, so its magnitude is ``max|f| / h``.
    * ``steps``: how many dependent steps the result went through (the iterates of an optimiser, the
      epochs of a training run); rounding compounds, and the allowance grows with it.
    * ``reference_scale``: ``compare`` multiplies ``atol`` by ``1 + max|reference|``; pass that maximum
      to get the magnitude allowance in those units.

    The absolute allowance is ``safety * eps * magnitude * steps`` (never below the dtype's
    defaults, which also grow with ``steps``). Integer and bool results are compared exactly.
    """
    if not dtype.is_floating_point:
        return 0.0, 0.0
    rtol, atol = _DEFAULTS.get(dtype, _DEFAULTS[torch.float16])
    steps = max(int(steps), 1)
    rtol, atol = rtol * steps, atol * steps
    allowance = safety * torch.finfo(dtype).eps * max(float(magnitude), 1.0) * steps
    return rtol, max(atol, allowance / (1.0 + float(reference_scale)))


def tolerances_at(
    dtype: torch.dtype, magnitude: float, reference_scale: float = 0.0, safety: float = 4.0
) -> tuple[float, float]:
    """:func:`tolerances` at inputs as large as ``magnitude`` (kept for the lab 5 checks' wording)."""
    return tolerances(dtype, magnitude=magnitude, reference_scale=reference_scale, safety=safety)


def close(actual: Any, expected: Any, dtype: torch.dtype = torch.float64, **rule) -> bool:
    """Whether ``actual`` is within :func:`tolerances` ``(dtype, **rule)`` of ``expected``.

    For the branches of a check that recognise a particular mistake (numbers, lists of numbers or
    tensors of the same shape); the verdict itself goes through :func:`compare`. ``atol`` is scaled by
    ``1 + max|expected|`` as in :func:`compare`.
    """
    actual, expected = remote.plain(actual), remote.plain(expected)
    try:
        a = torch.as_tensor(actual, dtype=torch.float64).detach().to(torch.float64)
        e = torch.as_tensor(expected, dtype=torch.float64).detach().to(torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    if a.shape != e.shape:
        return False
    rtol, atol = tolerances(dtype, **rule)
    scale = float(e.abs().max()) if e.numel() else 0.0
    same = (a == e) | (torch.isnan(a) & torch.isnan(e))
    return bool((same | _close(a, e, rtol, atol * (1 + scale))).all())


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _index_str(flat_index: int, shape: torch.Size) -> str:
    if len(shape) == 0:
        return "[]"
    idx = []
    for size in reversed(shape):
        idx.append(flat_index % size)
        flat_index //= size
    return "[" + ", ".join(str(i) for i in reversed(idx)) + "]"


def _close(a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    return (a - e).abs() <= atol + rtol * e.abs()


def _diagnose_values(
    a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float, batch_size: int | None
) -> str:
    """Return the tag of the most likely mistake, given that ``a`` and ``e`` differ."""
    loose_r, loose_a = max(rtol, 1e-4), max(atol, 1e-6)
    scale = float(e.abs().max()) if e.numel() else 0.0
    if scale > 0 and bool((a == 0).all()):
        return "zero"
    if bool(_close(-a, e, loose_r, loose_a * (1 + scale)).all()):
        return "sign"
    if e.dim() == 2 and e.shape[0] == e.shape[1] and e.shape[0] > 1:
        if bool(_close(a, e.T, loose_r, loose_a * (1 + scale)).all()):
            return "transposed"
    # A constant factor: least-squares ratio, then check it explains every entry.
    denom = float((e * e).sum())
    if denom > 0:
        c = float((a * e).sum()) / denom
        if c != 0 and math.isfinite(c) and bool(_close(a, c * e, loose_r, loose_a * (1 + scale * abs(c))).all()):
            if batch_size and batch_size > 1:
                if abs(c - batch_size) < 1e-3 * batch_size:
                    return "batch_sum"
                if abs(c * batch_size - 1) < 1e-3:
                    return "batch_mean_twice"
            if e.numel() > 1 and abs(c - 1) > 1e-3:  # a pattern over many entries, and a real factor
                return "scaled"
    if e.dim() >= 2 and e.shape[0] > 1:
        row_ok = _close(a, e, rtol, atol * (1 + scale)).reshape(e.shape[0], -1).all(dim=1)
        if bool(row_ok.any()):
            return "some_rows"
        col_ok = _close(a, e, rtol, atol * (1 + scale)).reshape(e.shape[0], -1).all(dim=0)
        if bool(col_ok.any()) and e.dim() == 2:
            return "some_columns"
    return "values"


def compare(
    actual: Any,
    expected: torch.Tensor,
    *,
    dtype: torch.dtype | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    batch_size: int | None = None,
    magnitude: float = 1.0,
    steps: int = 1,
) -> Mismatch | None:
    """Compare ``actual`` with the reference ``expected``; return ``None`` if they agree.

    ``dtype`` is the dtype the student's result must have (default: the reference's dtype).
    Tolerances come from :func:`tolerances` of the result's dtype, with ``magnitude`` and ``steps``
    as documented there, and ``atol`` is scaled by the size of the reference, so that a tensor with
    large entries is not held to an absolute 1e-9. ``rtol``/``atol`` override the rule (only the
    precision tests of :mod:`checks` itself pass numbers).
    ``batch_size`` lets the diagnosis recognise "summed instead of averaged".
    """
    _guard()
    actual = remote.plain(actual)
    want_dtype = dtype if dtype is not None else expected.dtype
    if not isinstance(actual, torch.Tensor) or type(actual) not in (torch.Tensor, torch.nn.Parameter):
        what = type(actual).__name__
        extra = ""
        if isinstance(actual, (list, tuple)):
            extra = " (use torch.stack or torch.tensor to build one tensor)"
        elif actual is None:
            extra = " (did the function forget to return its result?)"
        return Mismatch("not_a_tensor", f"expected a torch.Tensor, got {what}{extra}")
    a = actual.detach()
    e = expected.detach()
    if a.shape != e.shape:
        tag = "wrong_shape"
        hint = ""
        if a.dim() == 2 and e.dim() == 2 and tuple(a.shape) == tuple(e.shape)[::-1]:
            tag, hint = "transposed_shape", "; it looks transposed"
        elif a.dim() == e.dim() + 1 and tuple(a.shape[1:]) == tuple(e.shape):
            tag, hint = "batch_dim_kept", "; it still has a leading batch dimension"
        elif a.numel() == e.numel():
            hint = f"; same number of entries, so a reshape or view may be missing (expected {tuple(e.shape)})"
        return Mismatch(tag, f"shape {tuple(a.shape)}, expected {tuple(e.shape)}{hint}")
    if a.dtype != want_dtype:
        return Mismatch(
            "wrong_dtype",
            f"dtype {a.dtype}, expected {want_dtype}",
            "Results must keep the dtype of the inputs: create new tensors with dtype=x.dtype "
            "(or torch.zeros_like) rather than the default float32.",
        )
    if a.is_complex() or not a.is_floating_point():
        if bool((a == e.to(a.dtype)).all()):
            return None
        bad = (a != e.to(a.dtype)).reshape(-1)
        first = int(bad.nonzero()[0])
        return Mismatch(
            "values",
            f"{int(bad.sum())} of {a.numel()} entries differ",
            f"first at {_index_str(first, a.shape)}: expected {e.reshape(-1)[first].item()}, "
            f"got {a.reshape(-1)[first].item()}",
        )
    a64 = a.to(torch.float64)
    e64 = e.to(torch.float64)
    nan = torch.isnan(a64) & ~torch.isnan(e64)
    if bool(nan.any()):
        first = int(nan.reshape(-1).nonzero()[0])
        return Mismatch(
            "nan",
            f"{int(nan.sum())} of {a.numel()} entries are NaN",
            f"first at {_index_str(first, a.shape)} (expected {_fmt(float(e64.reshape(-1)[first]))})",
        )
    inf = torch.isinf(a64) & ~torch.isinf(e64)
    if bool(inf.any()):
        first = int(inf.reshape(-1).nonzero()[0])
        return Mismatch(
            "inf",
            f"{int(inf.sum())} of {a.numel()} entries are infinite",
            f"first at {_index_str(first, a.shape)} (expected {_fmt(float(e64.reshape(-1)[first]))})",
        )
    scale = float(e64.abs().max()) if e64.numel() else 0.0
    d_rtol, d_atol = tolerances(a.dtype, magnitude=magnitude, steps=steps, reference_scale=scale)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    ok = _close(a64, e64, rtol, atol * (1 + scale)) | (torch.isnan(a64) & torch.isnan(e64)) | (a64 == e64)
    if bool(ok.all()):
        return None
    bad = ~ok
    err = (a64 - e64).abs()
    err = torch.where(torch.isfinite(err), err, torch.zeros_like(err))
    worst = int(err.reshape(-1).argmax())
    rel = float(err.reshape(-1)[worst]) / max(float(e64.abs().reshape(-1)[worst]), 1e-300)
    bad_idx = bad.reshape(-1).nonzero().reshape(-1)
    shown = ", ".join(_index_str(int(i), a.shape) for i in bad_idx[:5])
    if len(bad_idx) > 5:
        shown += ", ..."
    tag = _diagnose_values(a64, e64, rtol, atol, batch_size)
    summary = f"{len(bad_idx)} of {a.numel()} entries are wrong"
    if tag != "values":
        summary += f"; {DIAGNOSES[tag]}"
    details = (
        f"wrong entries: {shown}\n"
        f"largest error {_fmt(float(err.reshape(-1)[worst]))} at {_index_str(worst, a.shape)}: "
        f"expected {_fmt(float(e64.reshape(-1)[worst]))}, got {_fmt(float(a64.reshape(-1)[worst]))} "
        f"(relative error {_fmt(rel)}; tolerance rtol={rtol:g}, atol={atol:g})"
    )
    return Mismatch(tag, summary, details)


def assert_close(actual: Any, expected: torch.Tensor, name: str = "result", **kwargs) -> None:
    """Raise an ``AssertionError`` explaining the difference, if ``actual`` does not match ``expected``.

    Keyword arguments are those of :func:`compare` (``dtype``, ``rtol``, ``atol``, ``batch_size``).
    """
    mismatch = compare(actual, expected, **kwargs)
    if mismatch is not None:
        raise AssertionError(mismatch.message(name))


def assert_grads_close(
    actual: Mapping[str, Any] | Any,
    expected: Mapping[str, torch.Tensor],
    name: str = "grads",
    **kwargs,
) -> None:
    """Compare a dict of tensors key by key; every failing key is reported, worst first."""
    if not isinstance(actual, Mapping):
        raise AssertionError(
            f"{name}: expected a dict with keys {sorted(expected)}, got {type(actual).__name__} "
            "(diagnosis: not_a_tensor)"
        )
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    if missing:
        raise AssertionError(
            f"{name}: missing keys {missing} (diagnosis: wrong_shape)\n"
            f"expected exactly the keys {list(expected)}" + (f"; unexpected keys {extra}" if extra else "")
        )
    problems = []
    for key, ref in expected.items():
        mismatch = compare(actual[key], ref, **kwargs)
        if mismatch is not None:
            problems.append(mismatch.message(f"{name}[{key!r}]"))
    if extra:
        problems.append(f"{name}: unexpected keys {extra}")
    if problems:
        raise AssertionError("\n".join(problems))


def assert_equal(actual: Any, expected: Any, name: str = "result") -> None:
    """Exact equality for plain Python values (ints, strings, booleans)."""
    _guard()
    if type(actual) is not type(expected) and not (
        isinstance(expected, int) and type(actual) is int
    ):
        raise AssertionError(
            f"{name}: expected a {type(expected).__name__} ({expected!r}), got {type(actual).__name__} "
            f"({actual!r}) (diagnosis: wrong_dtype)"
        )
    if actual != expected:
        raise AssertionError(f"{name}: expected {expected!r}, got {actual!r} (diagnosis: values)")


def assert_python_float(
    actual: Any,
    expected: float,
    name: str = "result",
    *,
    dtype: torch.dtype = torch.float64,
    magnitude: float = 1.0,
    steps: int = 1,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """``actual`` must be a Python float (not a tensor) close to ``expected``.

    ``dtype`` is the precision the value may have been computed in before ``.item()`` (a mean taken
    in float32 is as right as one in float64); the tolerance is :func:`tolerances` of it.
    """
    _guard()
    if isinstance(actual, torch.Tensor):
        raise AssertionError(
            f"{name}: expected a Python float, got a tensor; call .item() on it (diagnosis: wrong_dtype)"
        )
    if not isinstance(actual, float):
        raise AssertionError(
            f"{name}: expected a Python float, got {type(actual).__name__} (diagnosis: wrong_dtype)"
        )
    d_rtol, d_atol = tolerances(dtype, magnitude=magnitude, steps=steps, reference_scale=abs(expected))
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol * (1 + abs(expected)) if atol is None else atol
    if math.isnan(actual) or abs(actual - expected) > atol + rtol * abs(expected):
        tag = "values"
        if expected != 0 and abs(actual + expected) <= atol + rtol * abs(expected):
            tag = "sign"
        raise AssertionError(f"{name}: expected {expected!r}, got {actual!r} (diagnosis: {tag})")


def call(fn: Callable, *args, name: str | None = None, **kwargs):
    """Call a student function; turn "not written yet" and crashes into messages a student can act on."""
    label = name or getattr(fn, "__name__", "the function")
    _guard()
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise AssertionError(
            f"{label} is not written yet: {DIAGNOSES['not_implemented']} (diagnosis: not_implemented)"
        ) from exc
    except (AssertionError, TimeoutError):  # TimeoutError: time_limit's alarm, handled there
        raise
    except Exception as exc:  # the student's code crashed: say where, keep the traceback chained
        raise AssertionError(
            f"{label} raised {type(exc).__name__}: {exc} (diagnosis: crash)"
        ) from exc
    _guard()  # the student's function may have changed the state the test relies on
    return result


def grad_table(actual: Mapping[str, Any], expected: Mapping[str, torch.Tensor]) -> str:
    """A one-line-per-tensor comparison table: name, exact, close, max difference, relative error."""
    rows = [("name", "exact", "close", "max abs diff", "rel error")]
    for key, ref in expected.items():
        got = actual.get(key) if isinstance(actual, Mapping) else None
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            rows.append((key, "-", "-", f"shape {shape}", f"expected {tuple(ref.shape)}"))
            continue
        g = got.detach().to(torch.float64)
        r = ref.detach().to(torch.float64)
        diff = float((g - r).abs().max()) if r.numel() else 0.0
        denom = float(r.abs().max()) if r.numel() else 0.0
        rel = diff / denom if denom > 0 else diff
        close = compare(got, ref, dtype=got.dtype) is None
        exact = bool(torch.equal(g, r))
        rows.append((key, str(exact), str(close), f"{diff:.3e}", f"{rel:.3e}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def refuse_single_precision(label: str, inputs: tuple, what: str = "gradcheck") -> None:
    """Float32 inputs are refused up front: finite differences in float32 are too coarse for the
    default tolerances, so gradcheck (or gradgradcheck) would fail even for a correct backward."""
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != torch.float64:
            raise AssertionError(
                f"{what}({label}): input {i} is {x.dtype}; {what} needs float64 inputs because "
                "finite differences in single precision are too inaccurate (diagnosis: wrong_dtype)"
            )


def gradcheck_failure(label: str, text: str) -> AssertionError:
    """The message for a backward that disagrees with finite differences (gradcheck's own text, cut)."""
    text = text.strip()
    first = text.splitlines()[0] if text else "gradcheck failed"
    return AssertionError(
        f"gradcheck({label}): the backward disagrees with finite differences (diagnosis: values)\n"
        f"{first}\n{text[len(first):].strip()[:1500]}"
    )


def gradcheck(fn: Callable, inputs: tuple, name: str | None = None, **kwargs) -> bool:
    """``torch.autograd.gradcheck`` with a message a student can read; returns True or raises.

    Float32 inputs are refused up front (:func:`refuse_single_precision`). When the lab is graded the
    function lives in the student's kernel: :func:`backproplab.function_checks.gradcheck` makes the same
    comparison from the values it reports, with the same messages.
    """
    if remote.judging():
        from . import function_checks

        return function_checks.gradcheck(fn, inputs, name=name, **kwargs)
    label = name or getattr(fn, "__name__", None) or getattr(fn, "__qualname__", "function")
    refuse_single_precision(label, inputs)
    from torch.autograd.gradcheck import GradcheckError

    try:
        return bool(torch.autograd.gradcheck(fn, inputs, raise_exception=True, **kwargs))
    except NotImplementedError as exc:
        raise AssertionError(
            f"gradcheck({label}): {DIAGNOSES['not_implemented']} (diagnosis: not_implemented)"
        ) from exc
    except GradcheckError as exc:
        raise gradcheck_failure(label, str(exc)) from exc
    except RuntimeError as exc:
        raise AssertionError(f"gradcheck({label}) raised RuntimeError: {exc} (diagnosis: crash)") from exc


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "the function", hint: str = ""):
    """Fail with a readable message if the block runs longer than ``seconds`` (main thread only).

    Used around calls that loop until a condition holds, so that a student whose loop never
    stops gets "took longer than 10 s" instead of a grader timeout that costs every later cell.
    """
    if remote.judging():  # graded: the student's code runs in another process; the judge stops the call
        try:
            with remote._ACTIVE[-1].deadline(seconds, f"{what} took longer than {seconds:g} s"):
                yield
        except TimeoutError as exc:
            raise AssertionError(f"{exc}{'; ' + hint if hint else ''} (diagnosis: timeout)") from None
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except TimeoutError as exc:
        raise AssertionError(f"{exc}{'; ' + hint if hint else ''} (diagnosis: timeout)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
