"""The class report: score histogram per lab, pass rate per exercise, most frequent diagnoses."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from .results import MANUAL, REASONS

PASSED = ("passed", "restored_cell")


def summarise(results: list[dict]) -> dict:
    labs: dict[str, list[float]] = defaultdict(list)
    exercises: dict[tuple[str, str], list[bool]] = defaultdict(list)
    reasons: dict[str, Counter] = defaultdict(Counter)
    diagnoses: Counter = Counter()
    for res in results:
        aid = res["assignment"]
        pct = 100.0 * res["score"] / res["max_score"] if res["max_score"] else 0.0
        labs[aid].append(pct)
        for c in res["cells"]:
            if c["reason"] not in MANUAL:  # written answers are a person's to score: not a pass rate
                exercises[(aid, c["grade_id"])].append(c["reason"] in PASSED)
            reasons[aid][c["reason"]] += 1
            diagnoses.update(c.get("diagnoses", []))
    return {"labs": dict(labs), "exercises": dict(exercises), "reasons": dict(reasons), "diagnoses": diagnoses}


def write_png(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labs = sorted(summary["labs"])
    rows = max(1, len(labs)) + 1
    fig = Figure(figsize=(12, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for i, aid in enumerate(labs):
        ax = axes[i][0]
        ax.hist(summary["labs"][aid], bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.001], color="#4c72b0",
                edgecolor="white")
        ax.set_title(f"{aid}: scores ({len(summary['labs'][aid])} students)")
        ax.set_xlabel("score (% of the maximum)")
        ax.set_ylabel("students")
        ax = axes[i][1]
        ex = [(gid, v) for (a, gid), v in summary["exercises"].items() if a == aid]
        names = [gid for gid, _ in ex]
        rates = [100.0 * sum(v) / len(v) for _, v in ex]
        ax.barh(range(len(names)), rates, color="#55a868")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("pass rate (%)")
        ax.set_title(f"{aid}: pass rate per exercise")
    ax = axes[-1][0]
    top = summary["diagnoses"].most_common(12)
    if top:
        ax.barh(range(len(top)), [n for _, n in top], color="#c44e52")
        ax.set_yticks(range(len(top)), [t for t, _ in top])
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no diagnoses recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("most frequent diagnoses (backproplab.checks)")
    ax.set_xlabel("failed checks")
    ax = axes[-1][1]
    totals = Counter()
    for c in summary["reasons"].values():
        totals.update(c)
    names = [r for r in REASONS if totals.get(r)]
    ax.bar(range(len(names)), [totals[r] for r in names], color="#8172b2")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_title("grade cells by reason")
    fig.savefig(path, dpi=90)


def markdown(summary: dict, results: list[dict], intake_problems: int, elapsed: float | None = None) -> str:
    lines = ["# Class report", ""]
    students = {r["student_id"] for r in results}
    lines.append(f"{len(students)} students, {len(results)} graded notebooks"
                 + (f", {elapsed:.1f} s" if elapsed is not None else "") + ".")
    if intake_problems:
        lines.append(f"{intake_problems} submitted item(s) could not be placed: see `intake_report.md`.")
    errors = [r for r in results if any(c["reason"] == "grader_error" for c in r["cells"])]
    if errors:
        lines.append(f"**{len(errors)} notebook(s) hit a grader error and are not final**: run the command again.")
    lines += ["", "![class report](report.png)", "", "## Scores per lab", "",
              "| lab | students | mean % | median % | min % | max % |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for aid in sorted(summary["labs"]):
        v = sorted(summary["labs"][aid])
        med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
        lines.append(f"| {aid} | {len(v)} | {sum(v) / len(v):.1f} | {med:.1f} | {v[0]:.1f} | {v[-1]:.1f} |")
    lines += ["", "## Pass rate per exercise", "", "| lab | grade cell | pass rate | most frequent failure |",
              "| --- | --- | ---: | --- |"]
    fail_reasons: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in results:
        for c in r["cells"]:
            if c["reason"] not in PASSED and c["reason"] not in MANUAL:
                fail_reasons[(r["assignment"], c["grade_id"])][c["reason"]] += 1
    for (aid, gid), v in summary["exercises"].items():
        worst = fail_reasons[(aid, gid)].most_common(1)
        lines.append(f"| {aid} | {gid} | {100.0 * sum(v) / len(v):.0f}% ({sum(v)}/{len(v)}) | "
                     f"{worst[0][0] + ' (' + str(worst[0][1]) + ')' if worst else ''} |")
    predictions = {(aid, gid): v for (aid, gid), v in summary["exercises"].items()
                   if gid.startswith("test_predicted_")}
    if predictions:
        lines += ["", "## Predictions (predict, then check)", "",
                  "How often the class predicted the outcome of an experiment before running it: a low rate "
                  "names an intuition the lectures should build again.", "",
                  "| lab | topic | right predictions |", "| --- | --- | ---: |"]
        for (aid, gid), v in predictions.items():
            lines.append(f"| {aid} | {gid.removeprefix('test_predicted_')} | "
                         f"{100.0 * sum(v) / len(v):.0f}% ({sum(v)}/{len(v)}) |")
    restored = [(r["student_id"], r["assignment"], c["grade_id"]) for r in results for c in r["cells"]
                if c["reason"] == "restored_cell" or c.get("message", "").startswith("(grade cell ")]
    if restored:
        lines += ["", "## Grade cells restored from the assignment", "",
                  "The student deleted these grade cells (or turned them into markdown); the grader put the "
                  "released cell back and graded it.", "", "| student | lab | grade cell |", "| --- | --- | --- |"]
        lines += [f"| {st} | {aid} | {gid} |" for st, aid, gid in sorted(restored)]
    waiting = Counter(r["assignment"] for r in results for c in r["cells"] if c["reason"] == "needs_manual_grade")
    if waiting:
        lines += ["", "## Written answers waiting for a grader", "",
                  "Score them in nbgrader's formgrader; the next run of the grader reads the scores back.", "",
                  "| lab | answers waiting |", "| --- | ---: |"]
        lines += [f"| {aid} | {n} |" for aid, n in sorted(waiting.items())]
    advice = [(r["student_id"], r["assignment"], f) for r in results for f in r.get("policy") or []
              if isinstance(f, dict)]
    if advice:
        zeroed = any(f.get("zeroed") for _, _, f in advice)
        lines += ["", "## Policy findings (static scan)", "",
                  "Constructs a lab's rules forbid (autograd in a manual backward, torch.optim where the update is "
                  "the exercise) or that reach for the checks. The judge runs outside the student's process, so "
                  "none of them can change a verdict; they are listed for you to read"
                  + (" (this run scored the flagged exercises 0: `--policy zero`)." if zeroed else
                     ", not scored (`--policy zero` scores the flagged exercise 0)."), "",
                  "| student | lab | exercise | line | finding |", "| --- | --- | --- | --- | --- |"]
        for st, aid, f in sorted(advice, key=lambda t: (t[0], t[1], str(t[2].get("exercise")), t[2].get("line") or 0)):
            text = str(f.get("message", "")).replace("|", "\\|")
            lines.append(f"| {st} | {aid} | {f.get('exercise', '')} | {f.get('line', '')} | {text} |")
    lines += ["", "## Most frequent diagnoses", ""]
    top = summary["diagnoses"].most_common(10)
    if top:
        lines += ["| diagnosis | failed checks |", "| --- | ---: |"] + [f"| {t} | {n} |" for t, n in top]
    else:
        lines.append("No failure carried a `(diagnosis: ...)` marker.")
    lines += ["", "## Grade cells by reason", "", "| lab | " + " | ".join(REASONS) + " |",
              "| --- |" + " ---: |" * len(REASONS)]
    for aid in sorted(summary["reasons"]):
        c = summary["reasons"][aid]
        lines.append(f"| {aid} | " + " | ".join(str(c.get(r, 0)) for r in REASONS) + " |")
    return "\n".join(lines) + "\n"


def write(results: list[dict], out: Path, intake_problems: int = 0, elapsed: float | None = None) -> dict:
    summary = summarise(results)
    write_png(summary, out / "report.png")
    (out / "report.md").write_text(markdown(summary, results, intake_problems, elapsed))
    return summary
