"""Lab 5's grade cells accept other correct Functions (the lecture's operator among them) and reject
the usual mistakes with a message that names them; each exercise is graded on its own."""

from __future__ import annotations

import pytest

from tests.helpers.gradecells import run_all_for, run_grade_cell

AID = "lab5_custom_functions"


def outcomes(solution_id: str, source: str, public_only: bool = False) -> dict:
    return run_all_for(AID, solution_id, source, public_only=public_only)


def assert_all_pass(solution_id: str, source: str) -> None:
    failed = {g: o.message for g, o in outcomes(solution_id, source).items() if not o.passed}
    assert not failed, f"a correct {solution_id} was rejected: {failed}"


def assert_fails(solution_id: str, source: str, *words: str, only: set[str] | None = None,
                 public_only: bool = False) -> str:
    """The grade cells fail and their messages contain ``words``; with ``only``, exactly those cells fail."""
    result = outcomes(solution_id, source, public_only)
    failing = {g for g, o in result.items() if not o.passed}
    assert failing, f"the wrong {solution_id} passed every grade cell"
    if only is not None:
        assert failing == only, f"expected exactly {sorted(only)} to fail, got {sorted(failing)}: " + \
            "\n".join(result[g].message for g in failing)
    text = "\n".join(result[g].message for g in sorted(failing))
    for word in words:
        assert word in text, f"expected {word!r} in the failure message, got:\n{text}"
    return text


def function_source(name: str, forward: str, backward: str, static_forward: bool = True,
                    static_backward: bool = True, forward_args: str = "x") -> str:
    """A Function class with the given bodies (indented by the helper)."""
    def body(text: str) -> str:
        return "\n".join("        " + line if line.strip() else "" for line in text.strip("\n").splitlines())
    deco_f = "    @staticmethod\n" if static_forward else ""
    deco_b = "    @staticmethod\n" if static_backward else ""
    return (f"class {name}(torch.autograd.Function):\n{deco_f}    def forward(ctx, {forward_args}):\n{body(forward)}\n\n"
            f"{deco_b}    def backward(ctx, grad_output):\n{body(backward)}\n")


# --- Log1pExp ---------------------------------------------------------------------------------

LECTURE_FIXED = """
class Log1pExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        e = torch.exp(x)
        ctx.save_for_backward(e)
        output = torch.log(1 + e)
        return output

    @staticmethod
    def backward(ctx, dy):
        e, = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            dx = dy * (1 - 1 / (1 + e))
        else:
            dx = None
        return dx
"""

LOG1PEXP_ALTERNATIVES = {
    "where_and_saved_output": function_source(
        "Log1pExp",
        """
y = torch.where(x > 0, x + torch.log1p(torch.exp(-x)), torch.log1p(torch.exp(x)))
ctx.save_for_backward(x, y)
return y
""",
        """
x, y = ctx.saved_tensors
return grad_output * torch.exp(x - y)
"""),
    "clamp_log_and_exp_sigmoid": function_source(
        "Log1pExp",
        """
ctx.save_for_backward(x)
return torch.clamp(x, min=0) + torch.log(1 + torch.exp(-torch.abs(x)))
""",
        """
x = ctx.saved_tensors[0]
return grad_output / (1 + torch.exp(-x))
"""),
    "logaddexp_and_output": function_source(
        "Log1pExp",
        """
y = torch.logaddexp(x, torch.zeros_like(x))
ctx.save_for_backward(y)
return y
""",
        """
(y,) = ctx.saved_tensors
if not ctx.needs_input_grad[0]:
    return None
return grad_output * -torch.expm1(-y)
"""),
    "builtin_softplus": function_source(
        "Log1pExp",
        """
ctx.save_for_backward(x)
return F.softplus(x)
""",
        """
(x,) = ctx.saved_tensors
return grad_output * torch.sigmoid(x)
"""),
    "relu_plus_softplus_of_negative_abs": function_source(
        "Log1pExp",
        """
ctx.save_for_backward(x)
return torch.relu(x) + torch.log1p(torch.exp(-x.abs()))
""",
        """
(x,) = ctx.saved_tensors
s = torch.where(x >= 0, 1 / (1 + torch.exp(-x.abs())), torch.exp(-x.abs()) / (1 + torch.exp(-x.abs())))
return (grad_output * s,)
"""),
}


