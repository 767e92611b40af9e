"""Lab 4, "the engine learns": the checks behind the grade cells of ``Neuron``, ``Layer`` and ``MLP``.

The exercises are micrograd's ``nn`` API written on the student's own ``Value``. The checks read only
what the contract makes public: ``w``, ``b``, ``parameters()``, ``__call__`` and ``MLP.zero_grad()``.
Expected outputs and gradients are computed here, in float64 with ``torch``, from the parameters'
``.data`` laid out in the contract's order (layer by layer, each neuron's ``w`` then its ``b``); they
are never read from the student's classes.

The classes necessarily run on the student's ``Value``, whose forward parts are given and whose
backward rules and sweep the student writes. The forward values therefore never depend on the
student's rules; the gradients do, so when :func:`value_problem` finds the ``Value`` broken, the
gradient check only verifies that every parameter is connected to the output (what the class under
test controls) and says why. ``Layer`` and ``MLP`` are graded on their own when a part they are
built from is broken: they are checked again with a stand-in ``Neuron`` or ``Layer`` that records
how it is built and called (:func:`graded_with_stand_ins`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import checks, remote

__all__ = ["Layout", "value_problem", "parameters_of", "check_structure", "check_init", "check_random_module",
           "check_forward", "check_gradients", "check_zero_grad", "torch_forward", "quick_check",
           "check_layer_with_stand_ins", "check_mlp_with_stand_ins", "graded_with_stand_ins", "data_of", "set_data",
           "grads_of", "set_grads", "check_random_neuron"]


# --------------------------------------------------------------------------------------------
# Reading and writing many Values in one go (one request each when graded: the Values stay in the
# student's kernel). Observations only: the expected numbers are computed by the checks.
# --------------------------------------------------------------------------------------------


@remote.worker_side
def data_of(values: Sequence, missing: float | None = None) -> list[float]:
    """``[float(v.data) for v in values]``; an item without ``data`` is read as a number itself, or as
    ``missing`` when that is given."""
    return [float(getattr(v, "data", v if missing is None else missing)) for v in values]


@remote.worker_side
def set_data(values: Sequence, numbers: Sequence[float]) -> None:
    """``v.data = x`` for each Value and number, in order."""
    for v, x in zip(values, numbers, strict=True):
        v.data = x


@remote.worker_side
def grads_of(values: Sequence) -> list[float]:
    """``[float(v.grad) for v in values]``."""
    return [float(v.grad) for v in values]


@remote.worker_side
def set_grads(values: Sequence, numbers: Sequence[float] | float) -> None:
    """``v.grad = x`` for each Value (``numbers`` a list, or one number for all)."""
    if isinstance(numbers, (int, float)):
        numbers = [numbers] * len(values)
    for v, x in zip(values, numbers, strict=True):
        v.grad = x


@remote.worker_side
def _raw_grads(values: Sequence) -> list:
    return [v.grad for v in values]


@remote.worker_side
def _instances(items: Sequence, cls) -> list[bool]:
    return [isinstance(item, cls) for item in items]


@remote.worker_side
def _reached(outs: Sequence, targets: Sequence) -> list[bool]:
    """Whether each target is reachable from the outputs through ``_prev`` (a structural fact)."""
    reached, todo = set(), [o for o in outs if hasattr(o, "_prev")]
    reached.update(id(o) for o in todo)
    while todo:
        for parent in getattr(todo.pop(), "_prev", ()):
            if id(parent) not in reached:
                reached.add(id(parent))
                todo.append(parent)
    return [id(t) in reached for t in targets]


@dataclass(frozen=True)
class Layout:
    """Where each parameter sits in ``parameters()``: ``nin`` inputs, then layers of widths ``sizes``."""

    nin: int
    sizes: tuple[int, ...]

    @property
    def count(self) -> int:
        fan_in, total = self.nin, 0
        for nout in self.sizes:
            total += nout * (fan_in + 1)
            fan_in = nout
        return total

    def bias_positions(self) -> list[int]:
        fan_in, k, out = self.nin, 0, []
        for nout in self.sizes:
            for _ in range(nout):
                out.append(k + fan_in)
                k += fan_in + 1
            fan_in = nout
        return out

    def layer_of(self, position: int) -> int:
        fan_in, k = self.nin, 0
        for i, nout in enumerate(self.sizes):
            k += nout * (fan_in + 1)
            if position < k:
                return i
            fan_in = nout
        raise IndexError(position)


def torch_forward(theta: torch.Tensor, x: torch.Tensor, layout: Layout, relu_last: bool) -> torch.Tensor:
    """The network's outputs ``(sizes[-1],)`` from the flat parameter vector ``theta`` (float64)."""
    h, k, fan_in = x, 0, layout.nin
    for i, nout in enumerate(layout.sizes):
        block = theta[k:k + nout * (fan_in + 1)].view(nout, fan_in + 1)  # each row: w, then b
        h = block[:, :fan_in] @ h + block[:, fan_in]  # (nout,)
        if i < len(layout.sizes) - 1 or relu_last:
            h = torch.relu(h)
        k += nout * (fan_in + 1)
        fan_in = nout
    return h


