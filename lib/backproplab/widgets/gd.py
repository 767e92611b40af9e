"""Lab 2 widgets: explore gradient descent in 1-D and on 2-D quadratics.

- ``explorer_1d(gradient_descent, local_model=None)``: sliders for the step size, the start point and
  the number of steps; draws the function, the iterates and (with the student's
  ``local_quadratic_model``) the local quadratic model minimised at each step.
- ``explorer_2d(gradient_descent, momentum_descent=None, heavy_ball_rate=None)``: sliders for the step
  size, the condition number, the rotation, the number of steps and the momentum ``beta``; the
  trajectory on the contours, the regime, and the theoretical contraction factor beside the one
  measured on the student's iterates. With ``beta > 0`` the iterates come from the student's
  ``momentum_descent`` and the predicted rate from their ``heavy_ball_rate`` (``use_momentum`` passes
  them to an explorer made before they were written).

Both keep one figure and update its artists' data; ``last_update_seconds`` is the time from a control's
change to the redrawn PNG, measured in Python. Students do not see it unless ``show_timing=True``.
Tests drive them through ``controls[name].value``.
"""

from __future__ import annotations

import math
import textwrap
import time
from collections.abc import Callable

import numpy as np
import torch

from .. import gd_figures
from ._base import BlitView, student_function_status

__all__ = ["Explorer1D", "Explorer2D", "explorer_1d", "explorer_2d"]


