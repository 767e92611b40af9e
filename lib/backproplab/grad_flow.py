"""Lab 3, gradient flow and initialisation: deep test networks, activations and plots.

The lesson measures how the gradient of each layer of a deep network depends on the scale of the
initial weights. The tanh network goes through the student's ``deep_forward`` / ``deep_backward``;
the sigmoid and ReLU networks, which the graded scheme does not cover, go through
``torch.autograd`` here (:func:`autograd_weight_grads`). Nothing in this module answers an
exercise: the per-layer norms are computed by the student's ``layer_grad_norms`` in the notebook, and
the Xavier weights by the student's ``xavier_init``.

Plot helpers take an ``ax``, draw on it and return it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = [
    "ACTIVATIONS",
    "gaussian_weights",
    "deep_inputs",
    "activations",
    "autograd_weight_grads",
    "saturated_fraction",
    "distinct_rows",
    "plot_per_layer",
    "plot_activation_histogram",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


def gaussian_weights(depth: int, width: int, scale: float, *, dtype=torch.float64, seed: int = 0):
    """``(weights, biases)`` of a square network: ``depth`` matrices ``scale * randn(width, width)``, zero biases."""
    g = torch.Generator().manual_seed(seed)
    weights = [scale * torch.randn(width, width, generator=g, dtype=torch.float64) for _ in range(depth)]
    biases = [torch.zeros(width, dtype=torch.float64) for _ in range(depth)]
    return [w.to(dtype) for w in weights], [b.to(dtype) for b in biases]


def deep_inputs(batch: int, width: int, *, dtype=torch.float64, seed: int = 1):
    """``(A0, G)``: a batch of standard normal inputs and an upstream gradient ``dL/dA_k`` of a batch-mean loss."""
    g = torch.Generator().manual_seed(seed)
    A0 = torch.randn(batch, width, generator=g, dtype=torch.float64)
    G = torch.randn(batch, width, generator=g, dtype=torch.float64) / batch
    return A0.to(dtype), G.to(dtype)


def activations(weights, biases, A0, activation: str = "tanh") -> list[torch.Tensor]:
    """``[A_1, ..., A_k]`` of the network ``A_l = f(A_{l-1} W_l^T + b_l)`` (no autograd)."""
    f = ACTIVATIONS[activation]
    out, A = [], A0
    with torch.no_grad():
        for W, b in zip(weights, biases, strict=True):
            A = f(torch.nn.functional.linear(A, W, b))
            out.append(A)
    return out


def autograd_weight_grads(weights, biases, A0, G, activation: str = "tanh") -> list[torch.Tensor]:
    """Each layer's weight gradient for ``dL/dA_k = G``, by ``torch.autograd``, first layer first."""
    f = ACTIVATIONS[activation]
    with torch.enable_grad():
        Ws = [w.detach().clone().requires_grad_(True) for w in weights]
        A = A0.detach()
        for W, b in zip(Ws, biases, strict=True):
            A = f(torch.nn.functional.linear(A, W, b.detach()))
        grads = torch.autograd.grad((A * G.detach()).sum(), Ws)
    return [g.detach() for g in grads]


def saturated_fraction(acts: Sequence[torch.Tensor], threshold: float = 0.99) -> float:
    """The share of hidden units (all layers, all examples) with ``|a| > threshold``."""
    total = sum(a.numel() for a in acts)
    if total == 0:
        return 0.0
    return float(sum(int((a.abs() > threshold).sum()) for a in acts)) / total


def distinct_rows(matrix: torch.Tensor, tol: float = 1e-6) -> int:
    """How many different rows ``matrix`` has, rows closer than ``tol`` (max abs difference) counted once."""
    kept: list[torch.Tensor] = []
    for row in matrix.detach():
        if not any(float((row - other).abs().max()) <= tol for other in kept):
            kept.append(row)
    return len(kept)


def plot_per_layer(
    ax,
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "gradient norm",
    log: bool = True,
    title: str | None = None,
):
    """One line per entry of ``series`` (label -> one value per layer, first layer first) against the layer."""
    markers = "osD^v<>"
    for i, (label, values) in enumerate(series.items()):
        values = [float(v) for v in values]
        shown = [v if (v > 0 and math.isfinite(v)) or not log else float("nan") for v in values]
        ax.plot(range(1, len(values) + 1), shown, marker=markers[i % len(markers)], markersize=3, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer l (1 = first, next to the input)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def plot_activation_histogram(ax, acts: Sequence[torch.Tensor], *, threshold: float = 0.99, title: str = ""):
    """Histogram of every hidden value of ``acts``; the saturated share (``|a| > threshold``) in the title."""
    values = torch.cat([a.detach().reshape(-1).to(torch.float64) for a in acts]) if acts else torch.zeros(0)
    ax.hist(values.numpy(), bins=40, range=(-1.0, 1.0), color="#1f77b4", alpha=0.8)
    for x in (-threshold, threshold):
        ax.axvline(x, color="#d62728", linestyle="--", linewidth=0.8)
    share = saturated_fraction(acts, threshold)
    ax.set_title(f"{title}\n{100 * share:.0f}% saturated (|a| > {threshold})".strip(), fontsize=9)
    ax.set_xlabel("hidden value a = tanh(u)")
    ax.set_yticks([])
    return ax