# --------------------------------------------------------------------------------------------
# The student's Value, as far as these checks need it
# --------------------------------------------------------------------------------------------


@remote.worker_side
def _value_probe(Value) -> dict:
    """Observations of a small expression on the student's ``Value``, made next to it in one go: the
    output's data (and its repr), then the leaves' grads after ``backward()``, or what raised. No verdict."""
    try:
        a, b, c = Value(2.0), Value(-3.0), Value(0.5)
        y = (a * b + c).relu() + (a * c + 1.0).relu() + 0.0 + 2.0 * b  # relu(-5.5) + relu(2.0) + 2 b
        seen: dict = {"data": float(y.data), "shown": repr(y.data)}
    except NotImplementedError:
        return {"problem": "part of it still raises NotImplementedError"}
    except Exception as exc:  # noqa: BLE001 - any failure is reported in words
        return {"problem": f"a small expression with +, * and relu raised {type(exc).__name__}: {exc}"}
    try:
        y.backward()
        seen["grads"] = [float(a.grad), float(b.grad), float(c.grad)]
    except NotImplementedError:
        seen["after"] = "part of it still raises NotImplementedError"
    except Exception as exc:  # noqa: BLE001
        seen["after"] = f"a small expression with +, * and relu raised {type(exc).__name__}: {exc}"
    return seen


def value_problem(Value) -> str | None:
    """None when ``+``, ``*``, ``relu``, ``number + Value``, ``number * Value`` and ``backward()`` work."""
    seen = _value_probe(Value)
    if "problem" in seen:
        return str(seen["problem"])
    if not checks.close(seen["data"], -4.0):  # Python floats: float64
        return (f"(a * b + c).relu() + (a * c + 1).relu() + 2 * b gives {seen['shown']} at a=2, b=-3, c=0.5, "
                "not -4.0")
    if "after" in seen:
        return str(seen["after"])
    if not checks.close(seen["grads"], [0.5, 2.0, 2.0]):
        return f"its gradients are {seen['grads']}, expected [0.5, 2.0, 2.0] (a * b and a * c, relu, + and backward())"
    return None


def check_structure(obj, Value, layout: Layout, what: str) -> list:
    """The parameters of a freshly built object: count, types, start values; returns them."""
    params = parameters_of(obj, Value, what, layout)
    check_init(params, layout, what)
    return params


def parameters_of(obj, Value, what: str, layout: Layout) -> list:
    """``obj.parameters()`` checked: a list of ``layout.count`` distinct ``Value``s."""
    params = checks.call(obj.parameters)
    if not isinstance(params, (list, tuple)):
        raise AssertionError(f"{what}.parameters() must return a list of Values, got {type(params).__name__} "
                             "(diagnosis: wrong_return)")
    params = list(params)
    if len(params) != layout.count:
        missing = layout.count - len(params)
        hint = ""
        if missing == len(layout.bias_positions()):
            hint = ": exactly one per neuron is missing; is each neuron's bias b in its parameters()?"
            tag = "bias_not_in_parameters"
        else:
            tag = "parameter_count"
        raise AssertionError(f"{what}.parameters() has {len(params)} entries, expected {layout.count} (each neuron "
                             f"has one weight per input and one bias){hint} (diagnosis: {tag})")
    kinds = _instances(params, Value)
    wrong = [i for i, ok in enumerate(kinds) if not ok]
    if wrong:
        raise AssertionError(f"{what}.parameters()[{wrong[0]}] is a {type(params[wrong[0]]).__name__}, expected one "
                             "of your Values (diagnosis: wrong_return)")
    if len({id(p) for p in params}) != len(params):
        raise AssertionError(f"{what}.parameters() lists the same Value twice; each weight and bias is its own Value "
                             "(diagnosis: parameter_count)")
    return params


