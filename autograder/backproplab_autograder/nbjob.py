"""One grading job in one process: ``nbgrader autograde`` then ``nbgrader generate_feedback`` for one student.

``python -m backproplab_autograder.nbjob COURSE_ROOT ASSIGNMENT STUDENT [--no-feedback]``
``python -m backproplab_autograder.nbjob COURSE_ROOT --feedback-only ASSIGNMENT/STUDENT [...]``

The second form renders the feedback pages of notebooks already autograded, in one process (the
grader's feedback phase, after every score has landed): nbconvert's templates are set up once for all of
them. It prints one ``BACKPROPLAB_FEEDBACK`` line per page (``ok`` or the error) and exits 0 even when
some failed.

Both steps are nbgrader's own (``NbGraderAPI.autograde`` / ``generate_feedback``, configured by the
course's ``nbgrader_config.py``); running them in one process saves an nbgrader start-up (several
seconds of imports) per student. Exit status: 0 done, 3 autograde failed, 4 feedback failed.
The nbgrader log goes to stderr.
"""

from __future__ import annotations

import sys


def _exit_with_parent(interval: float = 0.2) -> None:
    """The job runs in a session of its own (so that a timeout can kill it whole), which a signal to the
    grader's process group does not reach: when the grader dies, the job must not go on writing into the
    course beside the next run's job for the same student. Its kernel container dies with it
    (``bwrap --die-with-parent``)."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    _exit_with_parent()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--feedback-only" in args:
        return feedback_only(args)
    feedback = "--no-feedback" not in args
    args = [a for a in args if a != "--no-feedback"]
    root, assignment, student = args
    api = _api(root)
    import json
    import time

    t0 = time.perf_counter()
    res = api.autograde(assignment, student, force=True, create=True)
    timing = {"autograde": round(time.perf_counter() - t0, 3)}
    sys.stderr.write(res.get("log", "") or "")
    if not res.get("success"):
        sys.stderr.write("\nAUTOGRADE FAILED\n" + (res.get("error") or "") + "\n")
        return 3
    if feedback:
        t0 = time.perf_counter()
        res = api.generate_feedback(assignment, student, force=True)
        timing["feedback"] = round(time.perf_counter() - t0, 3)
        sys.stderr.write(f"\nBACKPROPLAB_TIMING {json.dumps(timing)}\n")
        sys.stderr.write(res.get("log", "") or "")
        if not res.get("success"):
            sys.stderr.write("\nFEEDBACK FAILED\n" + (res.get("error") or "") + "\n")
            return 4
    else:
        sys.stderr.write(f"\nBACKPROPLAB_TIMING {json.dumps(timing)}\n")
    return 0


def _api(root: str):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def feedback_only(args: list[str]) -> int:
    import json

    args = [a for a in args if a != "--feedback-only"]
    root, *pages = args  # each page ASSIGNMENT/STUDENT
    api = _api(root)
    for page in pages:
        assignment, _, student = page.partition("/")
        try:
            res = api.generate_feedback(assignment, student, force=True)
            ok = bool(res.get("success"))
            why = "" if ok else str(res.get("error") or "nbgrader generate_feedback failed").strip()
            sys.stderr.write(res.get("log", "") or "")
        except Exception as exc:  # noqa: BLE001 - one student's page never stops the others'
            ok, why = False, f"{type(exc).__name__}: {exc}"
        line = {"assignment": assignment, "student": student, "ok": ok,
                "error": why.splitlines()[-1][:500] if why else ""}
        sys.stdout.write(f"BACKPROPLAB_FEEDBACK {json.dumps(line)}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
