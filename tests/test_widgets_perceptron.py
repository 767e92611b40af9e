"""The lab 1 stepper, driven without a browser."""

from __future__ import annotations

import statistics

import torch
from backproplab.widgets import perceptron


def rosenblatt(x, y, nb_epochs_max):
    """An independent perceptron for the tests (never shipped in lib/)."""
    w = [0.0] * x.shape[1]
    for _ in range(nb_epochs_max):
        changed = False
        for row, label in zip(x.tolist(), y.tolist(), strict=True):
            if label * sum(a * b for a, b in zip(row, w, strict=True)) <= 0:
                w = [a + label * b for a, b in zip(w, row, strict=True)]
                changed = True
        if not changed:
            break
    return torch.tensor(w, dtype=x.dtype)


def stub(x, y, nb_epochs_max):
    raise NotImplementedError()


def test_trace_replays_the_students_function_exactly():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(15, 3, generator=g, dtype=torch.float64)
    y = torch.where(x[:, 0] + 0.3 * x[:, 1] > 0.1, 1.0, -1.0).to(torch.float64)
    visits = perceptron.perceptron_trace(rosenblatt, x, y, 30)
    assert torch.allclose(visits[-1].w_after, rosenblatt(x, y, 30))
    last_epoch = [v for v in visits if v.epoch == visits[-1].epoch]
    assert not any(v.updated for v in last_epoch) and len(last_epoch) == 15
    assert [v.index for v in visits[:15]] == list(range(15))


def test_stepper_moves_the_same_line_artist_to_each_update():
    s = perceptron.perceptron_stepper(rosenblatt, nb_epochs_max=50)
    assert s.status is None and len(s.updates) > 3
    line, fig = s.line, s.fig
    first_png = s.view.image.value
    s.step = 2
    xs, ys = line.get_data()
    w = s.updates[1].w_after
    # both drawn end points lie on the line w . (p, 1) = 0
    for px, py in zip(xs, ys, strict=True):
        assert abs(float(w[0]) * px + float(w[1]) * py + float(w[2])) < 1e-4
    assert s.line is line and s.fig is fig
    assert s.view.image.value != first_png
    assert "update 2" in s.title.get_text()
    s.step = len(s.updates)
    assert "0 of 40 points on the wrong side" in s.message.value


def test_stepper_says_when_the_exercise_is_not_done():
    s = perceptron.perceptron_stepper(stub)
    assert "not written yet" in s.message.value
    assert s.slider.max == 0 and s.view.image.value  # still draws the data


def test_stepper_reports_a_crashing_student_function():
    def broken(x, y, n):
        return x[:, 99]

    s = perceptron.perceptron_stepper(broken)
    assert "IndexError" in s.message.value


def test_stepper_update_time_is_printed():
    s = perceptron.perceptron_stepper(rosenblatt, nb_epochs_max=50)
    times = []
    for k in range(1, len(s.updates) + 1):
        s.step = k
        times.append(s.view.last_render_seconds)
    print(f"perceptron stepper: median redraw {1000 * statistics.median(times):.1f} ms over {len(times)} updates")