def check_init(params: Sequence, layout: Layout, what: str) -> None:
    """Weights in [-1, 1], biases exactly 0."""
    biases = set(layout.bias_positions())
    data = data_of(params)
    nonzero = [i for i in sorted(biases) if data[i] != 0.0]
    if nonzero:
        raise AssertionError(f"{what}: a bias starts at {data[nonzero[0]]!r}; biases start at 0, and in "
                             "parameters() each neuron's bias comes after its weights (diagnosis: bias_init)")
    outside = [d for i, d in enumerate(data) if i not in biases and not -1.0 <= d <= 1.0]
    if outside:
        raise AssertionError(f"{what}: a weight starts at {outside[0]!r}, outside [-1, 1]; draw each weight "
                             "uniformly from [-1, 1] (diagnosis: init_range)")


def check_random_module(build, what: str) -> None:
    """Weights drawn from ``random``: the same seed gives the same weights whatever torch's state is,
    another seed gives other weights, and many draws spread over [-1, 1] around 0.

    ``build()`` returns the weights (floats) of a freshly built object. The caller's ``random`` state
    is restored afterwards, so the notebook's own draws are not disturbed.
    """
    _judge_draws(*_draws(build), what)


def _draws(build) -> tuple[list, list, list, list]:
    state, torch_state = random.getstate(), torch.get_rng_state()
    try:
        random.seed(4120)
        torch.manual_seed(1)
        first = build()
        random.seed(4120)
        torch.manual_seed(2)
        again = build()
        random.seed(4121)
        other = build()
        spread = []
        random.seed(4122)
        while len(spread) < 400:
            spread += build()
    finally:
        random.setstate(state)
        torch.set_rng_state(torch_state)
    return first, again, other, spread


@remote.worker_side
def _neuron_draws(Neuron, args: Sequence, kwargs: dict) -> tuple[list, list, list, list]:
    """:func:`_draws` of ``Neuron(*args, **kwargs).w``'s data, seeded where the student's code draws."""
    return _draws(lambda: [float(w.data) for w in Neuron(*args, **kwargs).w])


def check_random_neuron(Neuron, what: str, *args, **kwargs) -> None:
    """:func:`check_random_module` on the weights ``w`` of ``Neuron(*args, **kwargs)``: the seeds are set in
    the process where the student's ``Neuron`` draws them (the student's kernel, when graded)."""
    _judge_draws(*_neuron_draws(Neuron, list(args), dict(kwargs)), what)


def _judge_draws(first: list, again: list, other: list, spread: list, what: str) -> None:
    if first != again:
        raise AssertionError(f"{what}: after random.seed(4120) twice, the initial weights differ; draw them from "
                             "Python's `random` module (random.uniform(-1, 1)), not from torch or numpy "
                             "(diagnosis: not_random_module)")
    if first == other:
        raise AssertionError(f"{what}: random.seed(4120) and random.seed(4121) give the same weights; draw each "
                             "weight at random (diagnosis: not_random_module)")
    n = len(spread)
    mean = sum(spread) / n
    negative = sum(v < 0 for v in spread) / n
    if min(spread) > -0.9 or max(spread) < 0.9 or abs(mean) > 0.15 or not 0.35 < negative < 0.65:
        raise AssertionError(f"{what}: {n} initial weights range over [{min(spread):.2f}, {max(spread):.2f}] with "
                             f"mean {mean:.2f}; they should be uniform on [-1, 1] (diagnosis: init_range)")


# --------------------------------------------------------------------------------------------
# Forward and gradients against torch, from the parameters' data
# --------------------------------------------------------------------------------------------


