"""The demo class: build it from ``autograder/demo/`` and the committed notebooks, grade it, check it.

``python -m backproplab_autograder.demo [--out DIR] [--assignment ID] [--jobs N]`` (``make grade-demo``)
grades every lab that has a source notebook, in one ``backproplab-grade`` run.

Students, each handing in every lab:

* ``reference``: the release with every solution cell replaced by the solution's answer;
* ``blank``: the release as handed out;
* one student per file ``autograder/demo/students/<name>.json``: the reference answers, with the
  solution cells that file lists for a lab replaced by that student's (wrong) source. A lab the file
  does not mention gets the reference answers (a student who got that lab right).

``autograder/demo/expected.json`` lists, per student and lab, the grade cells that must lose points,
with their score and the diagnosis tag their failure message must name; every other cell must get
full points (``blank``: none). The command prints the usual summary, a student x lab score table and
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
_DIAGNOSIS = re.compile(r"\(diagnosis: ([A-Za-z0-9_]+)\)")
FIXED = ("reference", "blank")


def _solution_answers(aid: str, nb_name: str) -> dict[str, str]:
    nb = nbformat.read(str(SOLUTIONS / aid / nb_name), as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):  # code answers, and written answers (the model answer, as a student's text)
            answers[meta["grade_id"]] = "\n".join(ln for ln in cell.source.splitlines() if not _MARKER.match(ln))
    return answers


def students() -> dict[str, dict]:
    """``name -> {aid: {solution_id: source}}`` for every file in ``demo/students`` (``_about`` kept)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((DEMO / "students").glob("*.json"))}


def expected() -> dict[str, dict[str, dict[str, dict]]]:
    """``student -> aid -> grade_id -> {"score": float, "diagnosis": tag or None}``.

    An entry of ``expected.json`` is either a number (the score) or ``{"score": ..., "diagnosis": ...}``;
    without a diagnosis the message must still name one."""
    raw = json.loads((DEMO / "expected.json").read_text())
    out: dict = {}
    for student, labs in raw.items():
        if student.startswith("_"):
            continue
        for aid, cells in labs.items():
            for gid, entry in cells.items():
                if not isinstance(entry, dict):
                    entry = {"score": entry}
                out.setdefault(student, {}).setdefault(aid, {})[gid] = {
                    "score": float(entry["score"]), "diagnosis": entry.get("diagnosis")}
    return out


def class_plan(assignments: list[str]) -> dict[str, dict[str, dict[str, str] | None]]:
    """``aid -> student -> replaced solution cells`` (``None``: the blank release)."""
    people = students()
    plan = {}
    for aid in assignments:
        plan[aid] = {"reference": {}, "blank": None}
        plan[aid].update({name: dict(data.get(aid, {})) for name, data in people.items()})
    return plan


def build_class(dest: Path, assignments: list[str]) -> dict[str, list[str]]:
    """Write ``dest/<student>/<aid>/<notebook>``; returns assignment -> the students built for it."""
    names = notebook_names(SOLUTIONS, assignments)
    built: dict[str, list[str]] = {}
    for aid, plan in class_plan(assignments).items():
        release = RELEASE / aid / names[aid]
        if not release.exists():
            continue
        answers = _solution_answers(aid, names[aid])
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


def build_submissions(dest: Path) -> int:
    """The demo class of every available lab in nbgrader's submitted layout,
    ``dest/<student>/<assignment>/<notebook>.ipynb``; returns the number of notebooks written."""
    built = build_class(Path(dest), available_assignments())
    return sum(len(people) for people in built.values())


def check(results: list[dict], built: dict[str, list[str]]) -> list[str]:
    """Differences between the graded demo class and ``expected.json``: scores, and the diagnosis
    named by each expected failure's message (the ``message`` column of grades_detailed.csv)."""
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
                where = f"{student}/{aid}/{gid}"
                detail = f"({cell['reason']}: {cell['message'][:160]})"
                if student != "blank" and gid.startswith("answer_"):
                    # a written answer: never auto-graded, it waits for a person in the formgrader
                    if cell["reason"] != "needs_manual_grade":
                        problems.append(f"{where}: a written answer should wait for a grader {detail}")
                    continue
                if student == "blank":
                    target = 0.0
                elif gid in special:
                    target = special[gid]["score"]
                else:
                    target = float(cell["max_score"])
                if abs(cell["score"] - target) > 1e-9:
                    problems.append(f"{where}: score {cell['score']:g}, expected {target:g} {detail}")
                    continue
                if student == "blank":
                    if not cell["message"]:
                        problems.append(f"{where}: 0 points but no message recorded ({cell['reason']})")
                    continue
                if gid not in special:
                    continue
                tags = _DIAGNOSIS.findall(cell["message"])
                tag = special[gid]["diagnosis"]
                if not tags:
                    problems.append(f"{where}: the message names no diagnosis {detail}")
                elif tag is not None and tag not in tags:
                    problems.append(f"{where}: diagnosis {', '.join(tags)}, expected {tag} {detail}")
            missing = set(special) - {c["grade_id"] for c in res["cells"]}
            problems += [f"{student}/{aid}/{gid}: no such grade cell" for gid in sorted(missing)]
    return problems


def score_table(results: list[dict], built: dict[str, list[str]]) -> str:
    """Student x lab ``score/max`` table; ``*`` marks a notebook that differs from the expectation."""
    got = {(r["student_id"], r["assignment"]): r for r in results}
    labs = list(built)
    people = list(FIXED) + sorted({s for v in built.values() for s in v} - set(FIXED))
    off = {tuple(p.split("/")[:2]) for p in check(results, built)}
    head = ["student"] + [aid.split("_", 1)[0] for aid in labs] + ["total"]
    rows = []
    for student in people:
        row, total, total_max = [student], 0.0, 0.0
        for aid in labs:
            r = got.get((student, aid))
            if r is None:
                row.append("-" if student not in built[aid] else "missing")
                continue
            total += r["score"]
            total_max += r["max_score"]
            row.append(f"{r['score']:g}/{r['max_score']:g}" + ("*" if (student, aid) in off else ""))
        row.append(f"{total:g}/{total_max:g}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)]
    return "\n".join(lines)


def run(out: Path, assignments: list[str], jobs: int, limits: Limits | None = None, echo=print) -> tuple[dict, list]:
    """Build the class for ``assignments``, grade it in one run, compare with the expectation."""
    from .cli import grade_class, print_summary

    subs = out / "demo-submissions"
    built = build_class(subs, assignments)
    settings = Settings(out=out, limits=limits or Limits(), jobs=jobs, source_dir=SOLUTIONS,
                        progress=echo is print)
    summary = grade_class(subs, settings, assignments, echo=echo)
    summary["built"] = built
    print_summary(summary, echo=echo)
    echo("\n" + score_table(summary["results"], built))
    return summary, check(summary["results"], built)


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("grading-output") / "demo")
    p.add_argument("--assignment", action="append", default=None, help="only this lab (repeatable); default: all")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    assignments = args.assignment or available_assignments()
    unknown = [a for a in assignments if a not in available_assignments()]
    if unknown:
        print(f"unknown or unavailable assignment(s): {unknown}", file=sys.stderr)
        return 2
    summary, problems = run(args.out.resolve(), assignments, args.jobs)
    if problems:
        print("\nthe demo class differs from autograder/demo/expected.json (* in the table):")
        for line in problems:
            print("  " + line)
        return 1
    if summary["grader_errors"]:
        print("\nsome notebooks hit a grader error: run the same command again")
        return 1
    print("\nevery demo student got exactly the expected per-cell scores and diagnoses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
