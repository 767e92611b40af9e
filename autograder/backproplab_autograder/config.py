"""The one renderer of nbgrader configuration files.

Every nbgrader course this project creates (the release round, the class grader's course, the test
rounds, the benchmark's plain-nbgrader course) is configured by :func:`render_config`, so the stub
that replaces a solution, the files a release ignores (the lab's text source above all: it holds the
answers) and the folder names agree everywhere. ``autograder/nbgrader_config.py``, the instructor's
configuration for the repository itself, sets the same values.
"""

from __future__ import annotations

from pathlib import Path

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
# Never copied from a source folder into a release: the percent-format .py next to each notebook is
# the authored source, answers and hidden tests included.
IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".DS_Store", ".hypothesis", "*.py"]


def render_config(root: Path | str, *, course_id: str = "backprop-lab", db_url: str | None = None,
                  students: list[str] | None = None, timeout: int | None = None, extra: str = "") -> str:
    """The text of an ``nbgrader_config.py`` for a course rooted at ``root``.

    ``db_url`` defaults to a SQLite gradebook in ``root``; ``students`` pre-registers student ids;
    ``timeout`` sets the per-cell execution limit; ``extra`` is appended verbatim (preprocessor lists).
    """
    root = str(root)
    lines = [
        "# Written by backproplab (autograder/backproplab_autograder/config.py): do not edit by hand.",
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.root = {root!r}",
        f"c.CourseDirectory.course_id = {course_id!r}",
        f"c.CourseDirectory.db_url = {(db_url or f'sqlite:///{root}/gradebook.db')!r}",
        'c.CourseDirectory.source_directory = "source"',
        'c.CourseDirectory.release_directory = "release"',
        'c.CourseDirectory.submitted_directory = "submitted"',
        'c.CourseDirectory.autograded_directory = "autograded"',
        'c.CourseDirectory.feedback_directory = "feedback"',
        f"c.CourseDirectory.ignore = {IGNORE!r}",
        f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}",
        f"c.ClearSolutions.text_stub = {TEXT_STUB!r}",
    ]
    if students:
        lines.append(f"c.CourseDirectory.db_students = {[{'id': s} for s in students]!r}")
    if timeout is not None:
        lines += [f"c.ExecutePreprocessor.timeout = {int(timeout)}", f"c.Execute.timeout = {int(timeout)}"]
    return "\n".join(lines) + "\n" + (extra if extra.endswith("\n") or not extra else extra + "\n")
