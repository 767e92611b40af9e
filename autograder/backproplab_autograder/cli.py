"""``backproplab-grade``: grade a whole class.

    backproplab-grade SUBMISSIONS --out DIR [--assignment ID] [--student ID] [--jobs N]    # folder mode
    backproplab-grade --course COURSE_DIR [--assignment ID] [--student ID] [--force] [--jobs N]  # course mode
    backproplab-grade setup-course COURSE_DIR [LAB ...]     # prepare an nbgrader course for course mode
    backproplab-grade export --course COURSE_DIR --format canvas|moodle [--roster FILE] --to FILE

Folder mode: SUBMISSIONS is nbgrader's ``submitted/<student>/<assignment>/<notebook>.ipynb`` folder, a
folder of per-student zip files, or one zip; DIR receives ``grades.csv``, ``grades_detailed.csv``,
``course_grades.csv``, ``feedback/``, ``report.md`` and ``report.png`` (see autograder/README.md).
Course mode grades the collected submissions of an instructor's nbgrader course in place (see
``coursemode`` and docs/instructor-guide.md). Running the command again skips what is already graded;
a killed run resumes where it stopped; the class files always cover every result on disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from . import grading, report, results
from .course import ASSIGNMENTS, SOLUTIONS, available_assignments
from .limits import Limits


def build_parser() -> argparse.ArgumentParser:
    d = Limits()
    p = argparse.ArgumentParser(prog="backproplab-grade", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", type=Path, nargs="?", help="folder or zip of submissions (folder mode)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (created; reused by a rerun); with --course: default COURSE_DIR/backproplab")
    p.add_argument("--course", type=Path, default=None,
                   help="course mode: grade the collected submissions of this nbgrader course (see "
                        "docs/instructor-guide.md)")
    p.add_argument("--student", action="append", default=None,
                   help="grade only this student (repeatable); the class files still cover everyone")
    p.add_argument("--force", action="store_true", help="regrade even what is already graded")
    p.add_argument("--assignment", action="append", default=None,
                   help="grade only this assignment (repeatable; default: every assignment with a source)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="parallel workers (default: the number of cores)")
    p.add_argument("--source", type=Path, default=SOLUTIONS, help="nbgrader source folder (default: solutions/)")
    p.add_argument("--db-url", default=None,
                   help="gradebook URL (default: sqlite in DIR/course); e.g. postgresql+psycopg2://user@host/db")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="grade on a Dask cluster: tcp://host:8786 (a running scheduler; DIR on a folder every "
                        "worker shares) or local:N (N worker processes here); see docs/cluster.md")
    p.add_argument("--cell-timeout", type=float, default=d.cell_timeout, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=float, default=d.notebook_timeout, help="seconds per notebook")
    p.add_argument("--memory-mib", type=int, default=d.memory_mib, help="kernel address-space limit (MiB)")
    p.add_argument("--processes", type=int, default=d.processes, help="processes+threads per sandbox uid")
    p.add_argument("--output-bytes", type=int, default=d.output_bytes, help="output kept per cell (bytes)")
    p.add_argument("--file-mib", type=int, default=d.file_mib, help="largest file a kernel may write (MiB)")
    p.add_argument("--allow-reduced", action="store_true",
                   help="grade even without root (no uid drop, namespaces, container or cgroup: recorded in "
                        "every result); refused otherwise")
    p.add_argument("--unsafe", action="store_true",
                   help="MEASUREMENT ONLY: grade the submitted notebook as is, without the static scan, the "
                        "uid drop and the namespaces (to time what the protections cost); never for real grades")
    p.add_argument("--policy", choices=("advice", "zero"), default="advice",
                   help="what a static-scan finding does (autograd where a rule forbids it, a patched check): "
                        "'advice' (default) lists it in report.md, per student with its line; 'zero' also scores "
                        "that exercise's grade cells 0 (reason policy)")
    p.add_argument("--no-feedback", action="store_true",
                   help="scores only: skip the feedback pages (a quick pass; rerun without it for feedback)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final line")
    return p


def settings_from_args(args) -> grading.Settings:
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                    memory_mib=args.memory_mib, processes=args.processes, output_bytes=args.output_bytes,
                    file_mib=args.file_mib)
    return grading.Settings(out=args.out.resolve(), limits=limits, jobs=max(1, args.jobs), db_url=args.db_url,
                            source_dir=args.source.resolve(), progress=not args.no_progress and not args.quiet,
                            unsafe=args.unsafe, feedback=not args.no_feedback, dask=args.dask,
                            policy_zero=getattr(args, "policy", "advice") == "zero")


def grade_class(submissions: Path, settings: grading.Settings, assignments: list[str] | None = None,
                echo=print, students: list[str] | None = None, force: bool = False) -> dict:
    """The whole pipeline; returns a summary dict (also used by the demo and the tests)."""
    started = time.perf_counter()
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    source = Path(settings.source_dir)
    if assignments is None:
        if source.resolve() == SOLUTIONS.resolve():
            assignments = available_assignments()
        else:
            assignments = sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))
    names = grading.notebook_names(source, assignments)
    placed = grading.intake(submissions, out, names)
    for problem in placed.problems:
        echo(f"intake: {problem}")
    # set up (generate the release of) only the assignments someone handed in: cached across runs
    handed_in = {aid for (_, aid) in placed.placed}
    assignments = [a for a in assignments if a in handed_in]
    grading.prestart_workers(settings, bool(placed.placed))
    try:
        course = grading.setup_course(settings, assignments)
    except BaseException:
        grading.forkserver.shutdown()
        raise
    settings.hide = [*settings.hide, Path(submissions).resolve() if Path(submissions).is_dir()
                     else Path(submissions).resolve().parent]
    jobs = grading.collect_jobs(out / "work" / "submitted", assignments, placed.placed, placed.nbgrader_files)
    return _grade_and_write(course, settings, jobs, placed, started, students, force, echo)


def _grade_and_write(course: grading.Course, settings: grading.Settings, jobs: list[grading.Job], placed,
                     started: float, students: list[str] | None, force: bool, echo) -> dict:
    """Both modes' common end: grade the chosen jobs, then write the class files from every result on
    disk (not only this run's: a one-student regrade or a late lab keeps everyone else's rows)."""
    from .cluster import write_jobs_csv  # jobs.csv: mode, protections and worker of every result

    out = settings.out
    if students:
        jobs = [j for j in jobs if j.student in set(students)]
    if force:
        for job in jobs:
            grading.result_path(out, job).unlink(missing_ok=True)
    grader = grading.Grader(settings)
    landed: list[list[dict]] = []

    def land(done: list[dict]) -> None:
        """The scores land: nbgrader's export and the class CSVs, before any feedback page is made."""
        export = grading.export_csv(course, out)
        if export.returncode != 0:
            echo(f"warning: nbgrader export failed: {results.first_line(export.stderr)}")
        everything = results.load_all(out, course.token, done)
        grading.refresh_manual_scores(course, everything)
        results.write_csvs(out, everything)
        landed.append(everything)

    done = grader.run(jobs, course, on_scores=land)
    if not landed:  # no feedback phase (scores only, or the Dask cluster rendered the pages with the jobs)
        land(done)
    if settings.dask and settings.feedback and any(r.get("feedback") == "pending" for r in done):
        grading.render_feedback(course, settings, done)  # scored by an earlier local run that stopped early
        grading.forkserver.shutdown()
    everything = landed[-1]
    write_jobs_csv(out, everything)
    elapsed = time.perf_counter() - started
    report.write(everything, out, len(placed.problems), elapsed)
    reasons = Counter(c["reason"] for r in done for c in r["cells"])
    errors = sum(1 for r in done if any(c["reason"] == "grader_error" for c in r["cells"]))
    seconds = sorted(r.get("seconds", 0.0) for r in done if r.get("seconds"))
    return {"graded": len(done), "skipped": grader.skipped, "students": len({r["student_id"] for r in done}),
            "unplaced": len(placed.problems), "reasons": dict(reasons), "grader_errors": errors,
            "elapsed": elapsed, "median_seconds": seconds[len(seconds) // 2] if seconds else None,
            "results": done, "out": out}


def print_summary(summary: dict, echo=print) -> None:
    out = summary["out"]
    echo(f"graded {summary['graded']} notebook(s) of {summary['students']} student(s) "
         f"({summary['skipped']} already done) in {summary['elapsed']:.1f} s")
    by_lab: dict[str, list[float]] = {}
    for r in summary["results"]:
        by_lab.setdefault(r["assignment"], []).append(100.0 * r["score"] / r["max_score"] if r["max_score"] else 0)
    for aid, v in sorted(by_lab.items()):
        echo(f"  {aid}: {len(v)} students, mean {sum(v) / len(v):.1f}%")
    echo("  grade cells: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["reasons"].items())))
    if summary["unplaced"]:
        echo(f"  {summary['unplaced']} item(s) not placed: see {out / 'intake_report.md'}")
    if summary["grader_errors"]:
        echo(f"  {summary['grader_errors']} notebook(s) hit a grader error: run the same command again")
    echo(f"  {out / 'grades.csv'}, {out / 'grades_detailed.csv'}, {out / 'report.md'}, {out / 'feedback'}/")


def grade_course_dir(args, echo=print) -> dict:
    """Course mode: the collected submissions of the nbgrader course ``args.course``."""
    from . import coursemode

    cfg = coursemode.read_config(args.course)
    out = (args.out or cfg.root / "backproplab").resolve()
    args.out = out
    settings = settings_from_args(args)
    settings.hide = [*settings.hide, cfg.root]
    started = time.perf_counter()
    in_gradebook = coursemode.gradebook_assignments(cfg)
    submitted_aids = {p.name for p in cfg.submitted.glob("*/*") if p.is_dir()} if cfg.submitted.is_dir() else set()
    if args.assignment:
        missing = [a for a in args.assignment if a not in in_gradebook]
        if missing:
            raise coursemode.CourseError(f"assignment(s) {missing} are not in the course's gradebook "
                                         f"(it has {sorted(in_gradebook)}): run `nbgrader generate_assignment`")
        assignments = list(args.assignment)
    else:
        assignments = sorted(a for a in in_gradebook if a in submitted_aids)
    names = {aid: (in_gradebook[aid][0] + ".ipynb") for aid in assignments if in_gradebook[aid]}
    placed = grading.intake(cfg.submitted, out, names) if cfg.submitted.is_dir() else None
    if placed is None:
        raise coursemode.CourseError(f"{cfg.submitted} does not exist: run `nbgrader collect <lab>` first")
    for problem in placed.problems:
        echo(f"intake: {problem}")
    handed_in = sorted({aid for (_, aid) in placed.placed})
    grading.prestart_workers(settings, bool(placed.placed))
    try:
        course = coursemode.setup(cfg, out, [a for a in assignments if a in handed_in])
    except BaseException:
        grading.forkserver.shutdown()
        raise
    jobs = grading.collect_jobs(out / "work" / "submitted", course.assignments, placed.placed,
                                placed.nbgrader_files)
    return _grade_and_write(course, settings, jobs, placed, started, args.student, args.force, echo)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        from . import lms

        return lms.main(argv[1:])
    if argv[:1] == ["setup-course"]:
        from . import coursemode

        if len(argv) < 2:
            print("usage: backproplab-grade setup-course COURSE_DIR [LAB ...]", file=sys.stderr)
            return 2
        try:
            for line in coursemode.setup_course_dir(Path(argv[1]), argv[2:] or None):
                print(line)
        except (coursemode.CourseError, ValueError) as exc:
            print(f"backproplab-grade setup-course: {exc}", file=sys.stderr)
            return 2
        return 0
    args = build_parser().parse_args(argv)
    from .sandbox import refuse_unprotected

    refused = refuse_unprotected(args)  # issue 15: never unprotected without being told
    if refused:
        print(f"backproplab-grade: {refused}", file=sys.stderr)
        return 2
    if args.dask:  # a scheduler that does not answer: a message within seconds, not a hang
        from .cluster import check_address

        problem = check_address(args.dask)
        if problem:
            print(f"backproplab-grade: {problem}", file=sys.stderr)
            return 2
    if args.course is not None:
        from . import coursemode

        try:
            summary = grade_course_dir(args, echo=(lambda *a, **k: None) if args.quiet else print)
        except coursemode.CourseError as exc:
            print(f"backproplab-grade: {exc}", file=sys.stderr)
            return 2
        print_summary(summary)
        return 1 if summary["grader_errors"] else 0
    if args.submissions is None or args.out is None:
        print("backproplab-grade: give SUBMISSIONS --out DIR (folder mode) or --course COURSE_DIR (course mode)",
              file=sys.stderr)
        return 2
    if args.assignment:
        known = set(ASSIGNMENTS) | {p.name for p in args.source.iterdir() if p.is_dir()}
        unknown = [a for a in args.assignment if a not in known]
        if unknown:
            print(f"backproplab-grade: unknown assignment(s) {unknown}", file=sys.stderr)
            return 2
    if not args.submissions.exists():
        print(f"backproplab-grade: {args.submissions} does not exist", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    summary = grade_class(args.submissions, settings, args.assignment,
                          echo=(lambda *a, **k: None) if args.quiet else print, students=args.student,
                          force=args.force)
    if args.quiet:
        print(f"graded {summary['graded']} notebooks; grader errors: {summary['grader_errors']}")

    else:
        print_summary(summary)
    return 1 if summary["grader_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
