"""The environment check every notebook runs first: plain words instead of a traceback."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["check_environment", "EnvironmentCheck", "problems", "mnist_problem"]

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
            found.append(
                f"Data not found: the digits data set that ships with scikit-learn could not be loaded "
                f"({type(exc).__name__}: {exc}). Reinstall scikit-learn: {SETUP_HINT}"
            )
    mnist = mnist_problem()
    if mnist:
        found.append(mnist)
    return found


# The IDX files of each MNIST split (same names as ``data.MNIST_FILES``; kept here so the check
# works even when torch, which ``data`` imports, is missing).
_MNIST_FILES = {
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
}


def _has_idx(folder: Path, stem: str) -> bool:
    dotted = stem.replace("-idx", ".idx")
    return any((folder / name).is_file() for name in (stem, stem + ".gz", dotted, dotted + ".gz"))


def mnist_problem(folder: str | os.PathLike | None = None) -> str | None:
    """A sentence when ``BACKPROPLAB_MNIST`` (or ``folder``) names MNIST data that is not there.

    Unset means "use the built-in digits": nothing to report. Nothing is ever downloaded.
    """
    name = os.fspath(folder) if folder is not None else os.environ.get("BACKPROPLAB_MNIST", "")
    if not name.strip():
        return None
    path = Path(name).expanduser()
    fix = ("Put the MNIST IDX files there (raw or .gz), point BACKPROPLAB_MNIST at the folder that holds "
           "them, or unset it to use the built-in 8x8 digits (nothing is downloaded).")
    if not path.exists():
        return f"Data not found: BACKPROPLAB_MNIST is set to {name}, which does not exist. {fix}"
    if not path.is_dir():
        return f"Data not found: BACKPROPLAB_MNIST is set to {name}, which is a file, not a folder. {fix}"
    missing = [stem for stems in _MNIST_FILES.values() for stem in stems if not _has_idx(path, stem)]
    if not missing:
        return None
    if len(missing) == 4:
        return f"Data not found: the folder {name} (BACKPROPLAB_MNIST) holds none of the MNIST IDX files. {fix}"
    usable = [split for split, stems in _MNIST_FILES.items() if not set(stems) & set(missing)]
    note = f" Only the {usable[0]} split can be loaded." if usable else ""
    return (f"Data not found: the folder {name} (BACKPROPLAB_MNIST) lacks {', '.join(missing)} "
            f"(raw or .gz).{note} {fix}")


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


@dataclass(frozen=True)
class EnvironmentCheck:
    """What ``check_environment`` found: true when everything needed is there.

    It behaves as a bool (``if check_environment(): ...``, ``bool(...)``) and displays nothing in a
    notebook: the words were already printed, so the cell that runs the check shows only them
    (a plain ``True`` would be echoed below the message).
    """

    ok: bool
    problems: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def _ipython_display_(self) -> None:  # IPython calls this instead of echoing a repr
        pass


def check_environment(require_digits: bool = True) -> EnvironmentCheck:
    """Print what is missing in plain words; the result is true when everything needed is there."""
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
    return EnvironmentCheck(not found, tuple(found))


if __name__ == "__main__":  # `python -m backproplab.env`: the same check from a terminal
    sys.exit(0 if check_environment() else 1)