@pytest.mark.parametrize("source", LOG1PEXP_ALTERNATIVES.values(), ids=LOG1PEXP_ALTERNATIVES.keys())
def test_other_stable_log1pexp_pass(source):
    assert_all_pass("Log1pExp", source)


def test_lecture_operator_with_the_tuple_unpacked_fails_only_for_overflow():
    assert_fails("Log1pExp", LECTURE_FIXED, "(diagnosis: overflow)", "88.7", only={"test_Log1pExp_stable"})


def test_lecture_operator_as_written_is_told_to_unpack_saved_tensors():
    as_written = LECTURE_FIXED.replace("e, = ctx.saved_tensors", "e = ctx.saved_tensors")
    text = assert_fails("Log1pExp", as_written, "saved_tensors is a tuple: unpack it", "(diagnosis: saved_tensors_tuple)")
    assert "test_Log1pExp_forward" not in text


def test_naive_log1pexp_fails_stability_with_overflow():
    naive = function_source("Log1pExp", "ctx.save_for_backward(x)\nreturn torch.log(1 + torch.exp(x))",
                            "(x,) = ctx.saved_tensors\nreturn grad_output * torch.sigmoid(x)")
    assert_fails("Log1pExp", naive, "not finite in float32", "(diagnosis: overflow)", only={"test_Log1pExp_stable"})


def test_log1pexp_mistakes_in_backward_are_named():
    stable = "ctx.save_for_backward(x)\nreturn x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))"
    assert_fails("Log1pExp", function_source("Log1pExp", stable, "(x,) = ctx.saved_tensors\nreturn grad_output.mul_(torch.sigmoid(x))"),
                 "changed grad_output in place", "(diagnosis: grad_output_modified)")
    assert_fails("Log1pExp", function_source("Log1pExp", stable, "(x,) = ctx.saved_tensors\nreturn grad_output * torch.sigmoid(x), grad_output"),
                 "backward returned 2 gradients for 1 input", "(diagnosis: wrong_gradient_count)")
    assert_fails("Log1pExp", function_source("Log1pExp", stable, "(x,) = ctx.saved_tensors\nreturn grad_output * torch.exp(x)"),
                 "Log1pExp gradient with respect to x")
    assert_fails("Log1pExp", function_source("Log1pExp", stable, "(x,) = ctx.saved_tensors\nreturn grad_output * torch.sigmoid(x)",
                                             static_backward=False),
                 "Log1pExp.backward is not a @staticmethod", "(diagnosis: not_static)", only={"test_Log1pExp_backward"})
    assert_fails("Log1pExp", function_source("Log1pExp", stable, "(x,) = ctx.saved_tensors\nreturn grad_output * torch.sigmoid(x)",
                                             static_forward=False),
                 "Log1pExp.forward is not a @staticmethod", "(diagnosis: not_static)", only={"test_Log1pExp_forward"})


def test_log1pexp_forward_modifying_its_input_is_named():
    inplace = function_source("Log1pExp", "y = x.exp_().log1p_()\nctx.save_for_backward(y)\nreturn y",
                              "(y,) = ctx.saved_tensors\nreturn grad_output * (1 - torch.exp(-y))")
    assert_fails("Log1pExp", inplace, "(diagnosis: input_modified)")


# --- Sigmoid and Tanh ---------------------------------------------------------------------------


def test_sigmoid_and_tanh_written_differently_pass():
    assert_all_pass("Sigmoid", function_source("Sigmoid", "y = 1 / (1 + torch.exp(-x))\nctx.y = y\nreturn y",
                                               "return grad_output * ctx.y * (1 - ctx.y)"))
    assert_all_pass("Sigmoid", function_source("Sigmoid", "y = torch.sigmoid(x)\nctx.save_for_backward(x, y)\nreturn y",
                                               "_, y = ctx.saved_tensors\nreturn grad_output * (y - y * y)"))
    assert_all_pass("Tanh", function_source("Tanh", "e = torch.exp(2 * x)\ny = (e - 1) / (e + 1)\nctx.save_for_backward(y)\nreturn y",
                                            "y, = ctx.saved_tensors\nreturn grad_output - grad_output * y ** 2"))


