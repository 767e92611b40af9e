"""Lab 3's bug hunt: planted wrong ``backward`` functions and the scorer of a student's check.

The student writes ``check_backward(candidate)``, which must return ``True`` when ``candidate`` is a
right ``backward(params, outputs, Y)`` for the lab's tanh network and ``False`` when it is wrong.

* The four planted bugs shown in the notebook are built here from ``torch.autograd`` (the network is
  rebuilt from ``torch.nn.functional``, the mistake is applied to autograd's result or to the graph),
  so that none of them shows how the hand-written backward is written.
* :class:`BugHunt` runs a check on a list of right and wrong candidates and turns the verdicts into
  points, the contract's rule: 0 if any right candidate is rejected, else the points in proportion to
  the wrong candidates rejected. Every call of the check runs under a wall-time limit, with the lab's
  public functions (``softmax``, ``cross_entropy``, ``forward``) temporarily replaced by correct ones
  built from ``torch`` (:func:`reference_functions`), so the check is graded on its own.

Scoring in nbgrader: the grade cell's last expression is ``hunt.score()``, a number. nbgrader 0.9.6
(``nbgrader.utils.determine_grade``) scores a grade cell whose output is an ``execute_result`` that
reads as a float with that float (partial credit), a cell that raises with 0, and a cell with nothing
on stderr or as a result with full points. The scorer therefore keeps the check's warnings and stderr
out of the cell's output (a line on stderr would score the cell 0), raises when the score is 0 (so
the failure carries its diagnosis), and prints what the check missed.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

import torch

from . import checks

__all__ = [
    "KEYS",
    "CheckTimeout",
    "Verdict",
    "BugHunt",
    "autograd_backward",
    "planted_bugs",
    "reference_functions",
    "verdict_table",
]

KEYS = ("Wh", "bh", "Wy", "by")


# --- candidates built from autograd ------------------------------------------------------------


def _autograd_grads(params, outputs, Y, *, straight_through_tanh: bool = False) -> dict[str, torch.Tensor]:
    """Gradients of the batch-mean cross-entropy of the lab's network, by ``torch.autograd``.

    The network is rebuilt from ``params`` and ``outputs['X']``. With ``straight_through_tanh`` the
    hidden layer keeps its tanh values but passes gradients through unchanged (derivative 1): the
    gradients of someone who forgot the factor ``1 - h^2``.
    """
    F = torch.nn.functional
    X = outputs["X"].detach()
    with torch.enable_grad():
        leaves = {k: params[k].detach().clone().requires_grad_(True) for k in KEYS}
        pre = F.linear(X, leaves["Wh"], leaves["bh"].reshape(-1))
        hidden = torch.tanh(pre)
        if straight_through_tanh:
            hidden = pre + (hidden - pre).detach()
        logits = F.linear(hidden, leaves["Wy"], leaves["by"].reshape(-1))
        loss = -(Y.detach() * torch.log_softmax(logits, dim=1)).sum() / X.shape[0]
        grads = torch.autograd.grad(loss, [leaves[k] for k in KEYS])
    return {k: g.detach() for k, g in zip(KEYS, grads, strict=True)}


def autograd_backward(params, outputs, Y):
    """A right ``backward``: torch.autograd on the rebuilt network."""
    return _autograd_grads(params, outputs, Y)


def _batch_sum(params, outputs, Y):
    return {k: g * Y.shape[0] for k, g in _autograd_grads(params, outputs, Y).items()}


def _missing_tanh_derivative(params, outputs, Y):
    return _autograd_grads(params, outputs, Y, straight_through_tanh=True)


def _transposed(params, outputs, Y):
    grads = _autograd_grads(params, outputs, Y)
    grads["Wh"] = grads["Wh"].T.contiguous()
    return grads


def _sign(params, outputs, Y):
    return {k: -g for k, g in _autograd_grads(params, outputs, Y).items()}


def planted_bugs() -> dict[str, tuple[Callable, str]]:
    """The four wrong ``backward`` functions shown in the notebook: name -> (candidate, diagnosis tag)."""
    return {
        "summed over the batch instead of averaged": (_batch_sum, "batch_sum"),
        "hidden delta without the factor 1 - h^2": (_missing_tanh_derivative, "missing_tanh_derivative"),
        "grads['Wh'] transposed": (_transposed, "transposed"),
        "every gradient with the wrong sign": (_sign, "sign"),
    }


def reference_functions() -> dict[str, Callable]:
    """Correct ``softmax``, ``cross_entropy`` and ``forward`` of the lab, from torch's built-ins."""
    F = torch.nn.functional

    def softmax(z):
        return torch.softmax(z, dim=1)

    def cross_entropy(yhat, Y):
        return torch.nn.functional.nll_loss(torch.log(yhat), Y.argmax(dim=1))

    def forward(params, X):
        pre = F.linear(X, params["Wh"], params["bh"].reshape(-1))
        hidden = torch.tanh(pre)
        logits = F.linear(hidden, params["Wy"], params["by"].reshape(-1))
        return {"X": X, "htilde": pre, "h": hidden, "ytilde": logits, "yhat": torch.softmax(logits, dim=1)}

    return {"softmax": softmax, "cross_entropy": cross_entropy, "forward": forward}


# --- running a check -----------------------------------------------------------------------------


class CheckTimeout(BaseException):
    """Raised in the check when its time is up; a ``BaseException`` so ``except Exception`` cannot hide it."""


@contextlib.contextmanager
def _alarm(seconds: float):
    from . import remote

    if remote.judging():  # graded: the check runs in the student's kernel, the judge stops the call
        late = f"took longer than {seconds:g} s"
        try:
            with remote._ACTIVE[-1].deadline(seconds, late):
                yield
        except TimeoutError as exc:
            if not str(exc).startswith(late):
                raise
            raise CheckTimeout() from None
        return
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


