"""Per grade cell: score (from nbgrader's gradebook), reason and message (from the autograded notebook
and the execute preprocessor's records); CSV files written from the per-student results."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import nbformat

REASONS = ("passed", "wrong_answer", "timeout", "crash", "out_of_memory", "output_cap",
           "missing_cell", "ungradable", "policy", "grader_error")
FAULTS = {"timeout", "crash", "out_of_memory", "output_cap", "policy"}
DIAGNOSIS = re.compile(r"\(diagnosis: ([a-z_]+)\)")
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

    ``scores`` maps grade_id -> (score, max_score) read from the gradebook. A failed grade cell
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
        score, max_score = scores.get(gid, (None, float(meta.get("points", 0) or 0)))
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
    return rows


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
        writer.writerows(rows)
    os.replace(tmp, path)


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
