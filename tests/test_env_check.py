"""The environment check names missing data in words (the notebooks' first code cell)."""

from __future__ import annotations

import subprocess
import sys

from backproplab import env


def test_mnist_folder_problems_are_said_in_words(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKPROPLAB_MNIST", raising=False)
    assert env.mnist_problem() is None  # unset: the built-in digits are used

    monkeypatch.setenv("BACKPROPLAB_MNIST", str(tmp_path / "nowhere"))
    found = env.problems()
    assert len(found) == 1
    assert found[0].startswith("Data not found") and "does not exist" in found[0] and "unset it" in found[0]

    monkeypatch.setenv("BACKPROPLAB_MNIST", str(tmp_path))
    assert "holds none of the MNIST IDX files" in env.mnist_problem()

    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    message = env.mnist_problem()
    assert "train-images-idx3-ubyte, train-labels-idx1-ubyte" in message and "Only the test split" in message

    (tmp_path / "train-images.idx3-ubyte").write_bytes(b"")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    assert env.mnist_problem() is None

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert "not a folder" in env.mnist_problem(not_a_folder)


def test_check_prints_words_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BACKPROPLAB_MNIST", str(tmp_path / "nowhere"))
    result = env.check_environment()
    assert bool(result) is False and not result.ok and any("Data not found" in p for p in result.problems)
    out = capsys.readouterr().out
    assert "Environment check: some things need attention." in out and "Traceback" not in out
    assert "Data not found" in out


def test_widget_probe_falls_back_to_words():
    bundle = env._widget_probe()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Widgets are not rendering here")


def test_runs_from_a_terminal():
    proc = subprocess.run([sys.executable, "-m", "backproplab.env"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Environment check: OK" in proc.stdout


def test_a_notebook_cell_running_the_check_shows_the_message_and_no_stray_value():
    """The check's cell is the last expression of its cell: IPython must not echo `True` below the words."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        formatted, _ = shell.display_formatter.format(env.EnvironmentCheck(True))
        assert formatted == {}  # nothing is published for the result itself
        formatted, _ = shell.display_formatter.format(env.EnvironmentCheck(False, ("x",)))
        assert formatted == {}
    finally:
        InteractiveShell.clear_instance()
