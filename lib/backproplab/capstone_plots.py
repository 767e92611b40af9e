"""Figures for lab 6 (the capstone): confusion matrix, misclassified examples, learning-rate sweep.

Each helper takes a matplotlib ``ax``, draws on it and returns it; none calls ``plt.show()``.
:func:`confusion_matrix` is the one computation here: counts, not a graded answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["confusion_matrix", "draw_confusion", "draw_misclassified", "draw_lr_sweep", "draw_accuracy_bars"]


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, nb_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts: row = true class, column = predicted class."""
    y_true = torch.as_tensor(y_true).long().reshape(-1)
    y_pred = torch.as_tensor(y_pred).long().reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    flat = torch.bincount(y_true * nb_classes + y_pred, minlength=nb_classes * nb_classes)
    return flat.reshape(nb_classes, nb_classes)


def draw_confusion(ax, counts: torch.Tensor, *, title: str = "confusion matrix (test set)"):
    """Counts as a grid, the number written in every non-empty cell; the diagonal holds the hits."""
    counts = torch.as_tensor(counts)
    k = counts.shape[0]
    ax.imshow(counts.to(torch.float32).clamp(max=float(counts.diagonal().max()) / 4 + 1).numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            n = int(counts[i, j])
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if i == j else "#b00")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return ax


def draw_misclassified(axes: Sequence, images: torch.Tensor, true: torch.Tensor, pred: torch.Tensor):
    """One small image per ax, titled "true -> predicted"; spare axes are blanked."""
    images = torch.as_tensor(images).detach().to(torch.float32)
    side = int(round(images.shape[1] ** 0.5)) if len(images) else 8
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(images[i].reshape(side, side).numpy(), cmap="gray_r")
            ax.set_title(f"{int(true[i])} -> {int(pred[i])}", fontsize=8)
    return axes


def draw_lr_sweep(ax, curves: Mapping[float, Sequence[float]]):
    """Training loss per epoch for each learning rate, on a log scale."""
    for lr, losses in curves.items():
        finite = [v if v == v and v < 1e6 else float("nan") for v in losses]
        ax.plot(range(1, len(finite) + 1), finite, marker="o", ms=3, label=f"lr = {lr:g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def draw_accuracy_bars(ax, accuracies: Mapping[str, float]):
    """One bar per named model, its accuracy written on top."""
    names = list(accuracies)
    values = [100 * accuracies[n] for n in names]
    bars = ax.bar(names, values, color=["#1f77b4", "#ff7f0e", "#2ca02c"][: len(names)])
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(min(values + [90.0]) - 5, 100.5)
    ax.set_ylabel("test accuracy (%)")
    return ax
