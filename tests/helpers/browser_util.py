"""Drive the labs as a student meets them: JupyterLab in headless Chromium.

Used by ``tests/test_browser.py``, ``tests/test_make_lab.py`` and ``tools/screenshots.py``:

- ``free_port()``, ``wait_http()``: a free local port, and polling a URL until it answers;
- ``LabServer``: JupyterLab from this environment on a copy of the labs, with a known token and
  its own settings (no autosave, no news pop-up, every cell in the DOM), stopped in ``stop()``;
- ``launch_chromium()``: Debian's Chromium through playwright (never ``playwright install``);
- ``LabPage``: open a notebook, wait for its kernel, run all cells, read the errors from the DOM
  and map them to the notebook's cells.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BACKPROPLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
TOKEN = "backproplab-browser-test"

# JupyterLab user settings for the tests: never write outputs back into the copies' files
# (autosave), no "receive Jupyter news?" notification over the notebook, and every cell kept in the
# DOM (windowing off) so errors can be read from the page and each cell mapped to its index.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when Chromium and playwright are both present."""
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package `playwright` is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` any more (connections left in TIME_WAIT do not count, as for a
    server that binds with SO_REUSEADDR, which jupyter does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> bytes:
    """Poll ``url`` until it answers 200; fail early (with the log) if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before answering {url}\n"
                               + (tail(log) if log else ""))
        try:
            status, body = http_get(url, timeout=5)
            if status == 200:
                return body
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})\n"
                       + (tail(log) if log else ""))


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group started with ``start_new_session=True`` (jupyter then shuts its
    kernels down); SIGKILL whatever is left after ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # kernels or children still in the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def lab_environment(token: str, home: Path) -> dict[str, str]:
    """The environment of a JupyterLab started for tests: this venv first on PATH, a known token,
    settings, workspaces and runtime files under ``home`` (the user's own are never touched)."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # tests set Agg; the kernel must use the inline backend like a student's
    env.pop("BACKPROPLAB_MNIST", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["JUPYTER_TOKEN"] = token
    settings = home / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "workspaces")
    env["JUPYTER_RUNTIME_DIR"] = str(home / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(home / "config")
    env["IPYTHONDIR"] = str(home / "ipython")
    return env


def copy_labs(dest: Path, assignments: list[str]) -> None:
    """``dest/solutions/<aid>`` and ``dest/notebooks/<aid>``: copies, so nothing the browser does
    can change the repository's notebooks."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", ".hypothesis", "__pycache__")
    for kind in ("solutions", "notebooks"):
        for aid in assignments:
            src = REPO / kind / aid
            if src.is_dir():
                shutil.copytree(src, dest / kind / aid, ignore=ignore)


class LabServer:
    """JupyterLab from this environment on ``root`` (a copy of the labs), on a free local port."""

    def __init__(self, root: Path, token: str = TOKEN, port: int | None = None):
        self.root = Path(root)
        self.token = token
        self.port = port or free_port()
        self.home = Path(tempfile.mkdtemp(prefix="backproplab-lab-home-"))
        self.log = self.home / "jupyter.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def start(self, timeout: float = 90) -> LabServer:
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands as the menus do
        ]
        if os.getuid() == 0:
            cmd.append("--allow-root")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=lab_environment(self.token, self.home),
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.url("api/status"), timeout, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, **kwargs):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **kwargs)


@dataclass
class CellError:
    index: int  # position in the notebook (the DOM shows cells in the same order)
    grade_id: str | None
    is_grade: bool
    ename: str
    evalue: str

    def __str__(self) -> str:
        where = self.grade_id or f"cell {self.index}"
        return f"{where}: {self.ename}: {self.evalue[:300]}"


# Reads every cell from the DOM: its kind, its prompt ("[3]:", "[*]:", "[ ]:") and every stderr
# output's text. JupyterLab renders a Python exception (an `error` output) as an
# application/vnd.jupyter.stderr output holding the traceback; a stream on stderr (a warning) has the
# same MIME type but no "Traceback" line, which is how the two are told apart.
_READ_CELLS_JS = r"""
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook')
             || document.querySelector('.jp-Notebook');
  if (!panel) return null;
  return Array.from(panel.querySelectorAll(':scope > .jp-Cell, :scope .jp-WindowedPanel-viewport > .jp-Cell'))
    .map(cell => {
      const code = cell.classList.contains('jp-CodeCell');
      const prompt = code ? (cell.querySelector('.jp-InputArea-prompt')?.textContent || '').trim() : '';
      const stderr = Array.from(cell.querySelectorAll(
          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
        .map(o => o.innerText);
      return {code, prompt, stderr};
    });
}
"""

# The kernel's status as the notebook's session context reports it ('idle', 'busy', 'starting', ...).
_KERNEL_STATUS_JS = r"""
() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  if (!ctx || !ctx.isReady) return 'not ready';
  const kernel = ctx.session && ctx.session.kernel;
  return kernel ? kernel.status : 'no kernel';
}
"""


def _error_from_text(text: str) -> tuple[str, str] | None:
    """``(ename, evalue)`` from a rendered traceback; None for stderr that is not an exception."""
    if "Traceback" not in text:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    ename, _, evalue = last.partition(": ")
    for ln in reversed(lines):  # the exception's own line, e.g. "AssertionError: ...": find its name
        head = ln.split(":", 1)[0].strip()
        if head.isidentifier() and (head.endswith(("Error", "Exception")) or head in ("KeyboardInterrupt",)):
            ename, _, evalue = ln.partition(": ")
            break
    return ename.strip(), evalue.strip()


class LabPage:
    """One notebook open in JupyterLab: run everything, then read what happened."""

    _opened = 0

    def __init__(self, page, server: LabServer, relpath: str):
        self.page = page
        self.server = server
        self.relpath = relpath
        self.nb = json.loads((server.root / relpath).read_text())

    def open(self, timeout: float = 90) -> LabPage:
        """Open the notebook: load JupyterLab at its URL, or, when this page already shows
        JupyterLab, open it with File > Open (the command), which skips reloading the application."""
        loaded = self.page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.shell)") \
            if self.page.url.startswith(self.server.base) else False
        if loaded:
            self.page.evaluate(
                """([path]) => window.jupyterapp.commands.execute('docmanager:open',
                                                                   {path, factory: 'Notebook'})
                             .then(() => true)""",
                [self.relpath])
        else:
            # A workspace of its own: JupyterLab would otherwise reopen (and start kernels for)
            # every notebook an earlier page of the same server had open.
            LabPage._opened += 1
            url = self.server.url(f"lab/workspaces/bpl-{os.getpid()}-{LabPage._opened}/tree/{self.relpath}")
            self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        self.page.wait_for_function(
            """([path]) => {
              const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
              return w && w.context && w.context.path === path && w.content.widgets.length > 0
                     && document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell');
            }""", arg=[self.relpath], timeout=timeout * 1000)
        self.wait_kernel("idle", timeout)
        return self

    def kernel_status(self) -> str:
        return self.page.evaluate(_KERNEL_STATUS_JS)

    def wait_kernel(self, status: str = "idle", timeout: float = 90) -> None:
        self.page.wait_for_function(f"() => ({_KERNEL_STATUS_JS})() === {json.dumps(status)}",
                                    timeout=timeout * 1000, polling=200)

    def _execute(self, command: str, active_cell: int | None = None) -> None:
        self.page.evaluate(
            r"""([command, active]) => {
              const app = window.jupyterapp;
              if (active !== null) app.shell.currentWidget.content.activeCellIndex = active;
              const run = window.__bplRun = {done: false, result: null};
              app.commands.execute(command).then(r => { run.result = r; run.done = true; },
                                                 e => { run.result = String(e); run.done = true; });
            }""", [command, active_cell])

    def run_all(self, timeout: float = 180) -> float:
        """Run > Run All Cells, as a student does; returns the seconds until every code cell has run.

        JupyterLab stops a run at the first cell that raises (a failing check in the untouched
        release): as a student would, the run then continues from the next cell
        (Run > Run Selected Cell and All Below) until the end. ``self.stops`` lists where it stopped.
        """
        start = time.perf_counter()
        deadline = start + timeout
        self.stops: list[int] = []
        self._execute("notebook:run-all-cells")
        for _ in range(len(self.nb["cells"]) + 1):
            left = max(deadline - time.perf_counter(), 1)
            self.page.wait_for_function("() => window.__bplRun && window.__bplRun.done",
                                        timeout=left * 1000, polling=250)
            self.wait_kernel("idle", max(deadline - time.perf_counter(), 1))
            cells = self.cells()
            pending = [i for i, c in enumerate(cells) if c["code"] and not re.match(r"^\[\d+\]", c["prompt"])]
            if not pending:
                return time.perf_counter() - start
            self.stops.append(pending[0])
            self._execute("notebook:run-all-below", active_cell=pending[0])
        raise RuntimeError(f"Run All did not reach the end of {self.relpath} (stopped at cells {self.stops})")

    def show_top(self) -> None:
        """Hide the side panels and scroll back to the notebook's first cell (for screenshots)."""
        self.page.evaluate(
            r"""() => {
              const app = window.jupyterapp;
              app.shell.collapseLeft(); app.shell.collapseRight();
              const nb = app.shell.currentWidget.content;
              nb.activeCellIndex = 0;
              nb.deselectAll();
              document.activeElement?.blur();
              // every scrollable box from the first cell up (the notebook's scroll container differs
              // between JupyterLab versions)
              for (let el = nb.widgets[0].node; el; el = el.parentElement) if (el.scrollTop) el.scrollTop = 0;
            }""")
        self.page.wait_for_timeout(500)

    def cell(self, index: int):
        """The playwright locator of cell ``index`` of this notebook."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def cells(self) -> list[dict]:
        cells = self.page.evaluate(_READ_CELLS_JS)
        if cells is None:
            raise RuntimeError("no notebook in the page")
        if len(cells) != len(self.nb["cells"]):
            raise RuntimeError(f"the page shows {len(cells)} cells, the notebook file has {len(self.nb['cells'])}")
        return cells

    def errors(self) -> list[CellError]:
        """Every cell whose output shows a Python exception, with its nbgrader grade id if any."""
        found = []
        for i, (dom, cell) in enumerate(zip(self.cells(), self.nb["cells"])):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            for text in dom["stderr"]:
                parsed = _error_from_text(text)
                if parsed:
                    found.append(CellError(i, meta.get("grade_id"), bool(meta.get("grade")), *parsed))
        return found

    def model_error_count(self) -> int:
        """Error outputs in the notebook model (a cross-check of what the DOM shows)."""
        return self.page.evaluate(
            r"""() => {
              const nb = window.jupyterapp.shell.currentWidget.content;
              let n = 0;
              for (const cell of nb.widgets) {
                const outputs = cell.model.outputs;
                if (!outputs) continue;
                for (let i = 0; i < outputs.length; i++) if (outputs.get(i).type === 'error') n++;
              }
              return n;
            }""")

    def close(self) -> None:
        """Shut the notebook's kernel down and close its tab without saving (the page stays on
        JupyterLab, ready for the next notebook)."""
        with contextlib.suppress(Exception):
            self.page.evaluate(
                """async ([path]) => {
                  const app = window.jupyterapp;
                  for (const w of Array.from(app.shell.widgets('main'))) {
                    if (!w.context || w.context.path !== path) continue;
                    await w.sessionContext.shutdown();
                    w.context.model.dirty = false;  // never asks "save changes?", never writes
                    w.dispose();
                  }
                }""", [self.relpath])


def lab_paths(assignments: list[str]) -> list[tuple[str, str, str]]:
    """``(aid, kind, relpath)`` for every solution and release notebook that exists."""
    from backproplab_autograder.course import ASSIGNMENTS

    out = []
    for aid in assignments:
        for kind in ("solutions", "notebooks"):
            rel = f"{kind}/{aid}/{ASSIGNMENTS[aid]}"
            if (REPO / rel).is_file():
                out.append((aid, kind, rel))
    return out


# Installs, before a key press on a slider, the probes that time it: a keydown listener (capture
# phase, so it runs first) stamps the input, a MutationObserver on the explorer's <img> sees the new
# src the kernel's PNG produces, waits for the image to decode, then for the next animation frame
# (the frame that paints it). Results land in window.__bplMeasure.
_ARM_MEASURE_JS = r"""
([label]) => {
  const slider = Array.from(document.querySelectorAll('.widget-slider'))
      .find(s => (s.querySelector('.widget-label')?.textContent || '').trim() === label);
  if (!slider) return 'no slider labelled ' + label;
  const box = slider.closest('.widget-vbox');
  const img = box && box.querySelector('img');
  if (!img) return 'no image next to the slider ' + label;
  const m = window.__bplMeasure = {input: null, src: null, painted: null, before: img.src, done: false};
  const onKey = () => { if (m.input === null) m.input = performance.now(); };
  document.addEventListener('keydown', onKey, {capture: true, once: true});
  const obs = new MutationObserver(async () => {
    if (img.src === m.before || m.src !== null) return;
    m.src = performance.now();
    obs.disconnect();
    try { await img.decode(); } catch (e) { /* an undecodable image still counts as changed */ }
    requestAnimationFrame(() => { m.painted = performance.now(); m.done = true; });
  });
  obs.observe(img, {attributes: true, attributeFilter: ['src']});
  slider.querySelector('.noUi-handle').focus();
  return 'ok';
}
"""


def slider_value(page, label: str) -> str:
    """The readout next to the slider labelled ``label``."""
    return page.evaluate(
        r"""([label]) => {
          const s = Array.from(document.querySelectorAll('.widget-slider'))
             .find(s => (s.querySelector('.widget-label')?.textContent || '').trim() === label);
          return s ? (s.querySelector('.widget-readout')?.innerText || s.querySelector('.widget-readout')?.value || '') : null;
        }""", [label])


def widget_box(page, label: str):
    """The playwright locator of the innermost widget box (VBox) holding the slider ``label``:
    the whole explorer or stepper."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".widget-vbox", has=page.locator(".widget-slider .widget-label", has_text=exact)).last


def explorer_image(page, label: str):
    """The playwright locator of the figure in the widget box that holds the slider ``label``."""
    return widget_box(page, label).locator("img").first


def time_slider_move(page, label: str, key: str = "ArrowRight", timeout: float = 30) -> float:
    """Press ``key`` on the slider labelled ``label``; milliseconds from the key press to the
    frame that paints the explorer's new figure."""
    status = page.evaluate(_ARM_MEASURE_JS, [label])
    if status != "ok":
        raise RuntimeError(status)
    page.keyboard.press(key)
    page.wait_for_function("() => window.__bplMeasure && window.__bplMeasure.done", timeout=timeout * 1000,
                           polling="raf")
    m = page.evaluate("() => window.__bplMeasure")
    return m["painted"] - m["input"]
