"""The structural checker for custom autograd Functions names each broken part of the contract."""

from __future__ import annotations

import pytest
import torch
from backproplab import function_checks as fc


def make(name, forward, backward, *, static=(True, True)):
    """A Function class from two plain functions, optionally without @staticmethod."""
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward) if static[0] else forward,
        "backward": staticmethod(backward) if static[1] else backward,
    })


def _double_forward(ctx, x):
    ctx.save_for_backward(x)
    return 2 * x


def _double_backward(ctx, g):
    return 2 * g


Double = make("Double", _double_forward, _double_backward)


def _lin_forward(ctx, x, W, b=None):
    ctx.save_for_backward(x, W)
    y = x @ W.T
    return y if b is None else y + b


def lin_with(backward):
    return make("Lin", _lin_forward, backward)


def _inputs(req=(True, True, True), bias=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(req[0])
    W = torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_(req[1])
    b = torch.randn(2, generator=g, dtype=torch.float64).requires_grad_(req[2]) if bias else None
    return x, W, b


def _autograd_lin_backward(ctx, g):
    """Lin's backward from torch.autograd on F.linear, returning all three gradients (None-aware)."""
    x, W = ctx.saved_tensors
    with torch.enable_grad():
        xx, WW = x.detach().requires_grad_(), W.detach().requires_grad_()
        y = torch.nn.functional.linear(xx, WW)
        gx, gW = torch.autograd.grad(y, (xx, WW), g)
    n = ctx.needs_input_grad
    return (gx if n[0] else None, gW if n[1] else None, g.sum(0) if len(n) > 2 and n[2] else None)


def test_a_correct_function_passes_every_check():
    fc.check_function_class(Double)
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    y = fc.run_forward(Double, x)
    (gx,) = fc.run_backward(y, torch.ones(3, dtype=torch.float64), (x,))
    assert torch.equal(gx, torch.full((3,), 2.0, dtype=torch.float64))


def test_missing_staticmethod_is_named_for_each_method():
    with pytest.raises(AssertionError, match=r"NoStatic\.forward is not a @staticmethod.*diagnosis: not_static"):
        fc.check_function_class(make("NoStatic", _double_forward, _double_backward, static=(False, True)))
    with pytest.raises(AssertionError, match=r"NoStatic\.backward is not a @staticmethod.*diagnosis: not_static"):
        fc.check_static(make("NoStatic", _double_forward, _double_backward, static=(True, False)), "backward")


def test_a_class_that_is_not_a_function_is_named():
    class Plain:
        @staticmethod
        def forward(ctx, x):
            return x

    with pytest.raises(AssertionError, match="not a subclass of torch.autograd.Function.*not_a_function"):
        fc.check_function_class(Plain)


def test_gradient_count_is_reported_as_n_for_m_inputs():
    two = lin_with(lambda ctx, g: (g @ ctx.saved_tensors[1], g.T @ ctx.saved_tensors[0]))
    x, W, b = _inputs()
    with pytest.raises(AssertionError, match=r"backward returned 2 gradients for 3 inputs.*\(diagnosis: wrong_gradient_count\)"):
        fc.run_backward(fc.run_forward(two, x, W, b), None, (x, W, b))
    single = make("Single", _double_forward, lambda ctx, g: (2 * g, g))
    x1 = torch.randn(2, requires_grad=True)
    with pytest.raises(AssertionError, match="backward returned 2 gradients for 1 input:"):
        fc.run_backward(fc.run_forward(single, x1), None, (x1,))


def test_extra_trailing_none_is_tolerated_like_autograd_does():
    padded = make("Padded", _double_forward, lambda ctx, g: (2 * g, None))
    x = torch.randn(2, requires_grad=True)
    assert len(fc.run_backward(fc.run_forward(padded, x), None, (x,))) == 1


def test_gradient_where_needs_input_grad_is_false_is_named():
    always = lin_with(lambda ctx, g: (g @ ctx.saved_tensors[1], g.T @ ctx.saved_tensors[0], g.sum(0)))
    x, W, b = _inputs(req=(False, True, True))
    with pytest.raises(AssertionError, match=r"gradient for x although ctx.needs_input_grad\[0\] is False.*gradient_not_none"):
        fc.run_backward(fc.run_forward(always, x, W, b, input_names="xWb"), None, (x, W, b), input_names="xWb")


def test_gradient_for_a_none_input_is_named():
    always = lin_with(lambda ctx, g: (g @ ctx.saved_tensors[1], g.T @ ctx.saved_tensors[0], g.sum(0)))
    x, W, _ = _inputs()
    with pytest.raises(AssertionError, match=r"Tensor for b, which was None in forward.*gradient_not_none"):
        fc.run_backward(fc.run_forward(always, x, W, None), None, (x, W, None), input_names=["x", "W", "b"])


def test_none_where_a_gradient_is_needed_is_named():
    lazy = lin_with(lambda ctx, g: (None, g.T @ ctx.saved_tensors[0], g.sum(0)))
    x, W, b = _inputs()
    with pytest.raises(AssertionError, match=r"returned None for input 0.*missing_gradient"):
        fc.run_backward(fc.run_forward(lazy, x, W, b), None, (x, W, b))


def test_a_correct_linear_passes_with_and_without_bias():
    good = lin_with(_autograd_lin_backward)
    for req in [(True, True, True), (False, True, True), (True, False, False)]:
        x, W, b = _inputs(req)
        grads = fc.run_backward(fc.run_forward(good, x, W, b), None, (x, W, b))
        assert [g is not None for g in grads] == list(req)
    x, W, _ = _inputs()
    assert len(fc.run_backward(fc.run_forward(good, x, W), None, (x, W))) == 2


def test_grad_output_modified_in_place_is_named():
    def inplace_backward(ctx, g):
        return g.mul_(2)

    bad = make("Inplace", _double_forward, inplace_backward)
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(AssertionError, match="changed grad_output in place.*grad_output_modified"):
        fc.run_backward(fc.run_forward(bad, x), torch.ones(3), (x,))


def test_input_modified_in_forward_is_named():
    def inplace_forward(ctx, x):
        return x.mul_(2)

    bad = make("InplaceForward", inplace_forward, _double_backward)
    with pytest.raises(AssertionError, match="changed its argument x in place.*input_modified"):
        fc.run_forward(bad, torch.randn(3), input_names=["x"])


@pytest.mark.parametrize("use", [
    lambda e, g: g * (1 - 1 / (1 + e)),  # TypeError: int + tuple (the lecture's slip)
    lambda e, g: g * e.exp(),  # AttributeError: 'tuple' object has no attribute 'exp'
    lambda e, g: g * torch.sigmoid(e),  # TypeError: sigmoid(): argument 'input' must be Tensor, not tuple
], ids=["arithmetic", "method", "torch_function"])
def test_saved_tensors_used_as_a_tensor_is_recognised(use):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.exp()

    def backward(ctx, g):
        e = ctx.saved_tensors
        return use(e, g)

    bad = make("Slip", forward, backward)
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(AssertionError, match=r"saved_tensors is a tuple: unpack it.*\(diagnosis: saved_tensors_tuple\)"):
        fc.run_backward(fc.run_forward(bad, x), None, (x,))


def test_other_crashes_and_stubs_are_told_apart():
    def crash(ctx, g):
        raise ValueError("boom")

    def stub(ctx, g):
        raise NotImplementedError()

    x = torch.randn(3, requires_grad=True)
    with pytest.raises(AssertionError, match=r"raised ValueError: boom \(diagnosis: crash\)"):
        fc.run_backward(fc.run_forward(make("Crash", _double_forward, crash), x), None, (x,))
    with pytest.raises(AssertionError, match="not written yet.*not_implemented"):
        fc.run_backward(fc.run_forward(make("Stub", _double_forward, stub), x), None, (x,))
    with pytest.raises(AssertionError, match="Stub.forward is not written yet.*not_implemented"):
        fc.run_forward(make("Stub", lambda ctx, x: stub(ctx, x), stub), x)


def test_output_without_a_custom_node_is_named():
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(AssertionError, match="no_graph"):
        fc.run_backward(torch.exp(x), None, (x,))


def test_saving_the_output_is_recognised_whichever_way():
    def via_save(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    def via_attribute(ctx, x):
        ctx.out = torch.sigmoid(x)
        return ctx.out

    def saves_input(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x)

    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for forward in (via_save, via_attribute):
        fc.assert_saves_output(fc.run_forward(make("S", forward, _double_backward), x))
    with pytest.raises(AssertionError, match="none equal to the output.*output_not_saved"):
        fc.assert_saves_output(fc.run_forward(make("S", saves_input, _double_backward), x), name="Sigmoid")


def test_gradgradcheck_names_a_detached_backward():
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    def good(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    def detached(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x.detach() * g

    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert fc.gradgradcheck(make("Sq", forward, good).apply, (x,))
    with pytest.raises(AssertionError, match="not_double_differentiable"):
        fc.gradgradcheck(make("Sq", forward, detached).apply, (x,), name="Square")
    with pytest.raises(AssertionError, match="wrong_dtype"):
        fc.gradgradcheck(make("Sq", forward, good).apply, (x.detach().float().requires_grad_(),))


def test_autograd_function_matches_the_builtin_and_respects_needs_input_grad():
    Ref = fc.autograd_function("LinearFunction", torch.nn.functional.linear)
    assert Ref.__name__ == "LinearFunction"
    fc.check_function_class(Ref)
    x, W, b = _inputs(req=(False, True, True))
    y = Ref.apply(x, W, b)
    assert type(y.grad_fn).__name__ == "LinearFunctionBackward"
    torch.testing.assert_close(y, torch.nn.functional.linear(x, W, b))
    grads = fc.run_backward(y, None, (x, W, b))
    assert grads[0] is None
    assert torch.autograd.gradcheck(Ref.apply, _inputs())
    x, W, _ = _inputs()
    assert fc.run_backward(Ref.apply(x, W, None), None, (x, W, None))[2] is None


def test_substituted_restores_bindings_even_on_failure():
    ns = {"Tanh": "student", "keep": 1}
    with pytest.raises(RuntimeError):
        with fc.substituted(ns, Tanh="reference", LinearFunction="reference"):
            assert ns["Tanh"] == ns["LinearFunction"] == "reference"
            raise RuntimeError
    assert ns == {"Tanh": "student", "keep": 1}


def test_graph_node_names_counts_custom_and_builtin_nodes():
    Ref = fc.autograd_function("Tanh", torch.tanh)
    x = torch.randn(3, requires_grad=True)
    names = fc.graph_node_names(torch.tanh(Ref.apply(x)) * 2)
    assert names["TanhBackward"] == 1 and names["TanhBackward0"] == 1 and names["AccumulateGrad"] == 1


# --- comparisons at the inputs' magnitude ----------------------------------------------------------

from backproplab import checks  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tolerance_grows_with_the_magnitude_and_never_drops_below_the_defaults(dtype):
    rtol0, atol0 = checks.tolerances(dtype)
    small = checks.tolerances_at(dtype, 1.0)
    assert small == (rtol0, atol0)
    sizes = [1.0, 10.0, 1e3, 1e4, 1e6]
    atols = [checks.tolerances_at(dtype, m)[1] for m in sizes]
    assert atols == sorted(atols) and all(a >= atol0 for a in atols)
    # the absolute allowance is the same whatever the reference's scale (compare multiplies atol by 1 + scale)
    big = 1e3 / torch.finfo(dtype).eps  # large enough for the allowance to exceed the defaults
    for scale in (0.0, 3.0, 1e4):
        _, atol = checks.tolerances_at(dtype, big, reference_scale=scale)
        assert atol * (1 + scale) == pytest.approx(4 * torch.finfo(dtype).eps * big)


def test_one_ulp_of_a_large_input_is_accepted_and_a_real_error_is_not():
    z = torch.tensor([1e4, -1e4 + 1.0, 3.0])
    ulp = float(torch.finfo(torch.float32).eps) * 1e4
    ref = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    close = (ref + ulp).float()
    assert checks.compare(close, ref, dtype=torch.float32) is not None  # the plain tolerance rejects one ulp
    assert fc.compare(close, ref, inputs=[z], dtype=torch.float32) is None
    wrong = ref.flip(0).float()
    assert fc.compare(wrong, ref, inputs=[z], dtype=torch.float32).tag != "precision"


def test_small_relative_error_over_tolerance_is_precision_and_patterns_keep_their_tag():
    ref = torch.linspace(1.0, 2.0, 6, dtype=torch.float64).reshape(2, 3)
    slightly = ref * (1 + 1e-4 * torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]], dtype=torch.float64))
    mismatch = fc.compare(slightly, ref, inputs=[ref])
    assert mismatch.tag == "precision" and "(diagnosis: precision)" in mismatch.message("x")
    assert fc.compare(-ref, ref).tag == "sign"
    assert fc.compare(ref * 2, ref, batch_size=2).tag == "batch_sum"
    assert fc.compare(ref + torch.tensor([[0.0], [0.5]], dtype=torch.float64), ref).tag == "some_rows"
    with pytest.raises(AssertionError, match="diagnosis: precision"):
        fc.assert_close(slightly, ref, name="loss")
    with pytest.raises(AssertionError, match=r"g\['b'\].*diagnosis: sign"):
        fc.assert_grads_close({"a": ref, "b": -ref}, {"a": ref, "b": ref}, name="g")


def test_magnitude_ignores_integers_infinities_and_non_tensors():
    assert fc.magnitude_of([torch.tensor([1.0, -5.0, float("inf")]), torch.tensor([7, 9]), None, 2.5]) == 5.0
    assert fc.magnitude_of([]) == 0.0


# --- gradcheck and gradgradcheck: torch's comparisons, made from the probe's observations -----------


def _square_with(backward):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    return make("Sq", forward, backward)


def _sq_good(ctx, g):
    (x,) = ctx.saved_tensors
    return 2 * x * g


_CALLS = {"n": 0}


def _sq_not_reentrant(ctx, g):
    (x,) = ctx.saved_tensors
    _CALLS["n"] += 1
    return 2 * x * g * (1 + 1e-3 * (_CALLS["n"] % 2))


def _sq_wrong(ctx, g):
    (x,) = ctx.saved_tensors
    return 3 * x * g


def _sq_ignores_grad_output(ctx, g):
    (x,) = ctx.saved_tensors
    return 2 * x * g + (g == 0).to(g.dtype) * x  # right for one-hot grad_outputs, not for zeros


def _sq_detached(ctx, g):
    (x,) = ctx.saved_tensors
    return 2 * x.detach() * g


def _sq_no_grad(ctx, g):
    (x,) = ctx.saved_tensors
    with torch.no_grad():
        return 2 * x * g


@pytest.mark.parametrize("backward", [_sq_good, _sq_wrong, _sq_not_reentrant, _sq_ignores_grad_output],
                         ids=["good", "wrong", "not_reentrant", "not_multiplied"])
def test_gradcheck_agrees_with_torch(backward):
    x = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64, requires_grad=True)
    fn = _square_with(backward).apply
    try:
        torch.autograd.gradcheck(fn, (x,))
        torch_error = None
    except RuntimeError as exc:
        torch_error = str(exc).strip().splitlines()[0]
    if torch_error is None:
        assert fc.gradcheck(fn, (x,), name="Sq")
    else:
        with pytest.raises(AssertionError) as info:
            fc.gradcheck(fn, (x,), name="Sq")
        assert "(diagnosis: values)" in str(info.value) and torch_error in str(info.value)


