"""``nbgrader generate_assignment`` for several assignments in one process.

    python -m backproplab_autograder.generate AID [AID ...]     # in the course folder

The grader sets up (releases and records in the gradebook) every assignment someone handed in. One
``nbgrader generate_assignment`` per assignment spent about 1.7 s of its 2 s importing nbgrader; here
the imports happen once and each assignment goes through nbgrader's own API
(:meth:`nbgrader.apps.api.NbGraderAPI.generate_assignment`, the call the formgrader makes), with the
course folder's ``nbgrader_config.py``. ``generated AID`` is printed to stdout for each assignment done;
one that fails does not stop the others: its traceback and nbgrader's log go to stderr and the exit
status is 1, so the caller knows exactly which ones are ready.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    assignments = list(sys.argv[1:] if argv is None else argv)
    from .nbjob import _api  # nbgrader's API on the course folder's own configuration

    api = _api(os.getcwd())
    failed = 0
    for aid in assignments:
        result = api.generate_assignment(aid, force=True, create=True)
        if result.get("success"):
            print(f"generated {aid}", flush=True)
        else:
            failed += 1
            sys.stderr.write(f"nbgrader generate_assignment {aid} failed:\n{result.get('error', '')}\n"
                             f"{result.get('log', '')}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