def _as_list(out, nout: int, what: str) -> list:
    """The outputs as a list: a single Value when ``nout == 1``, a list of ``nout`` otherwise."""
    if nout == 1:
        if isinstance(out, (list, tuple)):
            raise AssertionError(f"{what} returned a list of {len(out)} for a single output; when there is one "
                                 "output, return that Value itself, not a list (diagnosis: single_output)")
        return [out]
    if not isinstance(out, (list, tuple)) or len(out) != nout:
        got = f"a list of {len(out)}" if isinstance(out, (list, tuple)) else type(out).__name__
        raise AssertionError(f"{what} returned {got}, expected a list of {nout} Values (diagnosis: wrong_return)")
    return list(out)


@remote.worker_side
def _observe_forward(model, x: Sequence, params: Sequence) -> dict:
    """``model(x)`` next to the student's objects, with the data of its outputs, of ``x`` and of the
    parameters (one request when graded), or how the call failed. Observations only."""
    try:
        out = model(x)
    except NotImplementedError:
        return {"raised": "not_implemented"}
    except Exception as exc:  # noqa: BLE001 - reported by the check, in words
        return {"raised": f"{type(exc).__name__}: {exc}"}
    seen = {"out": out, "x": data_of(x), "theta": data_of(params)}
    try:  # a .data that is not a number: read again by the check, after the output's shape is judged
        seen["data"] = data_of(out if isinstance(out, (list, tuple)) else [out], math.nan)
    except Exception:  # noqa: BLE001
        seen["data"] = None
    return seen


def check_forward(model, params: Sequence, layout: Layout, x: Sequence, relu_last: bool, what: str,
                  hint: str = "") -> list:
    """``model(x)`` against the outputs computed from the parameters' data; returns the outputs."""
    seen = _observe_forward(model, x, params)
    if seen.get("raised") == "not_implemented":
        raise AssertionError(f"{what}: __call__ is not written yet (diagnosis: not_implemented)")
    if "raised" in seen:
        raise AssertionError(f"{what} raised {seen['raised']} (diagnosis: crash)")
    outs = _as_list(seen["out"], layout.sizes[-1], what)
    got = seen["data"] if seen["data"] is not None else data_of(outs, math.nan)
    xs = torch.tensor(seen["x"], dtype=torch.float64)
    theta = torch.tensor(seen["theta"], dtype=torch.float64)
    want = torch_forward(theta, xs, layout, relu_last).tolist()
    # Python floats (float64) against torch's float64 matmul: another summation order, the same rule
    if checks.close(got, want):
        return outs
    other = torch_forward(theta, xs, layout, not relu_last).tolist()
    close_other = checks.close(got, other)
    shown = f"got {[round(g, 6) for g in got]}, expected {[round(w, 6) for w in want]}"
    if close_other and relu_last:
        raise AssertionError(f"{what}: {shown}: the last step lacks relu (diagnosis: missing_relu)")
    if close_other and len(layout.sizes) > 1:
        raise AssertionError(f"{what}: {shown}: relu is applied to the last layer too; the last layer of an MLP is "
                             "linear (nonlin=False), so that scores can be negative (diagnosis: relu_last_layer)")
    if close_other:
        raise AssertionError(f"{what}: {shown}: relu is applied although nonlin=False asks for the affine value"
                             f"{hint} (diagnosis: nonlin_ignored)")
    theta = theta.clone()
    theta[layout.bias_positions()] = 0.0
    if checks.close(got, torch_forward(theta, xs, layout, relu_last).tolist()):
        raise AssertionError(f"{what}: {shown}: the bias b is not added (diagnosis: bias_ignored)")
    raise AssertionError(f"{what}: {shown}. The expected values are computed from parameters() read in order, layer "
                         "by layer, each neuron's weights w then its bias b (diagnosis: forward)")


@remote.worker_side
def _call_on_values(model, Value, x: Sequence[float], params: Sequence) -> dict:
    """``model([Value(v) for v in x])`` next to the student's objects: the output, the input Values,
    whether each parameter and input is reachable from the output through ``_prev``, and the
    parameters' data."""
    xv = [Value(float(v)) for v in x]
    out = model(xv)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return {"out": out, "xv": xv, "reached": _reached(outs, list(params) + xv), "theta": data_of(params)}


