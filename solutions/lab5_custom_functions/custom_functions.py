# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 5 — Writing your own `torch.autograd.Function`
#
# Autograd knows the derivative of every built-in operation. In this lab you add operations of your own: for each one you write the **forward** computation *and* its **backward** rule, and autograd plugs them into the graph like any built-in operation. The *Training Neural Networks* lecture (below) calls this, after Yann LeCun, *differentiable programming*: a program assembled from blocks that can each be differentiated.
#
# You will build, as `torch.autograd.Function` subclasses:
#
# | exercise | class | what it teaches |
# | --- | --- | --- |
# | 1 | `Log1pExp` | the *Training Neural Networks* lecture's operator: a numerically stable `log(1 + exp(x))` |
# | 2 | `Sigmoid`, `Tanh` | saving the *output* is enough to differentiate |
# | 3 | `ReLU` | the gradient is funnelled through the positive entries only |
# | 4 | `LinearFunction` | several inputs, one gradient each, `None` where none is needed |
# | 5 | `check_LinearFunction` | a bug hunt: a check that tells right Functions from wrong ones |
# | 6 | `SoftmaxCrossEntropy` | a fused, stable loss with a short backward |
# | 7 | `Square` | a backward autograd can differentiate again (`gradgradcheck`) |
# | 8 | `MLPWithFunctions` | a network made only of your Functions, trained on the digits |
#
# Written answers 1 and 2 (why gradcheck needs float64, what second derivatives cost in memory) are read and graded by a person.
#
# **The lectures.** Every class is checked with `gradcheck` in float64 and against the built-in operation. The ideas come from three lectures (transcripts in the course's seed folder; full references at the end):
#
# * *Training Neural Networks*, from the course *Applied Deep Learning* (the transcript names no lecturer): automatic differentiation as "differentiable programming", and the slide "Write Your Own PyTorch Operator" with `ctx.save_for_backward` and `needs_input_grad`. Called "the *Training Neural Networks* lecture" below.
# * François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine Learning (26 June 2018): what autograd records during the forward pass, `torch.autograd.grad`, `detach`, and in-place operations. Called "Fleuret's lecture" below.
# * *Neural Network View of a Linear Classifier* (the transcript names no lecturer or course; its figures are adapted from slides by Fei-Fei Li, Justin Johnson and Serena Yeung, CS 231n): storing the intermediate outputs of every layer, and the max that "funnels gradients" in ReLU. Called "the *Linear Classifier* lecture" below.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import math
import time
import traceback
import warnings

import torch
import torch.nn.functional as F
from backproplab import checks, data, env, function_checks, linear_hunt, needs, plots
from torch import nn
from tqdm.auto import tqdm

# %%
# %matplotlib inline
env.check_environment()
torch.set_num_threads(1)  # every tensor in this lab is tiny: one thread avoids the cost of keeping several in step

# %% [markdown]
# ## 1. What autograd records
#
# During the forward pass autograd builds a graph: every operation on a tensor that requires a gradient adds a node, reachable from the result through `grad_fn`. Each node knows its backward rule, and it **keeps the tensors that rule will need**. That is why the *Linear Classifier* lecture insists that "we must store the intermediate outputs of all layers": the gradient formulas contain them.
#
# Look at what two built-in nodes kept. `exp` keeps its *result*, because the derivative of `exp(x)` is `exp(x)` itself. The product `y * x` keeps *both factors*, because each factor's gradient is the other one times the incoming gradient.

# %%
x_demo = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
y_demo = torch.exp(x_demo)
z_demo = (y_demo * x_demo).sum()

print("z.grad_fn:", type(z_demo.grad_fn).__name__, "-> parents", [type(n).__name__ for n, _ in z_demo.grad_fn.next_functions])
mul_node = z_demo.grad_fn.next_functions[0][0]
print(type(mul_node).__name__, "saved", mul_node._saved_self.detach(), "and", mul_node._saved_other.detach())
print(type(y_demo.grad_fn).__name__, "saved its result", y_demo.grad_fn._saved_result.detach())
for fn in (torch.tanh, torch.sigmoid, torch.relu):
    node = fn(x_demo).grad_fn
    print(f"{type(node).__name__:>18} saved its result too:", node._saved_result.detach())


# %% [markdown]
# ## 2. The contract between a Function and autograd
#
# A custom operation is a subclass of `torch.autograd.Function` with two **static** methods:
#
# * `forward(ctx, *inputs)` computes the result from plain tensors. Autograd does not record anything inside it (it runs as if under `torch.no_grad()`); your Function *is* the node. Whatever `backward` will need goes into `ctx.save_for_backward(t1, t2, ...)`; non-tensor values can be stored as attributes, `ctx.k = k`.
# * `backward(ctx, grad_output)` receives $\partial L / \partial y$, the gradient of the final loss with respect to the output, and returns $\partial L / \partial x_i$ for **every** argument $x_i$ of `forward` after `ctx`, in the same order. It returns `None` for an argument that is not a tensor (like `b=None`) or when `ctx.needs_input_grad[i]` is `False`: no one asked for that gradient, so there is no reason to compute it.
# * `ctx.saved_tensors` gives back what was saved, **as a tuple**, even when a single tensor was saved.
# * `grad_output` belongs to autograd: read it, never modify it in place.
# * The Function is used through `Exp.apply(x)`, never by calling `forward` yourself.
#
# Here is a complete example that is not an exercise: `exp`, which, like the built-in node above, saves its output.

