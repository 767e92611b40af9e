"""Execute notebooks in a fresh kernel and report which cells raised."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.utils import is_grade

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CellError:
    index: int
    grade_id: str | None
    is_grade: bool
    is_solution: bool
    ename: str
    evalue: str

    def __str__(self) -> str:
        where = self.grade_id or f"cell {self.index}"
        return f"{where}: {self.ename}: {self.evalue[:400]}"


@dataclass
class Run:
    nb: nbformat.NotebookNode
    errors: list[CellError]
    seconds: float

    def grade_ids(self) -> list[str]:
        return [c.metadata["nbgrader"]["grade_id"] for c in self.nb.cells
                if is_grade(c)]


def execute(path: Path, timeout: int = 300) -> Run:
    """Run every cell (errors allowed) with the notebook's folder as working directory."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    errors = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(CellError(i, meta.get("grade_id"), bool(meta.get("grade")),
                                        bool(meta.get("solution")), out.get("ename", ""), out.get("evalue", "")))
    return Run(nb, errors, seconds)
