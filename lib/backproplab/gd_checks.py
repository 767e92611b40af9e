"""Lab 2's observations of ``train_mlp_gd``, made where the student's model lives.

When a lab is graded, the student's code runs in its own kernel: a hook registered by the test in the
grader's process would never see the student's model. :func:`watch_training` runs the training in the
student's process (:func:`backproplab.remote.worker_side`) and returns what it saw: the result and the
parameters in use at every call of the whole model. It carries no expected value; the grade cell
compares the snapshots with its own float64 reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import remote

__all__ = ["difference_magnitude", "watch_training", "without_optim"]


@remote.worker_side
def watch_training(train: Callable, *args: Any, seed: int | None = None) -> tuple[Any, list[list[torch.Tensor]]]:
    """``(train(*args), snapshots)``: the parameters of the whole model (an ``nn.Sequential``) at each of its
    forward calls. ``torch.optim`` optimizers are refused while it runs (the exercise writes the update)."""
    snapshots: list[list[torch.Tensor]] = []

    def record(module, inputs):
        if isinstance(module, nn.Sequential):
            snapshots.append([p.detach().clone() for p in module.parameters()])

    def refuse(self, *a, **k):
        raise AssertionError(
            f"train_mlp_gd created a torch.optim optimizer ({type(self).__name__}); this exercise asks for the "
            "update written by hand: p <- p - eta * p.grad under torch.no_grad() (diagnosis: policy)"
        )

    original_init = torch.optim.Optimizer.__init__
    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    torch.optim.Optimizer.__init__ = refuse
    try:
        if seed is not None:
            torch.manual_seed(seed)
        result = train(*args)
    finally:
        handle.remove()
        torch.optim.Optimizer.__init__ = original_init
    return result, snapshots


@remote.worker_side
def without_optim(fn: Callable, *args: Any, refusal: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with ``torch.optim`` optimizers refused: creating one raises AssertionError
    with ``refusal`` (``{optimizer}`` is replaced by the optimizer's class name)."""

    def refuse(self, *a, **k):
        raise AssertionError(refusal.replace("{optimizer}", type(self).__name__))

    original_init = torch.optim.Optimizer.__init__
    torch.optim.Optimizer.__init__ = refuse
    try:
        return fn(*args, **kwargs)
    finally:
        torch.optim.Optimizer.__init__ = original_init


def difference_magnitude(value: Any, w: torch.Tensor, grad: torch.Tensor, eps: float) -> float:
    """The ``magnitude`` of :func:`backproplab.checks.tolerances` for a central difference of step ``eps``.

    ``(f(w + eps e_i) - f(w - eps e_i)) / (2 eps)`` rounds the two values of ``f`` (as large as ``value``,
    ``f(w)``) and the shifted points themselves (a shift of ``eps_machine * |w|`` moves ``f`` by that times
    the slope ``grad``); dividing by ``eps`` makes both ``1 / eps`` times larger.
    """
    size = abs(float(value)) + float(w.detach().abs().max()) * float(grad.detach().abs().max())
    return size / eps
