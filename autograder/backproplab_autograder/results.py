"""Per grade cell: score (from nbgrader's gradebook), reason and message (from the autograded notebook
and the execute preprocessor's records); CSV files written from the per-student results."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import nbformat

from . import neutralise
from .records import FAULTS, MANUAL, CellRecord, Reason  # noqa: F401 - re-exported: one vocabulary (records.py)

REASONS = tuple(r.value for r in Reason)
DIAGNOSIS = re.compile(r"\(diagnosis: ([a-z0-9_]+)\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

SUMMARY_COLUMNS = ["student_id", "assignment", "score", "max_score"]
DETAIL_COLUMNS = ["student_id", "assignment", "notebook", "grade_id", "score", "max_score", "reason", "message"]


def first_line(text: str) -> str:
    for line in _ANSI.sub("", text or "").splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def _error(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def cell_reasons(autograded: Path, records: dict | None, scores: dict[str, tuple[float | None, float]]) -> list[dict]:
    """One row per grade cell of the autograded notebook, in notebook order.

    ``scores`` maps grade_id -> (score, max_score[, how]) read from the gradebook, ``how`` one of
    ``needs_manual`` (score None), ``manual`` (a person's score) or ``auto``. Written-answer cells
    (markdown) are never run: ``needs_manual_grade`` until a person scores them. A failed grade cell
    takes the fault recorded for it, else a fault recorded for a cell between the previous grade
    cell and it (its solution cell: a solution that timed out or crashed explains the failure),
    else ``wrong_answer``.
    """
    nb = nbformat.read(str(autograded), as_version=4)
    by_index = {r["index"]: r for r in (records or {}).get("cells", [])}
    rows, pending = [], []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        rec = by_index.get(index)
        if not meta.get("grade"):
            if rec:
                pending.append(rec)
            continue
        gid = meta["grade_id"]
        score, max_score, *how = scores.get(gid, (None, float(meta.get("points", 0) or 0)))
        if cell.cell_type != "code":  # a written answer: a person grades it in the formgrader
            how = how[0] if how else ("needs_manual" if score is None else "manual")
            reason, message = {
                "needs_manual": ("needs_manual_grade", "written answer: waiting for a grader"),
                "manual": ("manually_graded", ""),
            }.get(how, ("wrong_answer", "the written answer was left as released (no answer)"))
            rows.append({"notebook": autograded.stem, "grade_id": gid, "score": score or 0.0,
                         "max_score": max_score, "reason": reason, "message": message, "diagnoses": []})
            continue
        err = _error(cell)
        detail = ""
        if err is not None:
            detail = f"{err.get('ename', '')}: {err.get('evalue', '')}"
        if score is None:
            reason, message = "grader_error", "no score was recorded for this cell"
        elif rec:
            reason, message = rec["reason"], first_line(rec["message"])
        elif score >= max_score:
            reason, message = "passed", ""
        elif score > 0 and err is None:
            # a cell that scores itself (nbgrader's partial credit: the number the cell displays), e.g. a
            # bug hunt scored by the share of wrong implementations caught
            reason, message = "partial", f"partial credit: {score:g} of {max_score:g} points"
        else:
            fault = next((r for r in reversed(pending) if r["reason"] in FAULTS | {"missing_cell"}), None)
            if fault is not None:
                where = fault.get("grade_id") or f"cell {fault['index']}"
                reason, message = fault["reason"], first_line(f"{where}: {fault['message']}")
            else:
                reason = "wrong_answer"
                message = first_line(err.get("evalue", "") if err else "") or (err.get("ename", "") if err else "")
        pending = []
        rows.append({"notebook": autograded.stem, "grade_id": gid, "score": score if score is not None else 0.0,
                     "max_score": max_score, "reason": reason, "message": message,
                     "diagnoses": DIAGNOSIS.findall(detail) if reason == "wrong_answer" else []})
    # typed and checked: every row's reason is in the one vocabulary (records.Reason)
    return [{"notebook": r["notebook"], **CellRecord(r["grade_id"], r["score"], r["max_score"], r["reason"],
                                                     r["message"], r["diagnoses"]).as_row()} for r in rows]


_UNDEFINED = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def explain_precheck(rows: list[dict], missing: dict[str, str], dropped_names: dict[str, int]) -> None:
    """Say in the rows what the pre-check changed: a grade cell the student deleted (or turned into
    markdown) that was restored and passed is ``restored_cell``; a failure caused by a name defined
    only in a cell that is not graded says so."""
    for row in rows:
        why = missing.get(row["grade_id"])
        if why and row["reason"] == "passed":
            row["reason"] = "restored_cell"
            row["message"] = (f"this grade cell was {why} in the submission; it was restored from the "
                              "assignment and graded (full points)")
        elif why:
            row["message"] = f"(grade cell {why} in the submission, restored and graded) " + row["message"]
        if row["reason"] in ("passed", "restored_cell"):
            continue
        names = [n for n in _UNDEFINED.findall(row["message"]) if n in dropped_names]
        if names:
            row["message"] = (f"`{names[0]}` is defined outside the exercise cell; only exercise cells are "
                              f"graded: move it into the exercise's cell. " + row["message"])


def load_all(out: Path, token: str, fresh: list[dict] = ()) -> list[dict]:
    """Every finished result under ``out/results`` made for the course ``token``, with ``fresh`` (this
    run's results) taking precedence: what the class CSVs and the report are built from."""
    found: dict[tuple[str, str], dict] = {}
    for path in sorted((Path(out) / "results").glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("course_token") == token and "cells" in data:
            found[(data.get("student_id"), data.get("assignment"))] = data
    for res in fresh:
        found[(res["student_id"], res["assignment"])] = res
    return list(found.values())


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_csv_atomic(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(neutralise.csv_row(r) for r in rows)
    os.replace(tmp, path)


def neutralise_csv_file(path: Path) -> bool:
    """Rewrite a CSV written by another tool (nbgrader's export) with every field neutralised
    (:func:`neutralise.csv_field`). Returns whether the file existed."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([[neutralise.csv_field(v) for v in row] for row in rows])
    os.replace(tmp, path)
    return True


def _num(x: float) -> str:
    return f"{x:g}"


def write_csvs(out: Path, results: list[dict]) -> None:
    """``grades.csv`` and ``grades_detailed.csv`` from the per-(student, assignment) results."""
    results = sorted(results, key=lambda r: (r["student_id"], r["assignment"]))
    summary, detail = [], []
    for res in results:
        summary.append({"student_id": res["student_id"], "assignment": res["assignment"],
                        "score": _num(res["score"]), "max_score": _num(res["max_score"])})
        for row in res["cells"]:
            detail.append({"student_id": res["student_id"], "assignment": res["assignment"], **row,
                           "score": _num(row["score"]), "max_score": _num(row["max_score"])})
    _write_csv_atomic(out / "grades.csv", SUMMARY_COLUMNS, summary)
    _write_csv_atomic(out / "grades_detailed.csv", DETAIL_COLUMNS, detail)
    write_course_grades(out, results)


def write_course_grades(out: Path, results: list[dict], weights: dict[str, float] | None = None) -> None:
    """``course_grades.csv``: per student, each lab as a percentage of its own maximum (empty when not
    handed in, never 0), and the weighted mean over the labs handed in so far. Labs carry different
    point totals; percentages put them on one scale, and ``weight`` in ``course.toml`` (default 1 for
    every lab) says how much each lab counts."""
    from .course import labs

    if weights is None:
        weights = {lab.id: lab.weight for lab in labs()}
    order = [lab.id for lab in labs()]
    seen = sorted({r["assignment"] for r in results}, key=lambda a: (a not in order, order.index(a) if a in order
                                                                      else 0, a))
    table: dict[str, dict[str, float]] = {}
    for res in results:
        pct = 100.0 * res["score"] / res["max_score"] if res["max_score"] else 0.0
        table.setdefault(res["student_id"], {})[res["assignment"]] = pct
    rows = []
    for student in sorted(table):
        got = table[student]
        total_w = sum(weights.get(a, 1.0) for a in got)
        row = {"student_id": student, **{a: (f"{got[a]:.2f}" if a in got else "") for a in seen},
               "labs_handed_in": str(len(got)),
               "course_percent": f"{sum(weights.get(a, 1.0) * p for a, p in got.items()) / total_w:.2f}"
               if total_w else ""}
        rows.append(row)
    _write_csv_atomic(out / "course_grades.csv", ["student_id", *seen, "labs_handed_in", "course_percent"], rows)
    # nbgrader's own export (written just before, by ``grading.export_csv``) gets the same treatment
    neutralise_csv_file(out / "nbgrader_grades.csv")