def _autograd_gradient(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``w -> d f(w).sum() / dw`` through torch.autograd (the explorers' own gradients)."""
    def grad_fn(w: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = w.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(f(x).sum(), x)
        return g.to(w.dtype)

    return grad_fn


def _run_descent(fn, grad_fn, w0: torch.Tensor, eta: float, nb_steps: int, beta: float | None = None,
                 name: str = "gradient_descent") -> tuple[np.ndarray | None, str | None]:
    """Call the student's ``gradient_descent`` (or ``momentum_descent`` when ``beta`` is given);
    return ``(iterates as numpy, None)`` or ``(None, message)``."""
    box = []
    extra = () if beta is None else (beta,)
    message = student_function_status(fn, name, lambda g: box.append(g(grad_fn, w0, eta, *extra, nb_steps)))
    if message is not None:
        return None, message
    out = box[0]
    want = (nb_steps + 1, w0.numel())
    if not isinstance(out, torch.Tensor):
        return None, f"`{name}` returned a {type(out).__name__}; it must return one tensor of shape {want}."
    if tuple(out.shape) != want:
        return None, (f"`{name}` returned shape {tuple(out.shape)}; expected {want} "
                      "(row 0 is w0, then one row per step).")
    path = out.detach().to(torch.float64).numpy().copy()
    path[~np.isfinite(path)] = np.nan
    return path, None


class _Explorer:
    """What both explorers share: controls, a kept figure, a status line, timing."""

    ROW = 4  # controls per row

    def __init__(self, fig, controls: dict, dpi: int, dynamic=(), show_timing: bool = False):
        import ipywidgets as w

        self.fig = fig
        self.controls = controls
        self.view = BlitView(fig, dynamic, dpi=dpi, show_timing=show_timing)
        self.status = w.HTML()
        self.message: str | None = None
        self.update_seconds: list[float] = []
        items = list(controls.values())
        rows = [w.HBox(items[i:i + self.ROW]) for i in range(0, len(items), self.ROW)]
        self.widget = w.VBox([*rows, self.view.image, self.status])
        for control in controls.values():
            control.observe(self._on_change, names="value")

    @property
    def last_update_seconds(self) -> float | None:
        return self.update_seconds[-1] if self.update_seconds else None

    def _on_change(self, _change=None) -> None:
        self.update()

    def update(self) -> None:
        start = time.perf_counter()
        self._redraw()
        self.view.render()
        elapsed = time.perf_counter() - start
        self.update_seconds.append(elapsed)
        note = f"<b>{self.message}</b>" if self.message else ""
        timing = self.view.timing_note(elapsed)  # empty unless show_timing=True
        self.status.value = note + ("<br>" if note and timing else "") + timing

    def _redraw(self) -> None:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def _show_message(self, text_artist, message: str | None) -> None:
        self.message = message
        text_artist.set_text(textwrap.fill(message, 48) if message else "")
        text_artist.set_visible(message is not None)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class Explorer1D(_Explorer):
    """Gradient descent on a 1-D function with the local quadratic model at each iterate."""

    def __init__(self, gradient_descent, local_model=None, f=None, *, eta=0.125, w0=gd_figures.WAVY_BOWL_START,
                 nb_steps=12, xlim=(-3.5, 3.5), dpi=80, show_timing=False):
        import ipywidgets as w
        from matplotlib.figure import Figure

        self.gradient_descent = gradient_descent
        self.local_model = local_model
        self.f = f or gd_figures.wavy_bowl
        self.grad_fn = _autograd_gradient(self.f)
        self.xlim = xlim
        self.iterates: np.ndarray | None = None
        self.parabolas: list | None = None
        controls = {
            "eta": w.FloatSlider(value=eta, min=0.01, max=1.0, step=0.005, description="step η",
                                 readout_format=".3f", continuous_update=False),
            "w0": w.FloatSlider(value=w0, min=xlim[0], max=xlim[1], step=0.05, description="start w₀",
                                continuous_update=False),
            "nb_steps": w.IntSlider(value=nb_steps, min=1, max=40, description="steps", continuous_update=False),
        }
        fig = Figure(figsize=(9.0, 3.4), layout="constrained")
        ax, ax_loss = fig.subplots(1, 2, width_ratios=[2.2, 1])
        grid = torch.linspace(*xlim, 300, dtype=torch.float64)
        values = self.f(grid).detach()
        lo, hi = float(values.min()), float(values.max())
        ax.plot(grid.numpy(), values.numpy(), color="black", lw=1.5)
        ax.set_xlim(*xlim)
        ax.set_ylim(lo - 0.3 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set_xlabel("w")
        ax.set_ylabel("f(w)")
        from matplotlib.collections import LineCollection

        self.artists = {
            "models": ax.add_collection(LineCollection([], colors="#1f77b4", alpha=0.5, lw=1)),
            "iterates": ax.plot([], [], "o-", color="#d62728", ms=4, lw=0.8, mec="black", mew=0.4)[0],
            "start": ax.plot([], [], "s", color="black", ms=6)[0],
            "loss": ax_loss.plot([], [], "o-", color="#d62728", ms=3, lw=1)[0],
            "title": ax.set_title("", fontsize=9),
            "message": ax.text(0.5, 0.5, "", transform=ax.transAxes, ha="center", va="center",
                               fontsize=9, bbox={"boxstyle": "round", "fc": "#fff3cd", "ec": "#d39e00"}),
        }
        ax_loss.set_xlabel("step t")
        ax_loss.set_title("f(w_t)", fontsize=9)
        ax_loss.set_ylim(lo - 0.1 * (hi - lo), hi)
        ax_loss.grid(alpha=0.3)
        self.ax, self.ax_loss = ax, ax_loss
        self._shown_steps = None
        super().__init__(fig, controls, dpi, dynamic=self.artists.values(), show_timing=show_timing)
        self.update()

    def _redraw(self) -> None:
        eta = float(self.controls["eta"].value)
        nb_steps = int(self.controls["nb_steps"].value)
        w0 = torch.tensor([float(self.controls["w0"].value)], dtype=torch.float64)
        a = self.artists
        a["start"].set_data([float(w0[0])], [float(self.f(w0)[0])])
        path, message = _run_descent(self.gradient_descent, self.grad_fn, w0, eta, nb_steps)
        self.iterates = path
        if path is None:
            for key in ("iterates", "loss"):
                a[key].set_data([], [])
            a["models"].set_segments([])
            a["title"].set_text("")
            self._show_message(a["message"], message)
            return
        ws = path[:, 0]
        fs = self.f(torch.from_numpy(ws)).numpy()
        a["iterates"].set_data(ws, fs)
        a["loss"].set_data(np.arange(len(fs)), fs)
        if nb_steps != self._shown_steps:
            self.ax_loss.set_xlim(-0.5, nb_steps + 0.5)
            self._shown_steps = nb_steps
            self.view.invalidate()
        a["title"].set_text(f"η = {eta:.3f}: w_{nb_steps} = {ws[-1]:.3f}, f = {fs[-1]:.3f}")
        message = None
        self.parabolas = None
        if self.local_model is None:
            message = "Pass local_model=local_quadratic_model to also draw the local models."
        else:
            box = []
            centers = [c for c in ws[:-1] if math.isfinite(c)]
            message = student_function_status(
                self.local_model, "local_quadratic_model",
                lambda m: box.append(gd_figures.parabolas_from_model(m, self.f, centers, eta)))
            if message is None:
                self.parabolas = box[0]
        a["models"].set_segments(gd_figures.parabola_segments(self.parabolas) if self.parabolas else [])
        self._show_message(a["message"], message)
        if message is not None:  # a hint, not an error: keep it out of the way of the curve
            a["message"].set_position((0.5, 0.08))
        else:
            a["message"].set_position((0.5, 0.5))


class Explorer2D(_Explorer):
    """Gradient descent (or the heavy ball, ``beta > 0``) on ``0.5 w^T A w`` with ``lambda_max = 1`` and
    ``lambda_min = 1 / kappa``."""

    LIM = 3.0

    def __init__(self, gradient_descent, momentum_descent=None, heavy_ball_rate=None, *, eta=0.5, kappa=10.0,
                 angle=30, nb_steps=30, beta=0.0, start=(1.6, 2.4), dpi=80, show_timing=False):
        import ipywidgets as w
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        self.gradient_descent = gradient_descent
        self.momentum_descent = momentum_descent
        self.heavy_ball_rate = heavy_ball_rate
        self.start = start  # (along the steep eigenvector, along the flat one)
        self.iterates: np.ndarray | None = None
        self.regime: str | None = None
        self.theoretical_rate: float | None = None
        self.observed_rate: float | None = None
        controls = {
            "eta": w.FloatSlider(value=eta, min=0.02, max=4.0, step=0.01, description="η·λmax",
                                 continuous_update=False),
            "kappa": w.FloatLogSlider(value=kappa, base=10, min=0, max=2, step=0.05, description="κ",
                                      readout_format=".1f", continuous_update=False),
            "angle": w.IntSlider(value=angle, min=0, max=180, step=5, description="rotation°",
                                 continuous_update=False),
            "nb_steps": w.IntSlider(value=nb_steps, min=5, max=100, description="steps", continuous_update=False),
            "beta": w.FloatSlider(value=beta, min=0.0, max=0.99, step=0.01, description="momentum β",
                                  continuous_update=False),
        }
        fig = Figure(figsize=(8.0, 3.6), layout="constrained")
        ax, ax_err = fig.subplots(1, 2)
        lim = self.LIM
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.plot([0], [0], "*", ms=10, color="#2ca02c")
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        ax_err.set_yscale("log")
        ax_err.set_ylim(1e-6, 1e3)
        # Plain-text tick labels: the default ones are mathtext, which is slow to lay out on every redraw.
        ax_err.yaxis.set_major_locator(FixedLocator([10.0**k for k in range(-6, 4, 3)]))
        ax_err.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(math.log10(v))}"))
        ax_err.yaxis.set_minor_locator(NullLocator())
        ax_err.set_xlabel("step t")
        ax_err.set_title("distance to the minimum ‖w_t − w*‖", fontsize=9)
        ax_err.grid(alpha=0.3)
        self.artists = {
            "contours": ax.add_collection(LineCollection([], colors="0.65", lw=0.8)),
            "axes": ax.add_collection(LineCollection([], colors=["#1f77b4", "#9467bd"], lw=1, linestyles="--")),
            "trajectory": ax.plot([], [], "o-", ms=3, lw=1, color="#d62728")[0],
            "start": ax.plot([], [], "s", ms=6, color="black")[0],
            "error": ax_err.plot([], [], "o-", ms=2, lw=1, color="#d62728", label="observed")[0],
            "theory": ax_err.plot([], [], "--", lw=1.2, color="black", label="ρᵗ‖w₀‖ (theory)")[0],
            "title": ax.set_title("", fontsize=10),
            "rates": ax_err.text(0.03, 0.03, "", transform=ax_err.transAxes, fontsize=8, va="bottom",
                                 bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8}),
            "message": ax.text(0.5, 0.5, "", transform=ax.transAxes, ha="center", va="center",
                               fontsize=9, bbox={"boxstyle": "round", "fc": "#fff3cd", "ec": "#d39e00"}),
        }
        ax_err.legend(loc="upper right", fontsize=7)
        self.ax, self.ax_err = ax, ax_err
        self._shown_steps = None
        super().__init__(fig, controls, dpi, dynamic=self.artists.values(), show_timing=show_timing)
        self.update()

    def use_momentum(self, momentum_descent, heavy_ball_rate=None, **values) -> Explorer2D:
        """Give the explorer the student's heavy-ball functions, set controls (``beta=0.6, kappa=100``...)
        and redraw once; returns the explorer, so that a cell can end with it."""
        self.momentum_descent = momentum_descent
        self.heavy_ball_rate = heavy_ball_rate
        for name, value in values.items():
            self.controls[name].unobserve(self._on_change, names="value")
            try:
                self.controls[name].value = value
            finally:
                self.controls[name].observe(self._on_change, names="value")
        self.update()
        return self

    def _heavy_ball_theory(self, eta: float, beta: float, lam_small: float) -> tuple[float | None, str | None]:
        """The student's ``heavy_ball_rate`` on this quadratic, or ``(None, why not)``."""
        if self.heavy_ball_rate is None:
            return None, "Pass heavy_ball_rate=heavy_ball_rate to see the predicted rate."
        box = []
        message = student_function_status(self.heavy_ball_rate, "heavy_ball_rate",
                                          lambda f: box.append(f([lam_small, 1.0], eta, beta)))
        if message is not None:
            return None, message
        try:
            return float(box[0]), None
        except (TypeError, ValueError):
            return None, f"`heavy_ball_rate` returned a {type(box[0]).__name__}; it must return a Python float."

    def matrix(self) -> torch.Tensor:
        kappa = float(self.controls["kappa"].value)
        return gd_figures.quadratic_matrix(1.0 / kappa, 1.0, float(self.controls["angle"].value))

    def start_point(self) -> torch.Tensor:
        t = math.radians(float(self.controls["angle"].value))
        steep = torch.tensor([math.cos(t), math.sin(t)], dtype=torch.float64)
        flat = torch.tensor([-math.sin(t), math.cos(t)], dtype=torch.float64)
        return self.start[0] * steep + self.start[1] * flat

    def _redraw(self) -> None:
        eta = float(self.controls["eta"].value)
        kappa = float(self.controls["kappa"].value)
        angle = float(self.controls["angle"].value)
        nb_steps = int(self.controls["nb_steps"].value)
        beta = float(self.controls["beta"].value)
        lam_small, lam_large = 1.0 / kappa, 1.0
        a = self.artists
        levels = [0.5 * lam_large * self.LIM**2 * 3.0 ** (-k) for k in range(9)]
        a["contours"].set_segments(gd_figures.ellipse_segments(lam_small, lam_large, angle, levels, points=72))
        t = math.radians(angle)
        d1 = self.LIM * np.array([math.cos(t), math.sin(t)])
        d2 = self.LIM * np.array([-math.sin(t), math.cos(t)])
        a["axes"].set_segments([np.stack([-d1, d1]), np.stack([-d2, d2])])
        w0 = self.start_point()
        a["start"].set_data([float(w0[0])], [float(w0[1])])
        note = None
        if beta > 0:  # heavy ball: the prediction is the student's own heavy_ball_rate
            rho, note = self._heavy_ball_theory(eta, beta, lam_small)
            self.regime = "divergent" if rho is not None and rho >= 1.0 else "heavy ball"
        else:
            self.regime = gd_figures.regime_of(eta, lam_small, lam_large)
            rho = gd_figures.convergence_rate(eta, lam_small, lam_large)
        self.theoretical_rate = rho
        steps = np.arange(nb_steps + 1)
        if rho is None:
            a["theory"].set_data([], [])
        else:
            with np.errstate(over="ignore"):
                a["theory"].set_data(steps, float(w0.norm()) * rho ** steps)
        if nb_steps != self._shown_steps:
            self.ax_err.set_xlim(0, nb_steps)
            self._shown_steps = nb_steps
            self.view.invalidate()
        momentum = f", β = {beta:.2f}" if beta > 0 else ""
        a["title"].set_text(f"{self.regime}  (η·λmax = {eta:.2f}, κ = {kappa:.1f}{momentum})")
        a["title"].set_color(gd_figures.REGIME_COLORS.get(self.regime, "#1f77b4"))
        a_mat = self.matrix()
        grad_fn = _autograd_gradient(lambda w: 0.5 * w @ (a_mat @ w))
        if beta > 0 and self.momentum_descent is None:
            path, message = None, ("Pass momentum_descent=momentum_descent (section 9) to use momentum; "
                                   "β = 0 is gradient descent.")
        elif beta > 0:
            path, message = _run_descent(self.momentum_descent, grad_fn, w0, eta, nb_steps, beta, "momentum_descent")
        else:
            path, message = _run_descent(self.gradient_descent, grad_fn, w0, eta, nb_steps)
        self.iterates = path
        self.observed_rate = None
        theory = "theory ρ = n/a" if rho is None else (
            f"theory ρ = {rho:.4f}" if beta > 0 else f"theory ρ = max|1−ηλᵢ| = {rho:.4f}")
        if path is None:
            a["trajectory"].set_data([], [])
            a["error"].set_data([], [])
            a["rates"].set_text(theory)
            self._show_message(a["message"], message)
            a["message"].set_position((0.5, 0.5))
            return
        shown = path.copy()
        far = np.linalg.norm(np.nan_to_num(shown, nan=np.inf), axis=1) > 1e6
        shown[far] = np.nan
        a["trajectory"].set_data(shown[:, 0], shown[:, 1])
        errors = np.linalg.norm(path, axis=1)
        a["error"].set_data(steps, np.where(errors > 0, errors, np.nan))
        # the heavy ball's distance swings (complex eigenvalues): average its contraction over more steps
        self.observed_rate = self._observed_rate(errors, window=max(10, nb_steps // 2) if beta > 0 else 10)
        seen = "n/a" if self.observed_rate is None else f"{self.observed_rate:.4f}"
        a["rates"].set_text(f"{theory}\nobserved (last steps) = {seen}")
        self._show_message(a["message"], note)
        a["message"].set_position((0.5, 0.08) if note else (0.5, 0.5))

    @staticmethod
    def _observed_rate(errors: np.ndarray, window: int = 10) -> float | None:
        """Geometric mean of ``e_{t+1} / e_t`` over the last steps with finite, nonzero errors."""
        ok = np.isfinite(errors) & (errors > 1e-300)
        idx = np.nonzero(ok)[0]
        if len(idx) < 2:
            return None
        last = idx[-1]
        first = max(idx[0], last - window)
        if last == first:
            return None
        return float((errors[last] / errors[first]) ** (1.0 / (last - first)))


def explorer_1d(gradient_descent, local_model=None, f=None, **kwargs) -> Explorer1D:
    """The 1-D explorer; display it as the last expression of a cell."""
    return Explorer1D(gradient_descent, local_model, f, **kwargs)


def explorer_2d(gradient_descent, momentum_descent=None, heavy_ball_rate=None, **kwargs) -> Explorer2D:
    """The 2-D explorer on quadratics (with momentum once given the heavy-ball functions); display it as the
    last expression of a cell."""
    return Explorer2D(gradient_descent, momentum_descent, heavy_ball_rate, **kwargs)
