"""Lab 1's closing demonstrations, "from linear to deep": why depth needs a non-linearity, tanh as a
rescaled sigmoid, and what one hidden layer of tanh units can fit as it gets wider.

Nothing here is graded and nothing here is an exercise's answer: the notebook calls these helpers to
run small experiments and draw them. Plot helpers take an ``ax``, draw on it and return it.

Experiments are in float64 with explicit generators, so a figure is the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "compose_affine",
    "apply_layers",
    "target_function",
    "random_hidden_layer",
    "WidthResult",
    "fit_random_features",
    "fit_learned_features",
    "width_sweep",
    "draw_tanh_sigmoid",
    "draw_fits",
    "draw_error_against_width",
]


# --- stacked affine maps ---------------------------------------------------------------------

def compose_affine(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The one affine map ``x -> W x + b`` equal to the layers ``x -> W_l x + b_l`` applied in order.

    ``W = W_L ... W_2 W_1`` and ``b = W_L (... (W_2 b_1 + b_2) ...) + b_L``: a product of matrices.
    """
    if len(weights) != len(biases) or not weights:
        raise ValueError("give one bias per weight matrix, at least one layer")
    total_w, total_b = weights[0], biases[0]
    for w_l, b_l in zip(weights[1:], biases[1:]):
        total_w = w_l @ total_w  # (m_l, m_0)
        total_b = w_l @ total_b + b_l  # (m_l,)
    return total_w, total_b


