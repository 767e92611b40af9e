"""The grader's records: one ``Reason`` vocabulary for every stage, and the typed row of one grade cell.

The stages of a grading job and the module of each: **intake** (``intake.py``: files in, normalised
notebooks out), **precheck** (``precheck.py``: repair, rebuild from the release, static scan as advice),
**worker** (``execute.SandboxedExecute``: the student's cells in the sandboxed kernel, faults observed
by the harness), **judge** (``judge.py``: the grade cells, in the grader's process, over the wire of
``backproplab.remote``), **records** (``scoring.SaveJudgedGrades`` writes the judge's scores through
nbgrader's gradebook API; ``results.py`` turns gradebook + records into these rows and the CSVs).
Every stage names an outcome with a :class:`Reason`; nothing else is written in the CSV's reason
column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why a grade cell has its score (the ``reason`` column of grades_detailed.csv)."""

    PASSED = "passed"                        # full points
    WRONG_ANSWER = "wrong_answer"            # a check failed, or the student's code raised
    TIMEOUT = "timeout"                      # observed: a cell or a call into the student's code ran too long
    CRASH = "crash"                          # observed: the kernel died
    OUT_OF_MEMORY = "out_of_memory"          # observed: the job's cgroup counters or the address-space limit
    OUTPUT_CAP = "output_cap"                # observed: more output than the limit
    MISSING_CELL = "missing_cell"            # --unsafe only: a deleted grade cell, put back, not run
    RESTORED_CELL = "restored_cell"          # a deleted grade cell, restored from the release, ran and passed
    UNGRADABLE = "ungradable"                # the notebook could not be read or was refused at intake
    POLICY = "policy"                        # --policy zero finding, or a process/file limit observed
    GRADER_ERROR = "grader_error"            # the grader itself failed (never final)
    NEEDS_MANUAL_GRADE = "needs_manual_grade"  # a written answer waiting for a person
    MANUALLY_GRADED = "manually_graded"      # a written answer a person scored
    PARTIAL = "partial"                      # a self-scoring cell (bug hunt) gave part of its points


MANUAL = frozenset({Reason.NEEDS_MANUAL_GRADE, Reason.MANUALLY_GRADED})
FAULTS = frozenset({Reason.TIMEOUT, Reason.CRASH, Reason.OUT_OF_MEMORY, Reason.OUTPUT_CAP, Reason.POLICY})


@dataclass
class CellRecord:
    """One grade cell of one graded notebook, as the CSVs and the report read it."""

    grade_id: str
    score: float
    max_score: float
    reason: Reason
    message: str = ""
    diagnoses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reason = Reason(self.reason)  # refuses a reason outside the vocabulary

    def as_row(self) -> dict:
        return {"grade_id": self.grade_id, "score": self.score, "max_score": self.max_score,
                "reason": str(self.reason), "message": self.message, "diagnoses": list(self.diagnoses)}
