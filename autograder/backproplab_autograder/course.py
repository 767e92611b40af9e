"""Where things are: the repository, the assignments, and how to call nbgrader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AUTOGRADER = REPO / "autograder"
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"

# Assignment id -> notebook file name (fixed by shared/CONTRACT.md).
ASSIGNMENTS = {
    "lab1_perceptron": "perceptron.ipynb",
    "lab2_gradient_descent": "gradient_descent.ipynb",
    "lab3_mlp_backprop": "mlp_backprop.ipynb",
    "lab4_dag_autograd": "dag_autograd.ipynb",
    "lab5_custom_functions": "custom_functions.ipynb",
}


def available_assignments() -> list[str]:
    """The assignments whose source notebook exists, in course order."""
    return [a for a, nb in ASSIGNMENTS.items() if (SOLUTIONS / a / nb).is_file()]


def tool_env() -> dict[str, str]:
    """The environment for nbgrader and friends: this interpreter's bin/ first on PATH (for alembic)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def nbgrader(*args: str, cwd: Path | str = AUTOGRADER, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with this environment's executable; output is captured."""
    exe = Path(sys.executable).parent / "nbgrader"
    cmd = [str(exe) if exe.exists() else "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
