"""Lab 3's bug hunt: `check_backward` graded with nbgrader's partial credit.

The grade cell `test_check_backward` ends with the score as its last expression: nbgrader 0.9.6
(`determine_grade`) scores the cell with that number. These tests run the cell the way nbgrader does
(the last expression's value is the score, an exception is 0) on checks of every kind: a good one
scores full, one that always says True or always False scores 0, one that rejects a right candidate
scores 0, one that raises is handled, partial checks get partial credit; and the scorer in
`backproplab.bug_hunt_lab3` keeps its promises (time limit, stderr, substituted functions).
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import textwrap
import warnings

import pytest
import torch
from backproplab import backprop_tools as bt
from backproplab import bug_hunt_lab3 as bh3

from tests.helpers.gradecells import lab_cells, public_part

AID = "lab3_mlp_backprop"
POINTS = 4.0


def score_cell(check_source: str | None = None, public_only: bool = False, extra: dict[str, str] | None = None,
               namespace: dict | None = None):
    """(score, stdout, error message) of test_check_backward, scored as nbgrader scores it."""
    setup, solutions, grades = lab_cells(AID)
    replace = dict(extra or {})
    if check_source is not None:
        replace["check_backward"] = check_source
    ns: dict = namespace if namespace is not None else {}
    ns["__name__"] = "__main__"
    out = io.StringIO()
    source = grades["test_check_backward"]
    if public_only:
        source = public_part(source)
    tree = ast.parse(source)
    last = tree.body.pop()
    assert isinstance(last, ast.Expr), "the grade cell must end with the score as an expression"
    with contextlib.redirect_stdout(out):
        exec(compile(setup, "<setup>", "exec"), ns)
        for sid, src in solutions.items():
            exec(compile(textwrap.dedent(replace.get(sid, src)), f"<{sid}>", "exec"), ns)
        try:
            exec(compile(tree, "<grade>", "exec"), ns)
            value = eval(compile(ast.Expression(last.value), "<grade>", "eval"), ns)
        except Exception as exc:  # noqa: BLE001 - nbgrader: an error scores 0
            return 0.0, out.getvalue(), f"{type(exc).__name__}: {exc}"
    return float(value), out.getvalue(), ""


def solution_check():
    """The reference check_backward as a function (for tests of the scorer itself)."""
    setup, solutions, _ = lab_cells(AID)
    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup, "<setup>", "exec"), ns)
        for src in solutions.values():
            exec(compile(src, "<sol>", "exec"), ns)
    return ns["check_backward"], ns


def test_the_reference_check_scores_full_points_in_the_full_and_the_public_cell():
    score, out, err = score_cell()
    assert (score, err) == (POINTS, "")
    assert "rejected 11 of the 11 wrong ones" in out
    score, out, err = score_cell(public_only=True)
    assert (score, err) == (POINTS, "")
    assert "4 of the 4" in out


def test_the_score_reads_as_nbgrader_partial_credit():
    from nbformat.v4 import new_code_cell, new_output
    from nbgrader.utils import determine_grade

    cell = new_code_cell("...", metadata={"nbgrader": {"grade": True, "solution": False, "points": 4,
                                                       "grade_id": "test_check_backward"}})
    cell.outputs = [new_output("stream", name="stdout", text="missed: ...\n"),
                    new_output("execute_result", data={"text/plain": repr(2.9091)}, execution_count=1)]
    assert determine_grade(cell) == (2.9091, 4.0)
    cell.outputs = [new_output("execute_result", data={"text/plain": repr(4.0)}, execution_count=1)]
    assert determine_grade(cell) == (4.0, 4.0)


ALWAYS = "def check_backward(candidate):\n    return {}\n"


def test_a_check_that_always_says_right_scores_0():
    score, _, err = score_cell(ALWAYS.format("True"))
    assert score == 0.0 and "(diagnosis: missed_bug)" in err


def test_the_cell_runs_the_number_of_candidates_its_comment_states():
    ns: dict = {}
    score, _, err = score_cell("SEEN = []\ndef check_backward(candidate):\n    SEEN.append(candidate)\n    return True\n",
                               namespace=ns)
    verdicts = ns["_hunt"].verdicts
    assert len(ns["SEEN"]) == len(verdicts) == 17
    assert sum(v.right for v in verdicts) == 6 and sum(not v.right for v in verdicts) == 11
    assert "6 right and 11 wrong" in lab_cells(AID)[2]["test_check_backward"]


def test_a_check_that_always_says_wrong_scores_0():
    score, _, err = score_cell(ALWAYS.format("False"))
    assert score == 0.0 and "(diagnosis: rejected_right)" in err


def test_a_check_that_raises_is_handled_and_scores_0():
    score, _, err = score_cell("def check_backward(candidate):\n    raise ValueError('oops')\n")
    assert score == 0.0 and "(diagnosis: rejected_right)" in err and "raised ValueError: oops" in err


def test_a_check_returning_a_tensor_is_told_to_return_a_bool():
    score, _, err = score_cell("def check_backward(candidate):\n    return torch.tensor(True)\n")
    assert score == 0.0 and "not a Python bool" in err


def test_the_untouched_stub_is_not_implemented():
    score, _, err = score_cell("def check_backward(candidate):\n    raise NotImplementedError()\n")
    assert score == 0.0 and "(diagnosis: not_implemented)" in err


EXACT_CHECK = """
def check_backward(candidate):
    params, X, Y = bt.random_mlp_case(3, 4, 2, 5, seed=0)
    outputs, want = bt.mlp_reference(params, X, Y)
    try:
        got = candidate(params, outputs, Y)
        return all(torch.equal(got[k], want[k]) for k in want)
    except Exception:
        return False
