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
