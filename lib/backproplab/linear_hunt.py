"""Lab 5's bug hunt: run a student's ``check_LinearFunction`` on candidate Functions and score it.

A check is a function ``check(candidate) -> bool`` that says whether a ``torch.autograd.Function``
class with ``LinearFunction``'s signature (``forward(ctx, x, W, b=None)``) is right. This module

* builds the four *planted* bugs the notebook shows. Each one gets its correct gradients from
  ``torch.autograd`` on ``F.linear`` (no hand-written derivative, so nothing here is a solution) and
  then goes wrong in exactly one named place, a tag of the course's diagnosis catalogue;
* runs a check on one candidate with a time limit, silencing warnings (nbgrader scores a grade cell
  that writes to stderr 0), and turns what happened into a :class:`Verdict`;
* scores a check under the contract's bug-hunt rule: 0 if any right candidate is rejected, else the
  points in proportion to the wrong candidates rejected.

The hidden candidates the grade cell uses are written in its hidden-tests region, not here.
"""

from __future__ import annotations

import contextlib
import enum
import io
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backproplab import checks

__all__ = ["PLANTED", "SECONDS", "Score", "Verdict", "hunt_table", "planted_bugs", "score", "verdict"]

SECONDS = 2.0  # per candidate: a thorough check on small inputs takes a few hundredths of a second, and the
# grade cell's 21 runs (public and hidden) must stay under the class grader's 60 s per cell


class Verdict(enum.Enum):
    """What a check said about one candidate."""

    ACCEPTED = "accepted"  # returned True
    REJECTED = "rejected"  # returned False, or raised (an exception means "wrong")
    NOT_BOOL = "not a bool"  # returned something other than True or False
    TIMEOUT = "timeout"  # no answer within the time limit


def verdict(check: Callable, candidate: type, seconds: float = SECONDS) -> Verdict:
    """Run ``check(candidate)`` once, with a time limit, warnings and stderr silenced."""
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")
            with checks.time_limit(seconds, "the check"):
                answer = check(candidate)
    except AssertionError as exc:
        if "(diagnosis: timeout)" in str(exc):
            return Verdict.TIMEOUT
        return Verdict.REJECTED
    except Exception:  # noqa: BLE001 - an exception out of the check means it did not accept the candidate
        return Verdict.REJECTED
    if time.perf_counter() - start >= seconds:  # the check swallowed the alarm: no verdict
        return Verdict.TIMEOUT
    if answer is True:
        return Verdict.ACCEPTED
    if answer is False:
        return Verdict.REJECTED
    return Verdict.NOT_BOOL


@dataclass(frozen=True)
class Score:
    points: float  # what the grade cell displays: nbgrader's partial credit
    caught: tuple[str, ...]
    missed: tuple[str, ...]


def score(check: Callable, right: Mapping[str, type], wrong: Mapping[str, type], points: float,
          seconds: float = SECONDS) -> Score:
    """The bug-hunt score of ``check``; raises an ``AssertionError`` in words when it is 0.

    Any right candidate not accepted (rejected, timed out, answered with something other than a
    bool) scores 0 (``rejected_right``). Otherwise each wrong candidate counts as caught when the
    check does not accept it within the time limit (a wrong candidate's exception propagating out of
    the check counts as caught); catching none scores 0 (``missed_bug``).
    """
    for name, candidate in right.items():
        v = verdict(check, candidate, seconds)
        if v is not Verdict.ACCEPTED:
            why = {Verdict.REJECTED: "returned False (or raised)", Verdict.NOT_BOOL: "did not return a Python bool",
                   Verdict.TIMEOUT: f"took longer than {seconds:g} s"}[v]
            raise AssertionError(
                f"check_LinearFunction {why} on a right LinearFunction ({name}): a check that rejects a right "
                "answer scores 0. Compare with what autograd gives for F.linear, accept b given, None and left "
                "out, and accept a backward that returns a gradient nobody asked for (autograd discards it) "
                "(diagnosis: rejected_right)"
            )
    caught, missed = [], []
    for name, candidate in wrong.items():
        v = verdict(check, candidate, seconds)
        (caught if v in (Verdict.REJECTED, Verdict.NOT_BOOL) else missed).append(name)
    if not caught:
        raise AssertionError(
            f"check_LinearFunction accepted all {len(wrong)} wrong LinearFunctions: compare the values and the "
            "three gradients with autograd on F.linear, for several shapes and a batch of more than one "
            "(diagnosis: missed_bug)"
        )
    return Score(round(points * len(caught) / len(wrong), 2), tuple(caught), tuple(missed))


