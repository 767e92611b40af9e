"""Lab 2's momentum figures and regression toy problem: properties, no descent inside the library."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from backproplab import momentum_figures, plots


def test_regression_minimiser_has_zero_full_gradient_and_the_excess_loss_is_never_negative():
    p = momentum_figures.regression_problem(nb_samples=300, dim=4, noise=0.3, seed=2)
    full_grad = p.x.T @ (p.x @ p.w_star - p.y) / len(p.y)
    assert float(full_grad.abs().max()) < 1e-10
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        w = p.w_star + torch.randn(p.dim, generator=gen, dtype=torch.float64)
        assert p.excess(w) > 0
    assert p.excess(p.w_star) == pytest.approx(0.0, abs=1e-12)


def test_batch_gradient_is_unbiased_and_averaged_not_summed():
    p = momentum_figures.regression_problem(nb_samples=200, dim=3, noise=0.5, seed=1)
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    full = p.x.T @ (p.x @ w - p.y) / len(p.y)
    for batch_size in (1, 16):
        grad_fn = p.batch_gradient(batch_size, torch.Generator().manual_seed(3))
        mean = torch.stack([grad_fn(w) for _ in range(4000)]).mean(0)
        assert torch.allclose(mean, full, atol=0.15 * float(full.norm()) / math.sqrt(batch_size) + 0.05)
    # a batch of the same size has the same scale whatever B is (mean, not sum)
    big = p.batch_gradient(200, torch.Generator().manual_seed(4))(w)
    assert float(big.norm()) == pytest.approx(float(full.norm()), rel=0.5)


def test_batch_gradient_draws_only_from_its_generator():
    p = momentum_figures.regression_problem(nb_samples=50, dim=2, seed=0)
    w = torch.zeros(2, dtype=torch.float64)
    a = p.batch_gradient(4, torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    first = [a(w) for _ in range(3)]
    b = p.batch_gradient(4, torch.Generator().manual_seed(7))
    torch.manual_seed(999)
    second = [b(w) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(first, second, strict=True))


def test_observed_rate_recovers_a_geometric_contraction():
    t = torch.arange(51, dtype=torch.float64)[:, None]
    iterates = torch.cat([0.8**t, -(0.8**t)], dim=1)
    assert momentum_figures.observed_rate(iterates, 10, 50) == pytest.approx(0.8)
    assert momentum_figures.observed_rate(iterates, 0) == pytest.approx(0.8)


def test_phase_diagram_and_rate_scatter_draw_and_return_their_axes():
    etas, betas = np.linspace(0.1, 3.0, 12), np.linspace(0.0, 0.9, 8)
    rates = np.array([[min(2.0, abs(1 - e) + b) for e in etas] for b in betas])  # any grid of numbers, some >= 1
    fig, ax = plots.new_figure()
    assert momentum_figures.phase_diagram(ax, etas, betas, rates, marks=[(1.0, 0.5, "x")], kappa=10) is ax
    assert "κ = 10" in ax.get_title()
    assert any(line.get_xdata()[0] == 1.0 for line in ax.lines)  # the mark
    fig, ax = plots.new_figure()
    assert momentum_figures.rate_scatter(ax, [0.5, 0.9], [0.51, 0.88]) is ax
    assert ax.get_xlim() == (0.0, 1.0)


def test_noise_floor_plots_draw_one_curve_per_batch_size():
    fig, axes = plots.new_figure(1, 2)
    curves = {1: [1.0, 0.1, 0.01], 4: [1.0, 0.05, 0.002]}
    assert momentum_figures.noise_floor_curves(axes[0, 0], curves) is axes[0, 0]
    assert len(axes[0, 0].lines) == 2
    ax = momentum_figures.noise_floor_plot(axes[0, 1], [1, 4, 16], [1e-2, 2.5e-3, 6e-4], [1.1e-2, 2.7e-3, 7e-4])
    assert ax.get_xscale() == "log" and len(ax.lines) == 2
