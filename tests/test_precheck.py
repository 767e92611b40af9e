"""The notebook that is graded, rebuilt from the release: written answers kept with the student's text,
deleted grade cells back in place and run, names defined in dropped cells remembered for messages."""

from __future__ import annotations

import nbformat
from backproplab_autograder import precheck, tinycourse
from nbformat.v4 import new_code_cell, new_markdown_cell


def _with_written_answer(nb):
    meta = {"nbgrader": {"grade": True, "solution": True, "grade_id": "answer_why", "points": 2.0,
                         "locked": False, "schema_version": 3, "task": False}}
    nb.cells.append(new_markdown_cell("Why does squaring keep the sign away?"))
    nb.cells.append(new_markdown_cell("YOUR ANSWER HERE", metadata=meta))
    return nb


def _graded(tmp_path, submission, release):
    path = tmp_path / "in.ipynb"
    nbformat.write(submission, str(path))
    out = tmp_path / "out.ipynb"
    result = precheck.check(path, release, out, assignment="tiny")
    return result, nbformat.read(str(out), as_version=4)


def test_written_answer_cell_is_kept_with_the_students_text_and_never_made_code(tmp_path):
    release = _with_written_answer(tinycourse.submission())
    sub = _with_written_answer(tinycourse.submission())
    sub.cells[-1].source = "Because (-x)^2 = x^2."
    result, graded = _graded(tmp_path, sub, release)
    answer = [c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_why"]
    assert len(answer) == 1 and answer[0].cell_type == "markdown"
    assert answer[0].source == "Because (-x)^2 = x^2."
    # the question (a lesson cell) is not part of the graded notebook
    assert not any("keep the sign" in c.source for c in graded.cells)
    assert result.ungradable is None


def test_deleted_grade_cell_is_back_and_runs(tmp_path):
    release = tinycourse.submission()
    sub = tinycourse.submission()
    sub.cells = [c for c in sub.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_cube"]
    result, graded = _graded(tmp_path, sub, release)
    cube = [c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_cube"]
    assert len(cube) == 1 and cube[0].cell_type == "code"
    assert "backproplab" not in cube[0].metadata  # not flagged to be skipped: it runs
    assert result.missing == {"test_cube": "deleted"}


def test_names_of_dropped_cells_are_remembered(tmp_path):
    release = tinycourse.submission()
    sub = tinycourse.submission()
    sub.cells.insert(2, new_code_cell("import numpy as np\ndef ones_col(n):\n    return [1] * n\nK = 3\n"))
    result, graded = _graded(tmp_path, sub, release)
    assert {"np", "ones_col", "K"} <= set(result.dropped_names)
    assert not any("ones_col" in c.source for c in graded.cells)


def _autograd_submission():
    from backproplab_autograder.course import ASSIGNMENTS, RELEASE

    aid = "lab3_mlp_backprop"
    release = nbformat.read(str(RELEASE / aid / ASSIGNMENTS[aid]), as_version=4)
    sub = nbformat.read(str(RELEASE / aid / ASSIGNMENTS[aid]), as_version=4)
    cell = next(c for c in sub.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "backward")
    cell.source = ("def backward(params, outputs, Y):\n    with torch.enable_grad():\n"
                   "        return {k: torch.autograd.grad(outputs['yhat'].sum(), v)[0] for k, v in params.items()}\n")
    return aid, release, sub, cell.source


def test_a_scan_finding_is_advice_by_default_and_the_code_runs(tmp_path):
    aid, release, sub, source = _autograd_submission()
    path, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(sub, str(path))
    result = precheck.check(path, release, out, assignment=aid)
    graded = nbformat.read(str(out), as_version=4)
    cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "backward")
    assert cell.source == source                       # runs as written
    assert {f.rule for f in result.findings} == {"autograd"} and result.policy == {}
    assert any(n.startswith("advice (not scored)") and "line 2" in n for n in result.notes), result.notes


def test_policy_zero_stubs_the_flagged_exercise_and_marks_its_grade_cells(tmp_path):
    aid, release, sub, source = _autograd_submission()
    path, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(sub, str(path))
    result = precheck.check(path, release, out, assignment=aid, policy_zero=True)
    graded = nbformat.read(str(out), as_version=4)
    cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "backward")
    assert "raise NotImplementedError()" in cell.source and "it was not run" in cell.source
    assert set(result.policy) >= {"test_backward_output_layer", "test_backward_batch"}
