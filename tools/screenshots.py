"""Regenerate the screenshots in figures/screenshots/: each lab in JupyterLab after Run All Cells,
and each widget, taken in headless Chromium with the same helpers as tests/test_browser.py.

    .venv/bin/python -m tools.screenshots            # every lab (run from the repository root)
    .venv/bin/python -m tools.screenshots lab2_gradient_descent

Needs Debian's Chromium (/usr/bin/chromium) and the `playwright` package (never `playwright install`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from backproplab_autograder.course import ASSIGNMENTS, available_assignments

from tests.helpers import browser_util as bu

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "figures" / "screenshots"
VIEWPORT = {"width": 1280, "height": 960}

# assignment -> [(file name, slider label of the widget, key presses before the shot)]
WIDGETS = {
    "lab1_perceptron": [("widget_perceptron_stepper.png", "update", 6)],
    "lab2_gradient_descent": [("widget_gd_explorer_1d.png", "step η", 0),
                              ("widget_gd_explorer_2d.png", "η·λmax", 0)],
    "lab4_dag_autograd": [("widget_backward_stepper.png", "step", 4)],
}


def shoot(browser, server, aid: str) -> list[Path]:
    page = browser.new_page(viewport=VIEWPORT)
    lab = bu.LabPage(page, server, f"solutions/{aid}/{ASSIGNMENTS[aid]}")
    made = []
    try:
        lab.open()
        seconds = lab.run_all(timeout=300)
        errors = lab.errors()
        if errors:
            print(f"warning: {aid} raised in JupyterLab: " + "; ".join(map(str, errors)), file=sys.stderr)
        for name, label, presses in WIDGETS.get(aid, []):
            box = bu.widget_box(page, label)
            if box.count() == 0:
                print(f"warning: {aid}: no widget with a slider labelled {label!r}", file=sys.stderr)
                continue
            box.scroll_into_view_if_needed()
            if presses:
                box.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).first.locator(
                    ".noUi-handle").focus()
                for _ in range(presses):
                    page.keyboard.press("ArrowRight")
                    lab.wait_kernel("idle", 30)
                page.evaluate("() => document.activeElement?.blur()")
                page.wait_for_timeout(300)
            box.screenshot(path=OUT / name)
            made.append(OUT / name)
        lab.show_top()
        page.screenshot(path=OUT / f"{aid}.png")
        made.append(OUT / f"{aid}.png")
        print(f"{aid}: ran in {seconds:.1f} s; saved {', '.join(p.name for p in made)}")
    finally:
        lab.close()
        page.close()
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", help="default: every lab that exists")
    args = parser.parse_args(argv)
    reason = bu.missing_browser()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    aids = args.assignments or available_assignments()
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="backproplab-shots-") as tmp:
        bu.copy_labs(Path(tmp), aids)
        with bu.LabServer(Path(tmp)) as server, sync_playwright() as p:
            browser = bu.launch_chromium(p)
            try:
                for aid in aids:
                    shoot(browser, server, aid)
            finally:
                browser.close()
    print(f"done in {time.perf_counter() - start:.0f} s: {OUT.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
