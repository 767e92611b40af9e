"""The demo class: build it from ``autograder/demo/`` and the committed notebooks, grade it, check it.

``python -m backproplab_autograder.demo [--out DIR] [--assignment ID] [--jobs N]`` (``make grade-demo``).

Students, for every lab that has a source notebook:

* ``reference``: the release with every solution cell replaced by the solution's answer;
* ``blank``: the release as handed out;
* one student per file ``autograder/demo/students/<name>.json``, for the labs that file names: the
  reference answers with the listed solution cells replaced by that student's (wrong) source.

``autograder/demo/expected.json`` lists, per student, the grade cells that must lose points and their
score; every other cell must get full points (``blank``: none). The command prints the summary and
any difference from the expectation, and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

from .course import AUTOGRADER, RELEASE, SOLUTIONS, available_assignments
from .grading import Settings, notebook_names
from .limits import Limits

DEMO = AUTOGRADER / "demo"
_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def _solution_answers(aid: str, nb_name: str) -> dict[str, str]:
    nb = nbformat.read(str(SOLUTIONS / aid / nb_name), as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            answers[meta["grade_id"]] = "\n".join(ln for ln in cell.source.splitlines() if not _MARKER.match(ln))
    return answers


def students() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DEMO / "students").glob("*.json"))}


def expected() -> dict:
    return {k: v for k, v in json.loads((DEMO / "expected.json").read_text()).items() if not k.startswith("_")}


def build_class(dest: Path, assignments: list[str]) -> dict[str, list[str]]:
    """Write ``dest/<student>/<aid>/<notebook>``; returns assignment -> the students built for it."""
    names = notebook_names(SOLUTIONS, assignments)
    built: dict[str, list[str]] = {}
    people = students()
    for aid in assignments:
        release = RELEASE / aid / names[aid]
        if not release.exists():
            continue
        answers = _solution_answers(aid, names[aid])
        plan = {"reference": {}, "blank": None}
        plan.update({name: data[aid] for name, data in people.items() if aid in data})
        for student, replace in plan.items():
            nb = nbformat.read(str(release), as_version=4)
            if replace is not None:
                unknown = set(replace) - set(answers)
                if unknown:
                    raise KeyError(f"demo student {student}: no solution cells {sorted(unknown)} in {aid}")
                for cell in nb.cells:
                    meta = cell.metadata.get("nbgrader", {})
                    if meta.get("solution") and meta.get("grade_id") in answers:
                        cell.source = replace.get(meta["grade_id"], answers[meta["grade_id"]])
            path = dest / student / aid / names[aid]
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(path))
            built.setdefault(aid, []).append(student)
    return built


def check(results: list[dict], built: dict[str, list[str]]) -> list[str]:
    """Differences between the graded demo class and ``expected.json``."""
    want = expected()
    problems = []
    got = {(r["student_id"], r["assignment"]): r for r in results}
    for aid, people in built.items():
        for student in people:
            res = got.get((student, aid))
            if res is None:
                problems.append(f"{student}/{aid}: not graded")
                continue
            special = want.get(student, {}).get(aid, {})
            for cell in res["cells"]:
                gid = cell["grade_id"]
                target = 0.0 if student == "blank" else float(special.get(gid, cell["max_score"]))
                if abs(cell["score"] - target) > 1e-9:
                    problems.append(f"{student}/{aid}/{gid}: score {cell['score']:g}, expected {target:g} "
                                    f"({cell['reason']}: {cell['message'][:120]})")
            missing = set(special) - {c["grade_id"] for c in res["cells"]}
            problems += [f"{student}/{aid}/{gid}: no such grade cell" for gid in sorted(missing)]
    return problems


def run(out: Path, assignments: list[str], jobs: int, limits: Limits | None = None, echo=print) -> tuple[dict, list]:
    from .cli import grade_class, print_summary

    subs = out / "demo-submissions"
    built = build_class(subs, assignments)
    settings = Settings(out=out, limits=limits or Limits(), jobs=jobs, source_dir=SOLUTIONS,
                        progress=echo is print)
    summary = grade_class(subs, settings, assignments, echo=echo)
    print_summary(summary, echo=echo)
    return summary, check(summary["results"], built)


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("grading-output") / "demo")
    p.add_argument("--assignment", action="append", default=None)
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    summary, problems = run(args.out.resolve(), args.assignment or available_assignments(), args.jobs)
    if problems:
        print("\nthe demo class differs from autograder/demo/expected.json:")
        for line in problems:
            print("  " + line)
        return 1
    print("every demo student got exactly the expected per-cell scores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
