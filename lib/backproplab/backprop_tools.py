"""Lab 3 helpers: the autograd oracle the grade cells compare with, a call counter, and the
naive-versus-backprop timing harness.

Nothing here answers an exercise. The oracle builds its network from ``torch.nn.functional`` and
lets ``torch.autograd`` produce the reference gradients; the "naive" differentiation used for the
timing experiment also relies on autograd (one separate chain per layer), which the graded
``deep_backward`` is not allowed to do.

``python -m backproplab.backprop_tools [folder]`` measures naive differentiation against one reverse
pass of autograd and writes ``lab3_complexity.png`` (default folder: ``figures/`` of the repository).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from . import checks, remote

__all__ = [
    "CallBudgetExceeded",
    "count_calls",
    "mlp_reference",
    "random_mlp_case",
    "call_backward",
    "assert_mlp_grads_close",
    "deep_reference",
    "layer_magnitude",
    "random_deep_case",
    "tensors_in",
    "naive_layerwise_gradients",
    "autograd_gradients",
    "best_time",
    "complexity_sweep",
    "fit_scale",
    "plot_complexity",
    "show",
    "complexity_figure",
]

PARAM_KEYS = ("Wh", "bh", "Wy", "by")
SHAPE_TAGS = ("wrong_shape", "transposed_shape", "batch_dim_kept", "wrong_dtype", "not_a_tensor")


# --- counting calls ------------------------------------------------------------------------------


class CallBudgetExceeded(BaseException):
    """Raised inside the measured function once it has made more Python calls than allowed.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that an ``except Exception`` in the measured
    code, or :func:`backproplab.checks.call`, does not swallow it.
    """


def count_calls(
    fn: Callable, *args, limit: int | None = None, recursion_limit: int = 5000
) -> tuple[Any, int]:
    """Run ``fn(*args)`` and count every Python function call made meanwhile (``fn`` itself included).

    Works for any style (a memo dict, ``functools.lru_cache``, an inner helper, a loop) because it
    counts frames through ``sys.setprofile`` instead of wrapping a name. With ``limit``, the run is
    stopped by :class:`CallBudgetExceeded` as soon as the count passes it, so an exponential
    recursion cannot hang the caller. The recursion limit is raised to ``recursion_limit`` for the
    run, so a correct memoised recursion a few hundred levels deep does not trip on it.
    """
    if remote.judging():
        # graded: the student's function runs in the kernel, so its calls are counted there (the judge's own
        # calls, its requests included, are not the student's)
        if fn is checks.call:
            target, rest = args[0], args[1:]
            out = checks.call(_count_in_worker, target, *rest, limit=limit, recursion_limit=recursion_limit,
                              name=getattr(target, "__name__", None))
        else:
            out = _count_in_worker(fn, *args, limit=limit, recursion_limit=recursion_limit)
        if out == "__call_budget_exceeded__":
            raise CallBudgetExceeded(f"more than {limit} Python calls")
        return out
    return _count_here(fn, *args, limit=limit, recursion_limit=recursion_limit)


def _count_here(fn: Callable, *args, limit: int | None = None, recursion_limit: int = 5000) -> tuple[Any, int]:
    count = 0

    def profiler(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1
            if limit is not None and count > limit:
                raise CallBudgetExceeded(f"more than {limit} Python calls")

    old_profile = sys.getprofile()
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, recursion_limit))
    sys.setprofile(profiler)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(old_profile)
        sys.setrecursionlimit(old_limit)
    return result, count


@remote.worker_side
def _count_in_worker(fn: Callable, *args, limit: int | None = None, recursion_limit: int = 5000):
    """:func:`count_calls` in the student's kernel; the budget exceeded comes back as the judge's own
    :class:`CallBudgetExceeded` (the worker answers a marker, not an exception of its own type)."""
    try:
        return _count_here(fn, *args, limit=limit, recursion_limit=recursion_limit)
    except CallBudgetExceeded:
        return "__call_budget_exceeded__"


# --- the one-hidden-layer network: oracle, random cases, diagnosis ------------------------------


def _oracle_loss(p: Mapping[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, tanh_derivative: bool):
    """Cross-entropy of the tanh network, from built-in layers; also returns the intermediate values."""
    F = torch.nn.functional
    pre_hidden = F.linear(X, p["Wh"], p["bh"].reshape(-1))
    hidden = torch.tanh(pre_hidden)
    if not tanh_derivative:
        # Same values, but autograd sees d hidden / d pre_hidden = 1: the "forgot 1 - h^2" network.
        hidden = pre_hidden + (hidden - pre_hidden).detach()
    logits = F.linear(hidden, p["Wy"], p["by"].reshape(-1))
    log_probs = torch.log_softmax(logits, dim=1)
    loss = -(Y * log_probs).sum() / X.shape[0]
    values = {"X": X, "htilde": pre_hidden, "h": hidden, "ytilde": logits, "yhat": log_probs.exp()}
    return loss, values


def mlp_reference(
    params: Mapping[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, *, tanh_derivative: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(outputs, grads)`` of the lab's tanh network for the batch mean of the cross-entropy.

    ``outputs`` holds the forward values (keys ``X, htilde, h, ytilde, yhat``) in the dtype of
    ``params``, detached and fresh, so they can be handed to a student's ``backward``. ``grads`` are
    computed by ``torch.autograd`` in float64. With ``tanh_derivative=False`` they are the
    gradients someone gets who forgets the factor ``1 - h^2`` (used to name that mistake).
    """
    with torch.no_grad():
        _, values = _oracle_loss(params, X, Y, True)
    outputs = {k: v.detach().clone() for k, v in values.items()}
    with torch.enable_grad():
        p64 = {k: params[k].detach().to(torch.float64).requires_grad_(True) for k in PARAM_KEYS}
        X64, Y64 = X.detach().to(torch.float64), Y.detach().to(torch.float64)
        loss, _ = _oracle_loss(p64, X64, Y64, tanh_derivative)
        grads = torch.autograd.grad(loss, [p64[k] for k in PARAM_KEYS])
    return outputs, {k: g.detach() for k, g in zip(PARAM_KEYS, grads, strict=True)}


