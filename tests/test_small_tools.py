"""The environment check, the needs() guard, the text-source round trip and the release checker."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from backproplab import env, needs
from backproplab_autograder import sources

REPO = Path(__file__).resolve().parents[1]


def test_environment_check_passes_here_and_names_what_is_wrong(monkeypatch, capsys):
    assert env.problems() == []
    result = env.check_environment()
    assert bool(result) is True and result.ok and result.problems == ()
    assert "Environment check: OK" in capsys.readouterr().out
    monkeypatch.setattr(env, "EXPECTED_TORCH", "9.9.9")
    found = env.problems()
    assert len(found) == 1 and "9.9.9" in found[0] and "make lab" in found[0]


def test_needs_skips_unwritten_exercises_and_keeps_real_errors(capsys):
    with needs("train_perceptron"):
        raise NotImplementedError()
    assert "needs `train_perceptron`" in capsys.readouterr().out
    with needs("f"):
        undefined_name  # noqa: B018, F821
    assert "run the cells above" in capsys.readouterr().out
    with pytest.raises(ZeroDivisionError):
        with needs("f"):
            1 / 0  # noqa: B018


def test_text_source_round_trip_keeps_cells_and_nbgrader_metadata():
    text = "\n".join([
        "# %% [markdown]", "# Title", "",
        "# %%", "import torch", "",
        '# %% nbgrader={"grade": false, "grade_id": "f", "locked": false, "schema_version": 3, "solution": true}',
        "def f():", "    ### BEGIN SOLUTION", "    return 1", "    ### END SOLUTION", "",
        '# %% nbgrader={"grade": true, "grade_id": "test_f", "locked": true, "points": 3, "schema_version": 3, '
        '"solution": false}',
        "assert f() == 1",
    ])
    nb = sources.notebook_from_text(text)
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    assert meta[0] is None and meta[1] is None
    assert meta[2]["solution"] and not meta[2]["grade"] and meta[2]["grade_id"] == "f"
    assert meta[3]["grade"] and meta[3]["locked"] and meta[3]["points"] == 3
    # ids: the grade id where there is one, the position otherwise; no outputs
    assert [c["id"] for c in nb.cells] == ["cell-000", "cell-001", "f", "test_f"]
    assert nb.cells[2].source.splitlines()[1].strip() == "### BEGIN SOLUTION"
    again = sources.notebook_from_text(sources.text_from_notebook(nb))
    assert [(c.cell_type, c.source, c.metadata) for c in again.cells] == [(c.cell_type, c.source, c.metadata) for c in nb.cells]
    # generating twice gives the same bytes: an unchanged source never shows in a diff
    assert sources.render(sources.notebook_from_text(text)) == sources.render(nb)


def test_text_from_notebook_drops_outputs():
    nb = sources.notebook_from_text("# %%\nprint(1)")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 4
    text = sources.text_from_notebook(nb)
    cell = sources.notebook_from_text(text).cells[0]
    assert cell.outputs == [] and cell.execution_count is None and cell.source == "print(1)"
