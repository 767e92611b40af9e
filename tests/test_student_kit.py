"""`make student-kit` builds what a course hands its students: the releases and the library, with no
solution line, no hidden-test line and no instructor tool anywhere in it."""

from __future__ import annotations

import nbformat
from backproplab_autograder import course, studentkit

from tests.helpers.leaks import public_lines, solution_lines


def test_student_kit_holds_the_releases_and_library_and_no_answer(tmp_path):
    kit = studentkit.build(tmp_path / "kit")
    files = [p for p in kit.rglob("*") if p.is_file()]
    names = {p.relative_to(kit).as_posix() for p in files}
    for lab in course.labs():
        assert f"notebooks/{lab.id}/{lab.notebook}" in names
    assert {"README.md", "Makefile", "pyproject.toml", "environment.yml", "lib/backproplab/__init__.py"} <= names
    # nothing of the instructor's side
    assert not any(n.startswith(("solutions/", "autograder/", "tests/", ".git")) for n in names)
    assert not any(n.startswith("notebooks/") and n.endswith(".py") for n in names)
    text = "\n".join(p.read_text(errors="replace") for p in files)
    lines = set()  # every line of the kit, notebooks cell by cell (a secret line must not be one of them)
    for p in files:
        if p.suffix == ".ipynb":
            lines |= {ln.strip() for c in nbformat.read(p, as_version=4).cells for ln in c.source.splitlines()}
        else:
            lines |= {ln.strip() for ln in p.read_text(errors="replace").splitlines()}
    # a line one lab shows publicly (another lab's hidden test may share it) is public
    public = set().union(*(public_lines(lab.solution) for lab in course.labs()))
    secret = [line for lab in course.labs() for line in solution_lines(lab.solution, public)]
    assert secret, "found no solution or hidden-test lines to look for"
    leaked = [line for line in secret if line in lines]
    assert not leaked, "answers or hidden tests in the student kit:\n" + "\n".join(leaked[:10])
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
        assert marker not in text


def test_student_kit_installs_the_same_pins_without_the_grader(tmp_path):
    kit = studentkit.build(tmp_path / "kit")
    project = (kit / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in project and "backproplab_autograder" not in project
    assert '"backproplab.widgets"' in project
    assert "make lab" in (kit / "README.md").read_text()