def random_mlp_case(
    nx: int, nh: int, ny: int, batch: int, *, dtype: torch.dtype = torch.float64, seed: int = 0
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """``(params, X, Y)`` with non-trivial values everywhere (biases are not zero), ``Y`` one-hot."""
    g = torch.Generator().manual_seed(seed)
    params = {
        "Wh": torch.randn(nh, nx, generator=g, dtype=torch.float64) * 0.8,
        "bh": torch.randn(nh, 1, generator=g, dtype=torch.float64) * 0.5,
        "Wy": torch.randn(ny, nh, generator=g, dtype=torch.float64) * 0.8,
        "by": torch.randn(ny, 1, generator=g, dtype=torch.float64) * 0.5,
    }
    X = torch.randn(batch, nx, generator=g, dtype=torch.float64)
    labels = torch.randint(0, ny, (batch,), generator=g)
    Y = torch.nn.functional.one_hot(labels, ny).to(torch.float64)
    return {k: v.to(dtype) for k, v in params.items()}, X.to(dtype), Y.to(dtype)


def _snapshot(obj: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(t, t.detach().clone()) for t in tensors_in(obj)]


def call_backward(fn: Callable, *args, name: str = "backward") -> Any:
    """Call a hand-written backward the way the grade cells do.

    It runs under ``torch.no_grad()`` on tensors that do not require grad, with ``torch.autograd.grad``
    and ``.backward()`` switched off (even inside ``torch.enable_grad()``), so a backward that uses
    autograd fails with a message saying so; afterwards every tensor passed in must be unchanged.
    """
    before = _snapshot(args)

    def refuse(*_args, **_kwargs):
        raise RuntimeError("torch.autograd is switched off while a hand-written backward runs: the tensors "
                           "here do not require grad")

    saved = (torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward)
    torch.autograd.grad = torch.autograd.backward = torch.Tensor.backward = refuse
    try:
        with torch.no_grad():
            result = checks.call(fn, *args, name=name)
    except AssertionError as exc:
        text = str(exc)
        if "(diagnosis: crash)" in text and ("grad" in text and ("require" in text or "grad_fn" in text)):
            error = text.split(": ", 1)[-1].replace(" (diagnosis: crash)", "")
            raise AssertionError(
                f"{name} tried to use torch.autograd ({error}). "
                "The gradients must be computed by hand from the saved forward values: here it runs "
                "under torch.no_grad() on tensors that do not require grad. (diagnosis: uses_autograd)"
            ) from exc
        raise
    finally:
        torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward = saved
    for original, copy in before:
        if original.shape != copy.shape or not torch.equal(original, copy):
            raise AssertionError(
                f"{name} modified one of its inputs (a tensor of shape {tuple(copy.shape)}); compute new "
                "tensors instead of changing params or outputs in place (diagnosis: modifies_input)"
            )
    return result


def assert_mlp_grads_close(
    actual: Any,
    params: Mapping[str, torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    keys: Iterable[str] = PARAM_KEYS,
    name: str = "grads",
) -> None:
    """Compare ``actual[key]`` with autograd's gradient for each key; name the usual mistakes.

    On top of :mod:`backproplab.checks`' diagnoses (``batch_sum``, ``transposed``, ``sign``...):
    a hidden-layer gradient equal to that of a network without the factor ``1 - h^2`` gets
    ``missing_tanh_derivative``; a bias gradient that still has a batch axis gets ``bias_not_summed``.
    """
    keys = list(keys)
    _, ref = mlp_reference(params, X, Y)
    if not isinstance(actual, Mapping):
        checks.assert_grads_close(actual, {k: ref[k] for k in keys}, name=name)
    missing = [k for k in keys if k not in actual]
    if missing:
        raise AssertionError(
            f"{name}: missing keys {missing}; backward must return a dict with the keys of params "
            f"{list(PARAM_KEYS)} (diagnosis: wrong_shape)"
        )
    B = X.shape[0]
    dtype = params[keys[0]].dtype
    no_tanh = None
    problems = []
    for key in keys:
        got, want = actual[key], ref[key]
        label = f"{name}[{key!r}]"
        if (
            key.startswith("b")
            and isinstance(got, torch.Tensor)
            and got.shape != want.shape
            and B > 1
            and B in tuple(got.shape)
        ):
            problems.append(
                f"{label}: shape {tuple(got.shape)}, expected {tuple(want.shape)}: the bias gradient still "
                f"has one entry per example of the batch (B = {B}). A bias is shared by every example, so "
                "its gradient sums the deltas over the batch (then divides by B). "
                "(diagnosis: bias_not_summed)"
            )
            continue
        mismatch = checks.compare(got, want, dtype=dtype, batch_size=B)
        if mismatch is None:
            continue
        if key in ("Wh", "bh") and mismatch.tag not in SHAPE_TAGS:
            if no_tanh is None:
                no_tanh = mlp_reference(params, X, Y, tanh_derivative=False)[1]
            for factor, extra in ((1, ""), (B, " and it is also summed, not averaged, over the batch")):
                if checks.compare(got, no_tanh[key] * factor, dtype=dtype) is None:
                    problems.append(
                        f"{label}: these are the gradients of a network whose tanh has derivative 1{extra}: "
                        "the hidden delta must be multiplied element-wise by tanh'(htilde) = 1 - h^2 "
                        "(diagnosis: missing_tanh_derivative)\n" + mismatch.details
                    )
                    break
            else:
                problems.append(mismatch.message(label))
            continue
        problems.append(mismatch.message(label))
    if problems:
        raise AssertionError("\n".join(problems))


# --- the k-layer tanh network -----------------------------------------------------------------


def random_deep_case(
    depth: int, *, batch: int = 4, widths: Sequence[int] | None = None, dtype=torch.float64, seed: int = 0
):
    """``(weights, biases, A0, G)`` for a ``depth``-layer tanh network with random widths (2 to 7).

    ``G`` is an upstream gradient on the last activation. Values are non-trivial (biases included).
    """
    g = torch.Generator().manual_seed(seed)
    if widths is None:
        widths = [int(w) for w in torch.randint(2, 8, (depth + 1,), generator=g)]
    if len(widths) != depth + 1:
        raise ValueError("widths must hold depth + 1 sizes (the input first)")
    f64 = torch.float64
    weights = [torch.randn(widths[l + 1], widths[l], generator=g, dtype=f64) * 0.9 for l in range(depth)]
    biases = [torch.randn(widths[l + 1], generator=g, dtype=f64) * 0.4 for l in range(depth)]
    A0 = torch.randn(batch, widths[0], generator=g, dtype=torch.float64)
    G = torch.randn(batch, widths[-1], generator=g, dtype=torch.float64)
    cast = lambda ts: [t.to(dtype) for t in ts]  # noqa: E731
    return cast(weights), cast(biases), A0.to(dtype), G.to(dtype)


def _layers(weights, biases, A):
    F = torch.nn.functional
    for W, b in zip(weights, biases, strict=True):
        A = torch.tanh(F.linear(A, W, b))
    return A


def layer_magnitude(weights, biases, A0) -> float:
    """The ``magnitude`` of :func:`backproplab.checks.tolerances` for ``U_l = A_{l-1} W_l^T + b_l``: the largest
    sum ``|A_{l-1}| |W_l|^T + |b_l|`` a layer rounds (``|A_l| <= 1`` after a tanh)."""
    size, largest = float(A0.detach().abs().max()), 1.0
    for W, b in zip(weights, biases, strict=True):
        largest = max(largest, float((size * W.detach().abs().sum(1) + b.detach().abs()).max()))
        size = 1.0
    return largest


def deep_reference(weights, biases, A0, G) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``(A_k, dweights, dbiases)`` by autograd in float64, for ``L`` with ``dL/dA_k = G``."""
    with torch.enable_grad():
        Ws = [w.detach().to(torch.float64).requires_grad_(True) for w in weights]
        bs = [b.detach().to(torch.float64).requires_grad_(True) for b in biases]
        Ak = _layers(Ws, bs, A0.detach().to(torch.float64))
        grads = torch.autograd.grad((Ak * G.detach().to(torch.float64)).sum(), Ws + bs)
    k = len(Ws)
    return Ak.detach(), [g.detach() for g in grads[:k]], [g.detach() for g in grads[k:]]


def tensors_in(obj: Any) -> list[torch.Tensor]:
    """Every tensor found in nested dicts, lists, tuples and simple objects' attributes."""
    found, stack, seen = [], [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not callable(item):
            stack.extend(vars(item).values())
    return found


# --- timing naive differentiation against backprop ---------------------------------------------


def naive_layerwise_gradients(weights, biases, A0, G):
    """Each layer's gradient as its own chain-rule problem, with nothing shared between layers.

    For layer ``l`` the forward pass is run again and the chain ``dA_k/dA_{k-1} ... dA_l/dU_l`` is
    multiplied out from the output down to that layer (``torch.autograd`` does the products; only
    ``W_l`` and ``b_l`` require grad, so the chain stops at layer ``l``). The partial products
    ``dL/dA_j`` are computed again for every ``l < j``: about ``k^2 / 2`` layer steps in all, each
    ``O(m^2)`` per example, hence ``O(k^2 m^2)``.
    """
    F = torch.nn.functional
    dW, db = [], []
    with torch.enable_grad():
        for l in range(len(weights)):
            W = weights[l].detach().requires_grad_(True)
            b = biases[l].detach().requires_grad_(True)
            A = _layers(weights[:l], biases[:l], A0)
            A = torch.tanh(F.linear(A, W, b))
            A = _layers(weights[l + 1 :], biases[l + 1 :], A)
            gW, gb = torch.autograd.grad((A * G).sum(), [W, b])
            dW.append(gW)
            db.append(gb)
    return dW, db


def autograd_gradients(weights, biases, A0, G):
    """All layers' gradients from one forward and one reverse pass of ``torch.autograd``: ``O(k m^2)``."""
    with torch.enable_grad():
        Ws = [w.detach().requires_grad_(True) for w in weights]
        bs = [b.detach().requires_grad_(True) for b in biases]
        grads = torch.autograd.grad((_layers(Ws, bs, A0) * G).sum(), Ws + bs)
    return list(grads[: len(Ws)]), list(grads[len(Ws) :])


def best_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    """The smallest CPU time of ``repeats`` runs of ``fn()``, in seconds.

    CPU time of this process (not wall-clock time), so that other programs sharing the machine do not
    inflate the measurement; with ``torch.set_num_threads(1)`` it is the work the computation needs.
    """
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def complexity_sweep(
    methods: Mapping[str, Callable],
    depths: Sequence[int],
    widths: Sequence[int],
    *,
    batch: int = 32,
    repeats: int = 3,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[dict[str, Any]]:
    """Time each method on square tanh networks ``(k layers of width m)`` for every ``(k, m)`` pair given.

    ``depths`` and ``widths`` are zipped: pass ``[1, 2, 4, 8]`` and ``[64] * 4`` for a depth sweep.
    Each method is called as ``method(weights, biases, A0, G)``. Returns one row per size with the
    best time of each method in seconds.
    """
    rows = []
    pairs = list(zip(depths, widths, strict=True))
    for k, m in progress(pairs) if progress else pairs:
        case = random_deep_case(k, batch=batch, widths=[m] * (k + 1), dtype=torch.float32, seed=seed)
        args = ([w / math.sqrt(m) for w in case[0]], *case[1:])
        row: dict[str, Any] = {"k": k, "m": m}
        for name, method in methods.items():
            method(*args)  # warm-up
            row[name] = best_time(lambda method=method, args=args: method(*args), repeats)
        rows.append(row)
    return rows


def fit_scale(times: Sequence[float], model: Sequence[float], last: int = 3) -> float:
    """The constant ``c`` such that ``c * model`` best matches ``times`` on the ``last`` largest sizes
    (geometric mean of the ratios: small sizes are dominated by fixed per-call costs)."""
    pairs = [(t, v) for t, v in zip(times, model, strict=True) if t > 0 and v > 0][-last:]
    if not pairs:
        return float("nan")
    return math.exp(sum(math.log(t / v) for t, v in pairs) / len(pairs))


def plot_complexity(
    ax,
    rows: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    x: str,
    references: Mapping[str, tuple[str, Callable]],
):
    """Measured time against ``x`` (``"k"`` or ``"m"``), log-log, with fitted reference curves.

    ``references`` maps a label like ``"O(k^2 m^2)"`` to ``(method name it is fitted to, model(k, m))``.
    """
    xs = [row[x] for row in rows]
    markers = "osD^v"
    for i, name in enumerate(methods):
        ax.plot(xs, [row[name] for row in rows], marker=markers[i % len(markers)], label=f"{name} (measured)")
    for label, (name, model) in references.items():
        values = [model(row["k"], row["m"]) for row in rows]
        c = fit_scale([row[name] for row in rows], values)
        ax.plot(xs, [c * v for v in values], linestyle="--", color="grey", alpha=0.8)
        ax.annotate(label, (xs[-1], c * values[-1]), textcoords="offset points", xytext=(-4, 6), ha="right",
                    fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel({"k": "depth k (layers)", "m": "width m (neurons per layer)"}.get(x, x))
    ax.set_ylabel("CPU seconds (best of runs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def show(fig, dpi: int = 80):
    """The figure as a PNG image object: the last line of a cell displays it in any front end."""
    import io

    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return Image(data=buf.getvalue(), format="png")


def complexity_figure(depths=(1, 2, 4, 8, 16, 32), widths=(32, 64, 128, 256, 512), fixed_width=64, fixed_depth=8):
    """The naive-against-backprop figure of the lab, with autograd's one reverse pass as backprop."""
    from . import plots

    methods = {"naive (one chain per layer)": naive_layerwise_gradients,
               "autograd (one reverse pass)": autograd_gradients}
    depth_rows = complexity_sweep(methods, list(depths), [fixed_width] * len(depths))
    width_rows = complexity_sweep(methods, [fixed_depth] * len(widths), list(widths))
    naive, fast = list(methods)
    references = {"O(k^2 m^2)": (naive, lambda k, m: k * k * m * m), "O(k m^2)": (fast, lambda k, m: k * m * m)}
    fig, axes = plots.new_figure(1, 2, size=(5.0, 3.8))
    plot_complexity(axes[0][0], depth_rows, list(methods), "k", references)
    plot_complexity(axes[0][1], width_rows, list(methods), "m", references)
    axes[0][0].set_title(f"growing depth, width m = {fixed_width}", fontsize=9)
    axes[0][1].set_title(f"growing width, depth k = {fixed_depth}", fontsize=9)
    return fig, depth_rows, width_rows


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    fig, depth_rows, width_rows = complexity_figure()
    for row in depth_rows + width_rows:
        print("  ".join(f"{k}={v * 1e3:.3f}ms" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    fig.savefig(folder / "lab3_complexity.png", dpi=100)
    print(f"wrote {folder / 'lab3_complexity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
