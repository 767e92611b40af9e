"""DEVELOPING.md's "Adding a lab" checklist, followed by a test: a throw-away lab made from
docs/lab_template.py is an error until it is in the manifest, then it is released, executed and graded.

The course is a copy of the grader package beside a manifest of its own (the package finds the course
from its own location), so the repository's labs are never touched."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import tinycourse
from nbgrader.utils import is_solution

from tests.helpers.nbrun import execute

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ENTRY = '[[lab]]\nid = "lab9_template"\nnotebook = "template.ipynb"\ntitle = "Template"\npoints = 1\n'


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root / "autograder"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)


def _answers(solution: nbformat.NotebookNode, release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with every solution cell answered as the solution answers it (markers removed)."""
    answers = {c.metadata["nbgrader"]["grade_id"]: tinycourse.answer(c.source) for c in solution.cells
               if is_solution(c)}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if is_solution(cell) and gid in answers:
            cell.source = answers[gid]
    return nb


def test_a_new_lab_goes_from_template_through_the_manifest_to_release_execution_and_grading(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(REPO / "autograder" / "backproplab_autograder", root / "autograder" / "backproplab_autograder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    lab_dir = root / "solutions" / "lab9_template"
    lab_dir.mkdir(parents=True)
    shutil.copyfile(REPO / "docs" / "lab_template.py", lab_dir / "template.py")

    # 1. a lab folder the manifest does not list is an error, not a silent skip
    (root / "course.toml").write_text('[[lab]]\nid = "lab0_other"\nnotebook = "other.ipynb"\ntitle = "O"\npoints = 0\n')
    proc = _run(root, "backproplab_autograder.release")
    assert proc.returncode != 0
    assert "solutions/lab9_template is not in course.toml" in proc.stderr

    # 2. listed: the source notebook is generated from the text and released by nbgrader
    (root / "course.toml").write_text(ENTRY)
    proc = _run(root, "backproplab_autograder.release")
    assert proc.returncode == 0, proc.stderr
    solution_nb = lab_dir / "template.ipynb"
    release_nb = root / "notebooks" / "lab9_template" / "template.ipynb"
    assert solution_nb.exists() and release_nb.exists()
    assert sorted(p.name for p in release_nb.parent.iterdir()) == ["template.ipynb"]  # the .py stays home
    released = release_nb.read_text()
    assert "return x + x" not in released and "BEGIN HIDDEN TESTS" not in released
    assert _run(root, "backproplab_autograder.release", "--check").returncode == 0

    # 3. executed: the solution runs clean, the untouched release fails only in its grade cell
    run = execute(solution_nb)
    assert run.errors == [], [str(e) for e in run.errors]
    blank_run = execute(release_nb)
    assert [e.grade_id for e in blank_run.errors] == ["test_double"]

    # 4. graded: the reference gets the lab's points, the untouched release none
    subs = tmp_path / "submitted"
    solution = nbformat.read(solution_nb, as_version=4)
    release = nbformat.read(release_nb, as_version=4)
    for student, nb in (("reference", _answers(solution, release)), ("blank", release)):
        (subs / student / "lab9_template").mkdir(parents=True)
        nbformat.write(nb, str(subs / student / "lab9_template" / "template.ipynb"))
    proc = _run(root, "backproplab_autograder.cli", str(subs), "--out", str(tmp_path / "out"), "--jobs", "1",
                "--no-progress", "--no-feedback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "out" / "grades.csv") as fh:
        scores = {r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(fh)}
    assert scores == {"reference": (1.0, 1.0), "blank": (0.0, 1.0)}
