"""What nbgrader may score in a grade cell's outputs, decided by the grader, not by the student's kernel.

nbgrader scores a grade cell from its outputs (``nbgrader.utils.determine_grade``): any ``stderr``
stream is 0, the first ``execute_result`` that reads as a number is the score, else full points unless
an ``error`` appears. Two consequences hurt honest students and help dishonest ones:

* a warning printed by torch (a ``UserWarning`` reaches ``stderr``) or a ``print(..., file=sys.stderr)``
  zeroes a right answer;
* an ``execute_result`` published before the cell's error (by a hook, a display call, any code that
  writes to the kernel's output) is scored instead of the error.

:class:`ScoreOnlyWhatTheCellComputes` runs right after execution, before nbgrader's ``SaveAutoGrades``:

* ``stderr`` in a grade cell is kept and shown, as ``stdout`` with a ``[stderr]`` prefix: never scored;
* an ``error`` anywhere in the cell is moved first, so nothing published before it can score;
* a number is scored only in a cell that is written to score itself (its trusted source, from the
  gradebook, ends with an expression: the bug hunts' partial credit), and only the cell's last result;
  in every other grade cell a published ``execute_result`` is shown as ``display_data``, never scored.

This narrows what the kernel can do to the score; it does not make the kernel trusted (see
autograder/README.md, "Trust boundary").
"""

from __future__ import annotations

import ast

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader.preprocessors import SaveAutoGrades
from nbgrader.utils import is_solution
from traitlets import Bool


def scores_itself(source: str) -> bool:
    """True if a grade cell's source ends with an expression (its value is the partial score)."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False
    return bool(tree.body) and isinstance(tree.body[-1], ast.Expr) and not (
        isinstance(tree.body[-1].value, ast.Call) and isinstance(tree.body[-1].value.func, ast.Name)
        and tree.body[-1].value.func.id in ("print", "display"))


def fix_outputs(cell: NotebookNode) -> NotebookNode:
    """The outputs nbgrader will score, rearranged as the module docstring says. Returns the cell."""
    outputs = list(cell.get("outputs", []))
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            out["name"] = "stdout"
            out["text"] = "".join(f"[stderr] {line}" for line in text.splitlines(keepends=True))
    errors = [o for o in outputs if o.get("output_type") == "error"]
    results = [o for o in outputs if o.get("output_type") == "execute_result"]
    keep_result = results[-1] if results and not errors and scores_itself(cell.get("source", "")) else None
    for out in results:
        if out is not keep_result:
            out["output_type"] = "display_data"
            out.pop("execution_count", None)
    if errors:
        outputs = errors[:1] + [o for o in outputs if o is not errors[0]]
    cell["outputs"] = outputs
    return cell


class ScoreOnlyWhatTheCellComputes(Preprocessor):
    """nbgrader autograde preprocessor: see the module docstring."""

    enabled = Bool(True)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution"):
            fix_outputs(cell)
        return cell, resources


class SaveJudgedGrades(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades`` with the score of every code grade cell taken from the judge.

    The judge (:mod:`judge`, run by :class:`execute.SandboxedExecute`) hands its scores over in
    ``resources["backproplab"]["judged_scores"]``; they are written into the gradebook through
    nbgrader's own API (``find_grade(...).auto_score``), so the formgrader, feedback and ``nbgrader
    export`` read them as usual. No cell output is ever scored: a code grade cell the judge did not score
    (a policy zero, a cell not run) scores 0. Written answers (markdown grade cells) are left to nbgrader
    (no auto score; a person grades them).
    """

    def preprocess(self, nb, resources):
        self._judged = (resources.get("backproplab") or {}).get("judged_scores")
        return super().preprocess(nb, resources)

    def _add_score(self, cell, resources):
        if self._judged is None or cell.cell_type != "code" or is_solution(cell):
            return super()._add_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        grade.auto_score = float(self._judged.get(cell.metadata["nbgrader"]["grade_id"], 0.0))
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