# %%
class Exp(torch.autograd.Function):
    """y = exp(x); dy/dx = exp(x) = y, so saving the output is enough."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors  # a tuple of one tensor: unpack it
        return grad_output * y


x_exp = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
y_exp = Exp.apply(x_exp)
print("node:", type(y_exp.grad_fn).__name__, "| needs_input_grad:", y_exp.grad_fn.needs_input_grad)
(grad_mine,) = torch.autograd.grad(y_exp.sum(), x_exp)
(grad_builtin,) = torch.autograd.grad(torch.exp(x_exp).sum(), x_exp)
print("our gradient     :", grad_mine)
print("built-in gradient:", grad_builtin)

# %% [markdown]
# ### Checking a backward with `gradcheck`, and why in float64
#
# `torch.autograd.gradcheck(fn, inputs)` compares the Jacobian your backward implies with central finite differences, $\big(f(x + \varepsilon) - f(x - \varepsilon)\big) / 2\varepsilon$ with $\varepsilon = 10^{-6}$. The subtraction is the problem in single precision. A float32 number carries about 7 significant digits (machine epsilon $1.2 \times 10^{-7}$), so $f(x \pm \varepsilon)$ are each rounded by about $10^{-7}|f|$, and dividing that rounding noise by $2\varepsilon = 2 \times 10^{-6}$ leaves an error of several percent in the "numerical derivative". A perfectly correct backward then fails. In float64 (machine epsilon $2.2 \times 10^{-16}$) the same noise is around $10^{-10}$, far below gradcheck's tolerances. Watch it happen on `Exp`, which we know is right:

# %%
gen = torch.Generator().manual_seed(0)
x_check = torch.randn(4, generator=gen)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # gradcheck warns that float32 will likely fail: that is the point
    try:
        torch.autograd.gradcheck(Exp.apply, (x_check.clone().requires_grad_(),))
        print("float32: passed (lucky draw)")
    except RuntimeError as err:  # gradcheck's GradcheckError is a RuntimeError
        print("float32: FAILED ->", "\n".join(str(err).strip().splitlines()[:9]))

print("float64:", torch.autograd.gradcheck(Exp.apply, (x_check.double().requires_grad_(),)))


# %% [markdown]
# Same function, same backward: only the precision of the finite differences changed. So every gradient check in this lab runs in float64, through `function_checks.gradcheck` (the comparison of `torch.autograd.gradcheck`), which refuses float32 inputs up front and explains a failure in words. A backward that passes in float64 is then used in float32 for training.
#
# **Written answer 1.** In your own words: why does a correct backward fail `gradcheck` in float32 and pass in float64? Say where the error of the finite difference comes from, how it depends on the step $\varepsilon$ and on the machine epsilon, and why a larger step does not simply fix float32.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_gradcheck_float64", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# gradcheck compares the Jacobian the backward gives with central differences $(f(x + \varepsilon) - f(x - \varepsilon)) / 2\varepsilon$, $\varepsilon = 10^{-6}$. Each value of $f$ is rounded to the dtype's precision, an error of about $u |f|$ with $u$ the machine epsilon, and dividing the difference by $2\varepsilon$ turns it into an error of about $u |f| / \varepsilon$ on the derivative; the truncation error of the central difference is only about $\varepsilon^2 |f^{(3)}|$. In float32, $u \approx 1.2 \times 10^{-7}$, so the rounding part is about $0.1 |f|$: errors of several percent, far above gradcheck's tolerances (atol $10^{-5}$, rtol $10^{-3}$), although the backward is exact. In float64, $u \approx 2.2 \times 10^{-16}$ and the error is about $10^{-10}$. A larger step trades rounding for truncation: the best $\varepsilon$ is near $u^{1/3}$, about $5 \times 10^{-3}$ in float32, where the error is still around $u^{2/3} \approx 2.5 \times 10^{-5}$ times the size of $f$ and its derivatives, above the tolerances, and a step that large can also cross a kink (ReLU at 0). So the check runs in float64, and the backward it validates is then used in float32.
# ### END SOLUTION

# %% [markdown]
# ## 3. `Log1pExp`: the *Training Neural Networks* lecture's operator
#
# The *Training Neural Networks* lecture writes its own operator for $y = \log(1 + e^{x})$ (the *softplus*), whose derivative is
#
# $$\frac{dy}{dx} = \frac{e^{x}}{1 + e^{x}} = 1 - \frac{1}{1 + e^{x}} = \sigma(x).$$
#
# Here is that operator exactly as on the slide "Write Your Own PyTorch Operator", with `my_exp` and `my_log` being `torch.exp` and `torch.log`. Its forward runs; its backward does not.

# %%
class LectureLog1pExp(torch.autograd.Function):
    # The Training Neural Networks lecture's slide, line for line (my_exp -> torch.exp, my_log -> torch.log).
    @staticmethod
    def forward(ctx, x):
        # The forward pass can use ctx.
        e = torch.exp(x)
        ctx.save_for_backward(e)
        output = torch.log(1 + e)
        return output

    @staticmethod
    def backward(ctx, dy):
        e = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            dx = dy * (1 - 1 / (1 + e))
        else:
            dx = None
        return dx


x_slide = torch.tensor(4.5, requires_grad=True)
y_slide = LectureLog1pExp.apply(x_slide)
print("forward is fine:", y_slide)
try:
    dydx = torch.autograd.grad(y_slide, x_slide)
except TypeError as err:
    frames = traceback.extract_tb(err.__traceback__)
    last = frames[-1]
    print(f"backward raised {type(err).__name__}: {err}")
    print(f"  in {last.name}(), at: {last.line}")

# %% [markdown]
# **How to read this error.** Start from the last line of a traceback, which is where Python gave up:
#
# 1. *Where:* the failing frame is `backward`, on `dx = dy * (1 - 1 / (1 + e))`. The forward pass worked; the mistake only shows up when autograd calls `backward`, which can be far from the line that started it (`torch.autograd.grad` or `loss.backward()`).
# 2. *What:* `unsupported operand type(s) for +: 'int' and 'tuple'`. In `1 + e`, the left operand is the int `1`, so `e` is a **tuple**.
# 3. *Why:* `e` comes from `e = ctx.saved_tensors`, and `saved_tensors` is always a tuple, one entry per tensor given to `save_for_backward`, here `(e,)`. The fix is to unpack it: `e, = ctx.saved_tensors` (or `(e,) = ...`, or `e = ctx.saved_tensors[0]`).
#
# The grader recognises this slip and says so:

# %%
try:
    function_checks.run_backward(LectureLog1pExp.apply(x_slide), torch.tensor(1.0), (x_slide,), input_names=["x"])
except AssertionError as err:
    print(err)

# %% [markdown]
# With the tuple unpacked the slide's operator gives $\sigma(4.5) = 0.98901$. But it computes `exp(x)` first, and in float32 `exp(x)` overflows to `inf` as soon as $x > 88.7$; then `log(1 + inf) = inf`, although the true value is almost exactly $x$. For very negative $x$, `1 + exp(x)` rounds to exactly `1` and every digit of the answer is lost. Here is the naive formula on a wide range:

# %%
x_naive = torch.tensor([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 88.0, 89.0, 100.0, 1e4])
naive = torch.log(1 + torch.exp(x_naive))
exact = torch.logaddexp(x_naive.double(), torch.zeros((), dtype=torch.float64))  # float64 reference
for xi, ni, ei in zip(x_naive.tolist(), naive.tolist(), exact.tolist()):
    print(f"x = {xi:>8g}   naive float32 log(1 + exp(x)) = {ni:<12.6g}   exact = {ei:.6g}")


# %% [markdown]
# The cure is an identity that never takes `exp` of a positive number:
#
# $$\log(1 + e^{x}) = \max(x, 0) + \log\left(1 + e^{-|x|}\right),$$
#
# (for $x > 0$, factor $e^{x}$ out of $1 + e^{x}$), together with `torch.log1p(u)`, which computes $\log(1 + u)$ accurately when $u$ is tiny. Now $e^{-|x|} \le 1$ can never overflow. The backward is $\sigma(x)$ times `grad_output`: `torch.sigmoid` is already stable, or you can write $\sigma$ from what you saved.
#
# **Exercise 1.** Write `Log1pExp`: finite and accurate in float32 for $x$ from $-10^4$ to $10^4$, values and gradients.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Log1pExp", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Log1pExp(torch.autograd.Function):
    """y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); dy/dx = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x)
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Log1pExp_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_Log1pExp_forward: Log1pExp.apply(x) equals log(1 + exp(x)) and keeps the dtype; forward is a @staticmethod
function_checks.check_static(Log1pExp, "forward")
t_x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
t_y = function_checks.run_forward(Log1pExp, t_x, input_names=["x"])
t_ref = torch.logaddexp(t_x.double(), torch.zeros((), dtype=torch.float64))
function_checks.assert_close(t_y, t_ref, name="Log1pExp.apply(x) in float32", dtype=torch.float32)
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (7,), (3, 4)]:
    t_x = torch.randn(*t_shape, dtype=torch.float64) * 6
    t_y = function_checks.run_forward(Log1pExp, t_x, input_names=["x"])
    function_checks.assert_close(t_y, torch.logaddexp(t_x, torch.zeros_like(t_x)), name=f"Log1pExp.apply(x), x of shape {t_shape}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Log1pExp_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_Log1pExp_backward: one gradient, grad_output * sigmoid(x), grad_output untouched; gradcheck passes in float64
function_checks.check_static(Log1pExp, "backward")
t_x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
t_y = function_checks.run_forward(Log1pExp, t_x, input_names=["x"])
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="Log1pExp", input_names=["x"])
(t_ref,) = torch.autograd.grad(torch.logaddexp(t_x, torch.zeros_like(t_x)), t_x, t_g)
function_checks.assert_close(t_gx, t_ref, name="Log1pExp gradient with respect to x")
function_checks.gradcheck(Log1pExp.apply, (t_x,), name="Log1pExp.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (6,), (2, 5)]:
    t_x = (torch.randn(*t_shape, dtype=torch.float64) * 5).requires_grad_()
    function_checks.gradcheck(Log1pExp.apply, (t_x,), name=f"Log1pExp.apply, x of shape {t_shape}")
    t_g = torch.randn(*t_shape, dtype=torch.float64)
    (t_gx,) = function_checks.grad(Log1pExp.apply(t_x), t_x, t_g, name="backward of Log1pExp")
    (t_ref,) = torch.autograd.grad(torch.logaddexp(t_x, torch.zeros_like(t_x)), t_x, t_g)
    function_checks.assert_close(t_gx, t_ref, name=f"Log1pExp gradient, x of shape {t_shape}")
t_x32 = torch.randn(5).requires_grad_()
(t_gx,) = function_checks.grad(Log1pExp.apply(t_x32).sum(), t_x32, name="backward of Log1pExp")
function_checks.assert_close(t_gx, torch.sigmoid(t_x32.detach().double()), name="Log1pExp gradient in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Log1pExp_stable", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_Log1pExp_stable: in float32, values and gradients are finite and accurate for x from -1e4 to 1e4
t_x = torch.tensor([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 88.0, 89.0, 100.0, 1e4], requires_grad=True)
t_y = function_checks.run_forward(Log1pExp, t_x, input_names=["x"])
if not bool(torch.isfinite(t_y).all()):  # run_forward made sure t_y is a tensor
    raise AssertionError(
        f"Log1pExp.apply(x) is not finite in float32 at x = {t_x[~torch.isfinite(t_y)].tolist()}: exp(x) overflows "
        "for x > 88.7; rewrite log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)) (diagnosis: overflow)"
    )
t_x64 = t_x.detach().double().requires_grad_()
t_ref = torch.logaddexp(t_x64, torch.zeros_like(t_x64))
function_checks.assert_close(t_y, t_ref, name="Log1pExp.apply(x) for |x| up to 1e4", dtype=torch.float32, inputs=[t_x])
(t_gx,) = function_checks.grad(t_y.sum(), t_x, name="backward of Log1pExp")
if not bool(torch.isfinite(t_gx).all()):
    raise AssertionError(
        f"the gradient of Log1pExp is not finite in float32 at x = {t_x[~torch.isfinite(t_gx)].tolist()}: compute "
        "sigmoid(x) without exp of a large positive number, for example torch.sigmoid (diagnosis: overflow)"
    )
(t_gref,) = torch.autograd.grad(t_ref.sum(), t_x64)
function_checks.assert_close(t_gx, t_gref, name="Log1pExp gradient for |x| up to 1e4", dtype=torch.float32, inputs=[t_x])
### BEGIN HIDDEN TESTS
t_x = (torch.rand(200) * 2e4 - 1e4).requires_grad_()
t_y = function_checks.run_forward(Log1pExp, t_x, input_names=["x"])
t_x64 = t_x.detach().double().requires_grad_()
t_ref = torch.logaddexp(t_x64, torch.zeros_like(t_x64))
function_checks.assert_close(t_y, t_ref, name="Log1pExp.apply(x), random x in [-1e4, 1e4]", dtype=torch.float32, inputs=[t_x])
(t_gx,) = function_checks.grad(t_y.sum(), t_x, name="backward of Log1pExp")
(t_gref,) = torch.autograd.grad(t_ref.sum(), t_x64)
function_checks.assert_close(t_gx, t_gref, name="Log1pExp gradient, random x in [-1e4, 1e4]", dtype=torch.float32, inputs=[t_x])
### END HIDDEN TESTS

# %% [markdown]
# Your operator against the naive formula, both in float32, on a wide range. The right panel shows the relative error against a float64 reference (errors below $10^{-12}$ are drawn at $10^{-12}$). The naive form loses every digit below $x \approx -17$, where `1 + exp(x)` rounds to 1, and is `inf` above $88.7$. The stable form keeps float32's full precision down to $x \approx -87$; below that the true value $\approx e^{x}$ is smaller than the smallest normal float32 ($1.2 \times 10^{-38}$) and underflows, a limit of the format rather than of the formula.

# %%
with needs("Log1pExp"):
    x_wide = torch.linspace(-120, 120, 2001)
    with torch.no_grad():
        stable_wide = Log1pExp.apply(x_wide)
        naive_wide = torch.log(1 + torch.exp(x_wide))
    exact_wide = torch.logaddexp(x_wide.double(), torch.zeros((), dtype=torch.float64))

    def rel_error(v):
        err = (v.double() - exact_wide).abs() / exact_wide.abs()
        return err.clamp(min=1e-12)  # so that exact values still show on a log axis

    fig, axes = plots.new_figure(1, 2, size=(5.0, 3.6))
    ax_val, ax_err = axes[0]
    ax_val.plot(x_wide, stable_wide, label="Log1pExp (stable)", lw=2)
    ax_val.plot(x_wide, naive_wide, "--", label="log(1 + exp(x)), naive", lw=2)
    ax_val.axvspan(88.72, 120, color="red", alpha=0.1, label="naive is inf")
    ax_val.set_xlabel("x")
    ax_val.set_ylabel("value (float32)")
    ax_val.legend(fontsize=8)
    ax_err.semilogy(x_wide, rel_error(stable_wide), label="Log1pExp (stable)")
    ax_err.semilogy(x_wide, rel_error(naive_wide), "--", label="naive")
    ax_err.axvspan(88.72, 120, color="red", alpha=0.1)
    ax_err.set_xlabel("x")
    ax_err.set_ylabel("relative error vs float64")
    ax_err.legend(fontsize=8)
    display(fig)


# %% [markdown]
# ## 4. `Sigmoid` and `Tanh`: the output is enough
#
# For these two functions the derivative is a function of the **output** $y$:
#
# $$\sigma'(x) = \sigma(x)\,(1 - \sigma(x)) = y(1 - y), \qquad \tanh'(x) = 1 - \tanh^2(x) = 1 - y^2.$$
#
# So forward saves $y$ (it has just computed it) and backward uses it, without computing `exp` again. This is what the built-in `SigmoidBackward0` and `TanhBackward0` nodes do (section 1: they saved their result). It also means the backward never needs $x$ at all.
#
# **Exercise 2.** Write `Sigmoid` and `Tanh`; each saves its output in forward and uses it in backward.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Sigmoid", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Sigmoid(torch.autograd.Function):
    """y = 1 / (1 + exp(-x)); dy/dx = y * (1 - y), from the saved output y."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (y,) = ctx.saved_tensors
        return grad_output * y * (1 - y)
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Sigmoid", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_Sigmoid: values and gradients equal torch.sigmoid's, one gradient per input, gradcheck passes in float64
function_checks.check_function_class(Sigmoid)
t_x = torch.tensor([-4.0, -1.0, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Sigmoid, t_x, input_names=["x"])
function_checks.assert_close(t_y, torch.sigmoid(t_x.detach()), name="Sigmoid.apply(x)")
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="Sigmoid", input_names=["x"])
(t_ref,) = torch.autograd.grad(torch.sigmoid(t_x), t_x, t_g)
function_checks.assert_close(t_gx, t_ref, name="Sigmoid gradient with respect to x")
function_checks.gradcheck(Sigmoid.apply, (t_x,), name="Sigmoid.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (4, 3)]:
    t_x = (torch.randn(*t_shape, dtype=torch.float64) * 3).requires_grad_()
    function_checks.gradcheck(Sigmoid.apply, (t_x,), name=f"Sigmoid.apply, x of shape {t_shape}")
    t_g = torch.randn(*t_shape, dtype=torch.float64)
    (t_gx,) = function_checks.grad(Sigmoid.apply(t_x), t_x, t_g, name="backward of Sigmoid")
    function_checks.assert_close(t_gx, torch.autograd.grad(torch.sigmoid(t_x), t_x, t_g)[0], name=f"Sigmoid gradient, shape {t_shape}")
t_x32 = torch.randn(6)
function_checks.assert_close(function_checks.run_forward(Sigmoid, t_x32), torch.sigmoid(t_x32.double()), name="Sigmoid.apply(x) in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Sigmoid_saves_output", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_Sigmoid_saves_output: forward saves its output for backward (the contract of this exercise)
t_x = torch.randn(5, dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Sigmoid, t_x, input_names=["x"])
function_checks.assert_saves_output(t_y, name="Sigmoid")


# %% deletable=false nbgrader={"grade": false, "grade_id": "Tanh", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Tanh(torch.autograd.Function):
    """y = tanh(x); dy/dx = 1 - y^2, from the saved output y."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Tanh", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_Tanh: values and gradients equal torch.tanh's, one gradient per input, gradcheck passes in float64
function_checks.check_function_class(Tanh)
t_x = torch.tensor([-3.0, -0.7, 0.0, 0.4, 2.5], dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Tanh, t_x, input_names=["x"])
function_checks.assert_close(t_y, torch.tanh(t_x.detach()), name="Tanh.apply(x)")
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="Tanh", input_names=["x"])
(t_ref,) = torch.autograd.grad(torch.tanh(t_x), t_x, t_g)
function_checks.assert_close(t_gx, t_ref, name="Tanh gradient with respect to x")
function_checks.gradcheck(Tanh.apply, (t_x,), name="Tanh.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (4, 3)]:
    t_x = (torch.randn(*t_shape, dtype=torch.float64) * 2).requires_grad_()
    function_checks.gradcheck(Tanh.apply, (t_x,), name=f"Tanh.apply, x of shape {t_shape}")
    t_g = torch.randn(*t_shape, dtype=torch.float64)
    (t_gx,) = function_checks.grad(Tanh.apply(t_x), t_x, t_g, name="backward of Tanh")
    function_checks.assert_close(t_gx, torch.autograd.grad(torch.tanh(t_x), t_x, t_g)[0], name=f"Tanh gradient, shape {t_shape}")
t_x32 = torch.randn(6)
function_checks.assert_close(function_checks.run_forward(Tanh, t_x32), torch.tanh(t_x32.double()), name="Tanh.apply(x) in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Tanh_saves_output", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_Tanh_saves_output: forward saves its output for backward (the contract of this exercise)
t_x = torch.randn(5, dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Tanh, t_x, input_names=["x"])
function_checks.assert_saves_output(t_y, name="Tanh")


# %% [markdown]
# ## 5. `ReLU` funnels the gradient
#
# $\mathrm{ReLU}(x) = \max(0, x)$ is applied element by element, so its Jacobian is diagonal, with a 1 where $x > 0$ and a 0 elsewhere: the *Linear Classifier* lecture notes that the full Jacobian of a ReLU layer is large (output size by input size) but sparse, only its diagonal being non-zero, and that the max "funnels gradients through the selected max". The backward therefore lets `grad_output` through where the input was positive and stops it everywhere else: the max *selects* the path the gradient flows along, and that choice has to be remembered from the forward pass. At exactly $x = 0$ the function has no derivative; like PyTorch, we use 0 there (`x > 0`, not `x >= 0`).
#
# **Exercise 3.** Write `ReLU`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "ReLU", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ReLU(torch.autograd.Function):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (0 at x == 0)."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        return x.clamp(min=0)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0).to(grad_output.dtype)
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ReLU", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_ReLU: values and gradients equal torch.relu's (away from 0), one gradient, gradcheck passes in float64
function_checks.check_function_class(ReLU)
t_x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 1.5], dtype=torch.float64)
function_checks.assert_close(function_checks.run_forward(ReLU, t_x, input_names=["x"]), torch.relu(t_x), name="ReLU.apply(x)")
t_x = torch.tensor([-2.0, -0.5, 0.3, 0.25, 1.5], dtype=torch.float64, requires_grad=True)
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
t_y = function_checks.run_forward(ReLU, t_x, input_names=["x"])
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="ReLU", input_names=["x"])
(t_ref,) = torch.autograd.grad(torch.relu(t_x), t_x, t_g)
function_checks.assert_close(t_gx, t_ref, name="ReLU gradient with respect to x")
function_checks.gradcheck(ReLU.apply, (t_x,), name="ReLU.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (5, 4)]:
    t_x = torch.randn(*t_shape, dtype=torch.float64)
    t_x = (t_x + 0.1 * t_x.sign()).requires_grad_()  # away from the kink at 0
    function_checks.gradcheck(ReLU.apply, (t_x,), name=f"ReLU.apply, x of shape {t_shape}")
    t_g = torch.randn(*t_shape, dtype=torch.float64)
    (t_gx,) = function_checks.grad(ReLU.apply(t_x), t_x, t_g, name="backward of ReLU")
    function_checks.assert_close(t_gx, torch.autograd.grad(torch.relu(t_x), t_x, t_g)[0], name=f"ReLU gradient, shape {t_shape}")
t_x32 = torch.randn(6)
function_checks.assert_close(function_checks.run_forward(ReLU, t_x32), torch.relu(t_x32.double()), name="ReLU.apply(x) in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ReLU_zero", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_ReLU_zero: no gradient passes where x == 0
t_x = torch.tensor([-1.0, 0.0, 2.0, 0.0, -0.0], dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(ReLU, t_x, input_names=["x"])
t_g = torch.ones(5, dtype=torch.float64)
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="ReLU", input_names=["x"])
(t_ref,) = torch.autograd.grad(torch.relu(t_x), t_x, t_g)
if isinstance(t_gx, torch.Tensor) and t_gx.shape == t_x.shape and bool((t_gx.detach()[t_x.detach() == 0] != 0).any()):
    raise AssertionError(
        "ReLU.backward lets the gradient through where x == 0: the contract (and PyTorch) uses 0 there, so "
        "test x > 0, not x >= 0 (diagnosis: relu_grad_at_zero)"
    )
function_checks.assert_close(t_gx, t_ref, name="ReLU gradient at x = [-1, 0, 2, 0, -0]")

# %%
with needs("ReLU"):
    x_relu = torch.tensor([-1.5, -0.2, 0.0, 0.3, 2.0], requires_grad=True)
    (g_relu,) = torch.autograd.grad(ReLU.apply(x_relu), x_relu, torch.full((5,), 10.0))
    print("x            :", x_relu.detach())
    print("grad_output  :", torch.full((5,), 10.0))
    print("gradient on x:", g_relu, "<- only the positive entries receive anything")


# %% [markdown]
# ## 6. `LinearFunction`: several inputs, one gradient each
#
# $$y = x W^\top + b, \qquad x: (B, n_x),\; W: (n_y, n_x),\; b: (n_y,),\; y: (B, n_y).$$
#
# With $G = \partial L / \partial y$ of shape $(B, n_y)$ (the `grad_output`), the chain rule gives
#
# $$\frac{\partial L}{\partial x} = G\,W \;(B, n_x), \qquad \frac{\partial L}{\partial W} = G^\top x \;(n_y, n_x), \qquad \frac{\partial L}{\partial b} = \sum_{\text{rows}} G \;(n_y,).$$
#
# Check the shapes: each gradient has the shape of its input, which is the quickest way to catch a transposed product.
#
# `forward(ctx, x, W, b=None)` has three arguments, so `backward` returns **three** values, in that order. Two cases call for `None`:
#
# * `b` is `None` (a layer without bias): there is nothing to differentiate, and autograd refuses a tensor there.
# * `ctx.needs_input_grad[i]` is `False`: typically for the input `x` of the first layer, which is data. Autograd would throw the gradient away, so skip the work and return `None`.
#
# **Exercise 4.** Write `LinearFunction`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "LinearFunction", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LinearFunction(torch.autograd.Function):
    """y = x W^T + b; grads (G W, G^T x, sum of G over rows), None where not needed or b is None."""

    @staticmethod
    def forward(ctx, x, W, b=None):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, W)
        y = x @ W.T  # (B, ny)
        if b is not None:
            y = y + b
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        x, W = ctx.saved_tensors
        wanted = ctx.needs_input_grad  # (x, W) or (x, W, b)
        grad_x = grad_output @ W if wanted[0] else None  # (B, nx)
        grad_W = grad_output.T @ x if wanted[1] else None  # (ny, nx)
        grad_b = grad_output.sum(0) if len(wanted) > 2 and wanted[2] else None  # (ny,)
        return grad_x, grad_W, grad_b
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_LinearFunction_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_LinearFunction_forward: LinearFunction.apply(x, W, b) equals x W^T + b, with and without b
function_checks.check_static(LinearFunction, "forward")
t_x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 0.5]])
t_W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
t_b = torch.tensor([0.1, -0.2])
t_y = function_checks.run_forward(LinearFunction, t_x, t_W, t_b, input_names=["x", "W", "b"])
function_checks.assert_close(t_y, F.linear(t_x.double(), t_W.double(), t_b.double()), name="LinearFunction.apply(x, W, b)", dtype=torch.float32)
t_y = function_checks.run_forward(LinearFunction, t_x, t_W, input_names=["x", "W"])
function_checks.assert_close(t_y, F.linear(t_x.double(), t_W.double()), name="LinearFunction.apply(x, W) without b", dtype=torch.float32)
### BEGIN HIDDEN TESTS
for t_B, t_nx, t_ny in [(1, 4, 3), (5, 2, 6), (3, 4, 4)]:
    t_x = torch.randn(t_B, t_nx, dtype=torch.float64)
    t_W = torch.randn(t_ny, t_nx, dtype=torch.float64)
    t_b = torch.randn(t_ny, dtype=torch.float64)
    t_y = function_checks.run_forward(LinearFunction, t_x, t_W, t_b, input_names=["x", "W", "b"])
    function_checks.assert_close(t_y, F.linear(t_x, t_W, t_b), name=f"LinearFunction.apply(x, W, b), x {tuple(t_x.shape)}, W {tuple(t_W.shape)}")
    t_y = function_checks.run_forward(LinearFunction, t_x, t_W, None, input_names=["x", "W", "b"])
    function_checks.assert_close(t_y, F.linear(t_x, t_W), name=f"LinearFunction.apply(x, W, None), x {tuple(t_x.shape)}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_LinearFunction_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_LinearFunction_backward: three gradients G W, G^T x, sum of G over rows, equal to autograd's; gradcheck in float64
function_checks.check_static(LinearFunction, "backward")
t_x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 0.5]], dtype=torch.float64, requires_grad=True)
t_W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=torch.float64, requires_grad=True)
t_b = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)
t_g = torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0], [0.25, 1.0]], dtype=torch.float64)
t_y = function_checks.run_forward(LinearFunction, t_x, t_W, t_b, input_names=["x", "W", "b"])
t_grads = function_checks.run_backward(t_y, t_g, (t_x, t_W, t_b), name="LinearFunction", input_names=["x", "W", "b"])
t_refs = torch.autograd.grad(F.linear(t_x, t_W, t_b), (t_x, t_W, t_b), t_g)
function_checks.assert_grads_close(dict(zip(["x", "W", "b"], t_grads)), dict(zip(["x", "W", "b"], t_refs)), name="LinearFunction gradient")
function_checks.gradcheck(LinearFunction.apply, (t_x, t_W, t_b), name="LinearFunction.apply")
### BEGIN HIDDEN TESTS
for t_B, t_nx, t_ny in [(1, 4, 3), (5, 2, 6), (3, 4, 4)]:
    t_x = torch.randn(t_B, t_nx, dtype=torch.float64, requires_grad=True)
    t_W = torch.randn(t_ny, t_nx, dtype=torch.float64, requires_grad=True)
    t_b = torch.randn(t_ny, dtype=torch.float64, requires_grad=True)
    function_checks.gradcheck(LinearFunction.apply, (t_x, t_W, t_b), name=f"LinearFunction.apply, x {tuple(t_x.shape)}, W {tuple(t_W.shape)}")
    t_g = torch.randn(t_B, t_ny, dtype=torch.float64)
    t_got = function_checks.grad(LinearFunction.apply(t_x, t_W, t_b), (t_x, t_W, t_b), t_g, name="backward of LinearFunction")
    t_refs = torch.autograd.grad(F.linear(t_x, t_W, t_b), (t_x, t_W, t_b), t_g)
    function_checks.assert_grads_close(dict(zip(["x", "W", "b"], t_got)), dict(zip(["x", "W", "b"], t_refs)),
                              name=f"LinearFunction gradient, x {tuple(t_x.shape)}, W {tuple(t_W.shape)}", batch_size=t_B)
t_in32 = [torch.randn(3, 2, requires_grad=True), torch.randn(4, 2, requires_grad=True), torch.randn(4, requires_grad=True)]
t_got = function_checks.grad(LinearFunction.apply(*t_in32).sum(), t_in32, name="backward of LinearFunction")
t_in64 = [t.detach().double().requires_grad_() for t in t_in32]
t_refs = torch.autograd.grad(F.linear(*t_in64).sum(), t_in64)
function_checks.assert_grads_close(dict(zip(["x", "W", "b"], t_got)), dict(zip(["x", "W", "b"], t_refs)), name="LinearFunction gradient in float32",
                          dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_LinearFunction_none", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_LinearFunction_none: backward returns None for b=None and wherever ctx.needs_input_grad is False
t_x = torch.randn(4, 3, dtype=torch.float64)
t_W = torch.randn(2, 3, dtype=torch.float64)
t_b = torch.randn(2, dtype=torch.float64)
t_names = ["x", "W", "b"]
for t_case, t_req in [("x is data (no gradient)", (False, True, True)), ("only x needs a gradient", (True, False, False)),
                      ("b needs no gradient", (True, True, False))]:
    t_in = [t.clone().requires_grad_(r) for t, r in zip((t_x, t_W, t_b), t_req)]
    t_y = function_checks.run_forward(LinearFunction, *t_in, input_names=t_names)
    t_grads = function_checks.run_backward(t_y, torch.ones(4, 2, dtype=torch.float64), t_in, name=f"LinearFunction ({t_case})", input_names=t_names)
t_in = [t_x.clone().requires_grad_(), t_W.clone().requires_grad_(), None]
t_y = function_checks.run_forward(LinearFunction, *t_in, input_names=t_names)
function_checks.run_backward(t_y, torch.ones(4, 2, dtype=torch.float64), t_in, name="LinearFunction (b=None)", input_names=t_names)
### BEGIN HIDDEN TESTS
t_in = [t_x.clone().requires_grad_(), t_W.clone().requires_grad_()]
t_y = function_checks.run_forward(LinearFunction, *t_in, input_names=t_names[:2])
function_checks.run_backward(t_y, torch.ones(4, 2, dtype=torch.float64), t_in, name="LinearFunction (called with x, W only)", input_names=t_names[:2])
t_x1 = torch.randn(1, 5, dtype=torch.float64)
t_W1 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
t_got = function_checks.grad(LinearFunction.apply(t_x1, t_W1, None).sum(), t_W1, name="backward of LinearFunction with b=None")
function_checks.assert_close(t_got[0], torch.autograd.grad(F.linear(t_x1, t_W1).sum(), t_W1)[0], name="LinearFunction gradient for W with b=None")
### END HIDDEN TESTS

# %%
with needs("LinearFunction"):
    x_data = torch.randn(8, 3)  # data: no gradient wanted
    W_layer = torch.randn(2, 3, requires_grad=True)
    y_layer = LinearFunction.apply(x_data, W_layer, None)
    print("needs_input_grad seen by backward:", y_layer.grad_fn.needs_input_grad)
    grads = y_layer.grad_fn.apply(torch.ones(8, 2))  # call backward directly, as autograd would
    print("backward returned:", [None if g is None else tuple(g.shape) for g in grads])

# %% [markdown]
# ## 7. Bug hunt: a check for `LinearFunction`
#
# A grader is a program too, and writing one is a good way to find out what "right" means. **Exercise 5.** Write `check_LinearFunction(candidate)`: `candidate` is a `torch.autograd.Function` class with the signature of your `LinearFunction` (`forward(ctx, x, W, b=None)`); return the Python bool `True` if it is right and `False` if it is wrong.
#
# Use only public facts: small inputs you build yourself, `torch.autograd` on the built-in `F.linear` (float64) as the oracle, `torch.autograd.gradcheck` if you like. What a right candidate must do:
#
# * `candidate.apply(x, W, b)` equals `F.linear(x, W, b)`, and so do `candidate.apply(x, W, None)` and `candidate.apply(x, W)` (`b` left out);
# * the gradients autograd gets through it equal those through `F.linear`, for every input that requires one (also when `x` is data and needs none), for several shapes, including a batch of more than one row;
# * `grad_output` is the same after the backward as before (autograd hands the caller's tensor to `backward`).
#
# Two things a right candidate may do that your check must accept: skip the `ctx.needs_input_grad` test (autograd throws away a gradient nobody asked for, so nothing you can observe changes), and compute in any order or style (`x.mm(W.t())`, `torch.addmm`, `einsum`). An exception raised by a candidate means it is wrong: catch it and return `False`.
#
# **How it is graded.** Your check runs on 15 hidden candidates, 5 right and 10 wrong, each with a time limit of 2 s (a thorough check on small inputs takes a few hundredths of a second). If it rejects any right one, the exercise scores 0. Otherwise it scores its 4 points times the share of the 10 wrong candidates it rejects (all of them for full marks; a candidate that raises inside your check counts as rejected). The cell below the exercise shows your check against four planted bugs, named after the course's diagnosis catalogue; the hidden wrong candidates include others.

# %% deletable=false nbgrader={"grade": false, "grade_id": "check_LinearFunction", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_LinearFunction(candidate):
    """True iff candidate.apply(x, W, b) = x W^T + b with autograd's gradients (b given, None or left out)."""
    ### BEGIN SOLUTION
    gen = torch.Generator().manual_seed(0)

    def same(a, e):
        return (isinstance(a, torch.Tensor) and a.shape == e.shape and a.dtype == e.dtype
                and bool(torch.allclose(a, e, rtol=1e-7, atol=1e-9)))

    try:
        for B, nx, ny in [(4, 3, 2), (1, 2, 3), (3, 3, 3)]:
            x0, W0 = torch.randn(B, nx, generator=gen, dtype=torch.float64), torch.randn(ny, nx, generator=gen, dtype=torch.float64)
            b0, g = torch.randn(ny, generator=gen, dtype=torch.float64), torch.randn(B, ny, generator=gen, dtype=torch.float64)
            for case in ("b given", "b None", "b left out", "x is data"):
                x, W = x0.clone().requires_grad_(case != "x is data"), W0.clone().requires_grad_()
                b = b0.clone().requires_grad_() if case in ("b given", "x is data") else None
                args = (x, W) if case == "b left out" else (x, W, b)
                wrt = [a for a in args if a is not None and a.requires_grad]
                y, ref = candidate.apply(*args), F.linear(*args)
                if not same(y.detach(), ref.detach()):
                    return False
                g_before = g.clone()
                got = torch.autograd.grad(y, wrt, g)
                if not torch.equal(g, g_before):  # grad_output modified in place
                    return False
                want = torch.autograd.grad(ref, wrt, g)
                if not all(same(a, e) for a, e in zip(got, want)):
                    return False
        return True
    except Exception:  # a candidate that raises is wrong
        return False
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_check_LinearFunction", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# test_check_LinearFunction: the check accepts every right LinearFunction and rejects wrong ones (partial credit)
# Scoring: 0 if any right candidate is rejected, else 4 points times the share of wrong candidates rejected.
# Partial credit: nbgrader scores a grade cell by its output (nbgrader.utils.determine_grade): an error or any
# stderr output scores 0, a displayed number (the execute_result of the last line) is the score, anything else
# full marks. So this cell raises when the score is 0 and otherwise ends with the score. Time limit: 2 s per
# candidate (linear_hunt.SECONDS; 21 runs stay under the grader's 60 s per cell); warnings are silenced so that
# they cannot reach stderr.
t_right = function_checks.autograd_function("LinearFunction", F.linear)
t_answer = checks.call(check_LinearFunction, t_right, name="check_LinearFunction")
if not isinstance(t_answer, bool):
    raise AssertionError(
        f"check_LinearFunction returned a {type(t_answer).__name__}, expected the Python bool True or False "
        "(bool(...) converts a tensor of one element) (diagnosis: wrong_return)"
    )
t_score = linear_hunt.score(check_LinearFunction, {"autograd on F.linear": t_right}, linear_hunt.planted_bugs(), points=4)
### BEGIN HIDDEN TESTS
# Hidden candidates, each made of two plain functions (linear_hunt.candidate): forward(x, W, b), b None when None or
# left out, and backward(x, W, b, grad_output, needs) with needs = ctx.needs_input_grad; a backward that changes
# grad_output in place returns {"grads": ..., "grad_output": what the caller's tensor holds afterwards}.
def t_fw_docs(x, W, b):  # the PyTorch docs' style: mm, the bias expanded and added in place
    out = x.mm(W.t())
    if b is not None:
        out += b.unsqueeze(0).expand_as(out)
    return out


def t_bw_docs(x, W, b, g, need):  # tests needs_input_grad
    grad_x = g.mm(W) if need[0] else None
    grad_W = g.t().mm(x) if need[1] else None
    grad_b = g.sum(0) if b is not None and need[2] else None
    return grad_x, grad_W, grad_b


def t_fw_addmm(x, W, b):
    return torch.addmm(b, x, W.t()) if b is not None else torch.mm(x, W.t())


def t_bw_addmm(x, W, b, g, need):  # no needs_input_grad test at all
    return torch.mm(g, W), torch.mm(g.t(), x), g.sum(0) if b is not None else None


def t_fw_einsum(x, W, b):
    y = torch.einsum("bi,oi->bo", x, W)
    return y if b is None else y + b


def t_bw_einsum(x, W, b, g, need):  # einsum, only what is asked for
    gx = torch.einsum("bo,oi->bi", g, W) if need[0] else None
    gW = torch.einsum("bo,bi->oi", g, x) if need[1] else None
    gb = torch.einsum("bo->o", g) if len(need) > 2 and need[2] else None
    return gx, gW, gb


def t_fw_linear(x, W, b):
    return F.linear(x, W, b)


def t_bw_matmul(x, W, b, g, need):  # matmul backward, ones-vector bias sum
    gb = None
    if len(need) == 3 and need[2]:
        gb = torch.ones(g.shape[0], dtype=g.dtype) @ g
    return g @ W, g.transpose(0, 1) @ x, gb


def t_fw_right(x, W, b):
    return x @ W.T if b is None else x @ W.T + b


def t_bw_right(x, W, b, g, need):
    return g @ W, g.T @ x, g.sum(0) if b is not None else None


def t_bw_transposed(x, W, b, g, need):
    return g @ W, x.T @ g, g.sum(0) if b is not None else None


def t_bw_bias_mean(x, W, b, g, need):
    return g @ W, g.T @ x, g.mean(0) if b is not None else None


def t_bw_weight_first_row(x, W, b, g, need):
    return g @ W, g[:1].T @ x[:1], g.sum(0) if b is not None else None


def t_bw_saved_tuple(x, W, b, g, need):
    saved = (x, W)  # ctx.saved_tensors used as a tensor: raises
    return g @ saved[1], g.T @ saved, g.sum(0) if b is not None else None


def t_bw_bias_when_none(x, W, b, g, need):
    return g @ W, g.T @ x, g.sum(0)


def t_bw_input_with_W_T(x, W, b, g, need):
    return g @ W.T, g.T @ x, g.sum(0) if b is not None else None


def t_bw_sign_weight(x, W, b, g, need):
    return g @ W, -(g.T @ x), g.sum(0) if b is not None else None


def t_bw_transposes_grad_output(x, W, b, g, need):  # g.t_(): the caller's grad_output is now transposed
    return {"grads": (g @ W, g.T @ x, g.sum(0) if b is not None else None), "grad_output": g.t()}


def t_bw_needs_shifted(x, W, b, g, need):
    return g @ W if need[0] else None, g.T @ x if need[0] else None, g.sum(0) if b is not None and need[-1] else None


def t_fw_ignores_b(x, W, b):
    return x @ W.T


t_right_ones = {"docs": linear_hunt.candidate(t_fw_docs, t_bw_docs), "addmm": linear_hunt.candidate(t_fw_addmm, t_bw_addmm),
                "einsum": linear_hunt.candidate(t_fw_einsum, t_bw_einsum),
                "matmul": linear_hunt.candidate(t_fw_linear, t_bw_matmul), "autograd": t_right}
t_wrong_ones = {t_name: linear_hunt.candidate(t_fw_right, t_bw) for t_name, t_bw in [
    ("transposed", t_bw_transposed), ("batch_mean_twice", t_bw_bias_mean), ("some_rows", t_bw_weight_first_row),
    ("saved_tensors_tuple", t_bw_saved_tuple), ("gradient_not_none", t_bw_bias_when_none),
    ("input_grad_with_W_T", t_bw_input_with_W_T), ("sign", t_bw_sign_weight),
    ("grad_output_modified", t_bw_transposes_grad_output), ("missing_gradient", t_bw_needs_shifted)]}
t_wrong_ones["forward_ignores_b"] = linear_hunt.candidate(t_fw_ignores_b, t_bw_right)
t_score = linear_hunt.score(check_LinearFunction, t_right_ones, t_wrong_ones, points=4)
### END HIDDEN TESTS
print(f"wrong candidates rejected: {len(t_score.caught)} of {len(t_score.caught) + len(t_score.missed)}")
t_score.points

# %% [markdown]
# Your check against the four planted bugs, and against a right `LinearFunction` built from autograd on `F.linear`. Each planted bug gets its gradients from autograd and then goes wrong in one place, named in the second column:

# %%
with needs("check_LinearFunction"):
    reference_linear = function_checks.autograd_function("LinearFunction", F.linear)
    print("right LinearFunction accepted:", check_LinearFunction(reference_linear))
    print(linear_hunt.hunt_table(check_LinearFunction, linear_hunt.planted_bugs()))
with needs("check_LinearFunction", "LinearFunction"):
    print("your own LinearFunction:", "accepted" if check_LinearFunction(LinearFunction) else "rejected")

# %% [markdown]
# ## 8. `SoftmaxCrossEntropy`: fused and stable
#
# For logits $z \in \mathbb{R}^{B \times K}$ and integer targets $t \in \{0..K-1\}^B$, the mean cross-entropy of the softmax is
#
# $$L = \frac{1}{B} \sum_{i} \Big( \log \sum_k e^{z_{ik}} - z_{i t_i} \Big).$$
#
# Two things go wrong when it is written as "softmax, then log, then pick":
#
# * `exp(z)` overflows for logits above 88.7 in float32, giving `inf / inf = nan`. Subtracting each row's maximum first changes nothing mathematically (the factor $e^{-m_i}$ cancels) and makes every exponent $\le 0$.
# * Even with that, the softmax of a clearly wrong class underflows to 0, and `log(0) = -inf`. Working with $\log \mathrm{softmax} = (z - m) - \log \sum_k e^{z_k - m}$ directly avoids it.
#
# Fusing the two operations also gives a short backward. With $p = \mathrm{softmax}(z)$ and $Y$ the one-hot targets,
#
# $$\frac{\partial L}{\partial z} = \frac{p - Y}{B} \times \texttt{grad\_output}, \qquad \text{and } \texttt{None} \text{ for the integer targets.}$$

# %%
z_big = torch.tensor([[0.0, 200.0], [1000.0, 0.0]])
t_big = torch.tensor([0, 0])
unfused = -torch.log(torch.softmax(z_big, dim=1))[torch.arange(2), t_big].mean()
no_max = torch.exp(z_big) / torch.exp(z_big).sum(1, keepdim=True)
print("softmax without subtracting the max:", no_max)
print("loss as log(softmax(z)):", unfused.item(), "  built-in fused loss:", F.cross_entropy(z_big, t_big).item())


# %% [markdown]
# **Exercise 6.** Write `SoftmaxCrossEntropy`: mean over the batch, stable for logits of any size, backward returning `(gradient for logits, None)`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "SoftmaxCrossEntropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SoftmaxCrossEntropy(torch.autograd.Function):
    """L = mean_i(logsumexp(z_i) - z_i[t_i]); dL/dz = (softmax(z) - onehot(t)) / B * grad_output."""

    @staticmethod
    def forward(ctx, logits, target):
        ### BEGIN SOLUTION
        B = logits.shape[0]
        shifted = logits - logits.max(dim=1, keepdim=True).values  # (B, K), each row's max is 0
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))  # (B, K)
        ctx.save_for_backward(log_p, target)
        return -log_p[torch.arange(B), target].mean()
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        log_p, target = ctx.saved_tensors
        B = log_p.shape[0]
        grad_logits = torch.exp(log_p)  # softmax, (B, K)
        grad_logits[torch.arange(B), target] -= 1
        return grad_logits * (grad_output / B), None
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SoftmaxCrossEntropy_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_SoftmaxCrossEntropy_forward: the loss equals F.cross_entropy (mean over the batch), a scalar of the logits' dtype
function_checks.check_static(SoftmaxCrossEntropy, "forward")
t_z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0], [-2.0, 0.5, 0.5], [1.0, 1.0, -1.0]])
t_t = torch.tensor([0, 2, 1, 1])
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
function_checks.assert_close(t_loss, F.cross_entropy(t_z.double(), t_t), name="SoftmaxCrossEntropy.apply(logits, target)", dtype=torch.float32,
                              batch_size=4, inputs=[t_z])
### BEGIN HIDDEN TESTS
for t_B, t_K in [(1, 3), (6, 10), (5, 2)]:
    t_z = torch.randn(t_B, t_K, dtype=torch.float64) * 3
    t_t = torch.randint(0, t_K, (t_B,))
    t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
    function_checks.assert_close(t_loss, F.cross_entropy(t_z, t_t), name=f"SoftmaxCrossEntropy, logits {tuple(t_z.shape)}", batch_size=t_B,
                                  inputs=[t_z])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SoftmaxCrossEntropy_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_SoftmaxCrossEntropy_backward: gradients ((softmax - onehot) / B * grad_output, None), equal to autograd's; gradcheck in float64
function_checks.check_static(SoftmaxCrossEntropy, "backward")
t_z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0], [-2.0, 0.5, 0.5], [1.0, 1.0, -1.0]], dtype=torch.float64, requires_grad=True)
t_t = torch.tensor([0, 2, 1, 1])
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
t_go = torch.tensor(0.7, dtype=torch.float64)
t_grads = function_checks.run_backward(t_loss, t_go, (t_z, t_t), name="SoftmaxCrossEntropy", input_names=["logits", "target"])
(t_ref,) = torch.autograd.grad(F.cross_entropy(t_z, t_t), t_z, t_go)
function_checks.assert_close(t_grads[0], t_ref, name="SoftmaxCrossEntropy gradient for the logits (grad_output = 0.7)", batch_size=4,
                              inputs=[t_z])
function_checks.gradcheck(SoftmaxCrossEntropy.apply, (t_z, t_t), name="SoftmaxCrossEntropy.apply")
### BEGIN HIDDEN TESTS
for t_B, t_K in [(1, 3), (6, 10), (5, 2)]:
    t_z = (torch.randn(t_B, t_K, dtype=torch.float64) * 3).requires_grad_()
    t_t = torch.randint(0, t_K, (t_B,))
    function_checks.gradcheck(SoftmaxCrossEntropy.apply, (t_z, t_t), name=f"SoftmaxCrossEntropy.apply, logits {tuple(t_z.shape)}")
    t_go = torch.rand((), dtype=torch.float64) + 0.5
    (t_got,) = function_checks.grad(SoftmaxCrossEntropy.apply(t_z, t_t), t_z, t_go, name="backward of SoftmaxCrossEntropy")
    (t_ref,) = torch.autograd.grad(F.cross_entropy(t_z, t_t), t_z, t_go)
    function_checks.assert_close(t_got, t_ref, name=f"SoftmaxCrossEntropy gradient, logits {tuple(t_z.shape)}", batch_size=t_B,
                                  inputs=[t_z])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SoftmaxCrossEntropy_stable", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_SoftmaxCrossEntropy_stable: loss and gradient are finite and accurate in float32 for logits up to 1e4
t_z = torch.tensor([[1e4, 0.0, -1e4], [0.0, 500.0, 100.0], [-1e4, -1e4, -1e4 + 1.0]], requires_grad=True)
t_t = torch.tensor([2, 0, 1])
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
if not bool(torch.isfinite(t_loss).all()):
    raise AssertionError(
        f"SoftmaxCrossEntropy gives {t_loss.item()} for logits of size 1e4 in float32: exp overflows; subtract each "
        "row's maximum before exp, and take the log of the softmax without computing the softmax first "
        "(diagnosis: not_stable)"
    )
t_z64 = t_z.detach().double().requires_grad_()
t_ref = F.cross_entropy(t_z64, t_t)
function_checks.assert_close(t_loss, t_ref, name="SoftmaxCrossEntropy for logits up to 1e4", dtype=torch.float32,
                              batch_size=3, inputs=[t_z])
(t_gz,) = function_checks.grad(t_loss, t_z, name="backward of SoftmaxCrossEntropy")
if not bool(torch.isfinite(t_gz).all()):
    raise AssertionError(
        "the gradient of SoftmaxCrossEntropy is not finite for logits of size 1e4 in float32: compute the "
        "softmax after subtracting each row's maximum (diagnosis: not_stable)"
    )
function_checks.assert_close(t_gz, torch.autograd.grad(t_ref, t_z64)[0], name="SoftmaxCrossEntropy gradient for logits up to 1e4",
                              dtype=torch.float32, batch_size=3, inputs=[t_z])
### BEGIN HIDDEN TESTS
t_z = (torch.randn(8, 10) * 3e3).requires_grad_()
t_t = torch.randint(0, 10, (8,))
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
t_z64 = t_z.detach().double().requires_grad_()
t_ref = F.cross_entropy(t_z64, t_t)
function_checks.assert_close(t_loss, t_ref, name="SoftmaxCrossEntropy, random logits of size 1e3 to 1e4", dtype=torch.float32,
                              batch_size=8, inputs=[t_z])
(t_gz,) = function_checks.grad(t_loss, t_z, name="backward of SoftmaxCrossEntropy")
function_checks.assert_close(t_gz, torch.autograd.grad(t_ref, t_z64)[0], name="SoftmaxCrossEntropy gradient, random large logits",
                              dtype=torch.float32, batch_size=8, inputs=[t_z])
### END HIDDEN TESTS

# %% [markdown]
# ## 9. `Square`: a backward autograd can differentiate again
#
# `torch.autograd.grad(..., create_graph=True)` records the backward pass itself, so a gradient can be differentiated once more: Hessian-vector products, gradient penalties, meta-learning. For a custom Function this works only if `backward` is written with differentiable torch operations on tensors autograd knows about. `torch.autograd.gradgradcheck` checks exactly that, with finite differences on the backward.
#
# **What not to do.** This `Square` is correct to first order, and `gradcheck` is happy, but its backward hides `x` from autograd with `.detach()`. Here nothing comes out silently wrong: the first derivative it returns has **no graph at all** (`requires_grad` is `False`, as the cell prints), so `gradgradcheck` fails and asking autograd for a second derivative raises an error instead of giving one:

# %%
class SquareDetached(torch.autograd.Function):
    """WHAT NOT TO DO: a correct first derivative that autograd cannot differentiate again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x.detach() * grad_output  # .detach() cuts the backward out of the graph


x_sq = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
print("gradcheck    :", torch.autograd.gradcheck(SquareDetached.apply, (x_sq,)))
print("gradgradcheck:", torch.autograd.gradgradcheck(SquareDetached.apply, (x_sq,), raise_exception=False))
(g1,) = torch.autograd.grad(SquareDetached.apply(x_sq).sum(), x_sq, create_graph=True)
print("first derivative 2x:", g1.detach(), "| does it have a graph?", g1.requires_grad)
try:
    torch.autograd.grad(g1.sum(), x_sq)
except RuntimeError as err:
    print("second derivative: RuntimeError:", str(err).splitlines()[0])


# %% [markdown]
# **Exercise 7.** Write `Square`, $y = x^2$, with a backward made of differentiable operations so that `gradgradcheck` passes (the second derivative is 2).

# %% deletable=false nbgrader={"grade": false, "grade_id": "Square", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Square(torch.autograd.Function):
    """y = x^2; dy/dx = 2x, written with differentiable operations (gradgradcheck passes)."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        return x * x
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Square", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_Square: values and first derivative equal those of x * x; one gradient; gradcheck passes in float64
function_checks.check_function_class(Square)
t_x = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Square, t_x, input_names=["x"])
function_checks.assert_close(t_y, t_x.detach() ** 2, name="Square.apply(x)")
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="Square", input_names=["x"])
function_checks.assert_close(t_gx, torch.autograd.grad(t_x * t_x, t_x, t_g)[0], name="Square gradient with respect to x")
function_checks.gradcheck(Square.apply, (t_x,), name="Square.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (3, 4)]:
    t_x = torch.randn(*t_shape, dtype=torch.float64, requires_grad=True)
    function_checks.gradcheck(Square.apply, (t_x,), name=f"Square.apply, x of shape {t_shape}")
t_x32 = torch.randn(6)
function_checks.assert_close(function_checks.run_forward(Square, t_x32), t_x32.double() ** 2, name="Square.apply(x) in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Square_double_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# test_Square_double_backward: the backward is differentiable: gradgradcheck passes and the second derivative is 2
t_x = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
t_v = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
t_y = function_checks.run_forward(Square, t_x, input_names=["x"])
(t_g1,) = function_checks.grad(t_y, t_x, t_v, create_graph=True, name="backward of Square")
if not t_g1.requires_grad:
    raise AssertionError(
        "the gradient returned by Square.backward has no graph even with create_graph=True, so it cannot be "
        "differentiated again: compute it with torch operations on the saved x, without .detach(), .data, "
        ".item(), numpy or torch.no_grad() (diagnosis: not_double_differentiable)"
    )
(t_g2,) = function_checks.grad(t_g1.sum(), t_x, name="double backward of Square")
function_checks.assert_close(t_g2, 2 * t_v, name="second derivative of Square (d/dx of the gradient, times grad_output)")
function_checks.gradgradcheck(Square.apply, (t_x,), name="Square.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (3, 4)]:
    t_x = torch.randn(*t_shape, dtype=torch.float64, requires_grad=True)
    function_checks.gradgradcheck(Square.apply, (t_x,), name=f"Square.apply, x of shape {t_shape}")
### END HIDDEN TESTS

# %%
with needs("Square"):
    x_sq = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(Square.apply(x_sq).sum(), x_sq, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x_sq)
    print("first derivative 2x:", g1.detach(), "| second derivative:", g2)
    print("gradgradcheck:", torch.autograd.gradgradcheck(Square.apply, (x_sq,)))

# %% [markdown]
# Fleuret's lecture introduces `torch.autograd.grad` with $\ell = \|x\| = \sqrt{x_1^2 + x_2^2 + x_3^2}$ at $x = (1, 2, 2)$, where $\ell = 3$ and $\partial \ell / \partial x_i = x_i / \|x\|$, and prints `(tensor([ 0.3333,  0.6667,  0.6667]),)`. The same norm built on your `Square`, beside the lecture's numbers:

# %%
with needs("Square"):
    x_norm = torch.tensor([1.0, 2.0, 2.0]).requires_grad_()
    ell = Square.apply(x_norm).sum().sqrt()
    (g_norm,) = torch.autograd.grad(ell, (x_norm,))
    lecture_grad = [0.3333, 0.6667, 0.6667]  # as printed in Fleuret's lecture
    print(f"l = {ell.item():.4f} (lecture: 3)")
    print(f"{'i':>3}  {'lecture':>8}  {'your Square':>11}")
    for i, (lec, mine) in enumerate(zip(lecture_grad, g_norm.tolist()), start=1):
        print(f"{i:>3}  {lec:>8.4f}  {mine:>11.4f}")

# %% [markdown]
# **Written answer 2.** When you call `torch.autograd.grad(loss, params, create_graph=True)` to differentiate a gradient again, what does autograd have to keep in memory that an ordinary `loss.backward()` does not, and roughly how does the memory of one training step grow? Use what autograd records (section 1) and what your `Square` saves.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_double_backward_memory", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# An ordinary backward walks the graph once and frees each node's saved tensors as soon as the node has run (`retain_graph=False`), so the peak memory is about that of the forward pass: the stored intermediate outputs of every layer. With `create_graph=True` two things change. The forward graph cannot be freed, because the new graph refers to it. And the backward pass is itself recorded: every operation of every `backward` (for `Square`, the product `2 * x * grad_output`) becomes a node that saves its own operands, the incoming gradients included. So the memory holds the forward graph plus a backward graph of the same order of size, roughly two to three times that of a plain training step, and the returned gradients keep all of it alive until they are released. The time of the second backward is of the same order as the first. A backward that stores extra tensors on `ctx` or saves inputs it does not need makes this worse.
# ### END SOLUTION

# %% [markdown]
# ## 10. Every Function through gradcheck
#
# Your Functions, each checked in float64 against finite differences (`Square` also to second order). A "skipped" line means that exercise is not written yet.

# %%
gen = torch.Generator().manual_seed(5)
gradcheck_cases = {
    "Log1pExp": lambda: (torch.randn(6, generator=gen, dtype=torch.float64) * 4,),
    "Sigmoid": lambda: (torch.randn(6, generator=gen, dtype=torch.float64),),
    "Tanh": lambda: (torch.randn(6, generator=gen, dtype=torch.float64),),
    "ReLU": lambda: (torch.randn(6, generator=gen, dtype=torch.float64) + 0.05,),
    "LinearFunction": lambda: tuple(torch.randn(*s, generator=gen, dtype=torch.float64) for s in [(4, 3), (2, 3), (2,)]),
    "SoftmaxCrossEntropy": lambda: (torch.randn(4, 5, generator=gen, dtype=torch.float64), torch.tensor([0, 4, 2, 2])),
    "Square": lambda: (torch.randn(6, generator=gen, dtype=torch.float64),),
}
gradcheck_results = {}
for fn_name, make_inputs in gradcheck_cases.items():
    with needs(fn_name):
        inputs = tuple(t.requires_grad_() if t.is_floating_point() else t for t in make_inputs())
        ok = torch.autograd.gradcheck(globals()[fn_name].apply, inputs, raise_exception=False)
        line = f"{fn_name:>20}: gradcheck {'passed' if ok else 'FAILED'}"
        if fn_name == "Square":
            line += f", gradgradcheck {'passed' if torch.autograd.gradgradcheck(Square.apply, inputs, raise_exception=False) else 'FAILED'}"
        gradcheck_results[fn_name] = ok
        print(line)


# %% [markdown]
# ## 11. A network made of your Functions
#
# **Exercise 8.** Write `MLPWithFunctions`, an `nn.Module` with parameters `W1` $(n_h, n_x)$, `b1` $(n_h,)$, `W2` $(n_y, n_h)$, `b2` $(n_y,)$, whose `forward(x)` returns the logits
#
# $$\tanh(x W_1^\top + b_1)\, W_2^\top + b_2$$
#
# built **only** from `LinearFunction.apply` and `Tanh.apply`. Initialise the weights at random (for instance uniformly in $\pm 1/\sqrt{\text{fan-in}}$, as `nn.Linear` does): with all weights at zero, every hidden unit would receive the same gradient and the network could not learn.

# %% deletable=false nbgrader={"grade": false, "grade_id": "MLPWithFunctions", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MLPWithFunctions(nn.Module):
    """logits = tanh(x W1^T + b1) W2^T + b2, built from LinearFunction.apply and Tanh.apply only."""

    def __init__(self, nx, nh, ny):
        super().__init__()
        ### BEGIN SOLUTION
        def uniform(*shape, fan_in):
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.W1 = uniform(nh, nx, fan_in=nx)
        self.b1 = uniform(nh, fan_in=nx)
        self.W2 = uniform(ny, nh, fan_in=nh)
        self.b2 = uniform(ny, fan_in=nh)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        h = Tanh.apply(LinearFunction.apply(x, self.W1, self.b1))  # (B, nh)
        return LinearFunction.apply(h, self.W2, self.b2)  # (B, ny)
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_MLPWithFunctions_init", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_MLPWithFunctions_init: parameters W1 (nh, nx), b1 (nh,), W2 (ny, nh), b2 (ny,), registered, float32, weights not all zero
t_model = checks.call(MLPWithFunctions, 5, 7, 3, name="MLPWithFunctions(5, 7, 3)")
t_params = dict(t_model.named_parameters())
t_shapes = {"W1": (7, 5), "b1": (7,), "W2": (3, 7), "b2": (3,)}
if sorted(t_params) != sorted(t_shapes):
    raise AssertionError(
        f"MLPWithFunctions(5, 7, 3) has parameters {sorted(t_params)}, expected exactly {sorted(t_shapes)}: create "
        "them as nn.Parameter attributes self.W1, self.b1, self.W2, self.b2 (diagnosis: wrong_parameters)"
    )
for t_key, t_shape in t_shapes.items():
    if tuple(t_params[t_key].shape) != t_shape or t_params[t_key].dtype != torch.float32:
        raise AssertionError(
            f"MLPWithFunctions(5, 7, 3).{t_key} has shape {tuple(t_params[t_key].shape)} and dtype {t_params[t_key].dtype}, "
            f"expected {t_shape} and torch.float32 (diagnosis: wrong_shape)"
        )
if all(bool((t_params[t_key] == 0).all()) for t_key in ("W1", "W2")):
    raise AssertionError(
        "MLPWithFunctions starts with W1 and W2 all zeros: every hidden unit then gets the same gradient (zero "
        "here) and the network cannot learn; initialise the weights at random (diagnosis: zero_init)"
    )

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_MLPWithFunctions_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_MLPWithFunctions_forward: logits equal tanh(x W1^T + b1) W2^T + b2 and the graph holds only LinearFunction and Tanh nodes
# (graded with reference LinearFunction and Tanh swapped in, so this cell depends only on MLPWithFunctions)
t_refs = {"LinearFunction": function_checks.autograd_function("LinearFunction", F.linear),
          "Tanh": function_checks.autograd_function("Tanh", torch.tanh)}
with function_checks.substituted(globals(), **t_refs):
    t_model = checks.call(MLPWithFunctions, 4, 6, 3, name="MLPWithFunctions(4, 6, 3)").double()
    t_p = {k: torch.randn(*v.shape, dtype=torch.float64) for k, v in t_model.named_parameters()}
    with torch.no_grad():
        for t_key, t_val in t_p.items():
            getattr(t_model, t_key).copy_(t_val)
    t_x = torch.randn(5, 4, dtype=torch.float64)
    t_out = checks.call(t_model, t_x, name="MLPWithFunctions.forward")
    t_ref = F.linear(torch.tanh(F.linear(t_x, t_p["W1"], t_p["b1"])), t_p["W2"], t_p["b2"])
    function_checks.assert_close(t_out, t_ref, name="MLPWithFunctions(x) logits", batch_size=5)
    t_nodes = function_checks.graph_node_names(t_out)
    t_other = sorted(k for k in t_nodes if k not in ("LinearFunctionBackward", "TanhBackward", "AccumulateGrad"))
    if t_other or t_nodes["LinearFunctionBackward"] != 2 or t_nodes["TanhBackward"] != 1:
        raise AssertionError(
            f"the graph of MLPWithFunctions(x) holds {dict(t_nodes)}: expected two LinearFunction nodes and one Tanh "
            "node, built with LinearFunction.apply and Tanh.apply only, no built-in operation (diagnosis: builtin_used)"
        )
    ### BEGIN HIDDEN TESTS
    t_x = torch.randn(1, 4, dtype=torch.float64)
    function_checks.assert_close(checks.call(t_model, t_x, name="MLPWithFunctions.forward"),
                        F.linear(torch.tanh(F.linear(t_x, t_p["W1"], t_p["b1"])), t_p["W2"], t_p["b2"]),
                        name="MLPWithFunctions(x) logits for a batch of one")
    ### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_MLPWithFunctions_grads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_MLPWithFunctions_grads: gradients of a loss with respect to W1, b1, W2, b2 equal those of the built-in network
# (graded with reference LinearFunction and Tanh swapped in, so this cell depends only on MLPWithFunctions)
t_refs = {"LinearFunction": function_checks.autograd_function("LinearFunction", F.linear),
          "Tanh": function_checks.autograd_function("Tanh", torch.tanh)}
with function_checks.substituted(globals(), **t_refs):
    for t_B in (6, 1):
        t_model = checks.call(MLPWithFunctions, 4, 6, 3, name="MLPWithFunctions(4, 6, 3)").double()
        t_x = torch.randn(t_B, 4, dtype=torch.float64)
        t_v = torch.randn(t_B, 3, dtype=torch.float64)
        t_out = checks.call(t_model, t_x, name="MLPWithFunctions.forward")
        t_names = ["W1", "b1", "W2", "b2"]
        t_got = function_checks.grads_by_name((t_out * t_v).sum(), t_model, t_names, allow_unused=True,
                                              name="backward through MLPWithFunctions")
        t_p = {k: getattr(t_model, k).detach().clone().requires_grad_() for k in t_names}
        t_ref_out = F.linear(torch.tanh(F.linear(t_x, t_p["W1"], t_p["b1"])), t_p["W2"], t_p["b2"])
        t_want = dict(zip(t_names, torch.autograd.grad((t_ref_out * t_v).sum(), [t_p[k] for k in t_names])))
        function_checks.assert_grads_close(t_got, t_want, name=f"MLPWithFunctions gradient (batch of {t_B})", batch_size=t_B)

# %% [markdown]
# ### Same outputs and gradients as the built-in network
#
# The same weights in an `nn.Sequential` of built-in layers must give the same logits and the same gradients, up to float32 rounding:

# %%
with needs("MLPWithFunctions", "LinearFunction", "Tanh"):
    torch.manual_seed(0)
    x_all, y_all = data.load_digits()
    x_train, y_train, x_test, y_test = data.train_test_split(x_all, y_all, generator=torch.Generator().manual_seed(0))
    nx, nh, ny = 64, 32, 10

    mine = MLPWithFunctions(nx, nh, ny)
    builtin = nn.Sequential(nn.Linear(nx, nh), nn.Tanh(), nn.Linear(nh, ny))
    with torch.no_grad():
        builtin[0].weight.copy_(mine.W1), builtin[0].bias.copy_(mine.b1)
        builtin[2].weight.copy_(mine.W2), builtin[2].bias.copy_(mine.b2)

    batch_x, batch_y = x_train[:50], y_train[:50]
    out_mine, out_builtin = mine(batch_x), builtin(batch_x)
    F.cross_entropy(out_mine, batch_y).backward()
    F.cross_entropy(out_builtin, batch_y).backward()
    print("largest difference between logits:", (out_mine - out_builtin).abs().max().item())
    print(checks.grad_table(
        {"W1": mine.W1.grad, "b1": mine.b1.grad, "W2": mine.W2.grad, "b2": mine.b2.grad},
        {"W1": builtin[0].weight.grad, "b1": builtin[0].bias.grad, "W2": builtin[2].weight.grad, "b2": builtin[2].bias.grad},
    ))


# %% [markdown]
# ### Training on the digits
#
# Mini-batch gradient descent on the ten digit classes, with your network *and* your loss: every gradient below comes from a backward you wrote.

# %%
def train(model, loss_fn, nb_epochs, batch_size=64, lr=0.2, seed=0, progress=True):
    """Plain mini-batch SGD; returns the list of per-step losses."""
    gen = torch.Generator().manual_seed(seed)
    losses = []
    steps = tqdm(range(nb_epochs), desc="epochs", disable=not progress)
    for _ in steps:
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(x_train), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
            losses.append(loss.item())
        steps.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def test_accuracy(model):
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item()


with needs("MLPWithFunctions", "SoftmaxCrossEntropy"):
    torch.manual_seed(1)
    net = MLPWithFunctions(nx, nh, ny)
    losses = train(net, SoftmaxCrossEntropy.apply, nb_epochs=30)
    print(f"test accuracy of the network made of your Functions: {test_accuracy(net):.3f}")
    fig, ax = plots.new_figure(size=(5.5, 3.5))
    plots.loss_curves(ax, {"training loss (per mini-batch)": losses}, xlabel="step")
    display(fig)


# %% [markdown]
# ### How fast is it?
#
# The built-in layers run their forward and backward in C++; yours call Python for every `forward` and `backward`. Time the same number of training steps (same batches, same sizes) with both networks:

# %%
def time_steps(model, loss_fn, nb_steps=300, batch_size=64):
    """Seconds per training step, over nb_steps steps of SGD on fixed mini-batches."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(x_train), (batch_size,), generator=gen) for _ in range(10)]
    start = time.perf_counter()
    for step in range(nb_steps):
        idx = batches[step % len(batches)]
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    return (time.perf_counter() - start) / nb_steps


with needs("MLPWithFunctions", "SoftmaxCrossEntropy"):
    torch.manual_seed(2)
    builtin_net = nn.Sequential(nn.Linear(nx, nh), nn.Tanh(), nn.Linear(nh, ny))
    my_net = MLPWithFunctions(nx, nh, ny)
    time_steps(builtin_net, F.cross_entropy, nb_steps=20)  # warm up both first
    time_steps(my_net, SoftmaxCrossEntropy.apply, nb_steps=20)
    time_builtin = time_steps(builtin_net, F.cross_entropy)
    time_mine = time_steps(my_net, SoftmaxCrossEntropy.apply)
    print(f"built-in layers and loss : {1e3 * time_builtin:.3f} ms per step")
    print(f"your Functions           : {1e3 * time_mine:.3f} ms per step")
    print(f"ratio                    : {time_mine / time_builtin:.2f}x")

# %% [markdown]
# On small layers like these the cost of a step is mostly overhead rather than arithmetic, and your Functions add a Python call per `forward` and per `backward`, so they are somewhat slower. On large matrices the matrix products dominate and both take about the same time. Custom Functions are not written for speed in Python; they are written when you need a backward that autograd cannot derive well on its own: a stable formula (`Log1pExp`, the fused loss), a cheaper one (saving the output), or one that differs on purpose (straight-through estimators, gradient clipping inside a layer).
#
# ## Summary
#
# * A `torch.autograd.Function` is a contract: a static `forward(ctx, ...)` that saves what its backward needs, and a static `backward(ctx, grad_output)` that returns one gradient per input, `None` where none is needed, without touching `grad_output`.
# * `ctx.saved_tensors` is a tuple: unpack it.
# * What to save is a choice: the output suffices for `exp`, sigmoid and tanh; the input for ReLU and `Square`; the inputs for the linear layer.
# * Stability belongs in the forward *and* the backward: never `exp` a large positive number; subtract the maximum before a softmax; fuse log and softmax.
# * Check a backward with `gradcheck` in float64; `gradgradcheck` if it must be differentiated again.
# * A check is only as good as its cases: a bias averaged instead of summed hides behind a batch of one, a gradient for `b=None` behind a test that always passes `b`, a modified `grad_output` behind a test that never looks at it again.


# %% [markdown]
# ## Sources and further reading
#
# **The lectures this lab follows** (transcripts in the course's seed folder):
#
# - *Training Neural Networks*, course *Applied Deep Learning* (lecture slides; the transcript names no lecturer). The chain rule in one and several dimensions, automatic differentiation run backwards through a program, backpropagation, "differentiable programming" (after Yann LeCun), and the slide "Write Your Own PyTorch Operator" with `Log1pExp`, `ctx.save_for_backward`, `ctx.saved_tensors` and `ctx.needs_input_grad` (section 3).
# - François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine Learning, 26 June 2018 (<http://fleuret.org/ifi/>). `requires_grad`, `torch.autograd.grad` and its norm example (section 9), the graph autograd records (section 1), `detach`, in-place operations.
# - *Neural Network View of a Linear Classifier* (lecture slides; the transcript names no lecturer or course; its figures are adapted from slides by Fei-Fei Li, Justin Johnson and Serena Yeung, CS 231n). Storing the intermediate outputs of every layer for the backward pass, the sparse diagonal Jacobian of ReLU and the max that funnels gradients (section 5).
#
# **PyTorch documentation:**
#
# - "Extending PyTorch", section "Extending torch.autograd" (<https://pytorch.org/docs/stable/notes/extending.html>): the `Function` contract, `save_for_backward`, `needs_input_grad`, and the `LinearFunction` example this lab's linear layer follows.
# - `torch.autograd.gradcheck` and `torch.autograd.gradgradcheck` (<https://pytorch.org/docs/stable/autograd.html#numerical-gradient-checking>): finite-difference checks of first and second derivatives, and why they want double precision.
# - "Double Backward with Custom Functions" (<https://pytorch.org/tutorials/intermediate/custom_function_double_backward_tutorial.html>): a backward that autograd can differentiate again, as `Square`'s is.
# - "Autograd mechanics" (<https://pytorch.org/docs/stable/notes/autograd.html>): saved tensors, the in-place correctness checks, `create_graph`.
#
# **Numerics:**
#
# - N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM, 2002. Rounding error, and why the step of a finite difference cannot be made small in low precision.
# - P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the log-sum-exp and softmax functions", *IMA Journal of Numerical Analysis* 41(4):2311–2330, 2021. The shifted log-sum-exp of `SoftmaxCrossEntropy` and its error at large inputs.
