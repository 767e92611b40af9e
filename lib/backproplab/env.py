"""The environment check every notebook runs first: plain words instead of a traceback."""

from __future__ import annotations

import importlib
import sys

__all__ = ["check_environment", "problems"]

EXPECTED_TORCH = "2.13.0"
SETUP_HINT = "Run `make lab` from the repository (it installs everything into .venv), or see the README."


def problems(require_digits: bool = True) -> list[str]:
    """Everything missing or wrong, one sentence each; an empty list means all is well."""
    found = []
    if sys.version_info[:2] != (3, 11):
        found.append(f"Python {sys.version.split()[0]} is running; the course is tested with Python 3.11.")
    for module, why in [
        ("torch", "every lab uses it"),
        ("numpy", "plots and data need it"),
        ("matplotlib", "the figures need it"),
        ("ipywidgets", "the interactive widgets need it"),
        ("sklearn", "the default digits data set ships with scikit-learn"),
    ]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or a broken install raising something else
            found.append(f"`{module}` cannot be imported ({type(exc).__name__}: {exc}); {why}. {SETUP_HINT}")
    torch = sys.modules.get("torch")
    if torch is not None:
        version = torch.__version__.split("+")[0]
        if version != EXPECTED_TORCH:
            found.append(
                f"torch {torch.__version__} is installed; the labs are written and graded with torch "
                f"{EXPECTED_TORCH}. Most things will work, but results may differ slightly. {SETUP_HINT}"
            )
    if require_digits and "sklearn" in sys.modules:
        try:
            from sklearn.datasets import load_digits

            load_digits()
        except Exception as exc:
            found.append(f"The digits data set could not be loaded ({exc}).")
    return found


def _widget_probe():
    """A widget whose text fallback is only shown when the front end cannot render widgets."""
    try:
        import ipywidgets as w
    except Exception:
        return None
    probe = w.HTML("<span style='color:#2ca02c'>&#10003; Interactive widgets render in this front end.</span>")

    class _Probe:
        def _repr_mimebundle_(self, **kwargs):
            bundle = probe._repr_mimebundle_(**kwargs)
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            data["text/plain"] = (
                "Widgets are not rendering here: the sliders and steppers of this lab will not appear. "
                "Open the notebook in JupyterLab started by `make lab`, or install jupyterlab_widgets."
            )
            return data

    return _Probe()


def check_environment(require_digits: bool = True) -> bool:
    """Print what is missing in plain words; returns True when everything needed is there."""
    found = problems(require_digits)
    if found:
        print("Environment check: some things need attention.")
        for p in found:
            print(" -", p)
    else:
        torch = sys.modules["torch"]
        print(f"Environment check: OK (Python {sys.version.split()[0]}, torch {torch.__version__}).")
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            probe = _widget_probe()
            if probe is not None:
                display(probe)
    except ImportError:
        pass
    return not found
