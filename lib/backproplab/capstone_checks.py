"""Stand-ins and references for lab 6's grade cells (the capstone network and its training loop).

Each capstone exercise is graded on its own: while one is judged, the notebook's other pieces
(``LinearFunction``, ``Tanh``, ``SoftmaxCrossEntropy``, ``xavier_init``, ``adam_step``) are swapped for
stand-ins built here (see :func:`backproplab.function_checks.substituted`). The stand-ins know no
hand-written formula: gradients come from ``torch.autograd`` on built-in operations and the Adam
step from ``torch.optim.Adam`` itself. They also *record* how they are used, so a test can say
"the loss was never computed with SoftmaxCrossEntropy" or "a new Adam state was started".
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backproplab import checks, function_checks, remote

__all__ = [
    "AdamRecord",
    "LossRecord",
    "InitRecord",
    "adam_with_torch",
    "recording_adam",
    "recording_loss",
    "recording_init",
    "params_by_shape",
    "layer_shapes",
    "chain_logits",
    "builtin_mlp",
    "torch_adam_losses",
    "class_blobs",
    "parameters_of",
    "call_watching_rng",
    "build_capstone",
    "capstone_forward",
    "ModelRun",
    "run_with_model",
]


def adam_with_torch(w: torch.Tensor, g: torch.Tensor, state: dict, lr: float = 1e-3,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> tuple[torch.Tensor, dict]:
    """One step of ``torch.optim.Adam`` in ``adam_step``'s calling convention (``state`` ``{}`` or t, m, v)."""
    p = nn.Parameter(w.detach().clone())
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    if state:
        opt.state[p] = {"step": torch.tensor(float(state["t"])),
                        "exp_avg": state["m"].detach().clone(), "exp_avg_sq": state["v"].detach().clone()}
    p.grad = g.detach().clone()
    opt.step()
    s = opt.state[p]
    return p.detach().clone(), {"t": int(s["step"]), "m": s["exp_avg"].clone(), "v": s["exp_avg_sq"].clone()}


@dataclass
class AdamRecord:
    """What a recording ``adam_step`` saw: one entry per call."""

    steps: list[int] = field(default_factory=list)  # the 't' of the state after each call
    lrs: list[float] = field(default_factory=list)
    fresh: int = 0  # calls that started from an empty state


def recording_adam() -> tuple[Any, AdamRecord]:
    """An ``adam_step`` stand-in (torch.optim.Adam underneath) and the record of its calls."""
    record = AdamRecord()

    def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if not state:
            record.fresh += 1
        new_w, new_state = adam_with_torch(w, g, state, lr=lr, betas=betas, eps=eps)
        record.steps.append(new_state["t"])
        record.lrs.append(float(lr))
        return new_w, new_state

    return adam_step, record


@dataclass
class LossRecord:
    """Loss values whose backward was called (the training losses), in order."""

    values: list[float] = field(default_factory=list)
    calls: int = 0  # every forward, with or without backward


def recording_loss() -> tuple[type, LossRecord]:
    """A ``SoftmaxCrossEntropy`` stand-in (``F.cross_entropy`` underneath) recording each trained loss."""
    record = LossRecord()

    def forward(ctx, logits, target):
        record.calls += 1
        ctx.save_for_backward(logits, target)
        loss = F.cross_entropy(logits, target)
        ctx.value = float(loss)
        return loss

    def backward(ctx, grad_output):
        logits, target = ctx.saved_tensors
        record.values.append(ctx.value)
        with torch.enable_grad():
            leaf = logits.detach().requires_grad_()
            (grad,) = torch.autograd.grad(F.cross_entropy(leaf, target), leaf, grad_output)
        return grad, None

    cls = type("SoftmaxCrossEntropy", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward),
        "__doc__": "Reference loss that records the values it was trained on."})
    return cls, record


@dataclass
class InitRecord:
    """Calls of a recording ``xavier_init``: (fan_in, fan_out, generator, tensor returned).

    :func:`build_capstone` answers the calls with the generator replaced by whether it was the one
    given to the network (an object of the student's kernel cannot be compared with the grader's)."""

    calls: list[tuple[int, int, Any, torch.Tensor]] = field(default_factory=list)

    def source_of(self, w: torch.Tensor) -> tuple[int, int, Any] | None:
        """The call whose result ``w`` holds (as returned, or transposed), if any."""
        w = remote.plain(w).detach()
        for fan_in, fan_out, gen, made in self.calls:
            for cand in (made, made.T):
                if cand.shape == w.shape and torch.equal(cand.to(w.dtype), w):
                    return fan_in, fan_out, gen
        return None