def test_sigmoid_from_the_saved_input_loses_only_the_saving_point():
    from_input = function_source("Sigmoid", "ctx.save_for_backward(x)\nreturn torch.sigmoid(x)",
                                 "(x,) = ctx.saved_tensors\ns = torch.sigmoid(x)\nreturn grad_output * s * (1 - s)")
    assert_fails("Sigmoid", from_input, "(diagnosis: output_not_saved)", only={"test_Sigmoid_saves_output"})
    tanh_input = function_source("Tanh", "ctx.save_for_backward(x)\nreturn torch.tanh(x)",
                                 "(x,) = ctx.saved_tensors\nreturn grad_output / torch.cosh(x) ** 2")
    assert_fails("Tanh", tanh_input, "(diagnosis: output_not_saved)", only={"test_Tanh_saves_output"})


def test_wrong_sigmoid_and_tanh_derivatives_fail():
    assert_fails("Sigmoid", function_source("Sigmoid", "y = torch.sigmoid(x)\nctx.save_for_backward(y)\nreturn y",
                                            "(y,) = ctx.saved_tensors\nreturn grad_output * y"),
                 "Sigmoid gradient with respect to x", only={"test_Sigmoid"})
    assert_fails("Tanh", function_source("Tanh", "y = torch.tanh(x)\nctx.save_for_backward(y)\nreturn y",
                                         "y = ctx.saved_tensors\nreturn grad_output * (1 - y * y)"),
                 "saved_tensors is a tuple: unpack it", only={"test_Tanh"})


# --- ReLU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    function_source("ReLU", "ctx.save_for_backward(x > 0)\nreturn torch.where(x > 0, x, torch.zeros_like(x))",
                    "(mask,) = ctx.saved_tensors\nreturn torch.where(mask, grad_output, torch.zeros_like(grad_output))"),
    function_source("ReLU", "y = torch.relu(x)\nctx.save_for_backward(y)\nreturn y",
                    "(y,) = ctx.saved_tensors\nreturn grad_output * (y > 0)"),
    function_source("ReLU", "ctx.save_for_backward(x)\nreturn torch.maximum(x, torch.zeros_like(x))",
                    "(x,) = ctx.saved_tensors\ng = grad_output.clone()\ng[x <= 0] = 0\nreturn g"),
], ids=["where_mask", "from_output", "clone_and_zero"])
def test_other_relus_pass(source):
    assert_all_pass("ReLU", source)


def test_relu_gradient_one_at_zero_loses_only_the_zero_point():
    assert_fails("ReLU", function_source("ReLU", "ctx.save_for_backward(x)\nreturn x.clamp(min=0)",
                                         "(x,) = ctx.saved_tensors\nreturn grad_output * (x >= 0).to(grad_output.dtype)"),
                 "test x > 0, not x >= 0", "(diagnosis: relu_grad_at_zero)", only={"test_ReLU_zero"})


def test_relu_mistakes_are_named():
    assert_fails("ReLU", function_source("ReLU", "ctx.save_for_backward(x)\nreturn x.clamp(min=0)",
                                         "(x,) = ctx.saved_tensors\ngrad_output[x <= 0] = 0\nreturn grad_output"),
                 "(diagnosis: grad_output_modified)")
    assert_fails("ReLU", function_source("ReLU", "y = x.clamp_(min=0)\nctx.save_for_backward(y)\nreturn y",
                                         "(y,) = ctx.saved_tensors\nreturn grad_output * (y > 0)"),
                 "changed its argument x in place", "(diagnosis: input_modified)")


# --- LinearFunction -----------------------------------------------------------------------------

LINEAR_ADDMM = """
class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b=None):
        ctx.save_for_backward(x, W)
        ctx.has_bias = b is not None
        return torch.addmm(b, x, W.t()) if b is not None else torch.mm(x, W.t())

    @staticmethod
    def backward(ctx, grad_output):
        x, W = ctx.saved_tensors
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(grad_output, W)
        if ctx.needs_input_grad[1]:
            gW = torch.mm(grad_output.t(), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad_output.sum(dim=0)
        return gx, gW, gb
"""