@remote.worker_side
def _backward_grads(outs: Sequence, coef: Sequence[float], params: Sequence, xv: Sequence) -> dict:
    """Zero the parameters' grads, ``backward()`` from ``sum_k c_k * out_k ** 2`` built with the student's
    operators, then the grads of the parameters and inputs (observations, one request when graded)."""
    set_grads(params, 0.0)
    loss = outs[0] * outs[0] * coef[0]
    for o, c in zip(outs[1:], coef[1:]):
        loss = loss + o * o * c
    loss.backward()
    return {"params": grads_of(params), "inputs": grads_of(xv)}


def check_gradients(model, params: Sequence, layout: Layout, Value, x: Sequence[float], relu_last: bool,
                    what: str, seed: int) -> None:
    """Gradients of ``sum_k c_k o_k^2`` (and of the inputs, given as Values) against torch, float64.

    The graph must connect every parameter and input to the outputs. When the student's ``Value`` is
    not right yet, that is all that is checked (the numbers would test the Value, graded elsewhere).
    """
    rng = random.Random(seed)
    coef = [rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) for _ in range(layout.sizes[-1])]
    called = _call_on_values(model, Value, [float(v) for v in x], params)
    outs = _as_list(called["out"], layout.sizes[-1], what)
    _check_connected(len(params), len(x), called["reached"], what)
    problem = value_problem(Value)
    if problem is not None:  # the rules are graded in the Value cells: here, only the graph's shape
        print(f"{what}: your Value is not right yet ({problem}), so its gradients were not compared with "
              "torch; every parameter and input is connected to the output, which is what this class controls.")
        return
    grads = _backward_grads(outs, coef, params, called["xv"])

    theta = torch.tensor(called["theta"], dtype=torch.float64, requires_grad=True)
    xt = torch.tensor([float(v) for v in x], dtype=torch.float64, requires_grad=True)
    o = torch_forward(theta, xt, layout, relu_last)
    ref = (torch.tensor(coef, dtype=torch.float64) * o * o).sum()
    g_theta, g_x = torch.autograd.grad(ref, (theta, xt))
    got = grads["params"]
    # Python floats (float64), one number at a time so that the first wrong parameter can be named
    bad = [i for i, (g, w) in enumerate(zip(got, g_theta.tolist())) if not checks.close(g, w)]
    if bad:
        i = bad[0]
        raise AssertionError(f"{what}: after loss.backward() with loss = sum_k c_k * out_k ** 2, parameters()[{i}] "
                             f"(layer {layout.layer_of(i)}) has grad {got[i]:.8g}, torch says {g_theta[i].item():.8g}; "
                             f"{len(bad)} of {len(got)} parameters differ (diagnosis: values)")
    gx = grads["inputs"]
    bad = [i for i, (g, w) in enumerate(zip(gx, g_x.tolist())) if not checks.close(g, w)]
    if bad:
        raise AssertionError(f"{what}: the input x[{bad[0]}], given as a Value, has grad {gx[bad[0]]:.8g}, torch says "
                             f"{g_x[bad[0]].item():.8g}: inputs given as Values must receive gradients too "
                             "(diagnosis: values)")


def _check_connected(n_params: int, n_inputs: int, reached: Sequence[bool], what: str) -> None:
    """Every parameter and every input Value is reachable from the outputs (``reached``: parameters
    first, then inputs, as :func:`_reached` answers)."""
    cut = [f"parameters()[{k}]" for k in range(n_params) if not reached[k]]
    cut += [f"the input x[{k}]" for k in range(n_inputs) if not reached[n_params + k]]
    if cut:
        raise AssertionError(f"{what}: {cut[0]} is not part of the output's graph ({len(cut)} such Values), so no "
                             "gradient can reach it: compute the output with Value operations on the parameters "
                             "themselves, not on their .data (diagnosis: graph_broken)")


