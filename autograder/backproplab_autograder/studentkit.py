"""What a course hands its students: the release notebooks and the library, nothing of the instructor's.

    python -m backproplab_autograder.studentkit [OUT]     # or: make student-kit (OUT: dist/student-kit)

The kit holds ``notebooks/`` (the releases nbgrader generated: no solution, no hidden test), ``lib/``
(the package the notebooks import), ``pyproject.toml`` and ``environment.yml`` that install the same
pinned versions, a ``Makefile`` with ``make lab``, and a student README. It leaves out ``solutions/``
(every answer and every hidden test), ``autograder/``, ``tests/``, the demo class and the git history.
A test (tests/test_student_kit.py) proves that no solution line and no hidden-test line is in it.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

from .course import REPO, labs

README = """\
# Backprop Lab (student kit)

Interactive labs from the perceptron to your own `torch.autograd.Function`. Work through them in order.

```bash
make lab     # creates .venv on first use, installs everything, opens JupyterLab on lab 1
```

(Or with conda: `conda env create -f environment.yml && conda activate backproplab && jupyter lab notebooks/`.)

In each exercise cell, replace `raise NotImplementedError()` with your code, run the cell, then run the
check under it: it says in words what is wrong, if anything. Only the exercise cells are graded: keep
every helper you write inside the exercise's cell. Hand in the notebooks the way your course says
(nbgrader's "Assignments" tab, or the files themselves).

| lab | notebook |
| --- | --- |
{rows}
"""

MAKEFILE = """\
# Student kit: `make lab` creates .venv on first use and opens JupyterLab on lab 1.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
BROWSER ?= $(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname -s))),yes,no)

.PHONY: lab
$(STAMP): pyproject.toml
\t@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet --upgrade pip
\t$(BIN)/python -m pip install --quiet -e .
\t@touch $(STAMP)

lab: $(STAMP)
\t$(BIN)/jupyter lab --ServerApp.root_dir=notebooks --port=$(PORT) $(if $(filter no,$(BROWSER)),--no-browser) \\
\t\t$(if $(filter 0,$(shell id -u)),--allow-root) {first}
"""

ENVIRONMENT = """\
name: backproplab
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - -e .
"""


def pyproject() -> str:
    """The repository's pins, for the library alone (no grader, no test tools)."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = "\n".join(f'    "{d}",' for d in data["project"]["dependencies"])
    packages = sorted(str(p.parent.relative_to(REPO / "lib")).replace("/", ".")
                      for p in (REPO / "lib" / "backproplab").rglob("__init__.py"))
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "backproplab"\nversion = "{data["project"]["version"]}"\n'
        f'requires-python = "{data["project"]["requires-python"]}"\ndependencies = [\n{deps}\n]\n\n'
        f'[tool.setuptools]\npackage-dir = {{"" = "lib"}}\npackages = {packages!r}\n\n'
        '[tool.setuptools.package-data]\nbackproplab = ["py.typed"]\n'
    ).replace("'", '"')


def build(out: Path) -> Path:
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".hypothesis", "*.py")
    for lab in labs():
        dest = out / "notebooks" / lab.id
        dest.mkdir(parents=True)
        shutil.copyfile(lab.release, dest / lab.notebook)
    shutil.copytree(REPO / "lib", out / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for extra in (REPO / "notebooks").rglob("*"):  # data files a release ships beside its notebook
        if extra.is_file() and not extra.name.endswith((".ipynb", ".py")) and not ignore(str(extra.parent), [extra.name]):
            target = out / extra.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(extra, target)
    rows = "\n".join(f"| {i} | `notebooks/{lab.id}/{lab.notebook}` ({lab.title}) |" for i, lab in enumerate(labs(), 1))
    (out / "README.md").write_text(README.format(rows=rows))
    first = labs()[0]
    (out / "Makefile").write_text(MAKEFILE.format(first=f"{first.id}/{first.notebook}"))
    (out / "environment.yml").write_text(ENVIRONMENT)
    (out / "pyproject.toml").write_text(pyproject())
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else REPO / "dist" / "student-kit"
    build(out)
    count = sum(1 for _ in out.rglob("*") if _.is_file())
    print(f"student kit: {out} ({count} files; no solutions, no hidden tests, no grader)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
