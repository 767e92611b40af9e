"""Hostile submissions: none can turn a wrong answer into points, read hidden tests, or touch the gradebook.

Two graded classes (see autograder/README.md, "Grading integrity"):

* **lab 3, full protections, 2 workers.** ``honest_wrong`` writes a ``backward`` that forgets to average
  over the batch (every ``test_backward_*`` cell fails). Each hostile student is ``honest_wrong`` plus
  one attack. The defined outcome: every hostile student gets *exactly* the per-cell scores of
  ``honest_wrong``; the reason of the ``test_backward_*`` cells is ``policy`` (with the construct and its
  line in the message) when the static scan catches the attack, else ``wrong_answer``. ``reference``
  and ``honest_wrong`` graded in the same run get their expected scores.
* **the tiny course with the static scan switched off**: the same kinds of attack run for real, and
  the sandbox alone must hold (no gradebook, no source, no other student's files, no network, no
  process left once the results are recorded).
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import socket
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import policy, sandbox, tinycourse
from backproplab_autograder.cli import grade_class
from backproplab_autograder.course import ASSIGNMENTS, RELEASE, SOLUTIONS
from backproplab_autograder.demo import _solution_answers
from backproplab_autograder.execute import hidden_lines, redact
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits
from nbgrader.utils import is_grade, is_solution

from tests.helpers import gradecells

AID = "lab3_mlp_backprop"
NB = ASSIGNMENTS[AID]

WRONG = '''\
def backward(params, outputs, Y):
    delta_y = outputs["yhat"] - Y
    delta_h = (delta_y @ params["Wy"]) * (1 - outputs["h"] ** 2)
    return {"Wy": delta_y.T @ outputs["h"], "by": delta_y.sum(dim=0).unsqueeze(1),
            "Wh": delta_h.T @ outputs["X"], "bh": delta_h.sum(dim=0).unsqueeze(1)}
'''

# right for every batch except a batch of one example, which only hidden checks (and one public batch
# check) use: its feedback must say a hidden check failed without giving the expected values
HIDDEN_ONLY = '''\
def backward(params, outputs, Y):
    B = Y.shape[0] if Y.shape[0] > 1 else 2
    delta_y = outputs["yhat"] - Y
    delta_h = (delta_y @ params["Wy"]) * (1 - outputs["h"] ** 2)
    return {"Wy": delta_y.T @ outputs["h"] / B, "by": delta_y.sum(dim=0).unsqueeze(1) / B,
            "Wh": delta_h.T @ outputs["X"] / B, "bh": delta_h.sum(dim=0).unsqueeze(1) / B}
'''

STAR_IMPORT = '''\
import sys, types
_fake = types.ModuleType("fake_checks")
_fake.bt = types.SimpleNamespace(**{k: getattr(bt, k) for k in dir(bt) if not k.startswith("__")})
_fake.bt.assert_mlp_grads_close = lambda *a, **k: None
_fake.__all__ = ["bt"]
sys.modules["fake_checks"] = _fake
from fake_checks import *
'''
SUBCLASSES_WALK = '''\
for _cls in object.__subclasses__():
    if getattr(_cls, "__name__", "") == "Mismatch":
        _cls.message = lambda self, name: ""
import backproplab.checks as _c
_c.compare.__globals__["_diagnose_values"] = lambda *a, **k: None
_c.compare.__globals__["compare"] = lambda *a, **k: None
'''
PUBLISH_RESULT = '''\
_ip = get_ipython()
_ip.events.register("pre_run_cell", lambda *a: _ip.displayhook(24))
_ip.events.register("post_run_cell", lambda *a: _ip.displayhook(24))
'''
CAPTURED_GRAD = '''\
_grad = torch.autograd.grad
_enable = torch.enable_grad

def backward(params, outputs, Y):
    with _enable():
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        h = torch.tanh(outputs["X"] @ leaves["Wh"].T + leaves["bh"].T)
        yhat = torch.softmax(h @ leaves["Wy"].T + leaves["by"].T, dim=1)
        loss = -(Y * yhat.log()).sum(1).mean()
        names = list(leaves)
        grads = _grad(loss, [leaves[k] for k in names])
    return {k: g.detach() for k, g in zip(names, grads)}
'''
HISTORY_PRINT = '''\
def backward(params, outputs, Y):
    ip = get_ipython()
    print("HISTORY", "\\n".join(ip.user_ns.get("In", [])), "\\n".join(map(str, ip.history_manager.input_hist_raw)))
    raise ValueError("HISTORY " + repr(ip.user_ns.get("_ih", []))[-5000:])
'''
EXCEPTION_STACK = '''\
import inspect

def backward(params, outputs, Y):
    frames = inspect.stack()
    text = " | ".join(str(f.frame.f_locals)[:500] + "".join(f.code_context or []) for f in frames)
    raise ValueError("STACK " + text)
'''

# attack name -> (source of the backward cell, caught by the static scan?)
ATTACKS: dict[str, tuple[str, bool]] = {
    "torch_allclose": ("import torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                       + WRONG, True),
    "numpy_allclose": ("import numpy as np\nnp.allclose = lambda *a, **k: True\n" + WRONG, True),
    "function_mode": ('''\
from torch.overrides import TorchFunctionMode

class Agree(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ("__le__", "le", "allclose", "isclose"):
            return torch.ones_like(out, dtype=torch.bool) if isinstance(out, torch.Tensor) else True
        return out

Agree().__enter__()
''' + WRONG, True),
    "dispatch_mode": ('''\
from torch.utils._python_dispatch import TorchDispatchMode

class Agree(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if "le" in str(func) or "isclose" in str(func):
            return torch.ones_like(out)
        return out

Agree().__enter__()
''' + WRONG, True),
    "tensor_subclass": ('''\
class Always(torch.Tensor):
    def __eq__(self, other):
        return True
    def __le__(self, other):
        return torch.ones(self.shape, dtype=torch.bool)

_wrong = backward

def backward(params, outputs, Y):
    return {k: v.as_subclass(Always) for k, v in _wrong(params, outputs, Y).items()}
'''.replace("_wrong = backward", WRONG + "\n_wrong = backward"), False),
    "eq_object": (WRONG + '''
class Anything:
    shape = property(lambda self: self._shape)
    dtype = torch.float64
    def __init__(self, t):
        self._shape = t.shape
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return torch.zeros(self._shape)
    __rsub__ = __sub__
    def detach(self):
        return self

_wrong_eq = backward

def backward(params, outputs, Y):
    return {k: Anything(v) for k, v in _wrong_eq(params, outputs, Y).items()}
''', False),
    "transformer_in_solution": ("get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])\n" + WRONG,
                                True),
    "gradebook_write": ('''\
import glob, sqlite3
for path in glob.glob("/tmp/**/gradebook.db", recursive=True) + glob.glob("/work/**/gradebook.db", recursive=True):
    db = sqlite3.connect(path)
    db.execute("UPDATE grade SET auto_score = (SELECT max_score FROM grade_cells WHERE id = cell_id)")
    db.commit()
''' + WRONG, True),
    "read_hidden_tests": ('''\
import glob
for path in glob.glob("/tmp/**/source/**/*.ipynb", recursive=True)[:3]:
    print(open(path).read())
''' + WRONG, True),
    "detached_rewriter": ('''\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(20)
        os.system("sqlite3 gradebook.db 'UPDATE grade SET auto_score = 100'")
    os._exit(0)
''' + WRONG, True),
    "autograd_inside_backward": ('''\
def backward(params, outputs, Y):
    with torch.enable_grad():
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        h = torch.tanh(outputs["X"] @ leaves["Wh"].T + leaves["bh"].T)
        yhat = torch.softmax(h @ leaves["Wy"].T + leaves["by"].T, dim=1)
        loss = -(Y * yhat.log()).sum(1).mean()
        loss.backward()
    return {k: v.grad for k, v in leaves.items()}
''', True),
    "reference_helper": ('''\
def backward(params, outputs, Y):
    return bt.mlp_reference(params, outputs["X"], Y)[1]
''', True),
    "patch_checks": ("checks.compare = lambda *a, **k: None\nbt.assert_mlp_grads_close = lambda *a, **k: None\n"
                     + WRONG, True),
    "patch_via_alias": ("import backproplab.checks as c\nfake = c\nfake.compare = lambda *a, **k: None\n" + WRONG,
                        True),
    "setattr_obfuscated": ("setattr(bt, 'assert_mlp' + '_grads_close', lambda *a, **k: None)\n" + WRONG, True),
    "exec_obfuscated": ("exec(bytes.fromhex('" + b"bt.assert_mlp_grads_close = lambda *a, **k: None".hex()
                        + "').decode())\n" + WRONG, True),
    "shadow_builtin": ("def isinstance(*args):\n    return False\n\ndef any(*args):\n    return False\n" + WRONG, True),
    "frame_peek": ('''\
import sys

def backward(params, outputs, Y):
    frame = sys._getframe(1)
    return frame.f_locals.get("expected", {})
''', True),
    "thread_patcher": ("import threading\nthreading.Timer(0.1, lambda: setattr(bt, 'assert_mlp_grads_close', "
                       "lambda *a, **k: None)).start()\n" + WRONG, True),
    # routes around the static scan (issue 14): each one replaced a check inside the kernel
    "for_loop_target": ("for bt.assert_mlp_grads_close in [lambda *a, **k: None]:\n    pass\n" + WRONG, False),
    "code_swap": ("bt.assert_mlp_grads_close.__code__ = (lambda *a, **k: None).__code__\n" + WRONG, False),
    "mock_patch": ("from unittest import mock\nmock.patch.object(bt, 'assert_mlp_grads_close', "
                   "lambda *a, **k: None).start()\nmock.patch.object(checks, 'compare', lambda *a, **k: None).start()\n"
                   + WRONG, False),
    "update_wrapper": ("import functools\nfunctools.update_wrapper(bt.assert_mlp_grads_close, print)\n"
                       "bt.assert_mlp_grads_close.__code__ = print.__call__.__code__ if hasattr(print.__call__, "
                       "'__code__') else (lambda *a, **k: None).__code__\n" + WRONG, False),
    "star_import": (STAR_IMPORT + WRONG, False),
    "aliased_setattr": ("_s, _g = setattr, getattr\n_s(_g(__import__('backproplab'), 'checks'), 'compare', "
                        "lambda *a, **k: None)\n" + WRONG, False),
    "sys_modules_dict": ("import sys\nsys.modules['backproplab.checks'].__dict__.update(compare=lambda *a, **k: None)\n"
                         "sys.modules['backproplab.backprop_tools'].__dict__['assert_mlp_grads_close'] = "
                         "lambda *a, **k: None\n" + WRONG, False),
    "subclasses_walk": (SUBCLASSES_WALK + WRONG, False),
    "magic_line": ("%time bt.assert_mlp_grads_close = lambda *a, **k: None\n" + WRONG, False),
    "publish_result": (PUBLISH_RESULT + WRONG, False),
    "torch_grad_captured": (CAPTURED_GRAD, False),
    "history_print": (HISTORY_PRINT, False),
    "exception_stack": (EXCEPTION_STACK, False),
}
# correct answers reached by means a rule of the lab forbids: advice in the report, never a score
# (unless the instructor grades with --policy zero)
RULE_BREAKERS = ("autograd_inside_backward", "torch_grad_captured")
# the course's reference helpers are masked in the grading kernel (workerlib.py): calling one fails
MASKED = ("reference_helper",)
# attacks that run inside the student's own code: a wrong answer whatever they print or raise
LEAKERS = ("history_print", "exception_stack", "read_hidden_tests", "frame_peek")
# attacks that break the student's own process (torch or builtins replaced, a mode or an input transformer
# left active): the judge's checks are untouched, so they can only cost the student the exercises whose
# own code relies on what they broke (a check_backward whose allclose always agrees, say)
SELF_HARM = ("torch_allclose", "numpy_allclose", "function_mode", "dispatch_mode", "transformer_in_solution",
             "shadow_builtin", "tensor_subclass", "eq_object")
# an attack in a cell that is not an exercise (added by the student, or a lesson cell rewritten):
# never run, so the student is graded exactly as honest_wrong
EXTRA_CELL_ATTACKS = {
    "transformer_in_extra_cell": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
    "patch_in_lesson_cell": "import torch\ntorch.allclose = lambda *a, **k: True\nbt.assert_mlp_grads_close = print",
}


# a right backward written with the idioms the old deny-list scan zeroed (issue 14): stderr, a log file,
# a variable named data, gc switched off, getattr on a module, a warning, an error message naming the function
IDIOMS = '''\
import gc
import math
import sys
import warnings


class Tracer:
    def __init__(self):
        self.calls = 0

    def bump(self):
        self.calls += 1
        return self.__class__.__name__


_trace = Tracer()


def backward(params, outputs, Y):
    """delta_y = yhat - Y, then the chain rule layer by layer."""
    if Y.dim() != 2:
        raise ValueError("backward: Y must be a (B, ny) one-hot matrix")
    gc.disable()
    try:
        data = {"B": Y.shape[0], "sqrt": getattr(math, "sqrt")}
        print(f"backward called with B={data['B']}", file=sys.stderr)
        warnings.warn("a note from the student's backward", UserWarning, stacklevel=1)
        with open("backward.log", "a") as log:
            log.write(_trace.bump() + "\\n")
        B = data["B"]
        delta_y = outputs["yhat"] - Y
        delta_h = (delta_y @ params["Wy"]) * (1 - outputs["h"] ** 2)
        return {"Wy": delta_y.T @ outputs["h"] / B, "by": delta_y.sum(dim=0).unsqueeze(1) / B,
                "Wh": delta_h.T @ outputs["X"] / B, "bh": delta_h.sum(dim=0).unsqueeze(1) / B}
    finally:
        gc.enable()
'''

LIAR_ACCURACY = '''\
class Liar(float):
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return 0.0
    __rsub__ = __sub__
    def __abs__(self):
        return 0.0
    def __lt__(self, other):
        return True
    __le__ = __gt__ = __ge__ = __lt__
    __hash__ = float.__hash__

def accuracy(yhat, Y):
    return Liar(0.0)
'''


def _student(answers: dict[str, str], backward: str, extra: str | None = None,
             override: dict[str, str] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(str(RELEASE / AID / NB), as_version=4)
    cells = []
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if is_solution(cell):
            cell.source = backward if gid == "backward" else (override or {}).get(gid, answers[gid])
        cells.append(cell)
        if gid == "backward" and extra is not None:
            cells.append(nbformat.v4.new_code_cell(extra))
    if extra is not None:  # and a lesson cell rewritten
        lesson = next(c for c in cells if c.cell_type == "code" and not c.metadata.get("nbgrader")
                      and "check_environment" in c.source)
        lesson.source = extra
    nb.cells = cells
    return nb


def _rows(out: Path) -> dict[str, dict[str, dict]]:
    with open(out / "grades_detailed.csv") as fh:
        rows = list(csv.DictReader(fh))
    cells: dict[str, dict[str, dict]] = {}
    for r in rows:
        cells.setdefault(r["student_id"], {})[r["grade_id"]] = r
    return cells


def _text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    answers = _solution_answers(AID, NB)
    subs = root / "submitted"
    stub = "def backward(params, outputs, Y):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    plan = {"reference": _student(answers, answers["backward"]), "honest_wrong": _student(answers, WRONG),
            "unanswered": _student(answers, stub),
            "hidden_only": _student(answers, HIDDEN_ONLY),
            # an unanswered backward whose hooks publish a score of 24 around every cell (nbgrader used to
            # score that number); and a wrong accuracy whose float subclass claims to equal anything
            "hook_unanswered": _student(answers, PUBLISH_RESULT + stub),
            "idioms": _student(answers, IDIOMS),
            "liar_accuracy": _student(answers, answers["backward"], override={"accuracy": LIAR_ACCURACY})}
    plan.update({name: _student(answers, src) for name, (src, _) in ATTACKS.items()})
    plan.update({name: _student(answers, WRONG, extra) for name, extra in EXTRA_CELL_ATTACKS.items()})
    for student, nb in plan.items():
        path = subs / student / AID / NB
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
    limits = Limits(cell_timeout=60, notebook_timeout=300, memory_mib=3072)
    settings = Settings(out=root / "out", limits=limits, jobs=2, progress=False)
    summary = grade_class(subs, settings, [AID], echo=lambda *a: None)
    return {"summary": summary, "cells": _rows(root / "out"), "out": root / "out"}


def _scores(cells: dict[str, dict]) -> dict[str, float]:
    return {g: float(r["score"]) for g, r in cells.items()}


BACKWARD_CELLS = ("test_backward_output_layer", "test_backward_hidden_layer", "test_backward_batch",
                  "test_backward_no_autograd")


@pytest.mark.slow
def test_honest_students_get_their_expected_scores(lab3):
    cells = lab3["cells"]
    assert lab3["summary"]["grader_errors"] == 0
    # written answers are never auto-graded: they wait for a person (or score 0 when left as released)
    auto = {g: r for g, r in cells["reference"].items() if not g.startswith("answer_")}
    assert all(r["reason"] == "passed" for r in auto.values()), auto
    written = [r for g, r in cells["reference"].items() if g.startswith("answer_")]
    assert all(r["reason"] in ("needs_manual_grade", "wrong_answer") and float(r["score"]) == 0 for r in written)
    wrong = cells["honest_wrong"]
    for gid, r in wrong.items():
        if gid.startswith("answer_"):
            continue
        if gid in BACKWARD_CELLS:
            assert (float(r["score"]), r["reason"]) == (0.0, "wrong_answer"), (gid, r)
            assert "batch_sum" in r["message"]
        else:
            assert r["reason"] == "passed", (gid, r)


@pytest.mark.slow
@pytest.mark.parametrize("attack", [*ATTACKS, *EXTRA_CELL_ATTACKS])
def test_hostile_student_scores_exactly_like_the_honest_wrong_answer(lab3, attack):
    cells = lab3["cells"]
    got = cells[attack]
    if attack in RULE_BREAKERS:  # right gradients by a forbidden means: advice, scored like the reference
        assert _scores(got) == _scores(cells["reference"]), attack
        return
    if attack in MASKED:
        assert _scores(got) == _scores(cells["unanswered"]), attack
        assert "reference helper of the course" in got["test_backward_batch"]["message"]
        return
    honest = cells["honest_wrong"]
    if attack in SELF_HARM:  # never more than the honest wrong answer, cell by cell
        assert all(v <= _scores(honest)[g] for g, v in _scores(got).items()), \
            {g: (v, _scores(honest)[g]) for g, v in _scores(got).items() if v > _scores(honest)[g]}
    elif attack in LEAKERS:  # worse wrong answers: their own train_mlp cannot train
        diff = {g for g, v in _scores(got).items() if v != _scores(honest)[g]}
        assert diff <= {"test_train_mlp"} and all(v <= _scores(honest)[g] for g, v in _scores(got).items())
    else:
        assert _scores(got) == _scores(honest), {g: (v, _scores(honest)[g]) for g, v in _scores(got).items()
                                                 if v != _scores(honest)[g]}
    for gid in BACKWARD_CELLS:
        assert float(got[gid]["score"]) == 0.0
        assert got[gid]["reason"] == "wrong_answer", (gid, got[gid])


@pytest.mark.slow
def test_honest_idioms_keep_full_marks(lab3):
    cells = lab3["cells"]
    assert _scores(cells["idioms"]) == _scores(cells["reference"])
    assert all(cells["idioms"][g]["reason"] == "passed" for g in BACKWARD_CELLS)
    page = _text(lab3["out"] / "feedback" / "idioms" / AID / "mlp_backprop.html")
    assert "backward called with B=" in page  # stderr is shown (as [stderr] lines), never scored


@pytest.mark.slow
def test_published_results_and_lying_numbers_score_nothing(lab3):
    cells = lab3["cells"]
    assert _scores(cells["hook_unanswered"]) == _scores(cells["unanswered"])
    liar = cells["liar_accuracy"]
    assert float(liar["test_accuracy"]["score"]) == 0.0 and liar["test_accuracy"]["reason"] == "wrong_answer"
    assert "Liar" in liar["test_accuracy"]["message"] or "float" in liar["test_accuracy"]["message"]
    others = {g: v for g, v in _scores(liar).items() if g not in ("test_accuracy", "test_train_mlp")}
    assert others == {g: v for g, v in _scores(cells["reference"]).items() if g in others}


@pytest.mark.slow
def test_scan_findings_are_advice_in_the_report_with_their_line(lab3):
    res = json.loads((lab3["out"] / "results" / "autograd_inside_backward" / f"{AID}.json").read_text())
    assert {p["rule"] for p in res["policy"]} == {"autograd"}
    assert all(not p["zeroed"] and p["line"] for p in res["policy"])
    assert lab3["cells"]["autograd_inside_backward"]["test_backward_batch"]["reason"] == "passed"
    report = (lab3["out"] / "report.md").read_text()
    section = report.split("## Policy findings", 1)[1].split("\n## ", 1)[0]
    assert "| autograd_inside_backward | lab3_mlp_backprop | backward | 2 |" in section, section
    assert "| patch_checks |" in section  # a tampering construct is listed too, scored like honest_wrong


def _hidden_source_lines() -> list[str]:
    nb = nbformat.read(str(SOLUTIONS / AID / NB), as_version=4)
    lines, public = [], set()
    for cell in nb.cells:
        if is_grade(cell):
            src = cell.source.splitlines()
            hidden = hidden_lines(cell.source)
            public |= {ln.strip() for i, ln in enumerate(src, start=1) if i not in hidden}
            lines += [src[i - 1].strip() for i in sorted(hidden)
                      if len(src[i - 1].strip()) > 25 and "HIDDEN TESTS" not in src[i - 1]]
    return [ln for ln in lines if ln not in public]  # a line the public part has too is public


def _hidden_reference_numbers() -> set[str]:
    """The values a hidden check of hidden_only expects: from the full message of the in-process run."""
    numbers = set()
    for gid in ("test_backward_output_layer", "test_backward_hidden_layer"):
        out = gradecells.run_grade_cell(AID, gid, {"backward": HIDDEN_ONLY})
        assert not out.passed
        numbers |= set(re.findall(r"expected (-?\d+\.\d{3,})", out.message))
    return numbers


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests_or_their_expected_values(lab3):
    hidden = _hidden_source_lines()
    numbers = _hidden_reference_numbers()
    assert hidden and numbers
    pages = sorted((lab3["out"] / "feedback").glob(f"*/{AID}/mlp_backprop.html"))
    assert len(pages) == len(lab3["cells"])
    assert _scores(lab3["cells"]["unanswered"])["test_train_mlp"] == 0.0  # train_mlp calls the student's backward
    for page in pages:
        text = _text(page)
        for line in hidden:
            assert line not in text, (page, line)
        for n in numbers:
            assert n not in text, (page, n)
    text = _text(lab3["out"] / "feedback" / "hidden_only" / AID / "mlp_backprop.html")
    assert "a hidden check failed" in text
    # the kernel never held a hidden line: neither its history nor an exception's stack can show one
    for student in ("history_print", "exception_stack"):
        rows = lab3["cells"][student]
        message = rows["test_backward_batch"]["message"]
        assert "HISTORY" in message or "STACK" in message, message
        for row in rows.values():
            for line in hidden:
                assert line not in row["message"], (student, line)
    hidden_only = lab3["cells"]["hidden_only"]
    assert float(hidden_only["test_backward_output_layer"]["score"]) == 0.0
    assert "a hidden check failed" not in hidden_only["test_backward_output_layer"]["message"]  # CSV: full


# --- the sandbox alone (static scan off), on the tiny course --------------------------------------

def _snoop_source(paths: dict[str, str], port: int, marker_dir: str) -> dict[str, str]:
    reads = "\n".join(f"_try({k!r}, {v!r})" for k, v in paths.items())
    return {
        "snoop": f'''\
import os

def _try(what, path):
    try:
        if os.path.isdir(path):
            print("READ", what, sorted(os.listdir(path))[:5])
        else:
            with open(path, "rb") as fh:
                print("READ", what, fh.read(200))
    except Exception as exc:
        print("DENIED", what, type(exc).__name__)

{reads}

def square(x):
    return x * x
''',
        "scorer": f'''\
import sqlite3
try:
    db = sqlite3.connect({paths["gradebook"]!r})
    db.execute("UPDATE grade SET auto_score = 100")
    db.commit()
    print("WROTE gradebook")
except Exception as exc:
    print("DENIED gradebook", type(exc).__name__)

def square(x):
    return x + x
''',
        "network": f'''\
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"leak")
    print("NET-OK")
except Exception as exc:
    print("NET-DENIED", type(exc).__name__, exc)

def square(x):
    return x * x
''',
        "detached": f'''\
import os, time, sqlite3
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.makedirs({marker_dir!r}, exist_ok=True)  # in the container, its own (private) /tmp
        while True:
            with open({marker_dir!r} + "/alive", "a") as fh:
                fh.write(f"{{time.time()}}\\n")
            try:
                sqlite3.connect({paths["gradebook"]!r}).execute("UPDATE grade SET auto_score = 100").connection.commit()
            except Exception:
                pass
            time.sleep(0.2)
    os._exit(0)
time.sleep(0.5)
try:  # in the container, /tmp is the job's own: the daemon's marks are seen from here only
    print("STAMPS", len(open({marker_dir!r} + "/alive").read().split()))
except OSError as exc:
    print("NO STAMPS", exc)

def square(x):
    return x + x
''',
    }


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    if not sandbox.is_root():
        pytest.skip("the uid drop and the namespaces need root")
    root = tmp_path_factory.mktemp("sandbox")
    source = tinycourse.build(root)
    out = root / "out"
    subs = root / "submitted"
    marker_dir = tempfile.mkdtemp(prefix="bpl-marker-")
    os.chmod(marker_dir, 0o777)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    paths = {
        "gradebook": str(out / "course" / "gradebook.db"),
        "source notebook": str(source / "tiny" / "tiny.ipynb"),
        "course source": str(out / "course" / "source" / "tiny" / "tiny.ipynb"),
        "other student (course)": str(out / "course" / "submitted" / "good" / "tiny" / "tiny.ipynb"),
        "other student (intake)": str(out / "work" / "submitted" / "good" / "tiny" / "tiny.ipynb"),
        "other student (submissions)": str(subs / "good" / "tiny" / "tiny.ipynb"),
        "results": str(out / "results"),
        "repo solutions": str(SOLUTIONS / AID / NB),
    }
    students = {"good": tinycourse.submission(),
                "wrong": tinycourse.submission({"square": "def square(x):\n    return x + x\n"})}
    for name, src in _snoop_source(paths, port, marker_dir).items():
        students[name] = tinycourse.submission({"square": src})
    for name, nb in students.items():
        tinycourse.write_student(subs, name, nb)
    limits = Limits(cell_timeout=10, notebook_timeout=60, interrupt_grace=2, memory_mib=1024, processes=64)
    settings = Settings(out=out, limits=limits, jobs=2, source_dir=source, progress=False, scan=False)
    summary = grade_class(subs, settings, echo=lambda *a: None)
    finished = time.time()
    time.sleep(2)
    stop.set()
    thread.join(5)
    server.close()
    yield {"summary": summary, "cells": _rows(out), "out": out, "accepted": accepted, "marker": Path(marker_dir),
           "finished": finished, "paths": paths}
    import shutil

    shutil.rmtree(marker_dir, ignore_errors=True)


def _printed(out: Path, student: str) -> str:
    nb = nbformat.read(str(out / "course" / "autograded" / student / "tiny" / "tiny.ipynb"), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_sandbox_scores_are_unaffected(sandboxed):
    cells = sandboxed["cells"]
    assert sandboxed["summary"]["grader_errors"] == 0
    scores = {s: {g: float(r["score"]) for g, r in c.items()} for s, c in cells.items()}
    full = dict(tinycourse.POINTS)
    wrong = {**full, "test_square": 0.0}
    assert scores["good"] == full and scores["snoop"] == full and scores["network"] == full
    assert scores["wrong"] == wrong and scores["scorer"] == wrong and scores["detached"] == wrong
    # nbgrader's own export agrees: nobody's grade was rewritten
    with open(sandboxed["out"] / "nbgrader_grades.csv") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert exported["scorer"] == exported["wrong"] == exported["detached"] == sum(wrong.values())


@pytest.mark.slow
def test_sandbox_hides_gradebook_source_and_other_students(sandboxed):
    text = _printed(sandboxed["out"], "snoop")
    for what in sandboxed["paths"]:
        assert f"DENIED {what}" in text, (what, text)
    assert "READ" not in text
    assert "DENIED gradebook" in _printed(sandboxed["out"], "scorer")
    page = _text(sandboxed["out"] / "feedback" / "snoop" / "tiny" / "tiny.html")
    assert tinycourse.HIDDEN_LINE not in page and "square(-7)" not in page


@pytest.mark.slow
def test_sandbox_has_no_network(sandboxed):
    assert "NET-DENIED" in _printed(sandboxed["out"], "network")
    assert sandboxed["accepted"] == []


@pytest.mark.slow
def test_detached_process_is_gone_before_results_are_recorded(sandboxed):
    alive = sandboxed["marker"] / "alive"
    data = json.loads((sandboxed["out"] / "results" / "detached" / "tiny.json").read_text())
    if data.get("isolation", {}).get("container") == "bwrap":  # issue 15: the job's /tmp is a private tmpfs
        assert re.search(r"STAMPS [1-9]", _printed(sandboxed["out"], "detached")), "the detached process never ran"
        assert not alive.exists()  # its marks died with the container; so did the process (PID namespace)
        assert not sandbox.stray_processes()
        return
    assert alive.exists(), "the detached process never ran"
    stamps = [float(x) for x in alive.read_text().split()]
    recorded = (sandboxed["out"] / "results" / "detached" / "tiny.json").stat().st_mtime
    assert max(stamps) < recorded + 0.01
    assert time.time() - os.path.getmtime(alive) >= 2  # nothing written since
    assert not sandbox.stray_processes()  # other grading runs (parallel tests) hold their own uids


# --- the scan itself (fast) -----------------------------------------------------------------------

def _protected(aid: str) -> set[str]:
    nb = nbformat.read(str(SOLUTIONS / aid / ASSIGNMENTS[aid]), as_version=4)
    return policy.protected_names([c.source for c in nb.cells if is_grade(c)])


def _one_cell(aid: str, source: str) -> nbformat.NotebookNode:
    ref = nbformat.read(str(SOLUTIONS / aid / ASSIGNMENTS[aid]), as_version=4)
    first = next(c for c in ref.cells if c.cell_type == "code")
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"grade_id": "backward", "solution": True,
                                                                    "grade": False}})
    return nbformat.v4.new_notebook(cells=[first, cell])


@pytest.mark.parametrize("attack", [a for a, (_, caught) in ATTACKS.items() if caught])
def test_scan_flags_every_attack_it_is_meant_to(attack):
    src = ATTACKS[attack][0]
    nb = _one_cell(AID, src)
    found = list(policy.tampering(nb, _protected(AID)))
    found += policy.scan(nbformat.v4.new_notebook(cells=[nb.cells[1]]), AID)
    assert found, attack


@pytest.mark.parametrize("aid", list(ASSIGNMENTS))
def test_scan_flags_no_reference_solution_and_no_alternative_answer_of_the_lab_tests(aid):
    import ast

    ref = nbformat.read(str(SOLUTIONS / aid / ASSIGNMENTS[aid]), as_version=4)
    protected = _protected(aid)
    assert policy.tampering(ref, protected) == []
    first = next(c for c in ref.cells if c.cell_type == "code")
    n = re.search(r"\d", aid).group()
    tree = ast.parse((Path(__file__).parent / f"test_lab{n}_grading.py").read_text())
    scanned = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value:
            code = textwrap.dedent(node.value)
            try:
                ast.parse(code)
            except SyntaxError:
                continue
            cell = nbformat.v4.new_code_cell(code, metadata={"nbgrader": {"grade_id": "x", "solution": True}})
            assert policy.tampering(nbformat.v4.new_notebook(cells=[first, cell]), protected) == [], code
            scanned += 1
    assert scanned > 5


def test_redaction_keeps_the_diagnosis_and_drops_the_values():
    msg = ("backward with B=1['Wy']: 6 of 6 entries are wrong (diagnosis: values)\n"
           "largest error 0.5 at [0, 1]: expected -0.231159, got -1.15579")
    assert redact(msg) == "backward with B=1['Wy']: 6 of 6 entries are wrong (diagnosis: values)"
    assert redact("shape (3, 2), expected (2, 3) in torch.float64") == "shape (3, 2), expected (…, …) in torch.float64"
    assert hidden_lines("a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\nc") == {2, 3, 4}

