"""Backprop Lab's shared library: data, plots, widgets and the checks every grade cell uses.

Notebooks start with ``from backproplab import checks, data, plots, widgets``. Importing this
package does no work: each submodule loads only what it needs when it is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["checks", "data", "env", "function_checks", "gd_figures", "graphs", "lesson", "plots", "widgets", "needs",
           # wave 2: lesson figures, data and the grade cells' helpers of each lab
           "linear_to_deep", "perceptron_runs", "momentum_figures", "grad_flow", "bug_hunt_lab3", "moons",
           "nn_checks", "bug_hunt_lab4", "linear_hunt", "capstone_checks", "capstone_plots"]


def __getattr__(name: str):
    if name == "needs":
        from .lesson import needs

        return needs
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