LINEAR_PYTORCH_DOCS_STYLE = """
class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias=None):
        ctx.save_for_backward(input, weight, bias)
        output = input.mm(weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output.mm(weight)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.t().mm(input)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias
"""


@pytest.mark.parametrize("source", [LINEAR_ADDMM, LINEAR_PYTORCH_DOCS_STYLE], ids=["addmm", "pytorch_docs"])
def test_other_linear_functions_pass(source):
    assert_all_pass("LinearFunction", source)


def _linear_with_backward(backward: str) -> str:
    return function_source("LinearFunction", "ctx.save_for_backward(x, W)\nreturn x @ W.T if b is None else x @ W.T + b",
                           backward, forward_args="x, W, b=None")


def test_linear_transposed_weight_gradient_is_named():
    text = assert_fails("LinearFunction", _linear_with_backward(
        "x, W = ctx.saved_tensors\nreturn grad_output @ W, x.T @ grad_output, grad_output.sum(0)"),
        "(diagnosis: transposed_shape)", only={"test_LinearFunction_backward", "test_LinearFunction_none"})
    assert "LinearFunction gradient['W']" in text


def test_linear_gradients_where_none_is_needed_are_named():
    always = "x, W = ctx.saved_tensors\nreturn grad_output @ W, grad_output.T @ x, grad_output.sum(0)"
    assert_fails("LinearFunction", _linear_with_backward(always), "ctx.needs_input_grad[0] is False",
                 "(diagnosis: gradient_not_none)", only={"test_LinearFunction_none"})
    checks_needs = ("x, W = ctx.saved_tensors\nn = ctx.needs_input_grad\n"
                    "return (grad_output @ W if n[0] else None, grad_output.T @ x if n[1] else None, grad_output.sum(0))")
    assert_fails("LinearFunction", _linear_with_backward(checks_needs), "returned a gradient for b although ctx.needs_input_grad[2]",
                 "(diagnosis: gradient_not_none)", only={"test_LinearFunction_none"})


def test_linear_returning_too_few_gradients_is_named():
    two = ("x, W = ctx.saved_tensors\nn = ctx.needs_input_grad\n"
           "return grad_output @ W if n[0] else None, grad_output.T @ x if n[1] else None")
    assert_fails("LinearFunction", _linear_with_backward(two), "backward returned 2 gradients for 3 inputs",
                 "(diagnosis: wrong_gradient_count)")


def test_linear_bias_gradient_not_summed_is_named():
    assert_fails("LinearFunction", _linear_with_backward(
        "x, W = ctx.saved_tensors\nreturn grad_output @ W, grad_output.T @ x, grad_output"),
        "LinearFunction gradient['b']", "(diagnosis: batch_dim_kept)")


# --- SoftmaxCrossEntropy ------------------------------------------------------------------------

SCE_LOGSUMEXP = """
class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        lse = torch.logsumexp(logits, dim=1)                         # (B,)
        picked = logits.gather(1, target.unsqueeze(1)).squeeze(1)    # (B,)
        ctx.save_for_backward(logits, target)
        return (lse - picked).mean()

    @staticmethod
    def backward(ctx, grad_output):
        logits, target = ctx.saved_tensors
        p = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).to(p.dtype)
        return (p - onehot) * grad_output / logits.shape[0], None
"""

SCE_SAVE_SOFTMAX = """
class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        z = logits - logits.amax(1, keepdim=True)
        e = z.exp()
        s = e.sum(1, keepdim=True)
        p = e / s
        ctx.save_for_backward(p, target)
        ctx.B = logits.size(0)
        loss = (s.log().squeeze(1) - z[range(ctx.B), target]).sum() / ctx.B
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        p, target = ctx.saved_tensors
        g = p.clone()
        g[range(ctx.B), target] -= 1
        if not ctx.needs_input_grad[0]:
            return None, None
        return g * (grad_output / ctx.B), None
"""


def _sce_from_log_softmax(log_softmax: str) -> str:
    """A SoftmaxCrossEntropy whose forward computes log p with the given expression of z."""
    return f"""
class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        z = logits
        log_p = {log_softmax}
        ctx.save_for_backward(log_p, target)
        return -log_p[torch.arange(z.shape[0]), target].mean()

    @staticmethod
    def backward(ctx, grad_output):
        log_p, target = ctx.saved_tensors
        g = log_p.exp() - F.one_hot(target, log_p.shape[1]).to(log_p.dtype)
        return g * grad_output / log_p.shape[0], None
"""


