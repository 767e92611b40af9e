"""Grading with nbgrader's db_url pointed at PostgreSQL (a throw-away local server on a Unix socket).

Skipped when initdb/pg_ctl or psycopg2 are missing. PostgreSQL refuses to run as root, so when the
tests run as root the server runs as an unprivileged uid."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from backproplab_autograder import tinycourse
from backproplab_autograder.cli import grade_class
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.slow


def _server_uid() -> int:
    """initdb needs a uid with a passwd entry: the postgres user if there is one, else nobody."""
    import pwd

    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    pytest.skip("no unprivileged user with a passwd entry to run PostgreSQL")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


@pytest.fixture
def postgres():
    pytest.importorskip("psycopg2")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl)")
    base = Path(tempfile.mkdtemp(prefix="bpl-pg-"))  # under /tmp: reachable by the server's uid
    os.chmod(base, 0o755)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv: cannot start PostgreSQL")
        uid = _server_uid()
        os.chown(base, uid, uid)
        os.chown(sock, uid, uid)
        prefix = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    env = dict(os.environ, HOME=str(base))
    try:
        subprocess.run(prefix + [initdb, "-D", str(data), "-U", "grader", "--auth=trust"], check=True,
                       capture_output=True, env=env, cwd=base, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                                 f"-k {sock} -c listen_addresses='' -c max_connections=40", "start"],
                       check=True, capture_output=True, env=env, cwd=base, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {exc}: {getattr(exc, 'stderr', b'')[-300:]!r}")
    try:
        yield f"postgresql+psycopg2://grader@/postgres?host={sock}"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       env=env, cwd=base, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_class_graded_into_a_postgresql_gradebook(tmp_path, postgres):
    from nbgrader.api import Gradebook

    source = tinycourse.build(tmp_path)
    subs = tmp_path / "subs"
    tinycourse.write_student(subs, "p1", tinycourse.submission())
    tinycourse.write_student(subs, "p2", tinycourse.submission({"cube": "def cube(x):\n    return 0\n"}))
    settings = Settings(out=tmp_path / "out", limits=Limits(cell_timeout=10), jobs=2, db_url=postgres,
                        source_dir=source, progress=False)
    summary = grade_class(subs, settings, echo=lambda *a: None)
    assert summary["grader_errors"] == 0
    with open(tmp_path / "out" / "grades.csv") as fh:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(fh)} == {"p1": "4", "p2": "3"}
    with Gradebook(postgres, "backprop-lab") as gb:
        assert gb.find_submission("tiny", "p2").score == 3.0
    assert not (tmp_path / "out" / "course" / "gradebook.db").exists()