@dataclass
class Verdict:
    """What the check said about one candidate."""

    name: str
    right: bool          # is the candidate a right backward?
    answer: bool | None  # what the check returned (None: no answer, see note)
    note: str = ""
    tag: str = ""        # for a wrong candidate, its diagnosis tag
    seconds: float = 0.0

    @property
    def correct(self) -> bool:
        return self.answer is self.right


class BugHunt:
    """Score a student's ``check(candidate) -> bool`` on right and wrong candidates.

    ``namespace`` is the notebook's globals: while the check runs, the names of ``substitutes``
    (default :func:`reference_functions`) that exist there are replaced by correct versions, then
    restored. ``seconds`` is the wall-time limit of one call of the check.
    """

    def __init__(
        self,
        check: Callable,
        points: float,
        *,
        seconds: float = 2.0,
        namespace: MutableMapping | None = None,
        substitutes: Mapping[str, Callable] | None = None,
    ):
        self.check = check
        self.points = float(points)
        self.seconds = seconds
        self.namespace = namespace
        self.substitutes = dict(reference_functions() if substitutes is None else substitutes)
        self.candidates: list[tuple[str, Callable, bool, str]] = []
        self.verdicts: list[Verdict] = []

    def right(self, name: str, candidate: Callable) -> None:
        self.candidates.append((name, candidate, True, ""))

    def wrong(self, name: str, candidate: Callable, tag: str = "values") -> None:
        self.candidates.append((name, candidate, False, tag))

    @contextlib.contextmanager
    def _substituted(self):
        from . import remote

        saved = {}
        if self.namespace is not None and not remote.judging():
            # (graded, the check runs in the student's kernel with the student's own functions: the
            # reference functions are not available there)
            for key, fn in self.substitutes.items():
                if key in self.namespace:
                    saved[key] = self.namespace[key]
                    self.namespace[key] = fn
        try:
            yield
        finally:
            for key, fn in saved.items():
                self.namespace[key] = fn

    def _ask(self, name: str, candidate: Callable, right: bool, tag: str) -> Verdict:
        grad_mode, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
        answer, note = None, ""
        start = time.perf_counter()
        try:
            with self._substituted(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                with _alarm(self.seconds):
                    result = self.check(candidate)
            if type(result) is bool:
                answer = result
            else:
                note = f"returned {type(result).__name__} {result!r:.40}, not a Python bool (True or False)"
        except NotImplementedError:
            raise
        except CheckTimeout:
            note = f"took longer than {self.seconds:g} s"
        except Exception as exc:  # noqa: BLE001 - the check crashed: no verdict
            note = f"raised {type(exc).__name__}: {str(exc)[:120]}"
        finally:
            torch.set_grad_enabled(grad_mode)
            torch.set_default_dtype(dtype)
        problems = checks.integrity_problems()
        if problems:
            raise AssertionError("integrity: the checks cannot be trusted because " + "; ".join(problems)
                                 + " (diagnosis: policy)")
        return Verdict(name, right, answer, note, tag, time.perf_counter() - start)

    def run(self, stop_early: bool = True) -> list[Verdict]:
        """Ask the check about every candidate, right ones first (with ``stop_early``, stop at the first
        right one rejected: the score is 0 then). ``NotImplementedError`` from the check propagates."""
        self.verdicts = []
        for name, candidate, right, tag in sorted(self.candidates, key=lambda c: not c[2]):
            verdict = self._ask(name, candidate, right, tag)
            self.verdicts.append(verdict)
            if stop_early and right and verdict.answer is not True:
                break
        return self.verdicts

    def score(self) -> float:
        """Run and return the points earned; raise (0 points) when a right candidate is rejected or none caught."""
        try:
            verdicts = self.run()
        except NotImplementedError:
            raise AssertionError(
                f"check_backward is not written yet: {checks.DIAGNOSES['not_implemented']} (diagnosis: not_implemented)"
            ) from None
        rejected = [v for v in verdicts if v.right and v.answer is not True]
        if rejected:
            v = rejected[0]
            how = v.note or "returned False"
            raise AssertionError(
                f"check_backward rejected a right backward ({v.name!r}: it {how}). A right implementation "
                "must be accepted whatever way it is written: compare values with a tolerance suited to the "
                "dtype (float32 agrees with float64 to about 1e-6 relative), not exact equality, and return "
                "True or False (diagnosis: rejected_right)"
            )
        wrong = [v for v in verdicts if not v.right]
        caught = [v for v in wrong if v.answer is False]
        if not wrong:
            return self.points
        missed = [v for v in wrong if v.answer is not False]
        lines = [f"check_backward accepted every right candidate and rejected {len(caught)} of the {len(wrong)} "
                 "wrong ones."]
        for v in missed:
            how = f" ({v.note})" if v.note else ""
            lines.append(f"  missed: {v.name}{how} (diagnosis: missed_bug)")
        if not caught:
            raise AssertionError("\n".join(lines) + "\nIt rejected none of the wrong backward functions: "
                                 "compare every gradient with torch.autograd, on a batch of several examples "
                                 "(diagnosis: missed_bug)")
        print("\n".join(lines))
        return round(self.points * len(caught) / len(wrong), 4)


def verdict_table(verdicts) -> str:
    """A few lines: each candidate, what it is, what the check said."""
    rows = [("candidate", "is", "your check says", "")]
    for v in verdicts:
        said = {True: "right", False: "wrong", None: "no answer"}[v.answer]
        rows.append((v.name, "right" if v.right else "wrong", said, "ok" if v.correct else (v.note or "MISSED")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
