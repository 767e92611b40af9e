"""Plotting helpers. Each takes a matplotlib ``ax``, draws on it and returns it; none calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["scatter_2d", "decision_boundary", "loss_curves", "digit_grid", "new_figure"]

CLASS_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (4.0, 3.5)):
    """A figure that is not registered with pyplot (so it never shows twice), and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes[0, 0] if nrows * ncols == 1 else axes


def scatter_2d(ax, x: torch.Tensor, y: torch.Tensor, *, s: float = 14, alpha: float = 0.8):
    """Scatter 2-D points coloured by class (labels in {0..K-1} or {-1, +1})."""
    x = torch.as_tensor(x).detach().cpu()
    y = torch.as_tensor(y).detach().cpu()
    classes = sorted({int(v) for v in y.tolist()})
    for i, c in enumerate(classes):
        m = y == c
        ax.scatter(x[m, 0], x[m, 1], s=s, alpha=alpha, color=CLASS_COLORS[i % len(CLASS_COLORS)],
                   edgecolors="white", linewidths=0.3, label=f"class {c}")
    return ax


def decision_boundary(
    ax,
    predict: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    resolution: int = 200,
    alpha: float = 0.25,
):
    """Shade the plane by the class ``predict`` gives each point.

    ``predict`` maps ``(M, 2)`` points to ``(M,)`` labels or ``(M, K)`` scores (argmax is taken).
    """
    gx = torch.linspace(xlim[0], xlim[1], resolution)
    gy = torch.linspace(ylim[0], ylim[1], resolution)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        out = torch.as_tensor(predict(grid))
    if out.dim() == 2:
        out = out.argmax(1)
    zz = out.reshape(resolution, resolution).to(torch.float32)
    from matplotlib.colors import ListedColormap

    k = max(2, int(zz.max()) + 1 if zz.numel() else 2)
    ax.contourf(xx, yy, zz, levels=[v - 0.5 for v in range(k + 1)], cmap=ListedColormap(CLASS_COLORS[:k]), alpha=alpha)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return ax


def loss_curves(ax, curves: dict[str, Sequence[float]], *, logy: bool = True, xlabel: str = "step"):
    """One line per named curve (for example ``{"train": losses, "test": test_losses}``)."""
    for name, values in curves.items():
        ax.plot(range(len(values)), list(values), label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def digit_grid(ax, images: torch.Tensor, nrow: int = 8, side: int | None = None):
    """Tile flattened square images ``(N, side*side)`` into one grey image."""
    images = torch.as_tensor(images).detach().cpu().to(torch.float32)
    n = images.shape[0]
    side = side or int(round(images.shape[1] ** 0.5))
    ncol = (n + nrow - 1) // nrow
    canvas = torch.ones(ncol * (side + 1), nrow * (side + 1))
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side] = images[i].reshape(side, side)
    ax.imshow(canvas, cmap="gray_r")
    ax.set_axis_off()
    return ax
