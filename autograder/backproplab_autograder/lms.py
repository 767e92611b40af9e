"""Grades for a learning-management system, read from the course's gradebook in bulk.

    backproplab-grade export --course COURSE_DIR --format canvas|moodle [--roster FILE] --to FILE
                             [--missing-as-zero]

* **Canvas**: the gradebook CSV Canvas imports (Grades > Import): leading columns ``Student``, ``ID``,
  ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment, and a
  ``Points Possible`` row under the header.
* **Moodle**: the grade import CSV (Grades > Import > CSV file): an identifier column (``ID number``,
  mapped to the user's ID number at import) and ``Email address``, then one column per grade item.

The roster (CSV, optional) maps nbgrader student ids to LMS ids: column ``student_id`` (the nbgrader
id) and any of ``name``, ``lms_id``, ``sis_user_id``, ``sis_login_id``, ``section``, ``email``. Every
roster student gets a row; a lab they have not handed in is an empty cell (an LMS posts an empty cell
as "not graded", a 0 as a zero), unless ``--missing-as-zero`` asks for 0 once the due date has passed.
A score is nbgrader's: the cells' points minus the late penalty, never below 0 (as ``nbgrader export``).

The same tables are available as nbgrader exporter plugins:
``nbgrader export --exporter=backproplab_autograder.lms.CanvasExport --to grades.csv`` (or
``MoodleExport``). Reading is a few SQL queries for the whole class, whatever its size.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .neutralise import csv_field

FORMATS = ("canvas", "moodle")


@dataclass
class Table:
    assignments: list[tuple[str, dt.datetime | None, float]]   # (name, due date, max score)
    students: dict[str, dict[str, str]]                          # id -> first_name, last_name, email
    scores: dict[tuple[str, str], float] = field(default_factory=dict)   # (student, assignment) -> score


def read_gradebook(gb) -> Table:
    """Every assignment, student and submitted score of an open ``nbgrader.api.Gradebook``, in bulk."""
    from nbgrader.api import Assignment, SubmittedAssignment, SubmittedNotebook
    from sqlalchemy import func

    assignments = [(a.name, a.duedate, float(a.max_score or 0.0))
                   for a in gb.db.query(Assignment).order_by(Assignment.duedate, Assignment.name).all()]
    students = {s.id: {"first_name": s.first_name or "", "last_name": s.last_name or "", "email": s.email or ""}
                for s in gb.students}
    penalties = dict(gb.db.query(SubmittedAssignment.id, func.sum(SubmittedNotebook.late_submission_penalty))
                     .join(SubmittedNotebook).group_by(SubmittedAssignment.id).all())
    table = Table(assignments, students)
    for name, _, _ in assignments:
        for sub in gb.submission_dicts(name):
            raw = float(sub["score"] or 0.0)
            table.scores[(sub["student"], name)] = max(0.0, raw - float(penalties.get(sub["id"]) or 0.0))
    return table


def read_course(course_dir: Path) -> Table:
    from nbgrader.api import Gradebook

    from .coursemode import gradebook_assignments, read_config

    cfg = read_config(course_dir)
    gradebook_assignments(cfg)  # a clear message when there is no gradebook
    with Gradebook(cfg.db_url, cfg.course_id) as gb:
        return read_gradebook(gb)


def read_roster(path: Path | None, table: Table) -> list[dict[str, str]]:
    """Roster rows (every gradebook student when there is no roster), keyed by nbgrader ``student_id``."""
    if path is None:
        return [{"student_id": sid, "name": f"{info['last_name']}, {info['first_name']}".strip(", ") or sid,
                 "email": info["email"]} for sid, info in sorted(table.students.items())]
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "student_id" not in rows[0]:
        raise ValueError(f"{path}: the roster needs a header with a 'student_id' column (the nbgrader id)")
    return [{k: (v or "").strip() for k, v in r.items() if k} for r in rows]


def _cell(table: Table, student: str, assignment: str, due: dt.datetime | None, missing_as_zero: bool,
          now: dt.datetime) -> str:
    score = table.scores.get((student, assignment))
    if score is not None:
        return f"{score:g}"
    if missing_as_zero and due is not None and due < now:
        return "0"
    return ""


def rows_for(fmt: str, table: Table, roster: list[dict[str, str]], missing_as_zero: bool = False,
             now: dt.datetime | None = None) -> list[list[str]]:
    """The LMS file as rows of strings (header first)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)  # nbgrader stores naive UTC
    names = [a for a, _, _ in table.assignments]
    if fmt == "canvas":
        out = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *names],
               ["    Points Possible", "", "", "", "", *[f"{m:g}" for _, _, m in table.assignments]]]
        for r in roster:
            sid = r["student_id"]
            out.append([r.get("name") or sid, r.get("lms_id", ""), r.get("sis_user_id", ""),
                        r.get("sis_login_id", ""), r.get("section", ""),
                        *[_cell(table, sid, a, due, missing_as_zero, now) for a, due, _ in table.assignments]])
    else:
        out = [["ID number", "Email address", *names]]
        for r in roster:
            sid = r["student_id"]
            out.append([r.get("lms_id") or sid, r.get("email", ""),
                        *[_cell(table, sid, a, due, missing_as_zero, now) for a, due, _ in table.assignments]])
    return [[csv_field(v) for v in row] for row in out]


def write(path: Path, rows: list[list[str]]) -> None:
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="backproplab-grade export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--course", type=Path, required=True, help="the nbgrader course folder")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--roster", type=Path, default=None, help="CSV mapping nbgrader ids to LMS ids")
    p.add_argument("--to", type=Path, required=True, help="the file to write")
    p.add_argument("--missing-as-zero", action="store_true",
                   help="0 (not empty) for a lab not handed in once its due date has passed")
    args = p.parse_args(argv)
    from .coursemode import CourseError

    try:
        table = read_course(args.course)
        roster = read_roster(args.roster, table)
        write(args.to, rows_for(args.format, table, roster, args.missing_as_zero))
    except (CourseError, ValueError, OSError) as exc:
        print(f"backproplab-grade export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.to}: {len(roster)} students, {len(table.assignments)} assignments ({args.format})")
    return 0


def _plugin(fmt: str):
    from nbgrader.plugins import ExportPlugin

    class _Export(ExportPlugin):
        def export(self, gradebook) -> None:
            table = read_gradebook(gradebook)
            write(Path(self.to or f"{fmt}_grades.csv"), rows_for(fmt, table, read_roster(None, table)))

    _Export.__name__ = f"{fmt.capitalize()}Export"
    _Export.__doc__ = f"nbgrader exporter plugin: the {fmt} import file (see backproplab_autograder.lms)."
    return _Export


def __getattr__(name: str):
    # the plugin classes subclass nbgrader's ExportPlugin: built on first use, so that importing this
    # module does not import nbgrader
    if name in ("CanvasExport", "MoodleExport"):
        cls = _plugin(name.removesuffix("Export").lower())
        globals()[name] = cls
        return cls
    raise AttributeError(name)