def apply_layers(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Rows of ``x`` through every layer in turn: ``x <- activation(x W_l^T + b_l)`` (no activation: affine)."""
    for w_l, b_l in zip(weights, biases):
        x = x @ w_l.T + b_l  # (N, m_l)
        if activation is not None:
            x = activation(x)
    return x


# --- one hidden layer of tanh units -------------------------------------------------------------

def target_function(x: torch.Tensor) -> torch.Tensor:
    """The 1-D function the width experiment fits on [-2, 2]: a few bumps of different widths."""
    return torch.sin(3 * x) + 0.4 * torch.cos(7 * x) * torch.exp(-x ** 2)


def random_hidden_layer(width: int, generator: torch.Generator | None = None, scale: float = 3.0,
                        span: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Input weights ``a`` (width, 1) and biases ``c`` (width,) of tanh units ``tanh(a x + c)`` whose
    steepest point ``-c / a`` falls uniformly in ``[-span, span]``, slopes ``a ~ N(0, scale^2)``."""
    a = scale * torch.randn(width, 1, generator=generator, dtype=torch.float64)
    where = span * (2 * torch.rand(width, generator=generator, dtype=torch.float64) - 1)
    return a, -a[:, 0] * where


def _hidden(x: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x[:, None] * a[:, 0] + c)  # (N, width)


def _least_squares_readout(h: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Output weights and bias minimising ``mean((h v + d - y)^2) + ridge * |v|^2`` (exactly)."""
    design = torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)  # (N, width + 1)
    if ridge == 0.0:  # solve the least-squares problem directly (better conditioned than its normal equations)
        coef = torch.linalg.lstsq(design, y[:, None], driver="gelsd").solution[:, 0]
        return coef[:-1], coef[-1]
    penalty = ridge * len(h) * torch.eye(design.shape[1], dtype=h.dtype)
    penalty[-1, -1] = 0.0  # the bias is not penalised
    coef = torch.linalg.lstsq(design.T @ design + penalty, design.T @ y[:, None], driver="gelsd").solution[:, 0]
    return coef[:-1], coef[-1]


@dataclass(frozen=True)
class WidthResult:
    """One width of the sweep: mean squared errors on the grid, and the two fitted curves."""

    width: int
    random_mse: float
    learned_mse: float
    random_curve: torch.Tensor
    learned_curve: torch.Tensor


def fit_random_features(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Shallow learning: the hidden tanh units stay as drawn; only the output layer is fitted (exactly,
    by least squares). Returns the fitted curve at ``x``."""
    h = _hidden(x, a, c)
    v, d = _least_squares_readout(h, y)
    return h @ v + d


def fit_learned_features(x: torch.Tensor, y: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
                         nb_steps: int = 800, lr: float = 0.015) -> list[torch.Tensor]:
    """Every layer trained, for several independent networks at once (one per ``(a, c)`` in ``layers``).

    Each network starts from its random hidden units with a (slightly ridge-regularised) least-squares
    output layer; Adam then moves all of its parameters on its own mean squared error; at the end its
    output layer is refitted exactly. The networks share no parameter and Adam's update is
    coordinate-wise, so training them together in one loop is the same as training each alone, only
    faster. Returns one fitted curve per network.
    """
    group = torch.cat([torch.full((len(a),), k) for k, (a, _) in enumerate(layers)])  # unit -> network
    mask = (group[None, :] == torch.arange(len(layers))[:, None]).to(x.dtype)  # (K, total units)
    a = torch.cat([a[:, 0] for a, _ in layers]).requires_grad_(True)
    c = torch.cat([c for _, c in layers]).requires_grad_(True)
    starts = [_least_squares_readout(_hidden(x, a_k, c_k), y, ridge=1e-4) for a_k, c_k in layers]
    v = torch.cat([v_k for v_k, _ in starts]).requires_grad_(True)
    d = torch.stack([d_k for _, d_k in starts]).requires_grad_(True)
    optimizer = torch.optim.Adam([a, c, v, d], lr=lr)
    for _ in range(nb_steps):
        fitted = (torch.tanh(x[:, None] * a + c) * v) @ mask.T + d  # (N, K): one column per network
        total = ((fitted - y[:, None]) ** 2).mean(0).sum()  # each network's own mean squared error, added
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    curves = []
    with torch.no_grad():
        for k in range(len(layers)):
            keep = group == k
            h = _hidden(x, a[keep][:, None], c[keep])
            v_k, d_k = _least_squares_readout(h, y)
            curves.append(h @ v_k + d_k)
    return curves


def width_sweep(widths: Sequence[int] = (1, 2, 4, 8, 16, 32), nb_points: int = 120, nb_steps: int = 800,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[WidthResult]]:
    """Fit ``target_function`` on ``nb_points`` points of [-2, 2] with one hidden layer of each width,
    once with fixed random hidden units and once with every layer learned (from the same random start).
    Returns ``x, y, results``."""
    x = torch.linspace(-2, 2, nb_points, dtype=torch.float64)
    y = target_function(x)
    layers = [random_hidden_layer(width, torch.Generator().manual_seed(seed + width)) for width in widths]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny steps: a second thread only adds waiting, badly so on a busy machine
    try:
        learned = fit_learned_features(x, y, layers, nb_steps=nb_steps)
    finally:
        torch.set_num_threads(threads)
    results = []
    for width, (a, c), learned_curve in zip(widths, layers, learned):
        shallow = fit_random_features(x, y, a, c)
        results.append(WidthResult(width, float(torch.mean((shallow - y) ** 2)),
                                   float(torch.mean((learned_curve - y) ** 2)), shallow, learned_curve))
    return x, y, results


# --- drawing -------------------------------------------------------------------------------------

def draw_tanh_sigmoid(ax, lim: float = 4.0, nb_points: int = 401):
    """tanh, the sigmoid, and ``2 sigmoid(2x) - 1`` drawn over tanh (the two curves coincide)."""
    t = torch.linspace(-lim, lim, nb_points, dtype=torch.float64)
    ax.plot(t, torch.sigmoid(t), color="#1f77b4", lw=2, label="sigmoid(x) = 1 / (1 + exp(-x))")
    ax.plot(t, torch.tanh(t), color="#d62728", lw=4, alpha=0.45, label="tanh(x)")
    ax.plot(t, 2 * torch.sigmoid(2 * t) - 1, color="black", lw=1.2, ls="--", label="2 sigmoid(2x) - 1")
    ax.plot(t, (t >= 0).to(t.dtype), color="#7f7f7f", lw=1, ls=":", label="threshold 1{x >= 0}")
    ax.axhline(0, color="#cccccc", lw=0.8)
    ax.set_xlabel("x")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def draw_fits(ax, x: torch.Tensor, y: torch.Tensor, results: Sequence[WidthResult], which: str = "learned"):
    """The target and the fitted curves of some widths (``which`` is ``"learned"`` or ``"random"``)."""
    ax.plot(x, y, color="black", lw=3, alpha=0.3, label="target")
    for r in results:
        curve = r.learned_curve if which == "learned" else r.random_curve
        ax.plot(x, curve, lw=1.2, label=f"width {r.width}")
    ax.set_xlabel("x")
    ax.set_title(f"one hidden tanh layer, {'every layer learned' if which == 'learned' else 'random hidden units'}",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return ax


def draw_error_against_width(ax, results: Sequence[WidthResult]):
    """Mean squared error against the number of hidden units, both axes logarithmic."""
    widths = [r.width for r in results]
    ax.plot(widths, [r.random_mse for r in results], "s--", label="random hidden units (output fitted)")
    ax.plot(widths, [r.learned_mse for r in results], "o-", label="every layer learned")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden units (width)")
    ax.set_ylabel("mean squared error")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax
