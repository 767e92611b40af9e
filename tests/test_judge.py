"""The wire between the judge and the worker, and the judge's stand-ins (fast: the worker is a namespace
of this process; tests/test_integrity.py grades real kernels)."""

from __future__ import annotations

import json
import math
import re

import nbformat
import numpy as np
import pytest
import torch
from backproplab import remote
from backproplab.remote import WireError, decode, encode, loads
from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS
from backproplab_autograder.execute import hidden_lines
from backproplab_autograder.judge import Session, local_channel
from nbgrader.utils import is_grade, is_solution

# -- the wire format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.uint8, torch.bool])
def test_tensors_cross_as_bytes_with_dtype_and_shape(dtype):
    t = (torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) - 7).to(dtype)
    back = decode(json.loads(json.dumps(encode(t))))
    assert back.dtype == dtype and back.shape == t.shape and torch.equal(back, t)
    empty = decode(encode(torch.zeros(0, 3, dtype=dtype)))
    assert empty.shape == (0, 3) and empty.dtype == dtype


def test_plain_values_round_trip():
    value = {"a": [1, 2.5, None, True, "x"], "t": (torch.tensor([1.0], requires_grad=True), torch.Size([2, 3])),
             "n": np.arange(3.0), "s": slice(1, None, 2), "big": 2**70, "f": [math.inf, -math.inf],
             "d": torch.float32}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["a"] == [1, 2.5, None, True, "x"] and back["big"] == 2**70 and back["f"] == [math.inf, -math.inf]
    assert back["t"][0].requires_grad and back["t"][1] == torch.Size([2, 3]) and back["d"] is torch.float32
    assert isinstance(back["n"], np.ndarray) and back["s"] == slice(1, None, 2)
    assert math.isnan(decode(encode(float("nan"))))


@pytest.mark.parametrize("bad", [
    {"t": "pickle", "v": "gASV"},                                           # an unknown kind
    {"t": "tensor", "dtype": "float32", "shape": [3], "data": "AAAA"},       # bytes do not match the shape
    {"t": "tensor", "dtype": "object", "shape": [1], "data": ""},            # a dtype outside the list
    {"t": "tensor", "dtype": "float32", "shape": [2**20, 2**20], "data": ""},  # too many elements
    {"t": "tensor", "dtype": "float32", "shape": [-1], "data": ""},
    {"t": "bigint", "v": "12e5"},
    {"t": "ref", "id": 1},                                                   # a reference nobody resolves
    {"t": "dict", "v": [1, 2]},
    3 + 4j,
])
def test_decode_refuses_what_is_not_in_the_schema(bad):
    with pytest.raises((WireError, ValueError)):
        decode(bad)


def test_decode_refuses_deep_nesting_and_json_constants():
    deep: list = []
    for _ in range(remote.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(WireError):
        decode(deep)
    with pytest.raises(WireError):
        loads('{"ok": NaN}')
    with pytest.raises(WireError):
        loads("x" * (remote.MAX_TEXT + 1))


def test_objects_do_not_travel_by_value():
    class Liar(float):
        def __eq__(self, other):
            return True

    with pytest.raises(WireError):
        encode(Liar(1.0))          # a float subclass is not a float: no reference function, no travel
    with pytest.raises(WireError):
        encode(lambda x: x)


# -- the judge and its stand-ins ------------------------------------------------------------------------

STUDENT = '''
import torch

class Box:
    def __init__(self, v):
        self.v = v
    def __add__(self, other):
        return Box(self.v + (other.v if isinstance(other, Box) else other))
    __radd__ = __add__
    def twice(self):
        return 2 * self.v

def scale_in_place(x, k):
    x.mul_(k)
    return None

def grad_of(loss_fn, w):
    w = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(w), w, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), w)
    return g.detach(), h

def replace_entry(params):
    params["w"] = params["w"] * 2

def apply_update(update, p):
    update(p)
    return p.clone()

def uses_helper(x):
    return helper(x) + 1

def helper(x):
    return x

def loop_forever(x):
    while True:
        x = x + 1

def liar():
    class Liar(float):
        def __eq__(self, other):
            return True
    return Liar(0.0)

guess = "about equal"
'''


def _session(student: str = STUDENT) -> tuple[Session, dict]:
    worker: dict = {"__name__": "__main__"}
    exec(student, worker)  # noqa: S102 - the student's code, in the test's worker namespace
    session = Session(local_channel(worker), cell_timeout=10)
    session.absorb("import torch\nfrom backproplab import checks\n")
    return session, worker


def _run(session: Session, source: str):
    verdict = session.run(source)
    assert verdict.passed, f"{verdict.ename}: {verdict.evalue}"
    return verdict


def test_student_objects_are_stand_ins_with_calls_attributes_operators_and_identity():
    session, _ = _session()
    _run(session, '''
b = Box(2.0)
c = b + 3.0
assert isinstance(c, Box) and not isinstance(3.0, Box) and type(c).__name__ == "Box"
assert c.v == 5.0 and c.twice() == 10.0 and (1.0 + c).v == 6.0
c.v = 7.5
assert c.v == 7.5
assert c is c.__add__(0.0).__class__ or True
items = [b, c]
assert items.index(c) == 1 and b in items
assert "guess" in globals() and globals().get("guess") == "about equal" and globals().get("nothing") is None
''')


def test_in_place_changes_and_gradients_come_back_to_the_judges_tensors():
    session, _ = _session()
    _run(session, '''
x = torch.tensor([1.0, 2.0])
scale_in_place(x, 3.0)
assert torch.equal(x, torch.tensor([3.0, 6.0])), x
''')


def test_what_the_students_code_does_to_the_judges_dicts_and_tensors_comes_back():
    session, _ = _session()
    _run(session, '''
params = {"w": torch.tensor([1.0, 2.0])}
original = params["w"]
replace_entry(params)
assert params["w"] is not original and torch.equal(params["w"], torch.tensor([2.0, 4.0])), params
def step(p):                       # a test's function that updates its argument in place
    p.sub_(1.0)
seen = apply_update(step, torch.tensor([5.0]))
assert torch.equal(seen, torch.tensor([4.0])), seen
''')


def test_a_grade_cell_that_rebinds_a_students_name_rebinds_it_where_the_students_code_reads_it():
    session, worker = _session()
    _run(session, '''
saved = globals().get("helper")
helper = lambda x: 10 * x          # the check swaps in its own helper, as on the desk
try:
    assert uses_helper(2) == 21
finally:
    helper = saved
assert uses_helper(2) == 3
''')
    assert worker["uses_helper"](2) == 3


def test_a_test_function_called_by_the_students_code_is_differentiable_to_second_order():
    session, _ = _session()
    _run(session, '''
w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
g, h = grad_of(lambda v: (v ** 3).sum(), w)      # the loss lives in the judge
assert torch.allclose(g, 3 * w ** 2) and torch.allclose(h, 6 * w), (g, h)
''')


def test_a_call_that_never_returns_is_stopped_by_the_time_limit():
    session, _ = _session()
    verdict = session.run('''
with checks.time_limit(0.5, "loop_forever"):
    checks.call(loop_forever, torch.zeros(2))
''')
    assert not verdict.passed and "(diagnosis: timeout)" in verdict.evalue and "loop_forever" in verdict.evalue


def test_a_lying_float_arrives_as_a_reference_and_fails_the_type_check():
    session, _ = _session()
    verdict = session.run("checks.assert_python_float(liar(), 0.75, name='rate')")
    assert not verdict.passed and "(diagnosis: wrong_dtype)" in verdict.evalue


def test_the_students_state_cannot_reach_the_judges_checks():
    session, worker = _session()
    # the student patches the worker's namespace: the judge's names are its own
    worker["checks"] = None
    worker["torch"] = None
    _run(session, "assert checks.compare(torch.ones(1), torch.ones(1)) is None")
    verdict = session.run("checks.assert_close(torch.zeros(2), torch.ones(2), name='x')")
    assert not verdict.passed and "(diagnosis:" in verdict.evalue


# -- no hidden line ever crosses, in any lab -------------------------------------------------------------


def _cells(aid: str) -> list[tuple[str, str]]:
    nb = nbformat.read(str(SOLUTIONS / aid / ASSIGNMENTS[aid]), as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if is_grade(cell) and not is_solution(cell):
            out.append((cell.metadata["nbgrader"]["grade_id"], cell.source))
        elif is_solution(cell):
            out.append(("student", cell.source))
        else:
            out.append(("instructor", cell.source))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("aid", list(ASSIGNMENTS))
def test_no_hidden_test_line_is_ever_sent_to_the_students_code(aid, monkeypatch):
    """Every request the judge sends while grading the reference solution, checked for every line of
    every hidden-tests region: the worker receives calls and their inputs, never the tests."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = _cells(aid)
    hidden = set()
    for kind, source in cells:
        if kind not in ("student", "instructor"):
            lines = source.splitlines()
            for number in hidden_lines(source):
                text = lines[number - 1].strip()
                if len(text) > 30 and "HIDDEN TESTS" not in text and not text.startswith("#"):
                    hidden.add(text)
    assert hidden
    sent: list[str] = []
    worker: dict = {"__name__": "__main__"}
    inner = local_channel(worker)

    def recording(text, on_callback, timeout):
        sent.append(text)
        return inner(text, on_callback, timeout)

    session = Session(recording, cell_timeout=120)
    verdicts = {}
    for kind, source in cells:
        if kind in ("student", "instructor"):
            try:
                exec(compile(re.sub(r"(?m)^\s*[%!].*$", "", source), "<cell>", "exec"), worker)  # noqa: S102
            except Exception:  # noqa: BLE001, S110 - a lesson cell that needs a display
                pass
            if kind == "instructor":
                session.absorb(source)
        else:
            verdicts[kind] = session.run(source)
    failed = {k: v.evalue[:200] for k, v in verdicts.items() if not v.passed}
    assert not failed, failed
    everything = "\n".join(sent)
    assert sent
    leaked = [line for line in hidden if line in everything]
    assert leaked == [], leaked[:5]


# -- feedback: what a failure in a judged grade cell shows --------------------------------------------------


def _feedback_of(source: str, student: str) -> str:
    """The first line of the error a student's feedback shows for a judged grade cell."""
    from backproplab_autograder.execute import FeedbackScrub
    from nbformat import NotebookNode

    session, _ = _session(STUDENT + student)
    verdict = session.run(source)
    assert not verdict.passed
    cell = NotebookNode(cell_type="code", source=source, metadata={"nbgrader": {"grade": True, "grade_id": "t"}},
                        outputs=[NotebookNode(output_type="error", ename=verdict.ename, evalue=verdict.evalue,
                                              traceback=[f"Cell In[3], line {verdict.line}",
                                                         f"{verdict.ename}: {verdict.evalue}"])])
    FeedbackScrub().preprocess_cell(cell, {}, 0)
    return next(o for o in cell.outputs if o.output_type == "error").evalue


def test_a_public_check_that_times_out_is_named_not_shown_as_a_hidden_failure():
    source = ('with checks.time_limit(0.5, "slow_square", "does it ever stop?"):\n'
              '    checks.call(slow_square, 3.0)\n'
              '### BEGIN HIDDEN TESTS\n'
              'assert checks.call(slow_square, 2.0) == 4.0, "expected 4.0"\n'
              '### END HIDDEN TESTS\n')
    shown = _feedback_of(source, "\ndef slow_square(x):\n    while True:\n        pass\n")
    assert "slow_square took longer than 0.5 s" in shown and "(diagnosis: timeout)" in shown, shown
    assert "a hidden check failed" not in shown


def test_a_failure_on_a_hidden_line_is_shown_without_its_expected_values():
    source = ('assert checks.call(sloppy_square, 3.0) == 9.0\n'
              '### BEGIN HIDDEN TESTS\n'
              'checks.assert_python_float(checks.call(sloppy_square, 0.123), 0.015129, name="sloppy_square(0.123)")\n'
              '### END HIDDEN TESTS\n')
    shown = _feedback_of(source, "\ndef sloppy_square(x):\n    return round(x * x, 1)\n")
    assert shown.startswith("a hidden check failed") and "0.015129" not in shown, shown
