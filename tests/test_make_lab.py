"""`make lab` as a new user runs it on a fresh clone: it must end with JupyterLab serving lab 1.

The clone is a real `git clone` of this repository (committed files only). By default it reuses the
environment this test runs in (`make lab VENV=<this venv>`, with the install step marked up to date
by `make -o`), so the test takes seconds and never reinstalls into the shared venv; set
BACKPROPLAB_MAKE_LAB_FRESH=1 to let `make lab` create and install the clone's own .venv as a first-time
user's would (a few minutes, needs the package index). BACKPROPLAB_CLONE_FROM=<git repo> clones another
repository instead of this one (to try a change to the Makefile before committing it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import browser_util as bu

pytestmark = pytest.mark.slow

REPO = Path(os.environ.get("BACKPROPLAB_CLONE_FROM", Path(__file__).resolve().parents[1]))
VENV = Path(sys.executable).parent.parent
FRESH = os.environ.get("BACKPROPLAB_MAKE_LAB_FRESH") == "1"
LAB1 = "lab1_perceptron/perceptron.ipynb"


@pytest.fixture()
def fresh_clone():
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to try `make lab` on a fresh clone")
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tmp = Path(tempfile.mkdtemp(prefix="backproplab-clone-"))
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(tmp / "backproplab")], check=True,
                       capture_output=True, timeout=120)
        yield tmp / "backproplab"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_make_lab_serves_lab1_on_a_fresh_clone(fresh_clone):
    if not (fresh_clone / "notebooks" / LAB1).is_file():
        pytest.skip("lab 1's release notebook is not committed yet")
    port = bu.free_port()
    token = "make-lab-test"
    home = Path(tempfile.mkdtemp(prefix="backproplab-make-lab-home-"))
    env = bu.lab_environment(token, home)
    env.pop("VIRTUAL_ENV", None)
    cmd = ["make", "--no-print-directory", "lab", "BROWSER=no", f"PORT={port}"]
    if not FRESH:
        if not (VENV / "bin" / "jupyter").exists():
            pytest.skip(f"{VENV} has no jupyter: run `make test` (which installs) first")
        cmd += [f"VENV={VENV}", "-o", f"{VENV}/.installed"]
    log = home / "make-lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=fresh_clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        page = bu.wait_http(f"{base}/lab/tree/{LAB1}?token={token}", 600 if FRESH else 90, proc, log)
        assert b"JupyterLab" in page or b"jupyter-config-data" in page
        status, body = bu.http_get(f"{base}/api/contents/{LAB1}?token={token}")
        assert status == 200, body[:500]
        model = json.loads(body)
        assert model["type"] == "notebook" and model["path"] == LAB1
        assert any("check_environment" in "".join(c["source"]) for c in model["content"]["cells"])
        status, _ = bu.http_get(f"{base}/api/contents/lab1_perceptron?token=wrong-token")
        assert status == 403, "the server must refuse a wrong token"
    finally:
        bu.stop_process_group(proc)
        text = log.read_text(errors="replace")
        shutil.rmtree(home, ignore_errors=True)
    assert bu.port_is_free(port), f"port {port} still in use after stopping `make lab`:\n{text[-3000:]}"
    # Served from the clone's notebooks/ (make lab's --notebook-dir), opening lab 1.
    assert f"Serving notebooks from local directory: {fresh_clone / 'notebooks'}" in text, text[-3000:]