def recording_init() -> tuple[Any, InitRecord]:
    """An ``xavier_init`` stand-in returning distinctive random weights, and the record of its calls.

    The values are plain normal draws (the distribution is ``xavier_init``'s own test's business);
    what matters is that each weight of a network can be traced back to one call.
    """
    record = InitRecord()

    def xavier_init(fan_in, fan_out, generator=None):
        w = torch.randn(int(fan_out), int(fan_in), generator=generator) * 0.5 + 0.1
        record.calls.append((int(fan_in), int(fan_out), generator, w.clone()))
        return w

    return xavier_init, record


def layer_shapes(sizes: Sequence[int]) -> tuple[list[tuple[int, int]], list[tuple[int]]]:
    """Weight shapes ``(out, in)`` and bias shapes ``(out,)`` of a network with these layer sizes."""
    weights = [(n_out, n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return weights, [(n_out,) for n_out, _ in weights]


def params_by_shape(model: nn.Module | Sequence[torch.Tensor], sizes: Sequence[int], name: str = "the model"):
    """``(weights, biases)``: the model's parameters (or the list of them given) found by shape, layer by layer.

    ``sizes`` must give every weight and bias a distinct shape (the tests choose such sizes), so the
    order and names the student chose do not matter.
    """
    w_shapes, b_shapes = layer_shapes(sizes)
    params = list(model) if isinstance(model, (list, tuple)) else [p for p in model.parameters()]
    got = sorted(tuple(p.shape) for p in params)
    want = sorted(w_shapes + b_shapes)
    if got != want:
        raise AssertionError(
            f"{name} has parameters of shapes {got}, expected exactly {want} (one weight (out, in) and one "
            "bias (out,) per layer, registered as nn.Parameter, for instance in an nn.ParameterList) "
            "(diagnosis: wrong_parameters)")
    by_shape = {tuple(p.shape): p for p in params}
    return [by_shape[s] for s in w_shapes], [by_shape[s] for s in b_shapes]


def chain_logits(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Reference forward: linear layers with tanh between them, built-in operations only."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i:
            h = torch.tanh(h)
        h = F.linear(h, w, b)
    return h


def builtin_mlp(sizes: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A tanh network made of ``nn.Linear`` layers with seeded weights (a model the test owns)."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.Tanh())
        lin = nn.Linear(n_in, n_out)
        with torch.no_grad():
            bound = (6 / (n_in + n_out)) ** 0.5
            lin.weight.copy_(torch.rand(n_out, n_in, generator=gen) * 2 * bound - bound)
            lin.bias.copy_(torch.randn(n_out, generator=gen) * 0.1)
        layers.append(lin)
    return nn.Sequential(*layers).to(dtype)


def torch_adam_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, nb_steps: int,
                      lr: float) -> tuple[list[float], list[float]]:
    """Full-batch training of a copy of ``model`` with ``torch.optim.Adam`` and ``F.cross_entropy``.

    Returns the losses recorded before each update and after each update (``nb_steps`` each).
    """
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    before = []
    for _ in range(nb_steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        before.append(loss.item())
    with torch.no_grad():
        last = F.cross_entropy(model(x), y).item()
    return before, before[1:] + [last]


def class_blobs(n: int, dim: int, nb_classes: int, seed: int = 0, spread: float = 0.6,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points around ``nb_classes`` random centres in ``dim`` dimensions; labels cycle 0..K-1."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(nb_classes, dim, generator=gen, dtype=torch.float64)
    y = torch.arange(n) % nb_classes
    x = centres[y] + spread * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return x.to(dtype), y


# -- next to the student's code: build, swap in, call, observe ---------------------------------------

def parameters_of(model: nn.Module) -> list[torch.Tensor]:
    """Copies of the model's parameter values, in order (what :func:`run_with_model` rebuilds it from)."""
    return [p.detach().clone() for p in model.parameters()]


def _namespace_of(obj: Any) -> dict:
    """The namespace the student's object looks its names up in: the notebook's, on the desk and in the
    student's kernel alike (a function's globals; for a class, those of one of its methods)."""
    if isinstance(obj, type):  # the methods the class itself defines (not inherited, not borrowed)
        module = getattr(obj, "__module__", None)
        candidates = [getattr(v, "__func__", v) for v in vars(obj).values()]
        candidates = [f for f in candidates if inspect.isfunction(f) and f.__module__ == module]
    else:
        candidates = [obj]
    for cand in candidates:
        try:
            fn = inspect.unwrap(cand)  # a decorated function: the student's own, inside
        except ValueError:
            fn = cand
        ns = getattr(fn, "__globals__", None) if inspect.isfunction(fn) else None
        if type(ns) is dict:
            return ns
    return remote._namespace()


@contextlib.contextmanager
def _swapped(owner: Any, replacements: dict[str, Any]) -> Iterator[None]:
    with function_checks.substituted(_namespace_of(owner), **replacements):
        yield


def _stand_ins(names: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference pieces named (each made here, so that its record stays with it) and their records."""
    pieces: dict[str, Any] = {}
    records: dict[str, Any] = {}
    for piece in names:
        if piece == "adam_step":
            pieces[piece], records["adam"] = recording_adam()
        elif piece == "SoftmaxCrossEntropy":
            pieces[piece], records["loss"] = recording_loss()
        elif piece == "xavier_init":
            pieces[piece], records["init"] = recording_init()
        elif piece == "LinearFunction":
            pieces[piece] = function_checks.autograd_function("LinearFunction", F.linear)
        elif piece == "Tanh":
            pieces[piece] = function_checks.autograd_function("Tanh", torch.tanh)
        else:
            raise ValueError(f"no stand-in for {piece!r}")
    return pieces, records


def _length(obj: Any) -> int | None:
    try:
        return len(obj) if hasattr(obj, "__len__") else None
    except Exception:  # noqa: BLE001 - a __len__ that raises: no length to report
        return None


@contextlib.contextmanager
def _watching_global_rng() -> Iterator[list[bool]]:
    """``[used]``, set on exit: whether the block changed torch's global random state. The state is moved
    on by one draw first, so that code which seeds the global generator and draws a fixed amount (the
    same state after every call) is seen too; when the block leaves it alone, it is put back as it was."""
    saved = torch.get_rng_state()
    torch.rand(1)
    start = torch.get_rng_state()
    used = [False]
    try:
        yield used
    finally:
        used[0] = not torch.equal(start, torch.get_rng_state())
        if not used[0]:
            torch.set_rng_state(saved)


@remote.worker_side
def call_watching_rng(fn: Any, *args: Any, name: str | None = None, **kwargs: Any) -> tuple[Any, bool]:
    """``(fn(*args, **kwargs), whether torch's global random state changed during the call)``, through
    :func:`backproplab.checks.call`. Runs next to the student's code: the global generator it watches
    is the one the student's code draws from."""
    with _watching_global_rng() as used:
        result = checks.call(fn, *args, name=name, **kwargs)
    return result, used[0]


@remote.worker_side
def build_capstone(capstone: Any, sizes: Sequence[int], generator: torch.Generator, name: str) -> dict:
    """``capstone(sizes, generator=generator)`` with a recording ``xavier_init`` swapped in; what was built.

    Answers ``is_module`` and ``type`` (whether the object is an ``nn.Module``, its type's name),
    ``parameters`` (copies of its parameters, in order) and ``calls`` (one ``(fan_in, fan_out,
    generator given, weights returned)`` per ``xavier_init`` call, the generator replaced by whether it
    was ``generator`` itself)."""
    pieces, records = _stand_ins(["xavier_init"])
    with _swapped(capstone, pieces):
        model = checks.call(capstone, list(sizes), generator=generator, name=name)
    is_module = isinstance(model, nn.Module)
    return {"is_module": is_module, "type": type(model).__name__,
            "parameters": [p.detach().clone() for p in model.parameters()] if is_module else [],
            "calls": [(fan_in, fan_out, gen is generator, made) for fan_in, fan_out, gen, made in records["init"].calls]}


@remote.worker_side
def capstone_forward(capstone: Any, sizes: Sequence[int], biases: Sequence[torch.Tensor], x: torch.Tensor,
                     v: torch.Tensor, name: str, dtype: torch.dtype = torch.float32) -> dict:
    """Build ``capstone(sizes)`` in ``dtype`` with reference ``LinearFunction``, ``Tanh`` and ``xavier_init``
    swapped in, set its biases (found by shape) to ``biases``, run it on ``x`` and backward from
    ``(logits * v).sum()``.

    Answers ``logits`` (the forward's result), ``weights`` and ``biases`` (its parameters, found by
    shape, after the forward), ``nodes`` (how many nodes of each type the logits' graph holds),
    ``grads`` (the gradients of the weights then the biases, ``None`` where unused) or
    ``backward_error`` (the message of a backward that failed, for the grade cell to raise in its turn)."""
    pieces, _ = _stand_ins(["LinearFunction", "Tanh", "xavier_init"])
    with _swapped(capstone, pieces):
        model = checks.call(capstone, list(sizes), name=name).to(dtype)
        weights, bs = params_by_shape(model, sizes, name=name)
        with torch.no_grad():
            for b, value in zip(bs, biases, strict=True):
                b.copy_(value)
        out = checks.call(model, x, name=f"{name}.forward")
        nodes = dict(function_checks.graph_node_names(out)) if isinstance(out, torch.Tensor) else {}
        observed = {"logits": out.detach() if isinstance(out, torch.Tensor) else out,
                    "weights": [p.detach().clone() for p in weights], "biases": [p.detach().clone() for p in bs],
                    "nodes": nodes, "grads": None, "backward_error": None}
        try:
            observed["grads"] = list(checks.call(lambda: torch.autograd.grad(
                (out * v.to(dtype)).sum(), weights + bs, allow_unused=True), name=f"backward through {name}"))
        except AssertionError as exc:
            observed["backward_error"] = str(exc)
    return observed


@dataclass
class ModelRun:
    """What :func:`run_with_model` observed."""

    result: Any                       # what the student's function returned
    length: int | None                # its len(), if it has one
    parameters: list[torch.Tensor]    # the model's parameters afterwards
    adam: AdamRecord                  # the calls of the adam_step stand-in (empty if it was not swapped in)
    loss: LossRecord                  # the trained losses of the SoftmaxCrossEntropy stand-in (idem)
    global_rng_used: bool             # whether torch's global random state changed during the call


def run_with_model(fn: Any, model: nn.Module, sizes: Sequence[int], *args: Any, swap: Sequence[str] = (),
                   name: str | None = None, **kwargs: Any) -> ModelRun:
    """``fn(copy of model, *args, **kwargs)`` next to the student's code, with the pieces named in ``swap``
    replaced by recording stand-ins.

    ``model`` is the test's tanh network of ``nn.Linear`` layers (:func:`builtin_mlp` with these
    ``sizes``); the student's function gets a copy made where it runs, from the values of ``model``'s
    parameters, so ``model`` itself stays untouched for the test's reference computations. Tensors in
    ``args`` and ``kwargs`` should be copies too when the reference uses them afterwards."""
    seen = _run_on_model(fn, parameters_of(model), list(sizes), *args, swap=list(swap), name=name, **kwargs)
    adam, loss = seen["adam"], seen["loss"]
    return ModelRun(result=seen["result"], length=seen["length"], parameters=list(seen["parameters"]),
                    adam=AdamRecord(steps=list(adam["steps"]), lrs=list(adam["lrs"]), fresh=int(adam["fresh"])),
                    loss=LossRecord(values=list(loss["values"]), calls=int(loss["calls"])),
                    global_rng_used=bool(seen["global_rng_used"]))


@remote.worker_side
def _run_on_model(fn: Any, parameters: Sequence[torch.Tensor], sizes: Sequence[int], *args: Any,
                  swap: Sequence[str] = (), name: str | None = None, **kwargs: Any) -> dict:
    model = builtin_mlp(sizes, dtype=parameters[0].dtype if parameters else torch.float32)
    with torch.no_grad():
        for p, value in zip(model.parameters(), parameters, strict=True):
            p.copy_(value)
    pieces, records = _stand_ins(swap)
    with _watching_global_rng() as used, _swapped(fn, pieces):
        result = checks.call(fn, model, *args, name=name, **kwargs)
    adam, loss = records.get("adam", AdamRecord()), records.get("loss", LossRecord())
    return {"result": result, "length": _length(result), "parameters": parameters_of(model),
            "adam": {"steps": adam.steps, "lrs": adam.lrs, "fresh": adam.fresh},
            "loss": {"values": loss.values, "calls": loss.calls},
            "global_rng_used": used[0]}