def check_zero_grad(model, params: Sequence, layout: Layout, what: str) -> None:
    """``zero_grad()`` sets every parameter's grad to 0."""
    set_grads(params, [1.0 + 0.5 * (k % 3) for k in range(len(params))])
    checks.call(model.zero_grad)
    left = [k for k, g in enumerate(_raw_grads(params)) if g != 0]
    if left:
        layers = sorted({layout.layer_of(k) for k in left})
        raise AssertionError(f"{what}: after zero_grad(), {len(left)} of {len(params)} parameters still hold a "
                             f"gradient (in layer(s) {layers}); every parameter of every layer must be reset to 0 "
                             "(diagnosis: zero_grad_incomplete)")


def quick_check(cls, Value, nin: int, sizes: tuple[int, ...]) -> None:
    """A short check of ``Neuron`` (``sizes == ()``) or ``Layer`` (``sizes == (nout,)``): structure and
    one forward pass with relu and without. Used by the next class's cells to tell whether the part
    they are built from is usable."""
    rng = random.Random(4123)
    for nonlin, args in [(True, (nin, *sizes)), (False, (nin, *sizes)), (True, (nin, 1)[:len(sizes) + 1])]:
        layout = Layout(nin, tuple(args[1:]) or (1,))
        what = f"{cls.__name__}{args}" if nonlin else f"{cls.__name__}{args} with nonlin=False"
        obj = checks.call(cls, *args, nonlin=nonlin)
        params = check_structure(obj, Value, layout, what)
        biases = set(layout.bias_positions())
        # at x = 0, relu and affine differ
        set_data(params, [-0.5 if k in biases else rng.uniform(-1.0, 1.0) for k in range(len(params))])
        for x in ([0.0] * nin, [rng.uniform(-2, 2) for _ in range(nin)]):
            check_forward(obj, params, layout, x, nonlin, what)


# --------------------------------------------------------------------------------------------
# Stand-ins: grading Layer without the student's Neuron, and MLP without the student's Layer
# --------------------------------------------------------------------------------------------
# A stand-in is not a neuron or a layer: it computes nothing. It records how it was built and
# called, and returns fresh marker Values, so that the checks below see exactly what the class under
# test does with its parts: how many it builds, with which arguments, in which order it lists their
# parameters, what it passes to each and what it returns. The student's Value is used only as a
# container (``Value(number)`` and its ``grad``), never for arithmetic.


@remote.worker_side
def _stand_in(Value, kind: str):
    """The stand-in class, made next to the class under test (in the student's kernel when graded)."""
    made: list = []

    class StandIn:
        def __init__(self, nin, *args, **kwargs):
            self.nin, self.args, self.kwargs = nin, args, kwargs
            self.nout = args[0] if kind == "Layer" and args else None
            width = 1 if kind == "Neuron" else (self.nout or 0)
            self.params = [Value(0.001 * (len(made) + 1) + 0.01 * k) for k in range(width * (nin + 1))]
            self.calls, self.outputs = [], []
            made.append(self)

        def nonlin(self):
            extra = self.args[1:] if kind == "Layer" else self.args
            return self.kwargs.get("nonlin", extra[0] if extra else True)

        def __call__(self, x):
            self.calls.append(x)
            outs = [Value(float(len(self.outputs) + 1)) for _ in range(1 if kind == "Neuron" else self.nout)]
            out = outs[0] if len(outs) == 1 else outs
            self.outputs.append(out)
            return out

        def parameters(self):
            return list(self.params)

    StandIn.__name__ = StandIn.__qualname__ = f"StandIn{kind}"
    StandIn.made = made
    return StandIn


@remote.worker_side
def _made(StandIn) -> list:
    """The stand-ins built since the last :func:`_clear_made`, in order."""
    return list(StandIn.made)


@remote.worker_side
def _call_recorded(StandIn, model, x):
    """``model(x)``, the result also kept for :func:`_result_is_last_output`."""
    StandIn.result = model(x)
    return StandIn.result


@remote.worker_side
def _result_is_last_output(StandIn) -> bool:
    """Whether the recorded result is the very object the last stand-in returned (a structural fact)."""
    return StandIn.result is StandIn.made[-1].outputs[0]


@remote.worker_side
def _clear_made(StandIn) -> None:
    StandIn.made.clear()