@pytest.mark.parametrize("backward", [_sq_good, _sq_detached, _sq_no_grad], ids=["good", "detached", "no_grad"])
def test_gradgradcheck_agrees_with_torch(backward):
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    fn = _square_with(backward).apply
    ok = torch.autograd.gradgradcheck(fn, (x,), raise_exception=False)
    if ok:
        assert fc.gradgradcheck(fn, (x,))
    else:
        with pytest.raises(AssertionError, match="not_double_differentiable"):
            fc.gradgradcheck(fn, (x,), name="Sq")


def test_gradcheck_integer_inputs_and_crashes():
    def forward(ctx, z, t):
        ctx.save_for_backward(z, t)
        return torch.nn.functional.cross_entropy(z, t)

    def backward(ctx, g):
        z, t = ctx.saved_tensors
        p = torch.softmax(z, 1) - torch.nn.functional.one_hot(t, z.shape[1]).to(z.dtype)
        return p * g / z.shape[0], None

    def crash(ctx, g):
        raise ValueError("boom")

    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 3, 1])
    assert fc.gradcheck(make("CE", forward, backward).apply, (z, t))
    with pytest.raises(AssertionError, match=r"raised ValueError: boom \(diagnosis: crash\)"):
        fc.gradcheck(make("CE", forward, crash).apply, (z, t), name="CE")
    with pytest.raises(AssertionError, match="wrong_dtype"):
        fc.gradcheck(make("CE", forward, backward).apply, (z.detach().float().requires_grad_(), t))


