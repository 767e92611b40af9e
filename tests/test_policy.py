"""The source policy check: autograd (or torch.optim) where an exercise forbids it is found, with its
line, however it is spelled; honest answers are never flagged."""

from __future__ import annotations

import textwrap

import nbformat
import pytest
from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS, available_assignments
from backproplab_autograder.policy import RULES, grade_ids_for, scan


def notebook(*cells: tuple[str | None, str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for grade_id, source in cells:
        cell = nbformat.v4.new_code_cell(textwrap.dedent(source).strip())
        if grade_id:
            cell.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True, "grade": False}
        nb.cells.append(cell)
    return nb


HONEST = """
def backward(params, outputs, Y):
    \"\"\"Gradients by hand: no autograd, no .backward() here.\"\"\"
    B = Y.shape[0]
    d_y = (outputs['yhat'] - Y) / B
    return {'Wy': d_y.T @ outputs['h'], 'by': d_y.sum(0).unsqueeze(1)}
"""


@pytest.mark.parametrize("aid", [a for a in available_assignments() if a in RULES])
def test_reference_solutions_are_not_flagged(aid):
    nb = nbformat.read(SOLUTIONS / aid / ASSIGNMENTS[aid], as_version=4)
    assert scan(nb, aid) == []


def test_honest_backward_with_docstring_mentioning_autograd_is_not_flagged():
    assert scan(notebook(("backward", HONEST)), "lab3_mlp_backprop") == []


@pytest.mark.parametrize("source, line", [
    ("""
     def backward(params, outputs, Y):
         loss = -(Y * outputs['yhat'].log()).sum(1).mean()
         loss.backward()
         return {k: p.grad for k, p in params.items()}
     """, 3),
    ("""
     def backward(params, outputs, Y):
         with torch.enable_grad():
             ps = {k: p.detach().requires_grad_() for k, p in params.items()}
         return ps
     """, 2),
    ("""
     def backward(params, outputs, Y):
         g = torch.autograd.grad(outputs['yhat'].sum(), list(params.values()))
         return dict(zip(params, g))
     """, 2),
    ("""
     def backward(params, outputs, Y):
         step = getattr(outputs['yhat'].sum(), "back" + "ward")
         hidden = "backward"
         return hidden
     """, 3),
], ids=["dot_backward", "enable_grad", "autograd_grad", "string_trick"])
def test_autograd_in_a_manual_backward_is_flagged_with_its_line(source, line):
    findings = scan(notebook(("backward", source)), "lab3_mlp_backprop")
    assert findings, "autograd use was not found"
    assert findings[0].exercise == "backward" and findings[0].rule == "autograd"
    assert findings[0].line == line
    msg = findings[0].message()
    assert "backward" in msg and f"line {line}" in msg and "(diagnosis: policy)" in msg


def test_autograd_hidden_in_a_helper_in_another_cell_is_found():
    nb = notebook(
        (None, "import torch\nfrom torch.autograd import grad as g"),
        (None, """
         def _helper(y, ps):
             return g(y, ps)
         """),
        ("backward", """
         def backward(params, outputs, Y):
             return _helper(outputs['yhat'].sum(), list(params.values()))
         """),
    )
    findings = scan(nb, "lab3_mlp_backprop")
    assert [(f.cell, f.line) for f in findings] == [(1, 2)]


def test_optimizer_in_the_hand_written_update_is_flagged_only_for_that_exercise():
    nb = notebook(("train_mlp_gd", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 200), torch.nn.ReLU(), torch.nn.Linear(200, 1))
            opt = torch.optim.SGD(model.parameters(), lr=eta)
            return model, []
        """), ("quadratic_grad", "def quadratic_grad(w, A, b):\n    return A @ w - b"))
    findings = scan(nb, "lab2_gradient_descent")
    assert [(f.exercise, f.rule, f.line) for f in findings] == [("train_mlp_gd", "optimizer", 3)]


def test_unparseable_cells_and_magics_do_not_crash_the_scan():
    nb = notebook((None, "%matplotlib inline\nimport torch"), ("backward", "def backward(:\n  pass"))
    assert scan(nb, "lab3_mlp_backprop") == []


def test_grade_ids_for_an_exercise():
    ids = ["test_backward", "test_backward_batch", "test_backward_hidden", "test_deep_backward", "test_forward"]
    assert grade_ids_for("backward", ids) == ["test_backward", "test_backward_batch", "test_backward_hidden"]