# Mathematically right forms of log-softmax: each rounds differently in float32 at logits of 1e4,
# and each must pass every grade cell (precision is not logic).
LOG_SOFTMAX_FORMS = {
    "z_minus_logsumexp": "z - torch.logsumexp(z, dim=1, keepdim=True)",
    "max_then_logsumexp": "(z - z.amax(1, keepdim=True)) - torch.logsumexp(z - z.amax(1, keepdim=True), 1, keepdim=True)",
    "torch_log_softmax": "torch.log_softmax(z, dim=1)",
    "manual_logsumexp": ("z - (z.max(1, keepdim=True).values "
                         "+ torch.log(torch.exp(z - z.max(1, keepdim=True).values).sum(1, keepdim=True)))"),
    "F_log_softmax_float": "F.log_softmax(z, 1)",
}


@pytest.mark.parametrize("source", [SCE_LOGSUMEXP, SCE_SAVE_SOFTMAX], ids=["logsumexp_gather", "saved_softmax"])
def test_other_softmax_cross_entropies_pass(source):
    assert_all_pass("SoftmaxCrossEntropy", source)


@pytest.mark.parametrize("form", LOG_SOFTMAX_FORMS.values(), ids=LOG_SOFTMAX_FORMS.keys())
def test_every_right_log_softmax_form_passes_at_logits_of_1e4(form):
    assert_all_pass("SoftmaxCrossEntropy", _sce_from_log_softmax(form))


def test_precision_only_error_is_called_precision():
    # the right formula, but the loss value rounded through half precision (about 3 significant digits)
    half = _sce_from_log_softmax("torch.log_softmax(z, dim=1)").replace(
        "return -log_p[torch.arange(z.shape[0]), target].mean()",
        "return -log_p.half()[torch.arange(z.shape[0]), target].float().mean().to(z.dtype)")
    for gid in ("test_SoftmaxCrossEntropy_forward",):
        outcome = run_grade_cell(AID, gid, {"SoftmaxCrossEntropy": half})
        assert not outcome.passed, f"{gid} accepted a loss rounded to half precision"
        assert "(diagnosis: precision)" in outcome.message and "subtract the row maximum" in outcome.message, outcome.message


def test_logic_mistakes_keep_their_tags_at_every_magnitude():
    wrong_row = _sce_from_log_softmax("torch.log_softmax(z, dim=1)").replace(
        "log_p[torch.arange(z.shape[0]), target]", "log_p[torch.arange(z.shape[0]), target.roll(1)]")
    text = assert_fails("SoftmaxCrossEntropy", wrong_row)
    assert "(diagnosis: precision)" not in text and "(diagnosis: values)" in text
    no_mean = _sce_from_log_softmax("torch.log_softmax(z, dim=1)").replace(
        "target].mean()", "target].sum()").replace("g * grad_output / log_p.shape[0]", "g * grad_output")
    text = assert_fails("SoftmaxCrossEntropy", no_mean, "(diagnosis: batch_sum)")
    assert "(diagnosis: precision)" not in text
    naive = _sce_from_log_softmax("torch.log(torch.exp(z) / torch.exp(z).sum(1, keepdim=True))")
    assert_fails("SoftmaxCrossEntropy", naive, "(diagnosis: not_stable)", only={"test_SoftmaxCrossEntropy_stable"})


def test_unstable_softmax_fails_only_stability():
    naive = SCE_SAVE_SOFTMAX.replace("z = logits - logits.amax(1, keepdim=True)", "z = logits")
    assert_fails("SoftmaxCrossEntropy", naive, "subtract each row's maximum", "(diagnosis: not_stable)",
                 only={"test_SoftmaxCrossEntropy_stable"})


def test_softmax_cross_entropy_summed_over_the_batch_is_named():
    summed = SCE_LOGSUMEXP.replace("(lse - picked).mean()", "(lse - picked).sum()")
    # gradcheck in the backward cell fails too: that backward no longer matches this forward
    assert_fails("SoftmaxCrossEntropy", summed, "(diagnosis: batch_sum)", only={"test_SoftmaxCrossEntropy_forward",
                 "test_SoftmaxCrossEntropy_backward", "test_SoftmaxCrossEntropy_stable"})
    backward_summed = SCE_LOGSUMEXP.replace(" / logits.shape[0], None", ", None")
    assert_fails("SoftmaxCrossEntropy", backward_summed, "(diagnosis: batch_sum)",
                 only={"test_SoftmaxCrossEntropy_backward", "test_SoftmaxCrossEntropy_stable"})


def test_softmax_cross_entropy_backward_mistakes_are_named():
    one_grad = SCE_LOGSUMEXP.replace(" / logits.shape[0], None", " / logits.shape[0]")
    assert_fails("SoftmaxCrossEntropy", one_grad, "backward returned 1 gradient for 2 inputs", "(diagnosis: wrong_gradient_count)")
    no_grad_output = SCE_LOGSUMEXP.replace("(p - onehot) * grad_output / logits.shape[0]", "(p - onehot) / logits.shape[0]")
    assert_fails("SoftmaxCrossEntropy", no_grad_output, "grad_output = 0.7", "(diagnosis: scaled)")


# --- Square -------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    function_source("Square", "ctx.save_for_backward(x)\nreturn x ** 2", "x, = ctx.saved_tensors\nreturn 2 * grad_output * x"),
    function_source("Square", "ctx.x = x\nreturn x.pow(2)", "return torch.mul(grad_output, ctx.x + ctx.x)"),
], ids=["pow", "ctx_attribute"])
def test_other_squares_pass(source):
    assert_all_pass("Square", source)


@pytest.mark.parametrize("backward", [
    "x, = ctx.saved_tensors\nreturn 2 * x.detach() * grad_output",
    "x, = ctx.saved_tensors\nreturn 2 * x.data * grad_output",
    "x, = ctx.saved_tensors\nwith torch.no_grad():\n    g = 2 * x * grad_output\nreturn g",
    "x, = ctx.saved_tensors\nreturn torch.from_numpy(2 * x.detach().numpy()) * grad_output",
], ids=["detach", "data", "no_grad", "numpy"])
def test_square_with_a_non_differentiable_backward_fails_only_double_backward(backward):
    source = function_source("Square", "ctx.save_for_backward(x)\nreturn x * x", backward)
    assert_fails("Square", source, "(diagnosis: not_double_differentiable)", only={"test_Square_double_backward"})


# --- MLPWithFunctions ---------------------------------------------------------------------------

MLP_RANDN = """
class MLPWithFunctions(nn.Module):
    def __init__(self, nx, nh, ny):
        super().__init__()
        self.W1 = nn.Parameter(0.1 * torch.randn(nh, nx))
        self.b1 = nn.Parameter(torch.zeros(nh))
        self.W2 = nn.Parameter(0.1 * torch.randn(ny, nh))
        self.b2 = nn.Parameter(torch.zeros(ny))

    def forward(self, x):
        linear, tanh = LinearFunction.apply, Tanh.apply
        return linear(tanh(linear(x, self.W1, self.b1)), self.W2, self.b2)
"""

MLP_REGISTER = """
class MLPWithFunctions(nn.Module):
    def __init__(self, nx, nh, ny):
        super().__init__()
        for name, shape in [("W1", (nh, nx)), ("b1", (nh,)), ("W2", (ny, nh)), ("b2", (ny,))]:
            self.register_parameter(name, nn.Parameter(torch.randn(*shape) / math.sqrt(shape[-1])))

    def forward(self, x):
        h = LinearFunction.apply(x, self.W1, self.b1)
        h = Tanh.apply(h)
        return LinearFunction.apply(h, self.W2, self.b2)
"""


@pytest.mark.parametrize("source", [MLP_RANDN, MLP_REGISTER], ids=["randn", "register_parameter"])
def test_other_mlps_pass(source):
    assert_all_pass("MLPWithFunctions", source)


def test_mlp_is_graded_without_the_students_linear_and_tanh():
    stub = """
class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b=None):
        raise NotImplementedError()

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError()
"""
    result = run_all_for(AID, "MLPWithFunctions", MLP_RANDN)  # sanity: the reference run
    assert all(result.values())

    for gid in ("test_MLPWithFunctions_forward", "test_MLPWithFunctions_grads"):
        outcome = run_grade_cell(AID, gid, {"MLPWithFunctions": MLP_RANDN, "LinearFunction": stub})
        assert outcome.passed, f"{gid} depends on the student's LinearFunction: {outcome.message}"


def test_mlp_using_builtin_operations_is_named():
    builtin_tanh = MLP_RANDN.replace("linear, tanh = LinearFunction.apply, Tanh.apply", "linear, tanh = LinearFunction.apply, torch.tanh")
    assert_fails("MLPWithFunctions", builtin_tanh, "LinearFunction.apply and Tanh.apply only", "(diagnosis: builtin_used)",
                 only={"test_MLPWithFunctions_forward"})
    builtin_linear = MLP_RANDN.replace("linear, tanh = LinearFunction.apply, Tanh.apply", "linear, tanh = F.linear, Tanh.apply")
    assert_fails("MLPWithFunctions", builtin_linear, "(diagnosis: builtin_used)", only={"test_MLPWithFunctions_forward"})


def test_mlp_with_a_zero_last_layer_passes():
    # a zero output layer is a common, harmless choice: W1 at random already breaks the symmetry
    assert_all_pass("MLPWithFunctions", MLP_RANDN.replace("nn.Parameter(0.1 * torch.randn(ny, nh))", "nn.Parameter(torch.zeros(ny, nh))"))


def test_mlp_init_mistakes_are_named():
    zeros = MLP_RANDN.replace("0.1 * torch.randn", "0 * torch.randn")
    assert_fails("MLPWithFunctions", zeros, "(diagnosis: zero_init)", only={"test_MLPWithFunctions_init"})
    transposed = MLP_RANDN.replace("torch.randn(nh, nx)", "torch.randn(nx, nh)")
    assert_fails("MLPWithFunctions", transposed, "MLPWithFunctions(5, 7, 3).W1 has shape (5, 7)", "(diagnosis: wrong_shape)")
    renamed = MLP_RANDN.replace("self.W1", "self.weight1")
    assert_fails("MLPWithFunctions", renamed, "expected exactly ['W1', 'W2', 'b1', 'b2']", "(diagnosis: wrong_parameters)")


def test_mlp_missing_the_tanh_fails():
    linear_only = MLP_RANDN.replace("linear(tanh(linear(", "linear((linear(")
    assert_fails("MLPWithFunctions", linear_only, "MLPWithFunctions(x) logits")


# --- LinearFunction's forward and Square: the usual mistakes -------------------------------------

LINEAR_BACKWARD = """
        x, W = ctx.saved_tensors
        gb = grad_output.sum(0) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return grad_output @ W, grad_output.T @ x, gb
"""


@pytest.mark.parametrize("forward, tag", [
    ("ctx.save_for_backward(x, W)\nreturn x @ W.T", "values"),                         # b ignored
    ("ctx.save_for_backward(x, W)\ny = x @ W\nreturn y if b is None else y + b", "diagnosis"),   # W not transposed
    ("ctx.save_for_backward(x, W)\ny = x @ W.T\nreturn y if b is None else y - b", "values"),    # sign of b
], ids=["bias_ignored", "not_transposed", "bias_subtracted"])
def test_usual_linear_forward_mistakes_fail(forward, tag):
    source = function_source("LinearFunction", forward, LINEAR_BACKWARD, forward_args="x, W, b=None")
    text = assert_fails("LinearFunction", source)
    assert "(diagnosis: " in text and tag in text


@pytest.mark.parametrize("backward, word", [
    ("(x,) = ctx.saved_tensors\nreturn 2 * x.detach() * grad_output", "diagnosis"),      # not double differentiable
    ("(x,) = ctx.saved_tensors\nreturn x * grad_output", "diagnosis"),                    # factor 2 missing
    ("(x,) = ctx.saved_tensors\nwith torch.no_grad():\n    g = 2 * x * grad_output\nreturn g", "diagnosis"),
], ids=["detached", "missing_factor_two", "no_grad"])
def test_usual_square_mistakes_fail(backward, word):
    source = function_source("Square", "ctx.save_for_backward(x)\nreturn x ** 2", backward)
    assert word in assert_fails("Square", source)
