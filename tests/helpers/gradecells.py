"""Run one lab's grade cells in-process against other implementations of an exercise.

This is how the suite proves that grade cells test the property the exercise asks for: an
alternative correct answer (another way to write it, the lecture's own code) must pass, and each
usual mistake must fail with a message that names it.

A grade cell may use only the notebook's first code cell (the import block), the solution cells
and names it defines itself, so it can be run here without executing the lesson around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import textwrap
from dataclasses import dataclass
from functools import cache

import nbformat
from backproplab_autograder.course import lab


@dataclass
class Outcome:
    passed: bool
    message: str

    def __bool__(self) -> bool:  # so `assert outcome` reads naturally
        return self.passed


@cache
def lab_cells(aid: str):
    """(import block, {solution id: source}, {grade id: source}) of a lab's source notebook."""
    nb = nbformat.read(lab(aid).solution, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = code[0].source
    solutions, grades = {}, {}
    for c in code:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            solutions[meta["grade_id"]] = c.source
        elif meta.get("grade"):
            grades[meta["grade_id"]] = c.source
    return setup, solutions, grades


def grade_ids(aid: str) -> list[str]:
    return list(lab_cells(aid)[2])


def public_part(source: str) -> str:
    """A grade cell without its hidden tests (what the student sees)."""
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", source, flags=re.S)


def run_grade_cell(aid: str, grade_id: str, replace: dict[str, str] | None = None, public_only: bool = False) -> Outcome:
    """Execute the import block, every solution cell (with ``replace[solution_id]`` swapped in),
    then the grade cell ``grade_id``. Returns whether it passed and the failure's message."""
    setup, solutions, grades = lab_cells(aid)
    replace = {k: textwrap.dedent(v) for k, v in (replace or {}).items()}
    unknown = set(replace) - set(solutions)
    if unknown:
        raise KeyError(f"no solution cells {sorted(unknown)} in {aid}; known: {sorted(solutions)}")
    outcome = _run(aid, grade_id, replace, public_only, setup, solutions, grades)
    from backproplab.checks import DIAGNOSES

    unknown = [t for t in _tags(outcome.message) if t not in DIAGNOSES]
    if unknown:
        raise AssertionError(f"{aid}:{grade_id}: diagnosis tags {unknown} are not in backproplab.checks.DIAGNOSES "
                             "(one vocabulary: add the tag with the sentence a student reads)")
    if os.environ.get("BACKPROPLAB_JUDGE_TOO", "1") != "0":
        judged = _run_judged(aid, grade_id, replace, public_only, setup, solutions, grades)
        same_tags = _tags(judged.message) == _tags(outcome.message)
        if judged.passed != outcome.passed or not same_tags:
            raise AssertionError(
                f"{aid}:{grade_id}: the grader's judge (student code in another process) and the student's "
                f"desk (everything in one kernel) disagree.\n  desk:  {outcome.passed} {outcome.message[:500]}\n"
                f"  judge: {judged.passed} {judged.message[:500]}")
    _log(aid, grade_id, replace, public_only, outcome, solutions)
    return outcome


def _tags(message: str) -> list[str]:
    return re.findall(r"\(diagnosis: ([a-z0-9_]+)\)", message)


def _run_judged(aid, grade_id, replace, public_only, setup, solutions, grades) -> Outcome:
    """The same grade cell as the grader runs it: the test in a judge, the student's code behind the
    wire protocol (here a worker in this process; in the grader, the sandboxed kernel)."""
    from backproplab_autograder.judge import Session, local_channel

    worker: dict = {"__name__": "__main__"}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        exec(compile(setup, f"<{aid}:setup>", "exec"), worker)
        session = Session(local_channel(worker))
        session.absorb(setup)
        for sid, src in solutions.items():
            try:
                exec(compile(replace.get(sid, src), f"<{aid}:{sid}>", "exec"), worker)
            except Exception:  # noqa: BLE001, S110 - as in a kernel: the grade cell then fails
                pass
        source = grades[grade_id]
        if public_only:
            source = public_part(source)
        verdict = session.run(source)
    if verdict.passed:
        return Outcome(True, "")
    return Outcome(False, f"{verdict.ename}: {verdict.evalue}")


def _distinguishing_line(source: str, reference: str) -> str:
    """The first line of ``source`` that the reference answer does not have (what makes it different)."""
    known = {ln.strip() for ln in reference.splitlines()}
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith(("#", '"""'))]
    return next((ln for ln in lines if ln not in known), lines[0] if lines else "")


def _log(aid: str, grade_id: str, replace: dict[str, str], public_only: bool, outcome: Outcome,
         solutions: dict[str, str]) -> None:
    """With BACKPROPLAB_GRADECELL_LOG set, append one JSON line per run: what tests/gradecell_table.md
    is built from (``python -m tests.helpers.gradecell_table LOG``)."""
    path = os.environ.get("BACKPROPLAB_GRADECELL_LOG")
    if not path:
        return
    tags = re.findall(r"\(diagnosis: ([a-z0-9_]+)\)", outcome.message)
    first = "; ".join(_distinguishing_line(src, solutions.get(sid, "")) for sid, src in sorted(replace.items()))
    record = {"aid": aid, "grade_id": grade_id, "replaced": sorted(replace), "variant": first[:100],
              "digest": hashlib.sha1("\0".join(replace.values()).encode()).hexdigest()[:10],
              "public_only": public_only, "passed": outcome.passed, "tags": tags}
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _run(aid, grade_id, replace, public_only, setup, solutions, grades) -> Outcome:
    ns: dict = {"__name__": "__main__"}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        exec(compile(setup, f"<{aid}:setup>", "exec"), ns)
        for sid, src in solutions.items():
            exec(compile(replace.get(sid, src), f"<{aid}:{sid}>", "exec"), ns)
        source = grades[grade_id]
        if public_only:
            source = public_part(source)
        try:
            exec(compile(source, f"<{aid}:{grade_id}>", "exec"), ns)
        except Exception as exc:  # noqa: BLE001 - any failure of the grade cell is the outcome
            return Outcome(False, f"{type(exc).__name__}: {exc}")
    return Outcome(True, "")


def run_all_for(aid: str, solution_id: str, source: str, public_only: bool = False) -> dict[str, Outcome]:
    """Run every grade cell named ``test_<solution_id>`` or ``test_<solution_id>_*`` with ``source``."""
    ids = [g for g in grade_ids(aid) if g == f"test_{solution_id}" or g.startswith(f"test_{solution_id}_")]
    if not ids:
        raise KeyError(f"no grade cells for {solution_id} in {aid}")
    return {g: run_grade_cell(aid, g, {solution_id: source}, public_only) for g in ids}
