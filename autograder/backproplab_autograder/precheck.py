"""Look at a submitted notebook before nbgrader does: refuse what cannot be graded, repair the structure.

* Ungradable (recorded, never sent to nbgrader): an empty file, bytes that are not JSON, JSON that
  is not a notebook, a notebook with no cells.
* A grade cell deleted, or turned into markdown (or raw): the notebook that is graded is rebuilt
  from the release (below), so the released cell is back in place: it runs and is scored like any
  other, and a passing one is flagged ``restored_cell`` in the results. (In the measurement-only
  ``--unsafe`` mode, which grades the submission as is, the cell is put back flagged, not run, and
  scores 0: reason ``missing_cell``.)
* A grade cell duplicated: the first copy keeps its grade id, the others become plain cells (they
  still run; they are not graded), as nbgrader's ``DeduplicateIds`` would do with the last.
* A kernel name the grader does not know: replaced by the release's kernelspec (the grader runs
  its own sandbox kernel anyway); noted.

Then (unless ``reconstruct=False``, the measurement-only ``--unsafe`` mode) the notebook nbgrader
grades is **rebuilt from the release**: the release's import block (its first code cell), its
nbgrader cells in the release's order and with the release's metadata, and, from the submission,
only the *source* of each solution cell, matched by grade id (a missing one: the release's stub).
Every lesson cell, markdown cell and cell the student added is dropped: grade cells depend only on
the import block and the solution cells (docs/contract.md rule 6, proven by tests/helpers/gradecells.py),
so nothing a grade cell needs is lost, and code placed anywhere else never runs. The names that the
dropped cells define are kept (``Precheck.dropped_names``) so that a failure caused by a helper written
outside its exercise cell can say so. Manually graded answer cells (markdown written answers) are kept
with the student's text: nbgrader never runs them and a person scores them in the formgrader.

Last, the solution cells are scanned (:mod:`policy`, nothing runs): an exercise that uses autograd
or torch.optim where it is forbidden, or any solution cell with a tampering construct, is replaced
by the release's stub (the student's code kept below it as comments, with the finding), and the
exercise's grade cells are flagged ``policy``: the executor does not run them and they score 0.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import policy as policy_mod
from .execute import MISSING_KEY
from .intake import refusal


@dataclass
class Precheck:
    ungradable: str | None = None                         # why, when the notebook cannot be graded
    missing: dict[str, str] = field(default_factory=dict)  # grade_id -> "deleted" / "turned into markdown"
    notes: list[str] = field(default_factory=list)
    policy: dict[str, str] = field(default_factory=dict)   # grade cell id -> policy message
    findings: list = field(default_factory=list)           # policy.Finding / policy.TamperFinding
    dropped_names: dict[str, int] = field(default_factory=dict)  # name -> index of the dropped cell defining it


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if meta.get("grade") else None


def _nbgrader_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def check(path: Path, release: nbformat.NotebookNode, out: Path, known_kernels: set[str] | None = None,
          *, reconstruct: bool = True, scan: bool = True, assignment: str = "",
          protected: set[str] | None = None, policy_zero: bool = False) -> Precheck:
    """Check ``path`` against the released notebook; write the notebook nbgrader grades to ``out``."""
    result = Precheck()
    why = refusal(path)  # a link, FIFO, huge or absurdly nested file: never read (intake.py)
    if why:
        result.ungradable = why
        return result
    raw = Path(path).read_bytes()
    if not raw.strip():
        result.ungradable = "the file is empty"
        return result
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError as exc:
        result.ungradable = f"the file is not valid JSON ({exc.msg} at line {exc.lineno})"
        return result
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        result.ungradable = "the file is JSON but not a Jupyter notebook"
        return result
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any reader failure makes the file ungradable
        result.ungradable = f"the notebook cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        return result
    if not nb.cells:
        result.ungradable = "the notebook has no cells"
        return result
    for cell in nb.cells:  # a cell without a source or metadata key would trip nbgrader
        cell.setdefault("metadata", nbformat.NotebookNode())
        cell.setdefault("source", "")
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)

    release_grades = [c for c in release.cells if _grade_id(c)]
    order = [_nbgrader_id(c) for c in release.cells if _nbgrader_id(c)]

    # duplicates: keep the first
    seen: set[str] = set()
    for cell in nb.cells:
        gid = _nbgrader_id(cell)
        if gid is None:
            continue
        if gid in seen:
            cell.metadata.pop("nbgrader", None)
            result.notes.append(f"grade cell {gid} appears more than once: the first copy is graded")
        else:
            seen.add(gid)

    # turned into markdown / raw
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid and cell.cell_type != "code":
            ref = next((c for c in release_grades if _grade_id(c) == gid), None)
            if ref is None or ref.cell_type != "code":
                continue
            why = f"turned into a {cell.cell_type} cell"
            cell.cell_type = "code"
            cell.outputs = []
            cell.execution_count = None
            cell.pop("attachments", None)
            cell.metadata[MISSING_KEY] = {"missing_cell": why}
            result.missing[gid] = why

    # deleted: put the released cell back after the nbgrader cell that precedes it in the release
    present = {_nbgrader_id(c) for c in nb.cells if _nbgrader_id(c)}
    for ref in release_grades:
        gid = _grade_id(ref)
        if gid in present:
            continue
        cell = copy.deepcopy(ref)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata[MISSING_KEY] = {"missing_cell": "deleted"}
        ids = {c.get("id") for c in nb.cells}
        if cell.get("id") in ids:
            cell["id"] = f"restored-{gid}"[:64]
        before = order[: order.index(gid)]
        where = len(nb.cells)
        for prev in reversed(before):
            idx = next((i for i, c in enumerate(nb.cells) if _nbgrader_id(c) == prev), None)
            if idx is not None:
                where = idx + 1
                break
        else:
            if before == []:
                where = 0
        nb.cells.insert(where, cell)
        present.add(gid)
        result.missing[gid] = "deleted"

    name = nb.metadata.get("kernelspec", {}).get("name")
    if known_kernels is not None and name not in known_kernels:
        result.notes.append(f"the notebook names kernel {name!r}, which the grader does not have: "
                            "graded with the course's kernel")
        if "kernelspec" in release.metadata:
            nb.metadata["kernelspec"] = copy.deepcopy(release.metadata["kernelspec"])
    for gid, why in result.missing.items():
        result.notes.append(f"grade cell {gid} was {why}: restored from the assignment, "
                            + ("run and scored" if reconstruct else "scored 0"))
    if reconstruct:
        nb = rebuild(nb, release, result)
        if scan:
            apply_policy(nb, assignment, protected or set(), result, zero=policy_zero)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = []
            cell.execution_count = None
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return result


def rebuild(nb: nbformat.NotebookNode, release: nbformat.NotebookNode, result: Precheck) -> nbformat.NotebookNode:
    """The notebook nbgrader grades: the release's import block and nbgrader cells, the student's
    solution-cell sources (see the module docstring)."""
    submitted = {}
    for index, cell in enumerate(nb.cells):
        gid = _nbgrader_id(cell)
        if gid is not None and gid not in submitted:
            submitted[gid] = cell
        elif gid is None and cell.get("cell_type") == "code":
            for name in _top_level_names(cell.get("source", "")):
                result.dropped_names.setdefault(name, index)
    code = [c for c in release.cells if c.get("cell_type") == "code"]
    first = code[0] if code else None
    cells = []
    for ref in release.cells:
        meta = ref.get("metadata", {}).get("nbgrader", {})
        manual = bool(meta) and ref.get("cell_type") == "markdown" and (meta.get("grade") or meta.get("task"))
        if ref is not first and not manual and (ref.get("cell_type") != "code" or not meta):
            continue  # lesson and markdown cells are not graded and not run
        cell = copy.deepcopy(ref)
        gid = meta.get("grade_id")
        sub = submitted.get(gid) if gid else None
        if manual:
            # a written answer: the student's text (never run), kept for the formgrader
            if sub is not None and meta.get("solution"):
                cell.source = sub.get("source", "")
        elif meta.get("solution"):
            if sub is not None and sub.get("cell_type") == "code":
                cell.source = sub.get("source", "")
            else:
                why = "missing" if sub is None else f"a {sub.get('cell_type')} cell"
                result.notes.append(f"solution cell {gid} is {why}: graded as the assignment's empty exercise")
        # a grade cell the student deleted or turned into markdown is the release's cell here: it runs
        cells.append(cell)
    out = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(release.metadata))
    out.nbformat, out.nbformat_minor = release.get("nbformat", 4), release.get("nbformat_minor", 5)
    return out


def _top_level_names(source: str) -> list[str]:
    """Functions, classes and assigned names a cell defines at top level (none if it does not parse)."""
    import ast

    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
    return names


def _commented(source: str) -> str:
    return "\n".join("# " + line if line.strip() else "#" for line in source.splitlines())


def apply_policy(nb: nbformat.NotebookNode, assignment: str, protected: set[str], result: Precheck,
                 zero: bool = False) -> None:
    """Scan the solution cells. The findings are advice for the instructor's report (the construct and its
    line); only with ``zero`` (``--policy zero``) does a flagged exercise's cell become the stub and its
    grade cells ``policy``. The grade cells run in the judge, outside the student's process, so what the
    scan looks for (patched checks, hooks, autograd where a rule forbids it) can no longer change a
    verdict: the scan only reports what a rule forbids and the judge cannot observe."""
    solutions = [c for c in nb.cells if c.get("cell_type") == "code"
                 and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    only = nbformat.v4.new_notebook(cells=solutions)
    findings = list(policy_mod.scan(only, assignment)) + list(policy_mod.tampering(nb, protected))
    if not findings:
        return
    result.findings = findings
    if not zero:
        for f in findings:
            result.notes.append(f"advice (not scored): {f.message()}")
        return
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    first: dict[str, object] = {}
    for f in findings:
        first.setdefault(f.exercise, f)
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    for exercise, finding in first.items():
        message = finding.message()
        more = sum(1 for f in findings if f.exercise == exercise) - 1
        if more:
            message += f" (and {more} more finding(s) in this cell)"
        result.notes.append(message)
        for cell in solutions:
            if cell.metadata["nbgrader"].get("grade_id") == exercise:
                original = cell.source
                cell.source = (f"# {message}\n# Your code for this exercise is shown below as comments; it was not "
                               f"run.\n{_commented(original)}\n{stub}\n")
        for gid in policy_mod.grade_ids_for(exercise, grade_ids):
            result.policy[gid] = message
            for cell in nb.cells:
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid:
                    cell.metadata.setdefault(MISSING_KEY, {})["policy"] = message
