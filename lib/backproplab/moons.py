"""Lab 4, "the engine learns": the two-moons data and pictures of what a small network learned.

The network is the student's ``MLP`` of ``Value``s. Scoring the thousands of points of a plotting
grid with the engine itself would take seconds of pure Python, so the boundary is computed here with
``torch`` from the parameters' ``.data``, read in the contract's order (layer by layer, each neuron's
weights then its bias; :class:`backproplab.nn_checks.Layout`). The picture is therefore exactly the
function the engine computes, evaluated fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .nn_checks import Layout

__all__ = ["load_moons", "scores", "plot_boundary", "plot_losses"]


def load_moons(n: int = 40, noise: float = 0.1, seed: int = 1) -> tuple[list[list[float]], list[float]]:
    """``n`` points of scikit-learn's two moons as lists of Python floats, labels -1.0 and +1.0."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return [[float(a), float(b)] for a, b in x], [2.0 * float(t) - 1.0 for t in y]


def scores(theta: Sequence[float], layout: Layout, points: torch.Tensor) -> torch.Tensor:
    """The network's outputs ``(N,)`` on ``points`` ``(N, nin)``: relu on every layer but the last."""
    theta = torch.as_tensor(list(theta), dtype=torch.float64)
    h, k, fan_in = points.to(torch.float64), 0, layout.nin
    for i, nout in enumerate(layout.sizes):
        block = theta[k:k + nout * (fan_in + 1)].view(nout, fan_in + 1)  # each row: w, then b
        h = h @ block[:, :fan_in].T + block[:, fan_in]  # (N, nout)
        if i < len(layout.sizes) - 1:
            h = torch.relu(h)
        k += nout * (fan_in + 1)
        fan_in = nout
    return h[:, 0]


def plot_boundary(ax, theta: Sequence[float], layout: Layout, x: Sequence[Sequence[float]], y: Sequence[float],
                  *, steps: int = 150, title: str | None = None):
    """The sign of the network's score over the plane, the decision boundary (score 0), and the data."""
    xs = torch.tensor(x, dtype=torch.float64)
    lo, hi = xs.min(0).values - 0.6, xs.max(0).values + 0.6
    gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], steps, dtype=torch.float64),
                            torch.linspace(lo[1], hi[1], steps, dtype=torch.float64), indexing="xy")
    z = scores(theta, layout, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).view(steps, steps)
    ax.contourf(gx, gy, (z > 0).double(), levels=[-0.5, 0.5, 1.5], colors=["#f4c7c3", "#c6dbef"], alpha=0.8)
    ax.contour(gx, gy, z, levels=[0.0], colors="k", linewidths=1.0)
    labels = torch.tensor(y)
    for sign, color, marker in ((-1.0, "#c0392b", "o"), (1.0, "#1f5fa0", "s")):
        sel = labels == sign
        ax.scatter(xs[sel, 0], xs[sel, 1], c=color, marker=marker, s=22, edgecolors="white", linewidths=0.5,
                   label=f"y = {sign:+.0f}")
    ax.set_xlim(float(lo[0]), float(hi[0]))
    ax.set_ylim(float(lo[1]), float(hi[1]))
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_losses(ax, curves: Mapping[str, Sequence[float]], *, ylabel: str = "loss"):
    """One line per named curve, against the step number."""
    for name, values in curves.items():
        ax.plot(range(len(values)), values, "o-", ms=3, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax
