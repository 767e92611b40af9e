"""Lab 1: step through the perceptron's updates on 2-D data, one update at a time.

The widget never runs its own perceptron: it replays the student's ``train_perceptron`` one visit
at a time. To continue from a weight vector ``w`` and visit sample ``(x_i, y_i)``, it calls the
student's function for one epoch on the two samples ``[(w, +1), (x_i, y_i)]``: from ``w = 0`` the
first sample always triggers an update (``1 * (w . 0) <= 0``), which sets the weights to ``w``;
the second is then visited exactly as in the full run. So the trace is the student's own algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._base import BlitView, student_function_status

__all__ = ["Visit", "perceptron_trace", "PerceptronStepper", "perceptron_stepper"]


@dataclass
class Visit:
    epoch: int
    index: int  # sample visited
    w_before: torch.Tensor
    w_after: torch.Tensor

    @property
    def updated(self) -> bool:
        return not torch.equal(self.w_before, self.w_after)


def perceptron_trace(train_fn: Callable, x: torch.Tensor, y: torch.Tensor, nb_epochs_max: int) -> list[Visit]:
    """Every visit of the student's perceptron, in order, stopping after an epoch with no update."""
    w = x.new_zeros(x.shape[1])
    one = torch.ones(1, dtype=y.dtype)
    visits: list[Visit] = []
    for epoch in range(nb_epochs_max):
        changed = False
        for i in range(x.shape[0]):
            pair_x = torch.stack([w, x[i]])
            pair_y = torch.cat([one, y[i : i + 1]])
            w_new = torch.as_tensor(train_fn(pair_x, pair_y, 1)).detach().clone()
            visits.append(Visit(epoch, i, w, w_new))
            changed |= not torch.equal(w, w_new)
            w = w_new
        if not changed:
            break
    return visits


def _line_through_box(w: torch.Tensor, xlim, ylim):
    """End points of {p : w0 p0 + w1 p1 + w2 = 0} inside the box, or NaNs when w is zero."""
    a, b, c = (float(v) for v in w[:3])
    if abs(b) >= abs(a) and b != 0:
        xs = [xlim[0], xlim[1]]
        return xs, [-(a * t + c) / b for t in xs]
    if a != 0:
        ys = [ylim[0], ylim[1]]
        return [-(b * t + c) / a for t in ys], ys
    return [float("nan")] * 2, [float("nan")] * 2


class PerceptronStepper:
    """The stepper's state and drawing, usable without a browser (tests set ``step`` directly)."""

    def __init__(self, train_fn: Callable | None, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 nb_epochs_max: int = 20, seed: int = 0):
        import ipywidgets as w

        from .. import data
        from ..plots import new_figure, scatter_2d

        if x is None or y is None:
            g = torch.Generator().manual_seed(seed)
            pts, labels = data.linearly_separable(40, margin=0.08, generator=g)
            pts = pts + torch.tensor([0.6, 0.4])  # move the separating line off the origin: the bias matters
            x = torch.cat([pts, torch.ones(len(pts), 1)], 1)  # bias as a constant third feature
            y = labels.to(torch.float32) * 2 - 1
        self.x, self.y = x, y
        self.message = w.HTML()
        self.status = student_function_status(
            train_fn, "train_perceptron",
            lambda f: f(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), torch.tensor([1.0, -1.0]), 1),
        )
        self.visits: list[Visit] = []
        if self.status is None:
            try:
                self.visits = perceptron_trace(train_fn, x, y, nb_epochs_max)
            except Exception as exc:  # student code failing on the real data: say it, draw the data anyway
                self.status = f"`train_perceptron` raised {type(exc).__name__}: {exc}"
        self.updates = [v for v in self.visits if v.updated]

        self.fig, self.ax = new_figure(size=(5, 4.5))
        scatter_2d(self.ax, x[:, :2], y.long())
        pad = 0.15
        self.xlim = (float(x[:, 0].min()) - pad, float(x[:, 0].max()) + pad)
        self.ylim = (float(x[:, 1].min()) - pad, float(x[:, 1].max()) + pad)
        self.ax.set_xlim(*self.xlim)
        self.ax.set_ylim(*self.ylim)
        (self.line,) = self.ax.plot([], [], color="black", lw=2, label="w . x = 0")
        (self.marker,) = self.ax.plot([], [], "o", ms=14, mfc="none", mec="black", mew=2)
        self.arrow = self.ax.annotate("", xy=(0, 0), xytext=(0, 0),
                                      arrowprops=dict(arrowstyle="->", color="black"))
        self.title = self.ax.set_title("", fontsize=9)
        self.ax.legend(loc="lower left", fontsize=8)
        self.view = BlitView(self.fig, [self.line, self.marker, self.arrow, self.title], dpi=80)

        n = len(self.updates)
        self.slider = w.IntSlider(value=0, min=0, max=max(n, 0), description="update", continuous_update=True)
        self.play = w.Play(value=0, min=0, max=max(n, 0), interval=400, description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = w.VBox([w.HBox([self.play, self.slider]), self.view.image, self.message])
        self.show(0)

    @property
    def step(self) -> int:
        return self.slider.value

    @step.setter
    def step(self, k: int) -> None:
        self.slider.value = k  # the observer redraws

    def weights_at(self, k: int) -> torch.Tensor:
        """Weights after ``k`` updates (``k = 0``: the zero start)."""
        if k == 0 or not self.updates:
            return torch.zeros(self.x.shape[1], dtype=self.x.dtype)
        return self.updates[k - 1].w_after

    def show(self, k: int) -> None:
        if self.status is not None:
            self.message.value = f"<b style='color:#b00'>{self.status}</b>"
            self.title.set_text("train_perceptron is not ready")
            self.view.render()
            return
        w_k = self.weights_at(k)
        xs, ys = _line_through_box(w_k, self.xlim, self.ylim)
        self.line.set_data(xs, ys)
        if k == 0:
            self.marker.set_data([], [])
            self.arrow.set_visible(False)
            self.title.set_text(f"start: w = 0 ({len(self.updates)} updates in all)")
        else:
            v = self.updates[k - 1]
            p = self.x[v.index]
            self.marker.set_data([float(p[0])], [float(p[1])])
            mid = (sum(xs) / 2, sum(ys) / 2) if xs[0] == xs[0] else (0.0, 0.0)
            norm = float(w_k[:2].norm()) or 1.0
            tip = (mid[0] + 0.3 * float(w_k[0]) / norm, mid[1] + 0.3 * float(w_k[1]) / norm)
            self.arrow.xy, self.arrow.xyann = tip, mid
            self.arrow.set_visible(True)
            label = "+1" if float(self.y[v.index]) > 0 else "-1"
            self.title.set_text(f"update {k}: epoch {v.epoch}, sample {v.index} (y = {label}) was on the wrong side")
        errors = int((self.y * (self.x @ w_k) <= 0).sum())
        self.message.value = f"w = {[round(float(t), 3) for t in w_k]}; {errors} of {len(self.y)} points on the wrong side"
        self.view.render()


def perceptron_stepper(train_fn: Callable | None, x=None, y=None, nb_epochs_max: int = 20, seed: int = 0):
    """Display-ready stepper: ``display(perceptron_stepper(train_perceptron).widget)``."""
    return PerceptronStepper(train_fn, x, y, nb_epochs_max, seed)
