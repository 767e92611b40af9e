"""The environment check, the needs() guard, nbtool's round trip and the release checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from backproplab import env, needs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import nbtool  # noqa: E402


def test_environment_check_passes_here_and_names_what_is_wrong(monkeypatch, capsys):
    assert env.problems() == []
    assert env.check_environment() is True
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


def test_nbtool_round_trip_is_exact_and_sets_nbgrader_metadata():
    text = "\n".join([
        "# %% [markdown]", "# Title", "",
        "# %% [code]", "import torch",
        "# %% [solution] id=f", "def f():", "    ### BEGIN SOLUTION", "    return 1", "    ### END SOLUTION",
        "# %% [test] id=test_f points=3", "assert f() == 1",
    ])
    nb = nbtool.text_to_notebook(text)
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert meta[0] is None and meta[1] is None
    assert meta[2]["solution"] and not meta[2]["grade"] and meta[2]["grade_id"] == "f"
    assert meta[3]["grade"] and meta[3]["locked"] and meta[3]["points"] == 3
    again = nbtool.text_to_notebook(nbtool.notebook_to_text(nb))
    assert [(c.cell_type, c.source, c.metadata) for c in again.cells] == [(c.cell_type, c.source, c.metadata) for c in nb.cells]


def test_nbtool_strip_removes_outputs(tmp_path):
    nb = nbtool.text_to_notebook("# %% [code]\nprint(1)")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 4
    path = tmp_path / "x.ipynb"
    nbtool.write_notebook(nb, path)
    assert subprocess.run([sys.executable, str(REPO / "tools" / "nbtool.py"), "strip", str(path)]).returncode == 0
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None