def _namespace_of(obj) -> dict:
    """The namespace the student's class looks its names up in (a method's globals)."""
    for cand in [obj, *vars(obj).values()] if isinstance(obj, type) else [obj]:
        fn = getattr(cand, "__func__", cand)
        ns = getattr(fn, "__globals__", None) if callable(fn) else None
        if type(ns) is dict:
            return ns
    return remote._namespace()


@remote.worker_side
def _swap_global(owner, name: str, value):
    """Bind ``name`` to ``value`` where ``owner`` (the class under test) looks it up; the previous binding."""
    ns = _namespace_of(owner)
    previous = ns.get(name)
    ns[name] = value
    return previous


class _swapped:
    """Bind ``namespace[name]`` to ``value`` for the duration of a ``with`` block, then restore it."""

    def __init__(self, namespace, name, value, owner=None):
        self.namespace, self.name, self.value, self.owner = namespace, name, value, owner

    def __enter__(self):
        if remote.judging() and self.owner is not None:  # the class under test is in the student's kernel
            self.saved = _swap_global(self.owner, self.name, self.value)
            return
        self.saved = self.namespace.get(self.name)
        self.namespace[self.name] = self.value

    def __exit__(self, *exc):
        if remote.judging() and self.owner is not None:
            _swap_global(self.owner, self.name, self.saved)
            return False
        self.namespace[self.name] = self.saved
        return False


def _same_items(got, want) -> bool:
    return isinstance(got, (list, tuple)) and len(got) == len(want) and all(a is b for a, b in zip(got, want))


def _check_parameters_concatenated(obj, parts, what: str) -> None:
    params = checks.call(obj.parameters)
    want = [p for part in parts for p in part.params]
    if not isinstance(params, (list, tuple)) or len(params) != len(want):
        n = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
        raise AssertionError(f"{what}.parameters() has {n} entries, expected the {len(want)} parameters of its "
                             "parts (diagnosis: parameter_count)")
    if not _same_items(params, want):
        raise AssertionError(f"{what}.parameters() must list the parameters of its first part, then of the second, "
                             "..., in order (diagnosis: parameter_order)")


def check_layer_with_stand_ins(Layer, Value, namespace) -> None:
    """Layer's own job, with ``Neuron`` replaced by a stand-in: nout neurons built with nin and the
    keyword arguments, each called once on x, outputs returned in order (the single one when nout == 1),
    parameters concatenated in order."""
    StandIn = _stand_in(Value, "Neuron")
    with _swapped(namespace, "Neuron", StandIn, owner=Layer):
        for nin, nout, kwargs in [(3, 4, {}), (2, 1, {}), (3, 2, {"nonlin": False}), (1, 3, {"nonlin": True})]:
            what = f"Layer({nin}, {nout}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
            _clear_made(StandIn)
            layer = checks.call(Layer, nin, nout, **kwargs)
            made = _made(StandIn)
            if len(made) != nout or any(n.nin != nin for n in made):
                raise AssertionError(f"{what} built {len(made)} Neuron(s) with inputs {[n.nin for n in made]}, expected "
                                     f"{nout} of Neuron({nin}, ...) (diagnosis: parameter_count)")
            if any(n.nonlin() != kwargs.get("nonlin", True) for n in made):
                raise AssertionError(f"{what}: its neurons were built with nonlin={made[0].nonlin()}; Layer passes its "
                                     "keyword arguments on to each Neuron (diagnosis: nonlin_ignored)")
            _check_parameters_concatenated(layer, made, what)
            x = [0.5 * (i + 1) for i in range(nin)]
            try:
                out = layer(x)
            except NotImplementedError as exc:
                raise AssertionError(f"{what}: __call__ is not written yet (diagnosis: not_implemented)") from exc
            if any(len(n.calls) != 1 for n in made):
                raise AssertionError(f"{what}(x) called its neurons {[len(n.calls) for n in made]} times; each neuron "
                                     "is called once on x (diagnosis: forward)")
            if any([float(getattr(v, "data", v)) for v in n.calls[0]] != x for n in made):
                raise AssertionError(f"{what}(x) did not pass x to every neuron (diagnosis: forward)")
            outs = [n.outputs[0] for n in made]
            if nout == 1 and out is not outs[0]:
                _as_list(out, 1, what)  # a list of one: named
                raise AssertionError(f"{what}(x) must return its neuron's output (diagnosis: wrong_return)")
            if nout > 1 and not _same_items(out, outs):
                raise AssertionError(f"{what}(x) must return the list of its neurons' outputs, in order "
                                     "(diagnosis: wrong_return)")


