"""Scale figures for grading on a cluster (docs/cluster.md, "Scale figures").

    python -m bench.cluster_scale demo [--assignment LAB ...]   # demo class: local pool vs --dask local:2, same run
    python -m bench.cluster_scale class [--students 2000] [--nbgrader-export]
                                                                # class files of a synthetic class in the gradebook

``demo`` grades the demo class twice in one run (``--jobs 2`` thread pool, then a ``LocalCluster`` of
two worker processes), prints both wall times and their ratio, and checks that ``grades_detailed.csv``
is the same and the demo's expectations hold.

``class`` builds a synthetic class of N students x 1 lab (the tiny course): the gradebook filled as
autograde leaves it (students, submissions, notebooks, one grade per grade cell) in one transaction,
and one result file per student; then times what the client does after grading: reading every result,
``grades.csv`` / ``grades_detailed.csv`` / ``course_grades.csv`` / ``jobs.csv``, the report (markdown
+ png), and the gradebook export (bulk, one query; optionally ``nbgrader export`` for comparison).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(label: str, fn, figures: dict):
    t = time.perf_counter()
    value = fn()
    figures[label] = round(time.perf_counter() - t, 3)
    print(f"  {label:<46} {figures[label]:8.2f} s", flush=True)
    return value


def bench_demo(assignments: list[str] | None, workers: int = 2) -> dict:
    from backproplab_autograder import demo
    from backproplab_autograder.cli import grade_class
    from backproplab_autograder.course import SOLUTIONS, available_assignments
    from backproplab_autograder.grading import Settings
    from backproplab_autograder.limits import Limits

    labs = assignments or available_assignments()
    root = Path(tempfile.mkdtemp(prefix="bpl-cluster-bench-"))
    subs = root / "demo-submissions"
    built = demo.build_class(subs, labs)
    limits = Limits(cell_timeout=60, notebook_timeout=300)
    figures: dict = {"labs": labs, "workers": workers}
    rows = {}
    for name, dask in (("pool", None), ("dask", f"local:{workers}")):
        settings = Settings(out=root / name, limits=limits, jobs=workers, source_dir=SOLUTIONS, progress=False,
                            dask=dask)
        t = time.perf_counter()
        summary = grade_class(subs, settings, labs, echo=lambda *a, **k: None)
        figures[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
        figures[f"{name}_notebooks"] = summary["graded"]
        figures[f"{name}_grader_errors"] = summary["grader_errors"]
        figures[f"{name}_problems"] = len(demo.check(summary["results"], built))
        with open(root / name / "grades_detailed.csv") as fh:
            rows[name] = sorted(fh.read().splitlines())
        print(f"  {name:<6} {figures[f'{name}_seconds']:7.1f} s for {summary['graded']} notebooks "
              f"(grader errors {summary['grader_errors']}, deviations {figures[f'{name}_problems']})", flush=True)
    figures["ratio_dask_over_pool"] = round(figures["dask_seconds"] / figures["pool_seconds"], 3)
    figures["same_grades_detailed"] = rows["pool"] == rows["dask"]
    print(f"  local:{workers} / pool = {figures['ratio_dask_over_pool']:.2f}; same grades_detailed.csv: "
          f"{figures['same_grades_detailed']}")
    return figures


def synthetic_class(root: Path, n: int, seed: int = 0):
    """The tiny course set up in ``root/out`` and N students graded in its gradebook and result files."""
    import warnings

    from backproplab_autograder import grading, results, tinycourse
    from backproplab_autograder.grading import Job, Settings
    from nbgrader.api import Grade as GradeRow
    from nbgrader.api import Gradebook, Student, SubmittedAssignment, SubmittedNotebook

    source = tinycourse.build(root)
    out = root / "out"
    settings = Settings(out=out, source_dir=source, progress=False)
    course = grading.setup_course(settings, [tinycourse.AID])
    rng = random.Random(seed)
    subs = root / "subs"
    names = [f"s{i:05d}" for i in range(n)]
    nb_id = Path(tinycourse.NOTEBOOK).stem
    with warnings.catch_warnings(), Gradebook(course.db_url, grading.COURSE_ID) as gb:
        warnings.simplefilter("ignore")
        assignment = gb.find_assignment(tinycourse.AID)
        notebook = assignment.notebooks[0]
        cells = {c.name: c for c in notebook.grade_cells}
        maxes = {gid: float(c.max_score) for gid, c in cells.items()}
        scored: dict[str, dict[str, float]] = {}
        for name in names:
            student = Student(id=name)
            sa = SubmittedAssignment(assignment=assignment, student=student)
            sn = SubmittedNotebook(assignment=sa, notebook=notebook, late_submission_penalty=None)
            scored[name] = {}
            for gid, cell in cells.items():
                score = float(cell.max_score) if rng.random() < 0.8 else 0.0
                scored[name][gid] = score
                GradeRow(cell=cell, notebook=sn, auto_score=score, needs_manual_grade=False)
            gb.db.add(student)
        gb.db.commit()
    for name in names:
        path = tinycourse.write_student(subs, name, tinycourse.submission())
        job = Job(name, tinycourse.AID, path)
        rows = [{"notebook": nb_id, "grade_id": gid, "score": s, "max_score": maxes[gid],
                 "reason": "passed" if s else "wrong_answer",
                 "message": "" if s else "values (diagnosis: values)", "diagnoses": [] if s else ["values"]}
                for gid, s in scored[name].items()]
        res = {"student_id": name, "assignment": tinycourse.AID, "notebook": nb_id, "course_token": course.token,
               "notes": [], "grader_error": None, "mode": "safe", "protections": "synthetic", "worker": "bench:0",
               "cells": rows, "score": sum(r["score"] for r in rows), "max_score": sum(r["max_score"] for r in rows),
               "seconds": 1.0, "hash": grading.job_hash(job, course, settings.limits, settings.hash_mode())}
        results.write_json_atomic(grading.result_path(out, job), res)
    return course, out


def bench_class(n: int, nbgrader_export: bool) -> dict:
    from backproplab_autograder import cluster, exports_bulk, grading, report, results

    root = Path(tempfile.mkdtemp(prefix="bpl-class-bench-"))
    figures: dict = {"students": n}
    course, out = _timed(f"build the synthetic class ({n} students)", lambda: synthetic_class(root, n), figures)
    start = time.perf_counter()
    everything = _timed("read every result file", lambda: results.load_all(out, course.token), figures)
    _timed("grades.csv, grades_detailed.csv, course_grades.csv",
           lambda: results.write_csvs(out, everything), figures)
    _timed("jobs.csv", lambda: cluster.write_jobs_csv(out, everything), figures)
    _timed("report.md + report.png", lambda: report.write(everything, out, 0, None), figures)
    proc = _timed("nbgrader_grades.csv (bulk export, one query)",
                  lambda: exports_bulk.export_csv(course.db_url, out / "nbgrader_grades.csv"), figures)
    assert proc.returncode == 0, proc.stderr
    figures["class files total"] = round(time.perf_counter() - start, 3)
    print(f"  {'class files total':<46} {figures['class files total']:8.2f} s")
    if nbgrader_export:
        target = root / "nbgrader-export.csv"
        p = _timed("nbgrader export (for comparison)", lambda: subprocess.run(
            grading.nbgrader_cmd("export", "--to", str(target)), cwd=course.root, capture_output=True, text=True,
            env=grading.grading_env(course.jupyter_path)), figures)
        assert p.returncode == 0, p.stderr[-2000:]
        exports_bulk.write(course.db_url, root / "bulk.csv")
        ours, theirs = (root / "bulk.csv").read_text().splitlines(), target.read_text().splitlines()
        # rows of students with the same name: nbgrader leaves their order to the database, ours is by id
        figures["bulk export == nbgrader export"] = ours[0] == theirs[0] and sorted(ours) == sorted(theirs)
        print(f"  bulk export identical to nbgrader export: {figures['bulk export == nbgrader export']}")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--assignment", action="append", default=None)
    d.add_argument("--workers", type=int, default=2)
    c = sub.add_parser("class")
    c.add_argument("--students", type=int, default=2000)
    c.add_argument("--nbgrader-export", action="store_true")
    args = p.parse_args(argv)
    figures = bench_demo(args.assignment, args.workers) if args.what == "demo" else \
        bench_class(args.students, args.nbgrader_export)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
