"""Lab 1: run the student's perceptron epoch by epoch and report it as the lecture does.

Fleuret's lecture prints one line per epoch (number of updates, train error, test error). These
helpers build that table from the student's own functions: the updates come from replaying the
student's ``train_perceptron`` visit by visit (``widgets.perceptron.perceptron_trace``), the error
rates from the student's ``perceptron_error_rate``. Nothing here trains a perceptron by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .widgets.perceptron import perceptron_trace

__all__ = ["EpochRow", "epoch_rows", "format_epoch_table", "draw_epoch_errors", "draw_constant_baseline"]


@dataclass(frozen=True)
class EpochRow:
    """One epoch of a run: its number (from 0), how many visits updated ``w``, the weights at its end,
    and the error rates of those weights (``None`` when no test set was given)."""

    epoch: int
    nb_updates: int
    w: torch.Tensor
    train_error: float
    test_error: float | None


def epoch_rows(train_fn: Callable, error_fn: Callable, x_train: torch.Tensor, y_train: torch.Tensor,
               x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
               nb_epochs_max: int = 20) -> list[EpochRow]:
    """The student's perceptron run on ``x_train``, summarised epoch by epoch (the last row is the
    epoch with no update, unless ``nb_epochs_max`` stopped it first)."""
    visits = perceptron_trace(train_fn, x_train, y_train, nb_epochs_max)
    rows = []
    for epoch in range(visits[-1].epoch + 1 if visits else 0):
        in_epoch = [v for v in visits if v.epoch == epoch]
        w = in_epoch[-1].w_after
        test = None if x_test is None else float(error_fn(w, x_test, y_test))
        rows.append(EpochRow(epoch, sum(v.updated for v in in_epoch), w, float(error_fn(w, x_train, y_train)), test))
    return rows


def format_epoch_table(rows: Sequence[EpochRow]) -> str:
    """The lecture's per-epoch log as a table: epoch, updates, train error, test error (percent)."""
    lines = [f"{'epoch':>5} {'updates':>8} {'train error':>12} {'test error':>11}"]
    for r in rows:
        test = "" if r.test_error is None else f"{100 * r.test_error:10.2f}%"
        lines.append(f"{r.epoch:5d} {r.nb_updates:8d} {100 * r.train_error:11.2f}% {test}")
    return "\n".join(lines)


def draw_epoch_errors(ax, rows: Sequence[EpochRow], title: str = ""):
    """Train and test error (percent) at the end of each epoch, with the number of updates on a second axis."""
    epochs = [r.epoch for r in rows]
    ax.plot(epochs, [100 * r.train_error for r in rows], "o-", label="train error")
    if all(r.test_error is not None for r in rows):
        ax.plot(epochs, [100 * r.test_error for r in rows], "s-", label="test error")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    updates = ax.twinx()
    updates.bar(epochs, [r.nb_updates for r in rows], color="#7f7f7f", alpha=0.25, width=0.5)
    updates.set_ylabel("updates in the epoch (bars)", color="#555555")
    ax.set_zorder(updates.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def draw_constant_baseline(ax, error: float, label: str, color: str = "#7f7f7f", style: str = ":"):
    """A horizontal line at ``error`` (a fraction, drawn in percent): what a constant answer scores."""
    ax.axhline(100 * error, color=color, ls=style, lw=1.5, label=label)
    return ax
