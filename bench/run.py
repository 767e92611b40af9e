"""``make bench``: how fast the course runs and grades, measured side by side in one run.

Prints one table and writes it as JSON to ``bench/results/<timestamp>.json`` (git ignores it).
Every figure is the median of several repetitions, with the spread (min-max). Nothing here fails
on a number: a section that cannot run (a lab not written yet, no demo class) says why and moves on.

    python -m bench.run                 # everything
    python -m bench.run --only engine   # one section: notebooks, grading, widgets, engine, backprop, cluster
    python -m bench.run --repeat 5      # more repetitions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

ROWS: list[dict] = []


def record(section: str, name: str, samples: list[float] | None, unit: str = "s", note: str = "") -> None:
    row = {"section": section, "name": name, "unit": unit, "note": note}
    if samples:
        row.update(median=statistics.median(samples), min=min(samples), max=max(samples), n=len(samples))
    ROWS.append(row)
    shown = "-" if not samples else f"{row['median']:.4g} {unit} ({row['min']:.3g}-{row['max']:.3g}, n={row['n']})"
    print(f"  {name:<58} {shown}  {note}", flush=True)


def repeat(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def solution_namespace(aid: str, ids: list[str]) -> dict:
    """Execute the import block and the named solution cells of a lab: the reference answers."""
    from tests.helpers.gradecells import lab_cells

    setup, solutions, _ = lab_cells(aid)
    ns: dict = {"__name__": "__bench__"}
    exec(compile(setup, f"<{aid}:setup>", "exec"), ns)
    for sid in ids:
        exec(compile(solutions[sid], f"<{aid}:{sid}>", "exec"), ns)
    return ns


# --- notebooks ---------------------------------------------------------------------------------

FLOOR_NOTEBOOK = """\
# %%
import torch
import matplotlib.pyplot as plt
from backproplab import checks, data, env, needs, plots, widgets
# %%
env.check_environment()
"""


def bench_notebooks(n: int) -> None:
    from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS, available_assignments
    from backproplab_autograder.sources import notebook_from_text, render

    from tests.helpers.nbrun import execute

    print("Solution notebooks executed headless (nbclient, fresh kernel each time)")
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "floor.ipynb"
        floor.write_text(render(notebook_from_text(FLOOR_NOTEBOOK)))
        floor_times = [execute(floor).seconds for _ in range(n)]
    record("notebooks", "floor: kernel start + imports + env check", floor_times)
    floor_median = statistics.median(floor_times)
    for aid in available_assignments():
        runs = [execute(SOLUTIONS / aid / ASSIGNMENTS[aid]) for _ in range(n)]
        errors = sum(len(r.errors) for r in runs)
        times = [r.seconds for r in runs]
        record("notebooks", aid, times, note=f"over floor {statistics.median(times) - floor_median:+.1f} s"
               + (f"; {errors} cell errors!" if errors else ""))


# --- grading -----------------------------------------------------------------------------------

def bench_grading(n: int) -> None:
    try:
        from backproplab_autograder import demo as demo_mod
    except Exception as exc:  # the demo class is part of the class-grading work
        record("grading", "demo class", None, note=f"unavailable ({type(exc).__name__}: {exc})")
        return
    if not hasattr(demo_mod, "build_submissions"):
        record("grading", "demo class", None, note="backproplab_autograder.demo.build_submissions missing")
        return
    print("Grading the demo class (seconds per notebook)")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        count = demo_mod.build_submissions(subs)
        exe = Path(sys.executable).parent / "backproplab-grade"

        def grade(tag: str, jobs: int, env: dict | None = None, extra: tuple = ()) -> tuple[list[float], Path]:
            """Grade the class ``n`` times into fresh folders; seconds per notebook, and the last folder."""
            times, out = [], Path(tmp)
            for i in range(n):
                out = Path(tmp) / f"{tag}-{i}"
                start = time.perf_counter()
                subprocess.run([str(exe), str(subs), "--out", str(out), "--jobs", str(jobs), *extra], check=True,
                               capture_output=True, env={**_tool_env(), **(env or {})})
                times.append((time.perf_counter() - start) / count)
            return times, out

        per_jobs = {}
        for jobs in (1, 2):
            times, out = grade(f"out-{jobs}", jobs)
            per_jobs[jobs] = statistics.median(times)
            record("grading", f"backproplab-grade --jobs {jobs} ({count} notebooks)", times, "s/notebook")
            if jobs == 2:
                breakdown(out, f"--jobs {jobs}")
        # scores only (what `nbgrader autograde` alone makes): no feedback pages
        times, _ = grade("scores", 2, extra=("--no-feedback",))
        per_jobs["scores"] = statistics.median(times)
        record("grading", "backproplab-grade --jobs 2 --no-feedback (scores only)", times, "s/notebook")
        # what the warm workers save: the same run with every job in a fresh process
        times, _ = grade("fresh", 2, {"BACKPROPLAB_FORKSERVER": "0"})
        record("grading", "every job in a fresh process (no warm worker), --jobs 2", times, "s/notebook")
        # what the serving loop saves: one execute request per judge request instead
        times, out = grade("single", 2, {"BACKPROPLAB_JUDGE_LOOP": "0"})
        record("grading", "one execute request per judge request (no serving loop), --jobs 2", times, "s/notebook")
        breakdown(out, "no serving loop")
        # the cost of the trust boundary: the same run with the grade cells executed in the student's
        # kernel (grader version 2's way, BACKPROPLAB_JUDGE=0; kept for this measurement only)
        times, out = grade("inkernel", 2, {"BACKPROPLAB_JUDGE": "0"})
        record("grading", "grade cells in the student's kernel, --jobs 2 (before the judge)", times, "s/notebook")
        breakdown(out, "grade cells in the kernel")
        record("grading", "cost of the judge: judged / in-kernel, --jobs 2", [per_jobs[2] / statistics.median(times)],
               "x")
        times, pages = [], []
        for i in range(n):
            autograde, feedback = _plain_nbgrader(subs, Path(tmp) / f"plain-{i}")
            times.append(autograde / count)
            pages.append((autograde + feedback) / count)
        record("grading", f"plain sequential nbgrader autograde ({count} notebooks)", times, "s/notebook")
        record("grading", "plain sequential nbgrader autograde + generate_feedback", pages, "s/notebook")
        plain, plain_pages = statistics.median(times), statistics.median(pages)
        for jobs in (1, 2):
            record("grading", f"ratio plain autograde / backproplab-grade --jobs {jobs}", [plain / per_jobs[jobs]], "x")
        record("grading", "ratio plain autograde / backproplab-grade --jobs 2 --no-feedback (scores both)",
               [plain / per_jobs["scores"]], "x")
        record("grading", "ratio plain autograde + generate_feedback / backproplab-grade --jobs 2 (pages both)",
               [plain_pages / per_jobs[2]], "x")


def breakdown(out: Path, label: str) -> None:
    """Where one job's time went, median over the class (from each result's ``timing``)."""
    timings, totals, processes, labs = [], [], [], []
    for path in sorted((out / "results").glob("*/*.json")):
        res = json.loads(path.read_text())
        if isinstance(res.get("timing"), dict):
            timings.append(res["timing"])
            labs.append(path.stem)
            totals.append(res.get("seconds", 0.0))
            processes.append(res.get("nbgrader_seconds", 0.0))
    if not timings:
        record("grading", f"per-job breakdown ({label})", None, note="no timing in the results")
        return
    parts = [("kernel start (container, interpreter, kernel)", "kernel_start"),
             ("student's cells in the kernel (import block, exercises)", "student_cells"),
             ("grade cells in the judge (incl. its requests)", "grade_cells"),
             ("nbgrader autograde in the job (all of the above + scoring)", "autograde"),
             ("nbgrader feedback page", "feedback")]
    for name, key in parts:
        values = [t[key] for t in timings if isinstance(t.get(key), (int, float))]
        if values:
            record("grading", f"  per job, {name} ({label})", values, "s")
    record("grading", f"  per job, the job process (fork to exit) ({label})", processes, "s")
    record("grading", f"  per job, total incl. pre-check and results ({label})", totals, "s")
    requests = [t.get("judge_requests", 0) for t in timings]
    record("grading", f"  per job, requests from the judge to the kernel ({label})", [float(r) for r in requests],
           "requests")
    # the cells that cost the class most: seconds summed over every job that has the cell
    cells: dict[str, list[float]] = {}
    for lab, t in zip(labs, timings, strict=True):
        for entry in t.get("cells") or []:
            if isinstance(entry, list) and len(entry) == 4 and isinstance(entry[2], (int, float)):
                key = f"{lab}:{entry[0]}" if entry[1] == "grade_cells" else f"{lab}: student cell {entry[0]}"
                cells.setdefault(key, []).append(float(entry[2]))
    for key, seconds in sorted(cells.items(), key=lambda kv: -sum(kv[1]))[:8]:
        record("grading", f"  costliest cells, {key} ({label})", seconds, "s")


def _tool_env() -> dict:
    from backproplab_autograder.course import tool_env

    return tool_env()


def _plain_nbgrader(subs: Path, root: Path) -> tuple[float, float]:
    """Plain nbgrader: one course, every student autograded by one sequential `nbgrader autograde` per
    assignment, then their feedback pages by `nbgrader generate_feedback`; the seconds of each."""
    from backproplab_autograder.config import render_config
    from backproplab_autograder.course import SOLUTIONS, nbgrader

    root.mkdir(parents=True)
    assignments = sorted({p.parent.name for p in subs.rglob("*.ipynb")})
    (root / "nbgrader_config.py").write_text(render_config(root, timeout=120))
    for aid in assignments:
        shutil.copytree(SOLUTIONS / aid, root / "source" / aid)
        nbgrader("generate_assignment", aid, "--force", cwd=root)
    for nb in subs.rglob("*.ipynb"):
        student, aid = nb.parent.parent.name, nb.parent.name
        dest = root / "submitted" / student / aid
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(nb, dest / nb.name)
    start = time.perf_counter()
    for aid in assignments:
        nbgrader("autograde", aid, "--create", "--force", cwd=root, check=False)
    autograde = time.perf_counter() - start
    start = time.perf_counter()
    for aid in assignments:
        nbgrader("generate_feedback", aid, "--force", cwd=root, check=False)
    return autograde, time.perf_counter() - start


# --- widgets -----------------------------------------------------------------------------------

def bench_widgets(n: int) -> None:
    print("Widget update time, Python side (value change -> PNG rendered)")
    import torch
    from backproplab.widgets import perceptron

    try:
        ns = solution_namespace("lab1_perceptron", ["train_perceptron"])
        stepper = perceptron.perceptron_stepper(ns["train_perceptron"], nb_epochs_max=50)
        samples = []
        for _ in range(n):
            for k in range(1, len(stepper.updates) + 1):
                start = time.perf_counter()
                stepper.step = k
                samples.append(time.perf_counter() - start)
            stepper.step = 0
        record("widgets", "lab 1 perceptron stepper", [1000 * s for s in samples], "ms")
    except Exception as exc:
        record("widgets", "lab 1 perceptron stepper", None, note=f"unavailable ({exc})")
    try:
        from backproplab.widgets import gd

        ns = solution_namespace("lab2_gradient_descent", ["gradient_descent", "local_quadratic_model"])
        explorers = (("lab 2 explorer 1-D (with local models)",
                      lambda: gd.explorer_1d(ns["gradient_descent"], ns["local_quadratic_model"])),
                     ("lab 2 explorer 2-D", lambda: gd.explorer_2d(ns["gradient_descent"])))
        for name, factory in explorers:
            explorer = factory()
            slider = explorer.controls["eta"]
            values = [slider.min + (slider.max - slider.min) * k / 20 for k in range(1, 20)]
            samples = []
            for _ in range(n):
                for v in values:
                    slider.value = v
                    samples.append(explorer.last_update_seconds)
            record("widgets", name, [1000 * s for s in samples], "ms")
    except Exception as exc:
        record("widgets", "lab 2 explorers", None, note=f"unavailable ({type(exc).__name__}: {exc})")
    _ = torch


# --- lab 4 engine against micrograd ----------------------------------------------------------

def _ensure_micrograd():
    try:
        import micrograd.engine  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "micrograd==0.1.0"], check=True)
    from micrograd.engine import Value as MicroValue

    return MicroValue


def _balanced_tree(Value, leaves: int):
    nodes = [Value(1.0 + (i % 7) * 0.001) for i in range(leaves)]
    layer, k = nodes, 0
    while len(layer) > 1:
        nxt = []
        for i in range(0, len(layer) - 1, 2):
            nxt.append(layer[i] + layer[i + 1] if k % 2 else layer[i] * layer[i + 1] * 0.5)
            k += 1
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return nodes, layer[0]


def _chain(Value, depth: int):
    x = Value(0.5)
    y = x
    for _ in range(depth):
        y = y + 0.0  # every step adds a node whose only parent of interest is the previous one
    return x, y


def _deepest_chain(Value, limit: int = 1_000_000) -> tuple[int, str]:
    """Largest depth (powers of ten up to ``limit``, then bisection) whose backward works."""
    def works(depth: int) -> bool:
        result = {}

        def run():
            try:
                x, y = _chain(Value, depth)
                y.backward()
                result["ok"] = abs(x.grad - 1.0) < 1e-9
            except RecursionError:
                result["ok"] = False

        t = threading.Thread(target=run)  # a fresh thread has the default stack, like a notebook cell
        t.start()
        t.join()
        return result.get("ok", False)

    good, depth = 0, 10
    while depth <= limit and works(depth):
        good, depth = depth, depth * 10
    if depth > limit:
        return good, "no failure up to the limit"
    lo, hi = good, depth
    while hi - lo > max(1, lo // 50):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if works(mid) else (lo, mid)
    return lo, "RecursionError beyond this depth"


def bench_engine(n: int) -> None:
    print("Lab 4 reference Value engine against micrograd")
    try:
        ours = solution_namespace("lab4_dag_autograd", ["Value", "topological_order"])["Value"]
    except Exception as exc:
        record("engine", "lab 4 Value", None, note=f"unavailable ({type(exc).__name__}: {exc})")
        return
    try:
        micro = _ensure_micrograd()
    except Exception as exc:
        micro = None
        record("engine", "micrograd", None, note=f"could not install micrograd ({exc})")
    engines = [("lab 4 Value", ours)] + ([("micrograd 0.1.0", micro)] if micro else [])
    import gc

    for label, Value in engines:
        def fwd_bwd(V=Value):
            leaves, root = _balanced_tree(V, 200_000)
            root.backward()

        record("engine", f"{label}: 200,000-leaf tree, forward + backward", repeat(fwd_bwd, n))
        gc.disable()  # Python's cyclic GC rescans the growing graph (closures make cycles): show its share
        try:
            record("engine", f"{label}: same, garbage collector paused", repeat(fwd_bwd, n))
        finally:
            gc.enable()
            gc.collect()
    for label, Value in engines:
        depth, why = _deepest_chain(Value)
        record("engine", f"{label}: deepest chain with a working backward", [float(depth)], "nodes", why)


# --- lab 3 manual backprop against autograd ----------------------------------------------------

def bench_backprop(n: int) -> None:
    print("Lab 3 reference manual backprop against torch autograd (784-200-10, batch 256)")
    import torch

    try:
        ns = solution_namespace("lab3_mlp_backprop", ["init_params", "softmax", "cross_entropy", "forward", "backward", "sgd_step"])
    except Exception as exc:
        record("backprop", "lab 3 training step", None, note=f"unavailable ({type(exc).__name__}: {exc})")
        return
    g = torch.Generator().manual_seed(0)
    X = torch.rand(256, 784, generator=g)
    Y = torch.nn.functional.one_hot(torch.randint(0, 10, (256,), generator=g), 10).float()
    params = ns["init_params"](784, 200, 10, generator=g)
    auto = {k: v.clone().requires_grad_(True) for k, v in params.items()}

    def manual_step():
        with torch.no_grad():
            out = ns["forward"](params, X)
            grads = ns["backward"](params, out, Y)
            ns["sgd_step"](params, grads, 0.01)

    def autograd_step():
        h = torch.tanh(X @ auto["Wh"].T + auto["bh"].T)
        logits = h @ auto["Wy"].T + auto["by"].T
        loss = torch.nn.functional.cross_entropy(logits, Y.argmax(1))
        for p in auto.values():
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in auto.values():
                p -= 0.01 * p.grad

    for f in (manual_step, autograd_step):
        for _ in range(5):
            f()  # warm-up
    reps = max(20, 10 * n)
    manual = [t / 1 for t in repeat(manual_step, reps)]
    autograd = [t / 1 for t in repeat(autograd_step, reps)]
    record("backprop", "manual forward + backward + update", [1000 * t for t in manual], "ms")
    record("backprop", "torch autograd forward + backward + update", [1000 * t for t in autograd], "ms")
    record("backprop", "ratio manual / autograd", [statistics.median(manual) / statistics.median(autograd)], "x")


def bench_cluster(n: int) -> None:
    """Once (minutes of grading): see bench/cluster_scale.py and docs/cluster.md."""
    print("Grading on a Dask LocalCluster (--dask local:2) against the local pool, same run; class files")
    from bench import cluster_scale

    demo = cluster_scale.bench_demo(None, 2)
    record("cluster", "demo class, local pool (--jobs 2)", [demo["pool_seconds"]])
    record("cluster", "demo class, --dask local:2", [demo["dask_seconds"]],
           note=f"same grades_detailed.csv: {demo['same_grades_detailed']}")
    record("cluster", "ratio local:2 / local pool", [demo["ratio_dask_over_pool"]], "x")
    cls = cluster_scale.bench_class(2000, False)
    record("cluster", "class files of 2,000 students (CSVs, report, export)", [cls["class files total"]])
    record("cluster", "gradebook export of 2,000 students (one query)",
           [cls["nbgrader_grades.csv (bulk export, one query)"]])


SECTIONS = {
    "notebooks": bench_notebooks,
    "grading": bench_grading,
    "widgets": bench_widgets,
    "engine": bench_engine,
    "backprop": bench_backprop,
    "cluster": bench_cluster,
}


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per figure (default 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    info = machine()
    print(f"Machine: {info.get('cpu_model', info['processor'])}, {info['cpus']} cores, "
          f"{info.get('memory_gib', '?')} GiB; Python {info['python']}, torch {info['torch']}")
    for name in args.only or list(SECTIONS):
        try:
            SECTIONS[name](args.repeat)
        except Exception as exc:  # a benchmark never fails the run: report and continue
            record(name, "section failed", None, note=f"{type(exc).__name__}: {exc}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps({"machine": info, "rows": ROWS}, indent=1))
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
