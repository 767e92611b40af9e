"""Lab 2's explorers, driven without a browser: set a control, read back what was drawn."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from backproplab import gd_figures, widgets


def descent(grad_fn, w0, eta, nb_steps):
    """A correct gradient descent, written for these tests (not the lab's solution text)."""
    rows = [w0.clone()]
    for _ in range(nb_steps):
        rows.append(rows[-1] - eta * grad_fn(rows[-1]))
    return torch.stack(rows)


def local_model(loss_fn, w0, eta):
    x = w0.clone().requires_grad_(True)
    value = loss_fn(x)
    (g,) = torch.autograd.grad(value, x)
    return lambda w: value.detach() + (g * (w - w0)).sum() + ((w - w0) ** 2).sum() / (2 * eta)


def stub(*args, **kwargs):
    raise NotImplementedError()


def heavy_ball(grad_fn, w0, eta, beta, nb_steps):
    """A correct heavy ball, written for these tests in the two-term form w + beta (w - w_prev) - eta g."""
    rows, previous = [w0.clone()], w0.clone()
    for _ in range(nb_steps):
        w = rows[-1]
        rows.append(w - eta * grad_fn(w) + beta * (w - previous))
        previous = w
    return torch.stack(rows)


def rate(eigenvalues, eta, beta):
    """The heavy-ball rate from the roots of x^2 - (1 + beta - eta lam) x + beta (no 2x2 eigen-solver)."""
    import cmath

    worst = 0.0
    for lam in [float(v) for v in eigenvalues]:
        trace = 1 + beta - eta * lam
        root = cmath.sqrt(trace * trace - 4 * beta)
        worst = max(worst, abs(trace + root) / 2, abs(trace - root) / 2)
    return worst


def median_ms(explorer, control, values, repeats=7):
    before = len(explorer.update_seconds)
    for _ in range(repeats):
        for v in values:
            explorer.controls[control].value = v
    times = explorer.update_seconds[before:]
    return 1000 * statistics.median(times), len(times)


# --- 1-D explorer ----------------------------------------------------------------------------------


def test_explorer_1d_draws_the_students_iterates_for_the_new_step_size():
    e = widgets.gd.explorer_1d(descent, local_model=local_model)
    fig, renders = e.fig, e.view.render_count
    e.controls["eta"].value = 0.5
    w0 = torch.tensor([e.controls["w0"].value], dtype=torch.float64)
    expected = descent(e.grad_fn, w0, 0.5, e.controls["nb_steps"].value)[:, 0].numpy()
    xs = np.asarray(e.artists["iterates"].get_xdata())
    np.testing.assert_allclose(xs, expected)
    assert e.fig is fig and e.view.render_count == renders + 1
    assert e.message is None


def test_explorer_1d_follows_start_point_and_number_of_steps():
    e = widgets.gd.explorer_1d(descent, local_model=local_model)
    e.controls["w0"].value = 1.5
    e.controls["nb_steps"].value = 7
    xs = np.asarray(e.artists["iterates"].get_xdata())
    assert len(xs) == 8 and xs[0] == pytest.approx(1.5)
    assert len(e.artists["models"].get_segments()) == 7  # one local model per step


def test_explorer_1d_local_models_have_their_lowest_point_at_the_next_iterate():
    e = widgets.gd.explorer_1d(descent, local_model=local_model)
    xs = np.asarray(e.artists["iterates"].get_xdata())
    for (center, _c0, c1, c2), following in zip(e.parabolas, xs[1:], strict=True):
        assert center - c1 / (2 * c2) == pytest.approx(following, abs=1e-9)


def test_explorer_1d_converges_with_0125_and_bounces_with_05():
    e = widgets.gd.explorer_1d(descent, local_model=local_model)
    e.controls["nb_steps"].value = 40
    e.controls["eta"].value = 0.125
    settled = e.iterates[-3:, 0]
    assert np.ptp(settled) < 1e-3
    e.controls["eta"].value = 0.5
    bouncing = e.iterates[-4:, 0]
    assert abs(bouncing[-1] - bouncing[-2]) > 0.5 and bouncing[-1] == pytest.approx(bouncing[-3], abs=1e-2)


def test_explorer_1d_says_when_gradient_descent_is_not_written():
    e = widgets.gd.explorer_1d(stub, local_model=stub)
    assert "not written yet" in e.message and "gradient_descent" in e.message
    assert e.artists["message"].get_visible()
    assert len(e.artists["iterates"].get_xdata()) == 0
    e.controls["eta"].value = 0.3  # still no crash
    assert "gradient_descent" in e.status.value


def test_explorer_1d_says_when_only_the_local_model_is_missing():
    e = widgets.gd.explorer_1d(descent, local_model=stub)
    assert "local_quadratic_model" in e.message
    assert len(e.artists["iterates"].get_xdata()) == e.controls["nb_steps"].value + 1


def test_explorer_1d_reports_a_wrong_shape():
    e = widgets.gd.explorer_1d(lambda g, w0, eta, n: w0, local_model=local_model)
    assert "shape" in e.message


# --- 2-D explorer ----------------------------------------------------------------------------------


def test_explorer_2d_draws_the_students_trajectory_and_names_the_regime():
    e = widgets.gd.explorer_2d(descent)
    fig = e.fig
    for eta, regime in ((0.5, "monotone"), (1.5, "oscillating"), (2.0, "divergent"), (1.0, "monotone")):
        e.controls["eta"].value = eta
        assert e.regime == regime
        assert regime in e.artists["title"].get_text()
    kappa = e.controls["kappa"].value
    assert e.theoretical_rate == pytest.approx(max(abs(1 - 1.0), abs(1 - 1.0 / kappa)))
    a = e.matrix()
    expected = descent(lambda w: a @ w, e.start_point(), 1.0, e.controls["nb_steps"].value).numpy()
    np.testing.assert_allclose(np.asarray(e.artists["trajectory"].get_xdata()), expected[:, 0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(e.artists["trajectory"].get_ydata()), expected[:, 1], atol=1e-12)
    assert e.fig is fig


def test_explorer_2d_observed_rate_matches_theory():
    e = widgets.gd.explorer_2d(descent, nb_steps=60)
    for eta in (0.4, 1.2, 1.8):
        e.controls["eta"].value = eta
        assert e.observed_rate == pytest.approx(e.theoretical_rate, rel=1e-3)


def test_explorer_2d_rotation_changes_nothing_but_the_orientation():
    e = widgets.gd.explorer_2d(descent)
    e.controls["angle"].value = 0
    distances = np.linalg.norm(e.iterates, axis=1)
    e.controls["angle"].value = 70
    np.testing.assert_allclose(np.linalg.norm(e.iterates, axis=1), distances, rtol=1e-9)


def test_explorer_2d_contours_follow_the_condition_number():
    e = widgets.gd.explorer_2d(descent)
    e.controls["angle"].value = 0
    e.controls["kappa"].value = 1.0
    round_ = e.artists["contours"].get_segments()[0]
    assert np.ptp(np.linalg.norm(round_, axis=1)) < 1e-9  # kappa = 1: circles
    e.controls["kappa"].value = 100.0
    long_ = e.artists["contours"].get_segments()[0]
    assert np.ptp(long_[:, 1]) == pytest.approx(10 * np.ptp(long_[:, 0]), rel=1e-2)


def test_explorer_2d_says_when_gradient_descent_is_not_written():
    e = widgets.gd.explorer_2d(stub)
    assert "not written yet" in e.message
    assert len(e.artists["trajectory"].get_xdata()) == 0
    e.controls["kappa"].value = 50.0
    assert e.regime == "monotone" and e.artists["message"].get_visible()


# --- 2-D explorer with momentum ------------------------------------------------------------------------


def test_explorer_2d_momentum_slider_runs_the_students_heavy_ball():
    e = widgets.gd.explorer_2d(descent, momentum_descent=heavy_ball, heavy_ball_rate=rate)
    e.controls["beta"].value = 0.6
    a = e.matrix()
    eta, steps = e.controls["eta"].value, e.controls["nb_steps"].value
    expected = heavy_ball(lambda w: a @ w, e.start_point(), eta, 0.6, steps).numpy()
    np.testing.assert_allclose(np.asarray(e.artists["trajectory"].get_xdata()), expected[:, 0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(e.artists["trajectory"].get_ydata()), expected[:, 1], atol=1e-12)
    kappa = e.controls["kappa"].value
    assert e.theoretical_rate == pytest.approx(rate([1 / kappa, 1.0], eta, 0.6))
    assert "β = 0.60" in e.artists["title"].get_text() and e.message is None


def test_explorer_2d_heavy_ball_observed_rate_follows_the_prediction():
    e = widgets.gd.explorer_2d(descent, heavy_ball, rate, nb_steps=100, kappa=100.0)
    for eta, beta in ((1.5, 0.6), (3.0, 0.8), (0.8, 0.3)):
        e.controls["eta"].value = eta
        e.controls["beta"].value = beta
        assert e.theoretical_rate < 1
        assert e.observed_rate == pytest.approx(e.theoretical_rate, rel=0.03)


def test_explorer_2d_momentum_without_the_function_says_what_to_pass_and_beta_0_is_gradient_descent():
    e = widgets.gd.explorer_2d(descent)
    e.controls["beta"].value = 0.5
    assert "momentum_descent" in e.message and e.iterates is None
    e.controls["beta"].value = 0.0
    assert e.message is None and e.regime == "monotone"
    assert len(e.artists["trajectory"].get_xdata()) == e.controls["nb_steps"].value + 1


def test_explorer_2d_momentum_stubs_are_named():
    e = widgets.gd.explorer_2d(descent, momentum_descent=stub, heavy_ball_rate=stub, beta=0.5)
    assert "not written yet" in e.message and "momentum_descent" in e.message
    e = widgets.gd.explorer_2d(descent, momentum_descent=heavy_ball, heavy_ball_rate=stub, beta=0.5)
    assert "heavy_ball_rate" in e.message and e.theoretical_rate is None
    assert len(e.artists["trajectory"].get_xdata()) == e.controls["nb_steps"].value + 1  # iterates still drawn


def test_use_momentum_gives_the_functions_to_an_explorer_made_before_and_redraws_once():
    e = widgets.gd.explorer_2d(descent)
    renders = e.view.render_count
    same = e.use_momentum(heavy_ball, rate, kappa=100.0, beta=0.6, eta=1.5)
    assert same is e and e.view.render_count == renders + 1
    assert e.controls["beta"].value == 0.6 and e.controls["kappa"].value == pytest.approx(100.0)
    assert e.theoretical_rate == pytest.approx(rate([0.01, 1.0], 1.5, 0.6))
    e.controls["beta"].value = 0.7  # the controls still redraw after use_momentum
    assert e.view.render_count == renders + 2


# --- what students see of the timing --------------------------------------------------------------------


def test_widgets_hide_the_redraw_time_unless_asked():
    e = widgets.gd.explorer_2d(descent)
    e.controls["eta"].value = 1.2
    assert "redrawn" not in e.status.value and " ms" not in e.status.value
    assert e.view.last_render_seconds is not None and e.last_update_seconds is not None
    shown = widgets.gd.explorer_1d(descent, local_model=local_model, show_timing=True)
    shown.controls["eta"].value = 0.3
    assert "redrawn in" in shown.status.value and "ms" in shown.status.value


def test_figure_view_timing_note_is_opt_in():
    from backproplab import plots
    from backproplab.widgets._base import BlitView, FigureView

    fig, _ = plots.new_figure()
    view = FigureView(fig)
    view.render()
    assert view.timing_note() == "" and view.last_render_seconds is not None
    view.show_timing = True
    assert view.timing_note().startswith("<small>redrawn in ")
    assert BlitView(fig, [], show_timing=True).timing_note(0.012) == "<small>redrawn in 12 ms</small>"


# --- timing (printed, never asserted) and the static figure -----------------------------------------


def test_report_widget_update_times(capsys):
    e1 = widgets.gd.explorer_1d(descent, local_model=local_model)
    ms1, n1 = median_ms(e1, "eta", [0.5, 0.3, 0.125])
    e2 = widgets.gd.explorer_2d(descent)
    ms2, n2 = median_ms(e2, "eta", [0.5, 1.5, 2.1])
    ms3, n3 = median_ms(e2, "kappa", [3.0, 30.0, 10.0])
    e3 = widgets.gd.explorer_2d(descent, heavy_ball, rate, beta=0.5)
    ms4, n4 = median_ms(e3, "beta", [0.3, 0.6, 0.9])
    with capsys.disabled():
        print(f"\nlab 2 widget update, value change to PNG (median): 1-D {ms1:.1f} ms over {n1}, "
              f"2-D step {ms2:.1f} ms over {n2}, 2-D kappa {ms3:.1f} ms over {n3}, "
              f"2-D momentum {ms4:.1f} ms over {n4} (target under 50 ms)")


def test_rate_map_saves_a_png(tmp_path):
    path = gd_figures.save_rate_map(tmp_path / "lab2_rate_map.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rate_map_marks_the_regime_borders():
    from backproplab import plots

    fig, ax = plots.new_figure()
    gd_figures.rate_map(ax, resolution=40)
    vertical = sorted(line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1)
    assert vertical == [1.0, 2.0]