# --- the same verdicts and words through the judge ---------------------------------------------------

_STUDENT = '''
import torch

class Good(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y * (1 - y)

class NotStatic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    def backward(ctx, grad_output):
        return grad_output * 2

class Plain:
    pass

class InPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.mul_(2)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.mul_(2)

class Tuple(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.exp()

    @staticmethod
    def backward(ctx, grad_output):
        e = ctx.saved_tensors
        return grad_output * (1 - 1 / (1 + e))

class TwoGrads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output, grad_output

def worker_good(x):  # looks Good up when it runs, as a student's module would
    return Good.apply(x)

class Detached(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() * grad_output
'''

_JUDGED = {
    "class_good": "fc.check_function_class(Good)",
    "class_not_static": "fc.check_function_class(NotStatic)",
    "class_plain": "fc.check_static(Plain, 'forward')",
    "forward_good": "y = fc.run_forward(Good, x, input_names=['x']); fc.assert_close(y, torch.sigmoid(x.detach()))",
    "forward_in_place": "fc.run_forward(InPlace, x.detach().clone(), input_names=['x'])",
    "backward_good": "(g,) = fc.run_backward(fc.run_forward(Good, x), torch.ones(4, dtype=torch.float64), (x,))",
    "backward_in_place": "fc.run_backward(fc.run_forward(InPlace, x.detach().clone().requires_grad_()), "
                         "torch.ones(4, dtype=torch.float64), (x,))",
    "backward_tuple": "fc.run_backward(fc.run_forward(Tuple, x), None, (x,))",
    "backward_count": "fc.run_backward(fc.run_forward(TwoGrads, x), None, (x,))",
    "no_graph": "fc.run_backward(fc.run_forward(Good, x.detach()), None, (x,))",
    "saves_output": "fc.assert_saves_output(fc.run_forward(Good, x), name='Good')",
    "saves_input": "fc.assert_saves_output(fc.run_forward(TwoGrads, x), name='TwoGrads')",
    "gradcheck_good": "fc.gradcheck(Good.apply, (x,), name='Good')",
    "gradcheck_wrong": "fc.gradcheck(Detached.apply, (x,), name='Detached')",
    "gradgradcheck_good": "fc.gradgradcheck(Good.apply, (x,), name='Good')",
    "gradgradcheck_detached": "fc.gradgradcheck(Detached.apply, (x,), name='Detached')",
    "grad_create_graph": "(g1,) = fc.grad(Good.apply(x).sum(), x, create_graph=True); (g2,) = fc.grad(g1.sum(), x); "
                         "fc.assert_close(g2, torch.autograd.grad(torch.sigmoid(x).sum(), x, create_graph=True)[0].sum() * 0 "
                         "+ torch.autograd.grad(torch.autograd.grad(torch.sigmoid(x).sum(), x, create_graph=True)[0].sum(), x)[0])",
    "grad_crash": "fc.grad(Tuple.apply(x).sum(), x, name='backward of Tuple')",
    "graph_nodes": "assert fc.graph_node_names(Good.apply(x) * 2)['GoodBackward'] == 1",
    "substituted": "with fc.substituted(globals(), Good=fc.autograd_function('Good', torch.sigmoid)):\n"
                   "    assert 'GoodBackward' in fc.graph_node_names(Good.apply(x))\n"
                   "    assert fc.grad(worker_good(x).sum(), x)[0] is not None\n"  # the reference saves x, not y
                   "    try:\n        fc.assert_saves_output(worker_good(x), name='Good')\n"
                   "    except AssertionError as exc:\n        assert 'output_not_saved' in str(exc)\n"
                   "    else:\n        raise AssertionError('the reference was not swapped in where the student looks')\n"
                   "fc.assert_saves_output(worker_good(x), name='Good')",
}


