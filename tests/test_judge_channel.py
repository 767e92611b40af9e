"""The judge's channel to a real kernel: the serving loop (one execute request per grade cell, each
request an input reply, each answer an input prompt). The grading tests use it through the sandbox; these
drive it directly on a plain kernel so that its edge cases (printing, the student's own input(), a
request past its limit, callbacks, the kernel free again afterwards) are each named."""

from __future__ import annotations

import json
from time import monotonic

import pytest
from backproplab_autograder import judge as judge_mod
from backproplab_autograder.execute import SandboxedExecute
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.timeout(120)

STUDENT = """
import sys, time
def double(a):
    print('doubling', a)
    return 2 * a
def ask(a):
    return input('your name? ') + str(a)
def slow(a):
    if a == 1:
        time.sleep(60)
    return a
def apply(f, a):
    return f(a) + 1
"""


@pytest.fixture()
def channel():
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.util import run_sync

    km = AsyncKernelManager(kernel_name="python3")  # as nbclient's: the harness calls it through run_sync
    run_sync(km.start_kernel)()
    kc = km.blocking_client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    ex = SandboxedExecute()
    ex.limits = Limits(cell_timeout=5.0, interrupt_grace=2.0)
    ex.km = km
    ex._bkc = ex._bkc_km = ex._loop = None
    ex.loop_mode, ex.restarts, ex.group = True, 0, None
    ex._deadline = monotonic() + 100
    ex._probe_outputs, ex._probe_bytes, ex._probe_capped = [], 0, False
    kc.execute_interactive(STUDENT, timeout=30)
    yield ex, kc
    ex._close_client()
    kc.stop_channels()
    run_sync(km.shutdown_kernel)(now=True)


def _kernel_still_runs_cells(kc) -> bool:
    reply = kc.execute_interactive("after = 41 + 1", timeout=10)
    return reply["content"]["status"] == "ok"


def test_many_requests_in_one_loop_then_the_kernel_is_free(channel):
    ex, kc = channel
    session = judge_mod.Session(ex._request, 5.0)
    verdict = session.run("for i in range(100):\n    assert double(i) == 2 * i\n")
    assert verdict.passed, verdict.evalue
    assert session.judge.requests >= 100 and ex._loop is not None  # one loop served them all
    ex._stop_loop()
    assert ex._loop is None
    printed = "".join(o.get("text", "") for o in ex._probe_outputs)
    assert "doubling 0" in printed and "doubling 99" in printed
    assert _kernel_still_runs_cells(kc)


def test_the_students_own_input_gets_an_empty_line(channel):
    ex, kc = channel
    session = judge_mod.Session(ex._request, 5.0)
    verdict = session.run("assert ask(3) == '3'\n")
    assert verdict.passed, verdict.evalue
    ex._stop_loop()
    assert _kernel_still_runs_cells(kc)


def test_a_request_past_its_limit_is_a_timeout_and_the_next_request_is_answered(channel):
    ex, kc = channel
    session = judge_mod.Session(ex._request, 2.0)
    verdict = session.run("slow(1)\n")
    assert not verdict.passed and verdict.fault == "timeout", (verdict.ename, verdict.evalue)
    verdict = session.run("assert slow(2) == 2 and double(4) == 8\n")
    assert verdict.passed, verdict.evalue
    ex._stop_loop()
    assert _kernel_still_runs_cells(kc)


def test_a_callback_is_answered_inside_the_loop(channel):
    ex, kc = channel
    session = judge_mod.Session(ex._request, 5.0)
    verdict = session.run("def plus_ten(v):\n    return v + 10\n\nassert apply(plus_ten, 5) == 16\n"
                          "assert double(apply(plus_ten, 1)) == 24\n")
    assert verdict.passed, verdict.evalue
    ex._stop_loop()
    assert _kernel_still_runs_cells(kc)


def test_the_loop_and_single_requests_give_the_same_answers(channel):
    ex, kc = channel
    requests = [json.dumps({"op": "get", "name": "after_missing"}), json.dumps({"op": "get", "name": "sys"})]
    looped = [json.loads(ex._request(r, lambda t: "", 5.0)) for r in requests]
    ex._stop_loop()
    ex.loop_mode = False
    single = [json.loads(ex._request(r, lambda t: "", 5.0)) for r in requests]
    assert looped == single
    assert "error" in looped[0]
