"""Figures and a toy problem for lab 2's section on momentum and adaptive steps.

Everything here draws or builds data; nothing here descends or computes a heavy-ball rate. The
rates come from the student's ``heavy_ball_rate`` and the iterates from their ``momentum_descent``,
``gradient_descent`` and ``adam_step``: these helpers only turn those results into pictures.
Each drawing helper takes a matplotlib ``ax`` and returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "phase_diagram",
    "rate_scatter",
    "observed_rate",
    "regression_problem",
    "RegressionProblem",
    "noise_floor_curves",
    "noise_floor_plot",
]


def phase_diagram(ax, etas: Sequence[float], betas: Sequence[float], rates, marks: Sequence[tuple] = (),
                  kappa: float | None = None):
    """Heavy-ball rate over (step ``eta``, momentum ``beta``): ``rates[i][j]`` is the rate for
    ``betas[i]`` and ``etas[j]``. Rates of 1 or more are grey (divergent). ``marks`` are
    ``(eta, beta, label)`` points drawn on top."""
    rho = np.asarray(rates, dtype=float)
    ee, bb = np.meshgrid(np.asarray(etas, dtype=float), np.asarray(betas, dtype=float))
    mesh = ax.pcolormesh(ee, bb, np.ma.masked_where(rho >= 1, rho), cmap="viridis", vmin=0, vmax=1,
                         shading="auto", rasterized=True)
    ax.pcolormesh(ee, bb, np.ma.masked_where(rho < 1, rho), cmap="Greys", vmin=0, vmax=4, shading="auto",
                  rasterized=True)
    finite = np.where(np.isfinite(rho), rho, 10.0)
    lines = ax.contour(ee, bb, finite, levels=[0.5, 0.7, 0.8, 0.9, 0.95], colors="white", linewidths=0.6)
    ax.clabel(lines, fontsize=7, fmt="%.2f")
    for eta, beta, label in marks:
        ax.plot([eta], [beta], "o", ms=8, mfc="none", mec="red", mew=2)
        ax.annotate(label, (eta, beta), xytext=(6, 6), textcoords="offset points", color="red", fontsize=8)
    ax.set_xlabel(r"step size $\eta$")
    ax.set_ylabel(r"momentum $\beta$")
    title = "heavy-ball rate per step (grey: divergent)"
    ax.set_title(title + (f", κ = {kappa:g}" if kappa else ""), fontsize=10)
    ax.figure.colorbar(mesh, ax=ax, label="largest spectral radius")
    return ax


def observed_rate(iterates: torch.Tensor, first: int, last: int | None = None) -> float:
    """Geometric-mean contraction of ``||w_t||`` (distance to a minimum at 0) from step ``first`` to ``last``."""
    norms = iterates.detach().to(torch.float64).norm(dim=1)
    last = len(norms) - 1 if last is None else last
    return float((norms[last] / norms[first]) ** (1.0 / (last - first)))


def rate_scatter(ax, predicted: Sequence[float], measured: Sequence[float], labels: Sequence[str] = ()):
    """Measured against predicted rates, with the diagonal where they agree."""
    ax.plot([0, 1], [0, 1], "--", color="0.5", lw=1, label="measured = predicted")
    ax.plot(predicted, measured, "o", color="#d62728", ms=6, label="runs")
    for p, m, text in zip(predicted, measured, labels, strict=False):
        ax.annotate(text, (p, m), xytext=(4, -10), textcoords="offset points", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted rate (heavy_ball_rate)")
    ax.set_ylabel("measured rate (momentum_descent)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


class RegressionProblem:
    """Least squares ``L(w) = 0.5 * mean((x w - y)^2)`` on a fixed data set, with mini-batch gradients.

    ``y = x w_true + noise * N(0, 1)``; ``w_star`` is the exact minimiser of the full-data loss, so
    ``excess(w) = L(w) - L(w_star)`` is how far an iterate is from the best possible fit.
    """

    def __init__(self, nb_samples: int = 2000, dim: int = 5, noise: float = 0.5, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(nb_samples, dim, generator=gen, dtype=torch.float64)  # (N, D)
        w_true = torch.randn(dim, generator=gen, dtype=torch.float64)
        self.y = self.x @ w_true + noise * torch.randn(nb_samples, generator=gen, dtype=torch.float64)  # (N,)
        self.noise = noise
        self.w_star = torch.linalg.lstsq(self.x, self.y[:, None]).solution[:, 0]
        self.best_loss = self.loss(self.w_star)

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    def loss(self, w: torch.Tensor) -> float:
        return float(0.5 * ((self.x @ w - self.y) ** 2).mean())

    def excess(self, w: torch.Tensor) -> float:
        return self.loss(w) - self.best_loss

    def batch_gradient(self, batch_size: int, generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
        """``grad_fn(w)``: the gradient of the loss averaged over ``batch_size`` samples drawn with replacement."""
        def grad_fn(w: torch.Tensor) -> torch.Tensor:
            idx = torch.randint(len(self.y), (batch_size,), generator=generator)
            xb, yb = self.x[idx], self.y[idx]  # (B, D), (B,)
            return xb.T @ (xb @ w - yb) / batch_size  # mean over the batch: the step does not grow with B

        return grad_fn


def regression_problem(**kwargs) -> RegressionProblem:
    return RegressionProblem(**kwargs)


def noise_floor_curves(ax, curves: dict[int, Sequence[float]]):
    """Excess loss over the steps, one curve per batch size (log scale)."""
    for batch_size, values in curves.items():
        ax.semilogy(values, lw=1, label=f"B = {batch_size}")
    ax.set_xlabel("step t")
    ax.set_ylabel("excess loss L(w_t) − L(w*)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def noise_floor_plot(ax, batch_sizes: Sequence[int], floors: Sequence[float], predicted: Sequence[float] = ()):
    """The plateau (noise floor) against the batch size on log-log axes, with a prediction if given."""
    ax.loglog(batch_sizes, floors, "o-", color="#d62728", label="measured floor")
    if len(predicted):
        ax.loglog(batch_sizes, predicted, "--", color="black", lw=1, label=r"$\eta \sigma^2 D / (2B(2-\eta))$")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("mean excess loss on the plateau")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("the noise floor against the batch size", fontsize=10)
    return ax
