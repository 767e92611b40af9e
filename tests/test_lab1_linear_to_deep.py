"""Lab 1's demonstration helpers: the affine collapse, tanh as a sigmoid, the width sweep, and the
per-epoch perceptron table built from the student's functions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from backproplab import linear_to_deep as ltd
from backproplab import perceptron_runs
from backproplab.plots import new_figure


@pytest.mark.parametrize("seed", range(5))
def test_stacked_affine_layers_equal_their_composed_map(seed):
    g = torch.Generator().manual_seed(seed)
    depth = int(torch.randint(1, 6, (), generator=g))
    sizes = torch.randint(1, 7, (depth + 1,), generator=g).tolist()
    weights = [torch.randn(m, n, generator=g, dtype=torch.float64) for n, m in zip(sizes[:-1], sizes[1:])]
    biases = [torch.randn(m, generator=g, dtype=torch.float64) for m in sizes[1:]]
    x = torch.randn(13, sizes[0], generator=g, dtype=torch.float64)
    w, b = ltd.compose_affine(weights, biases)
    assert w.shape == (sizes[-1], sizes[0]) and b.shape == (sizes[-1],)
    torch.testing.assert_close(ltd.apply_layers(weights, biases, x), x @ w.T + b)


def test_composed_matrix_is_the_product_of_the_layer_matrices():
    g = torch.Generator().manual_seed(1)
    w1, w2, w3 = (torch.randn(4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    zeros = [torch.zeros(4, dtype=torch.float64)] * 3
    w, b = ltd.compose_affine([w1, w2, w3], zeros)
    torch.testing.assert_close(w, w3 @ w2 @ w1)
    assert not b.any()


def test_tanh_layers_are_not_affine():
    g = torch.Generator().manual_seed(2)
    weights = [torch.randn(5, 1, generator=g, dtype=torch.float64), torch.randn(1, 5, generator=g, dtype=torch.float64)]
    biases = [torch.randn(5, generator=g, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    t = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    out = ltd.apply_layers(weights, biases, t, torch.tanh)[:, 0]
    second_differences = out[2:] - 2 * out[1:-1] + out[:-2]
    assert second_differences.abs().max() > 1e-3  # an affine function of t has none


def test_compose_affine_rejects_mismatched_lists():
    with pytest.raises(ValueError):
        ltd.compose_affine([torch.eye(2)], [])


def test_tanh_is_a_rescaled_sigmoid():
    t = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    torch.testing.assert_close(torch.tanh(t), 2 * torch.sigmoid(2 * t) - 1)


def test_random_hidden_units_put_their_steepest_point_inside_the_span():
    a, c = ltd.random_hidden_layer(500, torch.Generator().manual_seed(0), span=1.5)
    assert a.shape == (500, 1) and c.shape == (500,)
    where = -c / a[:, 0]
    assert where.abs().max() <= 1.5 + 1e-12 and where.abs().max() > 1.2


def test_random_features_output_layer_is_the_least_squares_optimum():
    x = torch.linspace(-2, 2, 50, dtype=torch.float64)
    y = ltd.target_function(x)
    a, c = ltd.random_hidden_layer(6, torch.Generator().manual_seed(3))
    fitted = ltd.fit_random_features(x, y, a, c)
    residual = fitted - y
    h = torch.cat([torch.tanh(x[:, None] * a[:, 0] + c), torch.ones(50, 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(h.T @ residual, torch.zeros(7, dtype=torch.float64), atol=1e-9, rtol=0)


def test_width_sweep_learned_features_beat_random_ones_and_width_helps():
    x, y, results = ltd.width_sweep(widths=(1, 4, 16), nb_points=60, nb_steps=300)
    assert [r.width for r in results] == [1, 4, 16] and x.shape == y.shape == (60,)
    for r in results:
        assert r.learned_curve.shape == r.random_curve.shape == (60,)
        assert r.learned_mse <= r.random_mse * 1.01
        assert r.learned_mse == pytest.approx(float(((r.learned_curve - y) ** 2).mean()))
    assert results[-1].learned_mse < results[0].learned_mse / 100
    assert torch.get_num_threads() >= 1


def test_width_sweep_restores_the_thread_count():
    before = torch.get_num_threads()
    ltd.width_sweep(widths=(1,), nb_points=10, nb_steps=2)
    assert torch.get_num_threads() == before


def test_plot_helpers_draw_and_return_their_axes():
    x, y, results = ltd.width_sweep(widths=(1, 2), nb_points=20, nb_steps=5)
    for draw in (lambda ax: ltd.draw_tanh_sigmoid(ax), lambda ax: ltd.draw_fits(ax, x, y, results),
                 lambda ax: ltd.draw_fits(ax, x, y, results, which="random"),
                 lambda ax: ltd.draw_error_against_width(ax, results)):
        fig, ax = new_figure()
        assert draw(ax) is ax and ax.lines


# --- the per-epoch table ------------------------------------------------------------------------

def _train(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(nb_epochs_max):
        changed = False
        for i in range(len(x)):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                changed = True
        if not changed:
            break
    return w


def _error(w, x, y):
    return float((y * (x @ w) <= 0).float().mean())


def test_epoch_rows_count_the_updates_of_each_epoch():
    x = torch.tensor([[0.0, 1.0], [-2.0, 2.0], [2.0, 0.0], [2.0, 2.0]])
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    rows = perceptron_runs.epoch_rows(_train, _error, x, y, nb_epochs_max=20)
    assert [r.nb_updates for r in rows] == [2, 1, 1, 0]
    torch.testing.assert_close(rows[-1].w, torch.tensor([2.0, 1.0]))
    assert rows[-1].train_error == 0.0 and rows[0].test_error is None
    torch.testing.assert_close(rows[-1].w, _train(x, y, 20))


def test_epoch_rows_stop_at_the_cap_and_report_test_errors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g)
    y = torch.where(torch.rand(30, generator=g) < 0.5, -1.0, 1.0)
    rows = perceptron_runs.epoch_rows(_train, _error, x, y, x[:10], y[:10], nb_epochs_max=3)
    assert len(rows) == 3 and all(r.test_error is not None for r in rows)
    torch.testing.assert_close(rows[-1].w, _train(x, y, 3))
    table = perceptron_runs.format_epoch_table(rows).splitlines()
    assert len(table) == 4 and table[0].split() == ["epoch", "updates", "train", "error", "test", "error"]


def test_epoch_plot_and_baseline_return_their_axes():
    x = torch.tensor([[0.0, 1.0], [-2.0, 2.0], [2.0, 0.0], [2.0, 2.0]])
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    rows = perceptron_runs.epoch_rows(_train, _error, x, y, x, y)
    fig, ax = new_figure()
    assert perceptron_runs.draw_epoch_errors(ax, rows, "t") is ax
    assert perceptron_runs.draw_constant_baseline(ax, 0.093, "always 'not 8'") is ax
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(9.3)
