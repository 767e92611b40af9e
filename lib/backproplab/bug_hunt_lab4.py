"""Lab 4's bug hunt: a student's ``check_topological_order(candidate)`` run on candidate orders.

The student writes a check that returns ``True`` when ``candidate(root)`` is a right
``topological_order`` (every node reachable through ``_prev`` exactly once, each after all its
parents, the root last, and no recursion, so that a chain 100,000 deep works) and ``False`` when it
is wrong.

* :func:`planted_bugs` gives the four wrong orders the notebook shows, each named by its diagnosis
  tag. The hidden candidates of the grade cell live in that cell, not here.
* :func:`score` runs the check on right and wrong candidates and turns the verdicts into points,
  the contract's rule: 0 if any right candidate is rejected, else the points in proportion to the
  wrong candidates rejected. Each call of the check has a wall-time limit. An exception that escapes
  the check counts as "wrong" (the contract: an exception raised by a candidate means the candidate
  is wrong; a check that crashes on a right candidate has rejected it).

Partial credit in nbgrader 0.9.6: ``nbgrader.utils.determine_grade`` gives a grade cell 0 when an
output is an error or a stream on stderr, the number itself when an output is an ``execute_result``
that reads as a float between 0 and the cell's points (``get_partial_grade``), and full points
otherwise. So the grade cell ends with the expression ``bug_hunt_lab4.score(...)``, whose value is
the points earned; :func:`score` raises instead when the score is 0 (the failure then carries its
diagnosis), prints what the check missed, and keeps the check's warnings and stderr out of the
cell's output (one line on stderr would score the cell 0).
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import remote

__all__ = ["CheckTimeout", "Candidate", "Verdict", "ask", "score", "planted_bugs", "order_function", "verdict_table"]


class CheckTimeout(BaseException):
    """Raised inside the check when its time is up (a BaseException: ``except Exception`` cannot hide it)."""


@contextlib.contextmanager
def _alarm(seconds: float):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def ring(signum, frame):
        raise CheckTimeout()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Candidate:
    name: str
    fn: Callable
    right: bool
    tag: str = ""  # a wrong candidate's diagnosis tag


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    answer: bool | None  # True accepted, False rejected, None: no usable answer (see note)
    note: str = ""
    seconds: float = 0.0

    @property
    def correct(self) -> bool:
        return self.answer is self.candidate.right


def ask(check: Callable, candidate: Candidate, seconds: float) -> Verdict:
    """The check's verdict on one candidate, within ``seconds`` of wall time.

    ``NotImplementedError`` from the check itself propagates (the exercise is not written).
    """
    start = time.perf_counter()
    answer, note = None, ""
    late = f"took longer than {seconds:g} s"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            if remote.judging():  # the check runs in the student's kernel: the judge stops the call
                try:
                    with remote._ACTIVE[-1].deadline(seconds, late):
                        result = check(candidate.fn)
                except TimeoutError as exc:
                    if str(exc) != late:
                        raise
                    raise CheckTimeout() from None
            else:
                with _alarm(seconds):
                    result = check(candidate.fn)
        if type(result) is bool:
            answer = result
        else:
            note = f"returned {type(result).__name__} {result!r:.40}, not a Python bool"
    except NotImplementedError:
        raise
    except CheckTimeout:
        note = late
    except RecursionError:
        answer, note = False, "let the candidate's RecursionError escape (counted as rejecting it)"
    except Exception as exc:  # noqa: BLE001 - an exception means "wrong"
        kind = getattr(exc, "type_name", type(exc).__name__)  # the student's own exception type, when judged
        answer, note = False, f"raised {kind}: {str(exc)[:100]} (counted as rejecting it)"
    return Verdict(candidate, answer, note, time.perf_counter() - start)


def score(check: Callable, candidates: Sequence[Candidate], points: float, *, seconds: float = 5.0,
          total: float = 45.0, name: str = "check_topological_order") -> float:
    """Points earned by ``check``; raises (0 points, with a diagnosis) when a right candidate is not
    accepted or no wrong one is rejected. Right candidates are asked first. Each call has ``seconds``,
    all calls together ``total`` (under the class grader's limit for one cell); a call that finds the
    budget spent gets no answer."""
    verdicts = []
    start = time.perf_counter()
    try:
        for cand in sorted(candidates, key=lambda c: not c.right):
            left = total - (time.perf_counter() - start)
            if left <= 0.05:
                verdicts.append(Verdict(cand, None, f"was not asked: the {total:g} s for all calls were spent"))
                if cand.right:
                    raise AssertionError(f"{name} took more than {total:g} s in all; it must answer faster "
                                         "(diagnosis: timeout)")
                continue
            verdict = ask(check, cand, min(seconds, left))
            verdicts.append(verdict)
            if cand.right and verdict.answer is None and verdict.note.startswith("took longer"):
                raise AssertionError(f"{name} {verdict.note} on a right order ({cand.name}); it must answer within "
                                     f"{seconds:g} s per call and {total:g} s in all (diagnosis: timeout)")
            if cand.right and verdict.answer is not True:
                how = verdict.note or "returned False"
                raise AssertionError(
                    f"{name} did not accept a right topological order ({cand.name}: it {how}). A right order "
                    "may list the nodes in any order that puts every node after its parents; compare nodes by "
                    "identity, and return True or False (diagnosis: rejected_right)")
    except NotImplementedError:
        raise AssertionError(f"{name} is not written yet: replace the NotImplementedError with your code "
                             "(diagnosis: not_implemented)") from None
    wrong = [v for v in verdicts if not v.candidate.right]
    if not wrong:
        return float(points)
    caught = [v for v in wrong if v.answer is False]
    lines = [f"{name} accepted every right order and rejected {len(caught)} of the {len(wrong)} wrong ones."]
    lines += [f"  missed: {v.candidate.name}{f' ({v.note})' if v.note else ''} (diagnosis: missed_bug)"
              for v in wrong if v.answer is not False]
    if not caught:
        raise AssertionError("\n".join(lines) + "\nIt rejected none of the wrong orders: check each property of a "
                             "topological order on small graphs you build (a diamond, a node used twice by one "
                             "operation) and on a very deep chain (diagnosis: missed_bug)")
    print("\n".join(lines))
    return round(float(points) * len(caught) / len(wrong), 4)


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """One line per candidate: its name, whether it is right, what the check said."""
    rows = [("candidate", "is", "your check says", "")]
    for v in verdicts:
        said = {True: "right", False: "wrong", None: "no answer"}[v.answer]
        rows.append((v.candidate.name, "right" if v.candidate.right else "wrong", said,
                     "ok" if v.correct else (v.note or "MISSED")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# --------------------------------------------------------------------------------------------
# The four planted bugs the notebook shows (public; the grade cell hides its own candidates)
# --------------------------------------------------------------------------------------------


def _recursive(root):
    """Depth-first and recursive: right on small graphs, RecursionError on deep ones."""
    listed, out = set(), []

    def visit(v):
        if id(v) in listed:
            return
        listed.add(id(v))
        for u in v._prev:
            visit(u)
        out.append(v)

    visit(root)
    return out


def _no_memory(root):
    """Post-order without remembering what is listed: a node reached along two paths appears twice."""
    out, todo = [], [(root, False)]
    while todo:
        v, parents_done = todo.pop()
        if parents_done:
            out.append(v)
        else:
            todo.append((v, True))
            todo.extend((u, False) for u in v._prev)
    return out


def _breadth_first(root):
    """Breadth-first from the root, reversed: looks plausible, but a node reached early along a short
    path can be listed before a parent that is reached later along a longer one."""
    out, known, frontier = [], {id(root)}, [root]
    while frontier:
        out.extend(frontier)
        following = []
        for v in frontier:
            for u in v._prev:
                if id(u) not in known:
                    known.add(id(u))
                    following.append(u)
        frontier = following
    return out[::-1]


def _without_leaves(root):
    """Lists only the nodes computed from parents: the leaves (inputs, parameters) are dropped."""
    return [v for v in _recursive(root) if v._prev]


def planted_bugs() -> dict[str, tuple[Callable, str]]:
    """Name -> (wrong topological_order, its diagnosis tag)."""
    return {
        "recursive depth-first search": (_recursive, "recursion"),
        "no record of listed nodes": (_no_memory, "visited_twice"),
        "breadth-first, reversed": (_breadth_first, "order"),
        "leaves dropped": (_without_leaves, "missing_nodes"),
    }


# --------------------------------------------------------------------------------------------
# Orders the grade cell hands to the student's check. When graded, the check runs in the student's
# kernel and calls its candidate there, on nodes it built itself: the candidates must be functions of
# that process. They are named by how they walk the graph; whether each is right, and the diagnosis
# of a wrong one, stay in the grade cell.
# --------------------------------------------------------------------------------------------


def _flagged_stack(root):
    done, out, todo = set(), [], [(root, False)]
    while todo:
        node, expanded = todo.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            out.append(node)
        else:
            todo.append((node, True))
            todo.extend((q, False) for q in node._prev if id(q) not in done)
    return out


def _kahn(root):
    users, nodes, todo = {id(root): 0}, [root], [root]
    while todo:
        for q in todo.pop()._prev:
            if id(q) not in users:
                users[id(q)] = 0
                nodes.append(q)
                todo.append(q)
            users[id(q)] += 1
    free, backwards = [root], []
    while free:
        node = free.pop()
        backwards.append(node)
        for q in node._prev:
            users[id(q)] -= 1
            if users[id(q)] == 0:
                free.append(q)
    return backwards[::-1]


def _two_pass(root):
    # pass 1: the reachable nodes; pass 2: a post-order walk with iterators over reversed parents
    inside, todo = {id(root)}, [root]
    while todo:
        for q in todo.pop()._prev:
            if id(q) not in inside:
                inside.add(id(q))
                todo.append(q)
    placed, out, walk = set(), [], [(root, reversed(root._prev))]
    placed.add(id(root))
    while walk:
        node, rest = walk[-1]
        nxt = next((q for q in rest if id(q) not in placed), None)
        if nxt is None:
            walk.pop()
            out.append(node)
        else:
            placed.add(id(nxt))
            walk.append((nxt, reversed(nxt._prev)))
    assert len(out) == len(inside)
    return out


def _lazy_marks(root):
    done, out, todo = set(), [], [root]
    while todo:
        node = todo.pop()
        if id(node) in done:
            continue
        waiting = [q for q in node._prev if id(q) not in done]
        if waiting:
            todo.append(node)
            todo.extend(waiting)
        else:
            done.add(id(node))
            out.append(node)
    return out


def _recursive_marked(root):
    out, met = [], set()

    def go(node):
        met.add(id(node))
        for q in node._prev:
            if id(q) not in met:
                go(q)
        out.append(node)

    go(root)
    return out


def _flagged_stack_unmarked(root):
    result, pending = [], [(root, False)]
    while pending:
        node, expanded = pending.pop()
        if expanded:
            result.append(node)
        else:
            pending.append((node, True))
            pending.extend((q, False) for q in node._prev)
    return result


def _kahn_root_first(root):
    rest = [n for n in _kahn(root) if n is not root]
    return [root] + rest


def _kahn_distinct_release(root):
    # counts every use of a parent, releases it once per distinct parent
    users, todo = {}, [root]
    seen = {id(root)}
    while todo:
        for q in todo.pop()._prev:
            users[id(q)] = users.get(id(q), 0) + 1
            if id(q) not in seen:
                seen.add(id(q))
                todo.append(q)
    free, backwards = [root], []
    while free:
        node = free.pop()
        backwards.append(node)
        distinct = {id(q): q for q in node._prev}
        for q in distinct.values():
            users[id(q)] -= 1
            if users[id(q)] == 0:
                free.append(q)
    return backwards[::-1]


def _flagged_stack_reversed(root):
    return _flagged_stack(root)[::-1]


def _lazy_marks_computed_only(root):
    return [n for n in _lazy_marks(root) if len(n._prev) > 0]


def _levels_reversed(root):
    level, out, met = [root], [], {id(root)}
    while level:
        out += level
        nxt = []
        for node in level:
            for q in node._prev:
                if id(q) not in met:
                    met.add(id(q))
                    nxt.append(q)
        level = nxt
    out.reverse()
    return out


def _preorder_reversed(root):
    out, met, todo = [], {id(root)}, [root]
    while todo:
        node = todo.pop()
        out.append(node)
        for q in node._prev:
            if id(q) not in met:
                met.add(id(q))
                todo.append(q)
    return out[::-1]


_ORDERS: dict[str, Callable] = {
    "flagged stack": _flagged_stack,
    "kahn": _kahn,
    "two passes": _two_pass,
    "lazy marks": _lazy_marks,
    "recursive, marked": _recursive_marked,
    "flagged stack, unmarked": _flagged_stack_unmarked,
    "kahn, root first": _kahn_root_first,
    "kahn, distinct release": _kahn_distinct_release,
    "flagged stack, reversed": _flagged_stack_reversed,
    "lazy marks, computed nodes only": _lazy_marks_computed_only,
    "levels, reversed": _levels_reversed,
    "pre-order, reversed": _preorder_reversed,
}


@remote.worker_side
def order_function(key: str) -> Callable:
    """The order function named ``key`` (one of :func:`planted_bugs`' names, or a walk of ``_ORDERS``),
    made in the process where the check runs."""
    planted = planted_bugs()
    if key in planted:
        return planted[key][0]
    return _ORDERS[key]
