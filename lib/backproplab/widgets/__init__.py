"""Interactive widgets for the labs, one module per lab; nothing is built at import time.

Use them as ``widgets.<module>.<function>(...)`` after ``from backproplab import widgets``:

- ``widgets.perceptron.perceptron_stepper`` (lab 1): step through the perceptron's updates.
- ``widgets.gd.explorer_1d`` and ``widgets.gd.explorer_2d`` (lab 2): gradient descent explorers.
- ``widgets.backward_stepper`` (lab 4): a backward pass, node by node.

Every widget draws into one matplotlib figure that it keeps (see ``_base.FigureView``), takes the
student's function as an argument and says in words when that exercise is not done yet.
"""

from __future__ import annotations

import importlib
import pkgutil


def __getattr__(name: str):
    if not name.startswith("_") and name in {m.name for m in pkgutil.iter_modules(__path__)}:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