# --- the planted bugs -------------------------------------------------------------------------------


def _reference_grads(ctx, grad_output: torch.Tensor) -> list[torch.Tensor | None]:
    """Gradients of ``F.linear`` at the saved inputs, from torch.autograd (None where no input)."""
    with torch.enable_grad():
        leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) else None for a in ctx.args]
        out = F.linear(*leaves)
        wanted = [leaf for leaf in leaves if leaf is not None]
        grads = iter(torch.autograd.grad(out, wanted, grad_output))
    return [next(grads) if leaf is not None else None for leaf in leaves]


def _planted(tag: str, corrupt: Callable) -> type:
    """A LinearFunction whose gradients are autograd's on F.linear, then ``corrupt(ctx, g, grads)``."""

    def forward(ctx, x, W, b=None):
        ctx.args = (x, W) if b is None else (x, W, b)
        ctx.b_given = b is not None
        return F.linear(x, W, b)

    def backward(ctx, grad_output):
        grads = _reference_grads(ctx, grad_output.detach().clone())
        if not ctx.b_given:
            grads.append(None)
        return tuple(corrupt(ctx, grad_output, grads))

    return type("LinearFunction", (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__doc__": f"A planted bug ({tag}): {PLANTED[tag]}",
    })


def _sign(ctx, g, grads):
    grads[0] = -grads[0]  # the input gradient with its sign flipped
    return grads


def _bias_mean(ctx, g, grads):
    if grads[2] is not None:
        grads[2] = grads[2] / g.shape[0]  # averaged over the batch instead of summed
    return grads


def _grad_output_modified(ctx, g, grads):
    g.zero_()  # "frees" grad_output in place: the caller's tensor is now zeros
    return grads


def _gradient_for_none(ctx, g, grads):
    if grads[2] is None:
        grads[2] = g.sum(0)  # a bias gradient even when b is None
    return grads


PLANTED = {
    "sign": "the gradient for x has the wrong sign",
    "batch_mean_twice": "the gradient for b is averaged over the batch instead of summed (B times too small)",
    "grad_output_modified": "backward zeroes grad_output in place after using it",
    "gradient_not_none": "backward returns a gradient for b when b is None",
}
_CORRUPTIONS = {"sign": _sign, "batch_mean_twice": _bias_mean, "grad_output_modified": _grad_output_modified,
                "gradient_not_none": _gradient_for_none}


def planted_bugs() -> dict[str, type]:
    """The four public wrong LinearFunctions, by diagnosis tag (see :data:`PLANTED`)."""
    return {tag: _planted(tag, _CORRUPTIONS[tag]) for tag in PLANTED}


def hunt_table(check: Callable, candidates: Mapping[str, type], seconds: float = SECONDS) -> str:
    """One line per candidate: its name, what it does wrong, and the check's verdict."""
    rows = [("candidate", "what is wrong", "your check")]
    for name, candidate in candidates.items():
        v = verdict(check, candidate, seconds)
        said = {Verdict.ACCEPTED: "accepted it (missed)", Verdict.REJECTED: "rejected it (caught)",
                Verdict.NOT_BOOL: "did not return a bool", Verdict.TIMEOUT: f"no answer in {seconds:g} s"}[v]
        rows.append((name, PLANTED.get(name, "nothing (a right one)"), said))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

