"""Lab 5's bug hunt: ``check_LinearFunction`` is scored by the contract's rule on hidden candidates.

A good check gets full marks; a check that says True to everything, False to everything, or that
rejects one right candidate gets 0; a partial check gets a share; a candidate that raises counts as
caught. The score is what the grade cell displays last, which nbgrader reads as partial credit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import textwrap

import pytest
import torch
import torch.nn.functional as F
from backproplab import function_checks, linear_hunt

from tests.helpers.gradecells import lab_cells, public_part

AID = "lab5_custom_functions"
GID = "test_check_LinearFunction"
POINTS = 4


def grade(check_source: str, public_only: bool = False) -> tuple[float | None, str]:
    """(score the grade cell displays, or None when it raises; the message), on the student's desk; unless
    BACKPROPLAB_JUDGE_TOO=0, also as the grader runs it (the check in a worker, the test in a judge),
    which must give the same score and the same diagnosis tags."""
    desk = grade_on_desk(check_source, public_only)
    if os.environ.get("BACKPROPLAB_JUDGE_TOO", "1") != "0":
        judged = grade_judged(check_source, public_only)
        tags = [re.findall(r"\(diagnosis: ([a-z_]+)\)", m) for m in (desk[1], judged[1])]
        assert judged[0] == desk[0] and tags[0] == tags[1], f"desk and judge disagree:\n  desk:  {desk}\n  judge: {judged}"
    return desk


def grade_judged(check_source: str, public_only: bool = False) -> tuple[float | None, str]:
    """:func:`grade` through the judge: the student's cells in a worker namespace, the grade cell in a judge."""
    from backproplab_autograder.judge import Session, local_channel

    setup, solutions, grades = lab_cells(AID)
    worker: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup, "<setup>", "exec"), worker)
        session = Session(local_channel(worker))
        session.absorb(setup)
        for sid, src in solutions.items():
            exec(compile(textwrap.dedent(check_source) if sid == "check_LinearFunction" else src, f"<{sid}>", "exec"),
                 worker)
        verdict = session.run(public_part(grades[GID]) if public_only else grades[GID])
    if not verdict.passed:
        return None, verdict.evalue
    return verdict.score, ""


def grade_on_desk(check_source: str, public_only: bool = False) -> tuple[float | None, str]:
    setup, solutions, grades = lab_cells(AID)
    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup, "<setup>", "exec"), ns)
        for sid, src in solutions.items():
            exec(compile(textwrap.dedent(check_source) if sid == "check_LinearFunction" else src, f"<{sid}>", "exec"), ns)
        source = public_part(grades[GID]) if public_only else grades[GID]
        *body, last = source.rstrip().splitlines()
        try:
            exec(compile("\n".join(body), f"<{GID}>", "exec"), ns)
        except AssertionError as exc:
            return None, str(exc)
        value = eval(compile(last, f"<{GID}:last line>", "eval"), ns)
    return value, ""


def reference_check() -> str:
    return lab_cells(AID)[1]["check_LinearFunction"]


def test_the_grade_cell_ends_with_the_score_nbgrader_reads():
    source = lab_cells(AID)[2][GID]
    assert source.rstrip().splitlines()[-1] == "t_score.points"
    assert "determine_grade" in source and "2 s per" in source


def test_a_good_check_gets_full_marks_hidden_and_public():
    assert grade(reference_check()) == (POINTS, "")
    assert grade(reference_check(), public_only=True) == (POINTS, "")


@pytest.mark.parametrize("answer", ["True", "False"])
def test_a_constant_check_scores_zero(answer):
    score, message = grade(f"def check_LinearFunction(candidate):\n    return {answer}\n")
    assert score is None
    assert ("(diagnosis: missed_bug)" if answer == "True" else "(diagnosis: rejected_right)") in message


def test_rejecting_one_right_candidate_scores_zero_even_if_every_bug_is_caught():
    # rejects a backward that returns a gradient where none was asked for (autograd discards it)
    strict = reference_check().replace(
        "    try:\n",
        "    try:\n"
        "        x = torch.randn(2, 3, dtype=torch.float64)\n"
        "        W = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)\n"
        "        y = candidate.apply(x, W, None)\n"
        "        if y.grad_fn.apply(torch.ones(2, 4, dtype=torch.float64))[0] is not None:\n"
        "            return False\n", 1)
    score, message = grade(strict)
    assert score is None and "(diagnosis: rejected_right)" in message and "(addmm)" in message


