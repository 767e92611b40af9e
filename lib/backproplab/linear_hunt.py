"""Lab 5's bug hunt: run a student's ``check_LinearFunction`` on candidate Functions and score it.

A check is a function ``check(candidate) -> bool`` that says whether a ``torch.autograd.Function``
class with ``LinearFunction``'s signature (``forward(ctx, x, W, b=None)``) is right. This module

* builds the four *planted* bugs the notebook shows. Each one gets its correct gradients from
  ``torch.autograd`` on ``F.linear`` (no hand-written derivative, so nothing here is a solution) and
  then goes wrong in exactly one named place, a tag of the course's diagnosis catalogue;
* builds a candidate from two plain functions (:func:`candidate`): the grade cell's hidden candidates
  are written that way, so that in the grader they stay in the judge and the student's check, which
  runs in the student's kernel, calls them back;
* runs a check on one candidate with a time limit, silencing warnings (nbgrader scores a grade cell
  that writes to stderr 0), and turns what happened into a :class:`Verdict`;
* scores a check under the contract's bug-hunt rule: 0 if any right candidate is rejected, else the
  points in proportion to the wrong candidates rejected.

The hidden candidates the grade cell uses are written in its hidden-tests region, not here.

The candidates are built where the student's check runs (:func:`planted_bugs` and :func:`candidate` are
worker-side: in the grader they answer stand-ins for classes in the student's kernel), and the check is
called there too; only its answer comes back.
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
from backproplab.function_checks import _judging, _probe

__all__ = ["PLANTED", "SECONDS", "Score", "Verdict", "candidate", "hunt_table", "planted_bugs", "score", "verdict"]

SECONDS = 2.0  # per candidate: a thorough check on small inputs takes a few hundredths of a second, and the
# grade cell's 21 runs (public and hidden) must stay under the class grader's 60 s per cell


class Verdict(enum.Enum):
    """What a check said about one candidate."""

    ACCEPTED = "accepted"  # returned True
    REJECTED = "rejected"  # returned False, or raised (an exception means "wrong")
    NOT_BOOL = "not a bool"  # returned something other than True or False
    TIMEOUT = "timeout"  # no answer within the time limit


@_probe
def _run_check(check: Callable, candidate: type):
    """``check(candidate)`` where the check lives, warnings and stderr silenced, gradients enabled."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        return check(candidate)


def verdict(check: Callable, candidate: type, seconds: float = SECONDS) -> Verdict:
    """Run ``check(candidate)`` once, with a time limit, warnings and stderr silenced."""
    start = time.perf_counter()
    try:
        with checks.time_limit(seconds, "the check"):
            answer = _run_check(check, candidate)
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


@_probe
def planted_bugs() -> dict[str, type]:
    """The four public wrong LinearFunctions, by diagnosis tag (see :data:`PLANTED`)."""
    return {tag: _planted(tag, _CORRUPTIONS[tag]) for tag in PLANTED}


# --- candidates from plain functions ------------------------------------------------------------------


def candidate(forward: Callable, backward: Callable, name: str = "LinearFunction") -> type:
    """A ``torch.autograd.Function`` with ``LinearFunction``'s signature made of two plain functions.

    ``forward(x, W, b)`` returns the output (``b`` is None when it is None or left out);
    ``backward(x, W, b, grad_output, needs)`` returns what the Function's backward returns (``needs``
    is ``ctx.needs_input_grad``), or ``{"grads": that, "grad_output": t}`` for a backward that changes
    ``grad_output`` in place: the caller's tensor then holds ``t``. The class is built where the
    student's check runs; in the grader the two functions stay in the judge and are called back
    (``backward`` differentiably when the check asks for ``create_graph``)."""
    if not _judging():
        return _candidate(forward, backward, None, name, False)

    # In the judge: the two functions are called back with their tensors packed in a list (a plain call,
    # which may answer a tuple or a dict), and the gradients once more as one tensor when the check
    # differentiates the backward itself (create_graph), through a call back autograd can differentiate.
    def packed_forward(args):
        return forward(*args)

    def packed_backward(args, needs):
        return backward(*args, needs)

    def flat(x, W, b, grad_output, needs):
        out = backward(x, W, b, grad_output, needs)
        grads = out["grads"] if isinstance(out, dict) else out
        parts = [g.reshape(-1) for g in (grads if isinstance(grads, (tuple, list)) else (grads,))
                 if isinstance(g, torch.Tensor)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=grad_output.dtype)

    return _candidate(packed_forward, packed_backward, flat, name, True)


@_probe
def _candidate(forward: Callable, backward: Callable, flat: Callable | None, name: str, packed: bool) -> type:
    def call(fn, args, *extra):
        if packed:  # the judge's function: plain tensors, no graph, in one list
            return fn([t.detach() if isinstance(t, torch.Tensor) else t for t in args], *extra)
        return fn(*args, *extra)

    def forward_(ctx, x, W, b=None):
        ctx.args = (x, W, b)
        return call(forward, (x, W, b))

    def backward_(ctx, grad_output):
        x, W, b = ctx.args
        needs = tuple(bool(n) for n in ctx.needs_input_grad)
        args = (x, W, b, grad_output)
        graph = flat is not None and torch.is_grad_enabled() and any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in args)
        if graph:
            args = tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in args)
        out = call(backward, args, needs)
        grads, new_value = (out.get("grads"), out.get("grad_output")) if isinstance(out, dict) else (out, None)
        single = not isinstance(grads, (tuple, list))
        grads = [grads] if single else list(grads)
        if graph:  # create_graph: the same gradients, from a call back autograd can differentiate
            values, offset = flat(x, W, b, grad_output, needs), 0
            for i, g in enumerate(grads):
                if isinstance(g, torch.Tensor):
                    grads[i] = values[offset:offset + g.numel()].reshape(g.shape)
                    offset += g.numel()
        if isinstance(new_value, torch.Tensor):
            with torch.no_grad():
                grad_output.set_(new_value.detach().clone())
        return grads[0] if single else tuple(grads)

    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward_),
        "backward": staticmethod(backward_),
        "__doc__": "A LinearFunction made of two plain functions.",
    })


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