def check_mlp_with_stand_ins(MLP, Value, namespace) -> None:
    """MLP's own job, with ``Layer`` replaced by a stand-in: layers of the right sizes, relu on all but
    the last, each fed the previous one's output, parameters in layer order, zero_grad on all of them."""
    StandIn = _stand_in(Value, "Layer")
    with _swapped(namespace, "Layer", StandIn, owner=MLP):
        for nin, nouts in [(2, [4, 4, 1]), (3, [5, 2]), (2, [1])]:
            what = f"MLP({nin}, {nouts})"
            _clear_made(StandIn)
            mlp = checks.call(MLP, nin, list(nouts))
            made = _made(StandIn)
            shapes = [(n.nin, n.nout) for n in made]
            sizes = [nin, *nouts]
            if shapes != list(zip(sizes[:-1], sizes[1:])):
                raise AssertionError(f"{what} built layers of (inputs, outputs) {shapes}, expected "
                                     f"{list(zip(sizes[:-1], sizes[1:]))} (diagnosis: parameter_count)")
            flags = [n.nonlin() for n in made]
            if flags[-1]:
                raise AssertionError(f"{what}: the last layer is built with relu (nonlin={flags[-1]}); the last layer of "
                                     "an MLP is linear, Layer(..., nonlin=False) (diagnosis: relu_last_layer)")
            if not all(flags[:-1]):
                raise AssertionError(f"{what}: hidden layers built with nonlin={flags[:-1]}; every layer but the last "
                                     "applies relu (diagnosis: missing_relu)")
            _check_parameters_concatenated(mlp, made, what)
            x = [0.25 * (i + 1) for i in range(nin)]
            try:
                _call_recorded(StandIn, mlp, x)
            except NotImplementedError as exc:
                raise AssertionError(f"{what}: __call__ is not written yet (diagnosis: not_implemented)") from exc
            if any(len(n.calls) != 1 for n in made):
                raise AssertionError(f"{what}(x) called its layers {[len(n.calls) for n in made]} times; each layer is "
                                     "called once (diagnosis: forward)")
            if [float(getattr(v, "data", v)) for v in made[0].calls[0]] != x:
                raise AssertionError(f"{what}(x) did not pass x to the first layer (diagnosis: forward)")
            for i in range(1, len(made)):
                given, previous = made[i].calls[0], made[i - 1].outputs[0]
                if not (given is previous or _same_items(given, previous)):
                    raise AssertionError(f"{what}(x): layer {i} was not given the output of layer {i - 1}; chain the "
                                         "layers (diagnosis: forward)")
            if not _result_is_last_output(StandIn):  # the very object (a list travels by value when graded)
                raise AssertionError(f"{what}(x) must return the last layer's output (diagnosis: wrong_return)")
            params = [n.params for n in made]
            set_grads([p for ps in params for p in ps], [1.0 + k for k in range(sum(len(ps) for ps in params))])
            checks.call(mlp.zero_grad)
            left = sorted({i for i, ps in enumerate(params) for g in _raw_grads(ps) if g != 0})
            if left:
                raise AssertionError(f"{what}: after zero_grad(), parameters of layer(s) {left} still hold a gradient "
                                     "(diagnosis: zero_grad_incomplete)")


def graded_with_stand_ins(real, part_check, stand_in, what: str, part: str) -> None:
    """Run the ``real`` checks (on the student's own parts). If they fail and the ``part`` the class is
    built from is not right (``part_check`` fails), grade the class on ``stand_in`` instead, so that a
    broken part costs its own points only."""
    try:
        real()
        return
    except AssertionError as exc:
        failure = exc
    try:
        part_check()
    except AssertionError as part_exc:
        stand_in()
        first = re.sub(r"\s*\(diagnosis: \w+\)", "", str(part_exc).splitlines()[0])
        print(f"{what} is right: it was checked with a stand-in for your {part}, which is not right yet ({first}).")
        return
    raise failure