def test_a_check_with_one_case_only_gets_partial_credit():
    # only b given, only one square shape with a batch of one: misses everything that needs b=None or B > 1
    partial = reference_check().replace("[(4, 3, 2), (1, 2, 3), (3, 3, 3)]", "[(1, 3, 3)]").replace(
        '("b given", "b None", "b left out", "x is data")', '("b given",)')
    score, message = grade(partial)
    assert score is not None and 0 < score < POINTS, (score, message)


def test_a_candidate_that_raises_counts_as_caught_even_if_the_check_lets_it_escape():
    no_try = reference_check().replace("    except Exception:  # a candidate that raises is wrong\n        return False\n",
                                       "    finally:\n        pass\n")
    assert "except Exception" not in no_try
    assert grade(no_try) == (POINTS, "")


def test_verdicts_for_raising_non_bool_and_slow_checks():
    right = function_checks.autograd_function("LinearFunction", F.linear)

    def raises(candidate):
        raise RuntimeError("boom")

    def tensor_answer(candidate):
        return torch.tensor(True)

    def slow(candidate):
        try:
            while True:
                pass
        except Exception:  # swallows the alarm: still no verdict
            return False

    V = linear_hunt.Verdict
    assert linear_hunt.verdict(raises, right) is V.REJECTED
    assert linear_hunt.verdict(tensor_answer, right) is V.NOT_BOOL
    assert linear_hunt.verdict(slow, right, seconds=0.2) is V.TIMEOUT
    with pytest.raises(AssertionError, match="took longer than 0.2 s.*rejected_right"):
        linear_hunt.score(slow, {"right": right}, linear_hunt.planted_bugs(), points=4, seconds=0.2)


def test_planted_bugs_are_wrong_where_they_say_and_right_elsewhere():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    go = torch.randn(3, 4, generator=g, dtype=torch.float64)
    want = torch.autograd.grad(F.linear(x, W, b), (x, W, b), go)
    bugs = linear_hunt.planted_bugs()
    assert set(bugs) == set(linear_hunt.PLANTED)
    for tag, bug in bugs.items():
        y = bug.apply(x, W, b)
        torch.testing.assert_close(y, F.linear(x, W, b))  # every forward is right
        kept = go.clone()
        got = torch.autograd.grad(y, (x, W, b), kept)
        wrong = [i for i in range(3) if not torch.allclose(got[i], want[i])]
        assert wrong == {"sign": [0], "batch_mean_twice": [2]}.get(tag, []), tag
        assert torch.equal(kept, go) == (tag != "grad_output_modified"), tag
    with pytest.raises(RuntimeError):  # a tensor for b=None: autograd refuses it
        torch.autograd.grad(bugs["gradient_not_none"].apply(x, W, None).sum(), (x, W))


def test_the_planted_table_names_each_bug_and_the_verdict():
    table = linear_hunt.hunt_table(lambda candidate: False, linear_hunt.planted_bugs())
    for tag in linear_hunt.PLANTED:
        assert tag in table
    assert table.count("rejected it (caught)") == 4


@pytest.mark.slow
def test_nbgrader_autograde_reads_the_displayed_score_as_partial_credit(tmp_path):
    """A real nbgrader round on the bug hunt alone: full, partial and always-True checks."""
    import copy

    import nbformat
    from backproplab_autograder.config import render_config
    from backproplab_autograder.course import SOLUTIONS, nbgrader
    from nbgrader.api import Gradebook

    src = nbformat.read(SOLUTIONS / AID / "custom_functions.ipynb", as_version=4)
    code = [c for c in src.cells if c.cell_type == "code"]
    cells = [code[0]] + [c for c in code if c.metadata.get("nbgrader", {}).get("grade_id") in ("check_LinearFunction", GID)]
    nb = nbformat.v4.new_notebook(cells=cells, metadata=src.metadata)
    (tmp_path / "source" / "hunt").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "source" / "hunt" / "hunt.ipynb")
    partial = reference_check().replace("[(4, 3, 2), (1, 2, 3), (3, 3, 3)]", "[(1, 3, 3)]").replace(
        '("b given", "b None", "b left out", "x is data")', '("b given",)')
    students = {"full": reference_check(), "partial": partial, "yes": "def check_LinearFunction(candidate):\n    return True\n"}
    (tmp_path / "nbgrader_config.py").write_text(render_config(tmp_path, students=list(students), timeout=120))
    nbgrader("generate_assignment", "hunt", "--force", cwd=tmp_path)
    for student, source in students.items():
        sub = copy.deepcopy(nb)
        for c in sub.cells:
            if c.metadata.get("nbgrader", {}).get("grade_id") == "check_LinearFunction":
                c.source = source
        dest = tmp_path / "submitted" / student / "hunt"
        dest.mkdir(parents=True)
        nbformat.write(sub, dest / "hunt.ipynb")
        (dest / "timestamp.txt").write_text("2026-11-22 10:00:00.000000 UTC")
    nbgrader("autograde", "hunt", "--force", cwd=tmp_path)
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        scores = {s: gb.find_submission_notebook("hunt", "hunt", s).grades[0].score for s in students}
    assert scores["full"] == POINTS and scores["yes"] == 0
    assert scores["partial"] == grade(partial)[0] and 0 < scores["partial"] < POINTS