def _desk(source: str) -> str:
    ns: dict = {"__name__": "__main__"}
    exec(_STUDENT, ns)
    ns.update(fc=fc, x=torch.tensor([-1.0, 0.5, 2.0, 0.25], dtype=torch.float64, requires_grad=True))
    try:
        exec(source, ns)
    except AssertionError as exc:
        return str(exc)
    return ""


def _judged(source: str) -> str:
    from backproplab_autograder.judge import Session, local_channel

    worker: dict = {"__name__": "__main__"}
    exec(_STUDENT, worker)
    session = Session(local_channel(worker))
    session.absorb("import torch\nfrom backproplab import function_checks as fc\n"
                   "x = torch.tensor([-1.0, 0.5, 2.0, 0.25], dtype=torch.float64, requires_grad=True)")
    verdict = session.run(source)
    assert verdict.passed or verdict.ename == "AssertionError", (verdict.ename, verdict.evalue)
    return "" if verdict.passed else verdict.evalue


@pytest.mark.parametrize("source", _JUDGED.values(), ids=_JUDGED.keys())
def test_the_judge_gives_the_desks_verdict_and_words(source):
    import re

    def words(text):  # object addresses and the random parts of gradgradcheck's numbers aside
        text = re.sub(r"0x[0-9a-f]+", "0x", text)
        return text.split("\n")[0] if "gradgradcheck" in text else text

    desk, judged = _desk(source), _judged(source)
    assert words(judged) == words(desk)
    if source.startswith(("fc.check_function_class(Good", "y = ", "(g,)", "fc.gradcheck(Good", "fc.gradgradcheck(Good",
                          "(g1,)", "assert", "with", "fc.assert_saves_output(fc.run_forward(Good")):
        assert desk == "", desk
    else:
        assert "(diagnosis: " in desk, desk
