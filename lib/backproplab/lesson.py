"""Helpers for the lesson cells around the exercises."""

from __future__ import annotations

import contextlib

__all__ = ["needs"]


class needs(contextlib.AbstractContextManager):
    """Run a demonstration cell only once the exercises it uses are written.

    ::

        with needs("train_perceptron"):
            w = train_perceptron(x, y, 10)
            print(perceptron_error_rate(w, x, y))

    If the block raises ``NotImplementedError`` (an exercise still holds its stub) or ``NameError``
    (a result of an earlier skipped demonstration is missing), the rest of the block is skipped
    and a one-line note says which exercise to finish, instead of a traceback. Any other error is
    a real bug and propagates.
    """

    def __init__(self, *exercises: str):
        self.exercises = exercises

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        names = ", ".join(f"`{e}`" for e in self.exercises) or "an earlier exercise"
        if issubclass(exc_type, NotImplementedError):
            print(f"(skipped: this cell needs {names}; it runs once that exercise is written)")
            return True
        if issubclass(exc_type, NameError):
            print(f"(skipped: {exc}; run the cells above first, after writing {names})")
            return True
        return False