def test_the_untouched_stub_is_told_to_write_the_check():
    score, message = grade("def check_LinearFunction(candidate):\n    raise NotImplementedError()\n")
    assert score is None and "(diagnosis: not_implemented)" in message


def test_a_check_returning_a_tensor_is_told_to_return_a_bool():
    score, message = grade("def check_LinearFunction(candidate):\n    return torch.tensor(True)\n")
    assert score is None and "(diagnosis: wrong_return)" in message


_PROBE_CANDIDATE = '''
import torch

def observe(cls):
    """What a check can see of a candidate: values, gradients, grad_output afterwards, gradcheck, gradgradcheck."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    go = torch.randn(3, 4, generator=g, dtype=torch.float64)
    seen = []
    for args in [(x, W, b), (x, W, None), (x, W), (x.detach(), W, b)]:
        y = cls.apply(*args)
        kept = go.clone()
        try:
            grads = torch.autograd.grad(y, [a for a in args if a is not None and a.requires_grad], kept)
            seen.append([y.tolist(), [t.tolist() for t in grads], kept.tolist()])
        except Exception as exc:
            seen.append([y.tolist(), type(exc).__name__])
    for check in (torch.autograd.gradcheck, torch.autograd.gradgradcheck):
        try:
            seen.append(check(cls.apply, (x, W, b), raise_exception=False))
        except Exception as exc:
            seen.append(type(exc).__name__)
    return seen
'''

_BUILD_CANDIDATES = '''
import torch
from backproplab import linear_hunt


def fw(x, W, b):
    return x @ W.T if b is None else x @ W.T + b


def bw(x, W, b, g, need):
    return g @ W if need[0] else None, g.T @ x, g.sum(0) if b is not None else None


def bw_transposes(x, W, b, g, need):
    return {"grads": (g @ W, g.T @ x, g.sum(0) if b is not None else None), "grad_output": g.t()}


def bw_raises(x, W, b, g, need):
    return g @ W, g.T @ (x, W), None


seen = {name: observe(linear_hunt.candidate(fw, backward)) for name, backward in
        [("right", bw), ("transposes", bw_transposes), ("raises", bw_raises)]}
seen["planted"] = {tag: observe(bug) for tag, bug in linear_hunt.planted_bugs().items()}
'''


def test_candidates_behave_the_same_on_the_desk_and_through_the_judge():
    """The bug hunt's candidates (built from plain functions, or planted) look the same to a check, whether
    the check runs with them in one process or in the student's kernel with the functions called back."""
    from backproplab_autograder.judge import Session, local_channel

    desk: dict = {"__name__": "__main__"}
    exec(_PROBE_CANDIDATE, desk)
    exec(_BUILD_CANDIDATES, desk)
    worker: dict = {"__name__": "__main__"}
    exec(_PROBE_CANDIDATE, worker)
    session = Session(local_channel(worker))
    verdict = session.run(_BUILD_CANDIDATES + "\nprint(repr(seen))")
    assert verdict.passed, verdict.evalue
    assert verdict.outputs[0]["text"].strip() == repr(desk["seen"])
    assert desk["seen"]["right"][4:] == [True, True]  # gradgradcheck through the call back, too
    assert torch.tensor(desk["seen"]["transposes"][0][2]).shape == (4, 3)  # the caller's grad_output, transposed
    assert desk["seen"]["raises"][0][1] == "TypeError"
