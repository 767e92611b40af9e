"""Figures and toy problems for lab 2 (gradient descent).

Everything here draws; nothing here descends. The iterates always come from the student's
``gradient_descent`` and the local models from their ``local_quadratic_model``: these helpers only
turn those results into pictures. Each drawing helper takes a matplotlib ``ax`` and returns it.

``python -m backproplab.gd_figures [folder]`` writes ``lab2_rate_map.png`` (default folder:
``figures/`` of the repository).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "wavy_bowl",
    "WAVY_BOWL_START",
    "parabolas_from_model",
    "parabola_segments",
    "draw_descent_1d",
    "quadratic_matrix",
    "ellipse_segments",
    "draw_quadratic_2d",
    "convergence_rate",
    "regime_of",
    "rate_map",
    "save_rate_map",
]

WAVY_BOWL_START = -2.5
REGIME_COLORS = {"monotone": "#2ca02c", "oscillating": "#ff7f0e", "divergent": "#d62728"}


def wavy_bowl(w: torch.Tensor) -> torch.Tensor:
    """The lab's 1-D non-convex function ``f(w) = w^2 / 4 + sin(2 w)``, applied entrywise.

    Its global minimum sits near ``w = -0.70`` where the curvature is about 4.44: a step of
    0.125 settles there, a step of 0.5 (above ``2 / 4.44``) cannot and bounces around it.
    """
    return w * w / 4 + torch.sin(2 * w)


# --- 1-D pictures ---------------------------------------------------------------------------------


def parabolas_from_model(
    local_model: Callable, f: Callable[[torch.Tensor], torch.Tensor], centers: Sequence[float], eta: float
) -> list[tuple[float, float, float, float]]:
    """Read the student's local model at each center as a parabola ``c0 + c1 d + c2 d^2``.

    ``local_model(loss_fn, w0, eta)`` returns a callable of a ``(1,)`` tensor; a quadratic is fixed
    by three values, so the model is evaluated at ``center - 1``, ``center`` and ``center + 1``.
    Returns ``(center, c0, c1, c2)`` tuples.
    """
    def loss_fn(w):
        return f(w).sum()

    out = []
    for c in centers:
        w0 = torch.tensor([float(c)], dtype=torch.float64)
        m = local_model(loss_fn, w0, eta)
        left, mid, right = (float(torch.as_tensor(m(w0 + s)).detach().reshape(-1)[0]) for s in (-1.0, 0.0, 1.0))
        out.append((float(c), mid, (right - left) / 2, (right + left) / 2 - mid))
    return out


def parabola_segments(parabolas, behind: float = 0.35, points: int = 40) -> list[np.ndarray]:
    """``(points, 2)`` arrays drawing each parabola from a little behind its center to past its lowest point."""
    segs = []
    for center, c0, c1, c2 in parabolas:
        reach = min(abs(c1 / (2 * c2)), 3.0) if c2 > 0 else 1.0
        downhill = -1.0 if c1 > 0 else 1.0
        d = downhill * np.linspace(-behind, 1.3 * reach + behind, points)
        segs.append(np.column_stack([center + d, c0 + c1 * d + c2 * d * d]))
    return segs


def draw_descent_1d(
    ax,
    f: Callable[[torch.Tensor], torch.Tensor],
    iterates: torch.Tensor,
    parabolas=None,
    xlim: tuple[float, float] = (-3.5, 3.5),
    title: str | None = None,
):
    """The function, the iterates (numbered in colour order) and, if given, the local models."""
    from matplotlib.collections import LineCollection

    grid = torch.linspace(*xlim, 400, dtype=torch.float64)
    values = f(grid)
    ax.plot(grid.numpy(), values.numpy(), color="black", lw=1.5, label="f")
    ws = iterates.detach().to(torch.float64).reshape(-1)
    fs = f(ws)
    if parabolas:
        ax.add_collection(LineCollection(parabola_segments(parabolas), colors="#1f77b4", alpha=0.45, lw=1,
                                         label="local models"))
    ax.plot(ws.numpy(), fs.numpy(), "-", color="#d62728", lw=0.8, alpha=0.6)
    ax.scatter(ws.numpy(), fs.numpy(), c=np.arange(len(ws)), cmap="autumn", s=22, zorder=3,
               edgecolors="black", linewidths=0.4, label="iterates")
    lo, hi = float(values.min()), float(values.max())
    ax.set_xlim(*xlim)
    ax.set_ylim(lo - 0.3 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_xlabel("w")
    ax.set_ylabel("f(w)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper center", fontsize=8)
    return ax


# --- 2-D quadratics -------------------------------------------------------------------------------


def _rotation(angle_deg: float) -> torch.Tensor:
    t = math.radians(angle_deg)
    return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)


def quadratic_matrix(lam_small: float, lam_large: float, angle_deg: float = 0.0) -> torch.Tensor:
    """The symmetric 2x2 matrix with eigenvalues ``lam_large`` along direction ``angle_deg`` and
    ``lam_small`` perpendicular to it (float64)."""
    r = _rotation(angle_deg)
    return r @ torch.diag(torch.tensor([lam_large, lam_small], dtype=torch.float64)) @ r.T


def ellipse_segments(lam_small: float, lam_large: float, angle_deg: float, levels: Sequence[float],
                     points: int = 90) -> list[np.ndarray]:
    """Level sets ``0.5 w^T A w = level`` of the quadratic with those eigenvalues, as ``(points, 2)`` arrays."""
    t = np.linspace(0, 2 * np.pi, points)
    r = _rotation(angle_deg).numpy()
    segs = []
    for level in levels:
        radii = np.sqrt(2 * level / np.array([lam_large, lam_small]))
        circle = np.stack([radii[0] * np.cos(t), radii[1] * np.sin(t)])
        segs.append((r @ circle).T)
    return segs


def convergence_rate(step: float, lam_small: float, lam_large: float) -> float:
    """Worst per-step contraction factor on a quadratic with these extreme eigenvalues."""
    return max(abs(1.0 - step * lam_large), abs(1.0 - step * lam_small))


def regime_of(step: float, lam_small: float, lam_large: float) -> str:
    """Name the behaviour of gradient descent for this step (same conventions as the lab)."""
    if convergence_rate(step, lam_small, lam_large) >= 1.0:
        return "divergent"
    return "oscillating" if step * lam_large > 1.0 else "monotone"


def draw_quadratic_2d(ax, lam_small: float, lam_large: float, angle_deg: float, iterates: torch.Tensor | None,
                      lim: float = 3.0, title: str | None = None):
    """Contours of ``0.5 w^T A w`` and a trajectory of iterates ``(T, 2)`` on top."""
    from matplotlib.collections import LineCollection

    levels = [lam_large * lim * lim * 0.5 * 4.0 ** (-k) for k in range(8)]
    ax.add_collection(LineCollection(ellipse_segments(lam_small, lam_large, angle_deg, levels),
                                     colors="0.6", lw=0.8))
    if iterates is not None:
        path = iterates.detach().to(torch.float64).numpy()
        ax.plot(path[:, 0], path[:, 1], "o-", ms=3, lw=1, color="#d62728")
        ax.plot(path[:1, 0], path[:1, 1], "s", ms=6, color="black")
    ax.plot([0], [0], "*", ms=10, color="#2ca02c")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# --- the rate map ---------------------------------------------------------------------------------


def rate_map(ax, kappa_max: float = 1000.0, step_max: float = 2.3, marks: Sequence[tuple[float, float]] = (),
             resolution: int = 300):
    """Convergence factor per step over (step size, condition number), with the regime borders.

    The step is measured in units of ``1 / lambda_max`` (so ``eta * lambda_max`` on the x axis) and the
    condition number ``kappa = lambda_max / lambda_min`` is on a log y axis. ``marks`` are
    ``(eta * lambda_max, kappa)`` points to highlight.
    """
    s = np.linspace(0.0, step_max, resolution)
    kappa = np.logspace(0.0, math.log10(kappa_max), resolution)
    ss, kk = np.meshgrid(s, kappa)
    rho = np.maximum(np.abs(1 - ss), np.abs(1 - ss / kk))
    shown = np.ma.masked_where(rho >= 1, rho)
    mesh = ax.pcolormesh(ss, kk, shown, cmap="viridis", vmin=0, vmax=1, shading="auto", rasterized=True)
    ax.pcolormesh(ss, kk, np.ma.masked_where(rho < 1, rho), cmap="Greys", vmin=0, vmax=4, shading="auto",
                  rasterized=True)
    contours = ax.contour(ss, kk, rho, levels=[0.5, 0.8, 0.9, 0.95, 0.99], colors="white", linewidths=0.6)
    ax.clabel(contours, fontsize=7, fmt="%.2f")
    ax.axvline(1.0, color="#ff7f0e", lw=1.5, ls="--", label=r"$\eta\lambda_{max}=1$: oscillations start")
    ax.axvline(2.0, color="#d62728", lw=1.5, label=r"$\eta\lambda_{max}=2$: divergence")
    ax.plot(2 * kappa / (kappa + 1), kappa, color="white", lw=2, label=r"best step $2/(\lambda_{min}+\lambda_{max})$")
    for x, k in marks:
        ax.plot([x], [k], "o", ms=7, mfc="none", mec="red", mew=2)
    ax.set_yscale("log")
    ax.set_xlabel(r"step size $\eta\,\lambda_{max}$")
    ax.set_ylabel(r"condition number $\kappa=\lambda_{max}/\lambda_{min}$")
    ax.set_title("convergence factor per step (grey: divergent)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    ax.figure.colorbar(mesh, ax=ax, label=r"$\max_i |1-\eta\lambda_i|$")
    return ax


def save_rate_map(path: str | Path) -> Path:
    """Draw :func:`rate_map` into a PNG file and return its path."""
    from .plots import new_figure

    fig, ax = new_figure(size=(6.0, 4.2))
    rate_map(ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "figures"
    print(save_rate_map(folder / "lab2_rate_map.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