"""


def test_a_check_that_rejects_a_right_candidate_scores_0():
    # exact equality rejects right answers that round differently (autograd's order of operations)
    score, _, err = score_cell(EXACT_CHECK)
    assert score == 0.0 and "(diagnosis: rejected_right)" in err


def _check_with(cases: str, keys: str = "want") -> str:
    """A check comparing with autograd (float64) on the given (nx, nh, ny, B, seed, zero_biases) cases."""
    return f"""
def check_backward(candidate):
    for nx, nh, ny, B, seed, zero_biases in {cases}:
        params, X, Y = bt.random_mlp_case(nx, nh, ny, B, seed=seed)
        if zero_biases:
            params["bh"].zero_()
            params["by"].zero_()
        outputs, want = bt.mlp_reference(params, X, Y)
        try:
            got = candidate(params, outputs, Y)
            for k in {keys}:
                if got[k].shape != want[k].shape or not torch.allclose(got[k].double(), want[k], rtol=1e-5, atol=1e-8):
                    return False
        except Exception:
            return False
    return True
"""


@pytest.mark.parametrize("cases,keys,missed", [
    ("[(3, 4, 2, 1, 0, False)]", "want", ["summed over the batch", "overwritten", "twice"]),
    ("[(3, 4, 2, 5, 0, True)]", "want", ["without the bias"]),
    ("[(3, 4, 2, 5, 0, False)]", "['Wy', 'by']", ["1 - h^2", "transposed", "htilde"]),
    ("[(4, 4, 4, 4, 0, False)]", "want", ["number of classes"]),
], ids=["batch_of_one", "zero_biases", "output_layer_only", "all_sizes_equal"])
def test_partial_checks_get_partial_credit_and_are_told_what_they_missed(cases, keys, missed):
    score, out, err = score_cell(_check_with(cases, keys))
    assert err == "" and 0.0 < score < POINTS, (score, err)
    lines = [ln for ln in out.splitlines() if "missed:" in ln]
    assert len(lines) >= len(missed) and all("(diagnosis: missed_bug)" in ln for ln in lines)
    for word in missed:
        assert any(word in ln for ln in lines), (word, lines)
    caught = int(out.split("rejected ")[1].split(" of")[0])
    assert score == pytest.approx(round(POINTS * caught / 11, 4))


def test_the_check_is_graded_with_correct_forward_and_cross_entropy():
    broken = {"forward": "def forward(params, X):\n    raise NotImplementedError()\n",
              "cross_entropy": "def cross_entropy(yhat, Y):\n    return (Y * yhat).sum()\n"}
    score, _, err = score_cell(extra=broken)
    assert (score, err) == (POINTS, "")


def test_the_notebook_functions_are_restored_after_the_check():
    check, ns = solution_check()
    mine = ns["forward"]
    hunt = bh3.BugHunt(check, 1, namespace=ns)
    hunt.right("autograd", bh3.autograd_backward)
    hunt.run()
    assert ns["forward"] is mine


# --- the scorer itself -------------------------------------------------------------------------------


def test_a_candidate_that_raises_is_caught_by_a_good_check():
    check, ns = solution_check()

    def raising(params, outputs, Y):
        raise RuntimeError("shape mismatch")

    hunt = bh3.BugHunt(check, 2, namespace=ns)
    hunt.right("autograd", bh3.autograd_backward)
    hunt.wrong("raises", raising)
    with contextlib.redirect_stdout(io.StringIO()):
        assert hunt.score() == 2.0
    assert [v.answer for v in hunt.verdicts] == [True, False]


def test_every_planted_bug_is_wrong_and_the_autograd_candidate_right():
    params, X, Y = bt.random_mlp_case(3, 5, 2, 4, seed=3)
    outputs, want = bt.mlp_reference(params, X, Y)
    got = bh3.autograd_backward(params, outputs, Y)
    assert all(torch.allclose(got[k], want[k]) for k in want)
    for name, (candidate, tag) in bh3.planted_bugs().items():
        bad = candidate(params, outputs, Y)
        assert tag in __import__("backproplab").checks.DIAGNOSES
        assert any(bad[k].shape != want[k].shape or not torch.allclose(bad[k], want[k]) for k in want), name


def test_planted_bugs_work_under_no_grad_and_in_float32():
    params, X, Y = bt.random_mlp_case(3, 3, 3, 2, dtype=torch.float32, seed=4)
    outputs, _ = bt.mlp_reference(params, X, Y)
    with torch.no_grad():
        for candidate, _tag in bh3.planted_bugs().values():
            grads = candidate(params, outputs, Y)
            assert all(g.dtype == torch.float32 for g in grads.values())


def test_a_slow_check_is_stopped_at_the_time_limit_even_if_it_catches_exceptions():
    import time

    def slow(candidate):
        try:
            time.sleep(5)
        except Exception:  # noqa: BLE001 - what a student might write
            return True
        return True

    hunt = bh3.BugHunt(slow, 1, seconds=0.2)
    hunt.right("autograd", bh3.autograd_backward)
    start = time.perf_counter()
    with pytest.raises(AssertionError, match="took longer than 0.2 s"):
        hunt.score()
    assert time.perf_counter() - start < 2


def test_warnings_and_stderr_of_the_check_stay_out_of_the_cell_output():
    def noisy(candidate):
        warnings.warn("careful", stacklevel=1)
        print("to stderr", file=sys.stderr)
        return candidate is bh3.autograd_backward

    err = io.StringIO()
    hunt = bh3.BugHunt(noisy, 3)
    hunt.right("autograd", bh3.autograd_backward)
    for name, (candidate, tag) in bh3.planted_bugs().items():
        hunt.wrong(name, candidate, tag)
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(io.StringIO()):
            assert hunt.score() == 3.0
    assert err.getvalue() == ""


def test_grad_mode_and_default_dtype_are_restored():
    def meddling(candidate):
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
        return True

    hunt = bh3.BugHunt(meddling, 1)
    hunt.right("autograd", bh3.autograd_backward)
    hunt.run()
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32


def test_the_verdict_table_names_every_candidate():
    hunt = bh3.BugHunt(lambda c: c is bh3.autograd_backward, 0)
    hunt.right("autograd", bh3.autograd_backward)
    for name, (candidate, tag) in bh3.planted_bugs().items():
        hunt.wrong(name, candidate, tag)
    table = bh3.verdict_table(hunt.run(stop_early=False))
    assert table.count("\n") == 5 and "MISSED" not in table
