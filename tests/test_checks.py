"""Every diagnosis of backproplab.checks, on constructed wrong answers."""

from __future__ import annotations

import time

import pytest
import torch
from backproplab import checks


def ref(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def tag_of(actual, expected, **kw):
    m = checks.compare(actual, expected, **kw)
    return None if m is None else m.tag


def test_equal_tensors_pass_in_float64_and_float32():
    e = ref(5, 4)
    assert checks.compare(e.clone(), e) is None
    assert checks.compare(e.float(), e, dtype=torch.float32) is None


def test_float32_rounding_is_tolerated_but_real_errors_are_not():
    e = ref(50, 50)
    assert checks.compare((e.float() @ e.float()), e @ e, dtype=torch.float32) is None
    assert tag_of((e * 1.001).float(), e, dtype=torch.float32) is not None


@pytest.mark.parametrize(
    "make, tag",
    [
        (lambda e: e * 4, "batch_sum"),
        (lambda e: e / 4, "batch_mean_twice"),
        (lambda e: e * 2.5, "scaled"),
        (lambda e: -e, "sign"),
        (lambda e: torch.zeros_like(e), "zero"),
    ],
    ids=["batch_sum", "batch_mean_twice", "scaled", "sign", "zero"],
)
def test_value_pattern_diagnoses(make, tag):
    e = ref(4, 3)
    assert tag_of(make(e), e, batch_size=4) == tag


def test_square_transpose_is_recognised_by_values():
    e = ref(3, 3)
    assert tag_of(e.T.contiguous(), e) == "transposed"


def test_rectangular_transpose_is_recognised_by_shape():
    e = ref(4, 3)
    m = checks.compare(e.T, e)
    assert m.tag == "transposed_shape" and "(3, 4)" in m.summary and "(4, 3)" in m.summary


def test_kept_batch_dimension_is_recognised():
    e = ref(3)
    assert tag_of(e.expand(5, 3), e) == "batch_dim_kept"


def test_some_rows_right_names_the_pattern_and_the_entries():
    e = ref(4, 3)
    a = e.clone()
    a[2:] += 1.0
    m = checks.compare(a, e)
    assert m.tag == "some_rows"
    assert "6 of 12" in m.summary and "[2, 0]" in m.details


def test_nan_and_inf_are_counted_and_located():
    e = ref(3, 3)
    a = e.clone()
    a[1, 2] = float("nan")
    m = checks.compare(a, e)
    assert m.tag == "nan" and "1 of 9" in m.summary and "[1, 2]" in m.details
    a[1, 2] = float("inf")
    assert checks.compare(a, e).tag == "inf"


def test_dtype_and_type_errors_explain_themselves():
    e = ref(2, 2)
    m = checks.compare(e.float(), e)
    assert m.tag == "wrong_dtype" and "float64" in m.summary
    assert checks.compare(e.tolist(), e).tag == "not_a_tensor"
    assert "return" in checks.compare(None, e).summary


def test_tensor_subclass_is_refused():
    class Sneaky(torch.Tensor):
        def __eq__(self, other):
            return True

    e = ref(2)
    assert checks.compare(e.as_subclass(Sneaky), e).tag == "not_a_tensor"


def test_largest_error_and_location_are_reported():
    e = torch.zeros(2, 3, dtype=torch.float64)
    a = e.clone()
    a[1, 1] = 0.5
    msg = checks.compare(a, e).message("grad_W")
    assert msg.startswith("grad_W: 1 of 6 entries are wrong")
    assert "largest error 0.5 at [1, 1]" in msg


def test_assert_grads_close_reports_every_bad_key_and_missing_keys():
    e = {"W": ref(3, 2), "b": ref(3, seed=1)}
    with pytest.raises(AssertionError) as info:
        checks.assert_grads_close({"W": e["W"] * 8, "b": -e["b"]}, e, batch_size=8)
    text = str(info.value)
    assert "grads['W']" in text and "batch_sum" in text and "grads['b']" in text and "sign" in text
    with pytest.raises(AssertionError, match="missing keys"):
        checks.assert_grads_close({"W": e["W"]}, e)


def test_call_turns_not_implemented_and_crashes_into_sentences():
    def stub(x):
        raise NotImplementedError()

    def crash(x):
        return x["missing"]

    with pytest.raises(AssertionError, match="not written yet.*not_implemented"):
        checks.call(stub, 1)
    with pytest.raises(AssertionError, match="crash raised TypeError"):
        checks.call(crash, 1)
    assert checks.call(lambda x: x + 1, 1) == 2


def test_python_float_check_refuses_tensors():
    with pytest.raises(AssertionError, match=r"\.item\(\)"):
        checks.assert_python_float(torch.tensor(0.5), 0.5)
    with pytest.raises(AssertionError, match="diagnosis: sign"):
        checks.assert_python_float(-0.5, 0.5)
    checks.assert_python_float(0.5 + 1e-13, 0.5)


def test_assert_equal_checks_type_and_value():
    checks.assert_equal("monotone", "monotone")
    with pytest.raises(AssertionError, match="expected 'monotone', got 'divergent'"):
        checks.assert_equal("divergent", "monotone")
    with pytest.raises(AssertionError, match="expected a int"):
        checks.assert_equal(3.0, 3)


def test_grad_table_lists_each_tensor_with_its_errors():
    e = {"Wh": ref(3, 2), "bh": ref(3, 1, seed=2)}
    table = checks.grad_table({"Wh": e["Wh"].clone(), "bh": e["bh"] + 1e-3}, e)
    lines = table.splitlines()
    assert lines[0].split() == ["name", "exact", "close", "max", "abs", "diff", "rel", "error"]
    assert lines[2].split()[:3] == ["Wh", "True", "True"]
    assert lines[3].split()[:3] == ["bh", "False", "False"]
    assert "1.000e-03" in lines[3]


def test_gradcheck_wrapper_refuses_float32_and_explains_wrong_backward():
    class BadSquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2 x

    x64 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(AssertionError, match="float64"):
        checks.gradcheck(BadSquare.apply, (x64.float(),))
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        checks.gradcheck(BadSquare.apply, (x64,), name="BadSquare")
    assert checks.gradcheck(torch.sin, (x64,))


def test_time_limit_interrupts_a_runaway_loop_with_a_message():
    start = time.perf_counter()
    with pytest.raises(AssertionError, match="took longer than 0.2 s.*diagnosis: timeout"):
        with checks.time_limit(0.2, "loop"):
            while True:
                pass
    assert time.perf_counter() - start < 5


def test_guard_refuses_a_verdict_under_an_active_torch_function_mode():
    from torch.overrides import TorchFunctionMode

    class Everything(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    e = ref(3)
    with Everything():
        with pytest.raises(AssertionError, match="integrity.*TorchFunctionMode.*diagnosis: policy"):
            checks.compare(e, e)
    assert checks.compare(e, e) is None


def test_guard_notices_replaced_tensor_methods_and_torch_functions(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    with pytest.raises(AssertionError, match="replaced: torch.allclose"):
        checks.assert_close(ref(2), ref(2))
    monkeypatch.undo()
    monkeypatch.setattr(torch.Tensor, "__sub__", lambda a, b: torch.zeros_like(a))
    with pytest.raises(AssertionError, match=r"torch.Tensor.__sub__"):
        checks.assert_close(ref(2), ref(2, seed=1))


def test_guard_runs_after_the_students_function_returns():
    from torch.overrides import TorchFunctionMode

    class Sticky(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    mode = Sticky()

    def sneaky():
        mode.__enter__()  # left active on purpose
        return 1

    try:
        with pytest.raises(AssertionError, match="TorchFunctionMode"):
            checks.call(sneaky)
    finally:
        mode.__exit__(None, None, None)


def test_every_diagnosis_tag_written_in_the_course_is_in_the_one_vocabulary():
    """The class report counts tags and the feedback explains them: a tag outside DIAGNOSES would be a
    word no student is told the meaning of. Dynamic tags are checked at run time by tests/helpers/gradecells."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [*sorted((root / "lib" / "backproplab").rglob("*.py")), *sorted((root / "solutions").rglob("*.py"))]
    unknown = []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for tag in re.findall(r"\(diagnosis: ([a-z0-9_]+)\)", line):
                if tag not in checks.DIAGNOSES:
                    unknown.append(f"{path.relative_to(root)}:{number}: {tag}")
    assert len(sources) > 20
    assert unknown == [], "\n".join(unknown)


# --- the one precision rule (issue 16) -------------------------------------------------------------
_TOLERANCE_KEYWORDS = {"rtol", "atol", "rel_tol", "abs_tol", "tol", "tolerance"}
_CLOSENESS_CALLS = {"allclose", "isclose", "assert_close"}


def _literal_tolerances(tree) -> list[tuple[int, str]]:
    """Tolerances chosen by hand: a number literal given as a tolerance keyword, a closeness call that
    relies on its own default tolerances (torch/numpy/math), or ``abs(a - b) < 1e-6``."""
    import ast

    def has_number(node) -> bool:
        return any(isinstance(n, ast.Constant) and isinstance(n.value, float) and n.value != 0.0
                   for n in ast.walk(node))

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in _TOLERANCE_KEYWORDS and has_number(kw.value):
                    found.append((node.lineno, f"{kw.arg}={ast.unparse(kw.value)}"))
            func = node.func
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _CLOSENESS_CALLS and owner in ("torch", "np", "numpy", "math", "testing") and \
                    not any(kw.arg in _TOLERANCE_KEYWORDS for kw in node.keywords):
                found.append((node.lineno, f"{owner}.{name} with its default tolerances"))
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            small = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, float) and 0 < s.value <= 1e-3]
            uses_abs = any(isinstance(n, ast.Call) and (getattr(n.func, "id", "") == "abs" or getattr(n.func, "attr", "") == "abs")
                           for s in sides for n in ast.walk(s))
            if small and uses_abs:
                found.append((node.lineno, ast.unparse(node)))
    return found


def _checking_sources():
    """The code that decides verdicts: the library (but the rule itself and the figures/widgets that
    only draw) and the grade cells of every lab."""
    import ast
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "lib" / "backproplab").rglob("*.py")):
        rel = path.relative_to(root)
        if path.name == "checks.py" or "widgets" in path.parts or path.name.endswith(("_figures.py", "plots.py")):
            continue
        yield str(rel), ast.parse(path.read_text())
    for path in sorted((root / "solutions").rglob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
                source = "".join(cell["source"])
                yield f"{path.relative_to(root)}:{meta.get('grade_id')}", ast.parse(source)


def test_every_check_takes_its_tolerance_from_the_one_rule():
    """checks.tolerances is the one precision rule: a check says why it needs more (magnitude, steps,
    the dtype the student computes in), never a number of its own."""
    sources = list(_checking_sources())
    assert len(sources) > 60
    hand_picked = [f"{where}:{line}: {what}" for where, tree in sources for line, what in _literal_tolerances(tree)]
    assert hand_picked == [], "tolerances picked by hand:\n" + "\n".join(hand_picked)


def test_the_tolerance_scanner_finds_each_form_of_a_hand_picked_tolerance():
    import ast

    src = ("checks.assert_close(a, b, rtol=1e-6)\n"
           "torch.allclose(a, b)\n"
           "math.isclose(x, y, abs_tol=1e-9 if f else 1e-3)\n"
           "ok = abs(x - y) < 1e-6\n"
           "ok = (a - b).abs().max() <= 1e-5\n")
    assert [line for line, _ in _literal_tolerances(ast.parse(src))] == [1, 2, 3, 4, 5]
    fine = ("checks.assert_close(a, b, steps=10)\n"
            "torch.allclose(a, b, *checks.tolerances(torch.float32))\n"
            "checks.close(x, y, torch.float32, magnitude=m)\n"
            "ok = abs(x - y) < 0.5\n")
    # positional tolerances built by the rule are not literals
    assert [line for line, what in _literal_tolerances(ast.parse(fine)) if "default" not in what] == []


def test_the_rule_grows_with_magnitude_and_steps_and_keeps_the_defaults():
    for dtype in (torch.float32, torch.float64):
        eps = torch.finfo(dtype).eps
        r0, a0 = checks.tolerances(dtype)
        assert (r0, a0) == checks.tolerances_at(dtype, 1.0)
        # a correct evaluation at logits of 1e4 is off by about eps * 1e4: inside the rule, and the
        # rule is not so loose that ten times that passes
        _, a_big = checks.tolerances(dtype, magnitude=1e4)
        assert a_big >= 2 * eps * 1e4 and a_big < 10 * eps * 1e4 + a0
        r_steps, a_steps = checks.tolerances(dtype, steps=50)
        assert r_steps == 50 * r0 and a_steps >= 50 * a0
    assert checks.tolerances(torch.int64) == (0.0, 0.0)


def test_close_and_assert_python_float_follow_the_rule():
    assert checks.close(1.0, 1.0 + 5e-8)
    assert not checks.close(1.0, 1.0 + 5e-6)
    assert checks.close(1.0, 1.0 + 5e-6, torch.float32)
    assert checks.close(torch.ones(3), torch.ones(3) * (1 + 5e-5), torch.float32)
    assert not checks.close(torch.ones(3), torch.ones(2), torch.float32)
    assert not checks.close("a", 1.0)
    checks.assert_python_float(0.75 + 2e-6, 0.75, dtype=torch.float32)  # a mean taken in float32
    with pytest.raises(AssertionError, match="diagnosis: values"):
        checks.assert_python_float(0.75 + 2e-6, 0.75)
    with pytest.raises(AssertionError, match="diagnosis: sign"):
        checks.assert_python_float(-0.75, 0.75)
    # 200 float32 steps of rounding: inside steps=200, outside the one-step rule
    checks.assert_python_float(1.0 + 5e-3, 1.0, dtype=torch.float32, steps=200)
    with pytest.raises(AssertionError):
        checks.assert_python_float(1.0 + 5e-3, 1.0, dtype=torch.float32)
