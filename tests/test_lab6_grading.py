"""Lab 6's grade cells judge the property each capstone exercise asks for, each exercise on its own.

Other correct answers (parameters stored per layer or in lists, losses recorded after the update,
other ways of shuffling with the generator, other ways of counting) pass every grade cell of their
exercise; the usual mistakes (softmax twice, zero init, ignoring the generator, a new Adam state per
epoch, summing the epoch's losses, a percentage, torch.optim) fail with the tag that names them; the
untouched release stubs fail with ``not_implemented``. Also: the lab's library helpers (data split,
stand-ins, plots) and its source policy.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
from backproplab_autograder.course import lab
from backproplab_autograder.policy import scan
from nbgrader.utils import is_grade, is_solution

from tests.helpers.gradecells import grade_ids, lab_cells, run_all_for, run_grade_cell

AID = "lab6_capstone"
MNIST = Path("/work/shared/data/mnist")


def failures(solution_id: str, source: str, public_only: bool = False) -> dict[str, str]:
    outcomes = run_all_for(AID, solution_id, source, public_only=public_only)
    return {g: o.message for g, o in outcomes.items() if not o.passed}


def assert_all_pass(solution_id: str, source: str) -> None:
    failed = failures(solution_id, source)
    assert not failed, f"a correct {solution_id} was rejected:\n" + "\n".join(f"{g}: {m}" for g, m in failed.items())


def assert_fails_with(solution_id: str, source: str, tag: str, grade_id: str | None = None,
                      public_only: bool = False) -> str:
    """The mistake fails (the given grade cell, or at least one of the exercise's) with ``(diagnosis: tag)``."""
    if grade_id is not None:
        outcome = run_grade_cell(AID, grade_id, {solution_id: source}, public_only=public_only)
        assert not outcome.passed, f"{grade_id} passed a wrong {solution_id}"
        assert f"(diagnosis: {tag})" in outcome.message, outcome.message
        return outcome.message
    failed = failures(solution_id, source, public_only)
    assert failed, f"every grade cell passed a wrong {solution_id}"
    assert any(f"(diagnosis: {tag})" in m for m in failed.values()), "\n".join(failed.values())
    return "\n".join(failed.values())


def release_stubs() -> dict[str, str]:
    """The solution cells as the student receives them (nbgrader's stubs)."""
    nb = nbformat.read(lab(AID).release, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and is_solution(c)}


# --- the reference passes, the untouched stubs fail -----------------------------------------------


@pytest.mark.parametrize("grade_id", grade_ids(AID))
def test_reference_solution_passes(grade_id):
    outcome = run_grade_cell(AID, grade_id)
    assert outcome.passed, outcome.message


@pytest.mark.parametrize("grade_id", grade_ids(AID))
def test_reference_solution_passes_the_public_part(grade_id):
    outcome = run_grade_cell(AID, grade_id, public_only=True)
    assert outcome.passed, outcome.message


def test_every_exercise_has_a_grade_cell_and_the_stub_fails_each_with_not_implemented():
    stubs = release_stubs()
    assert set(stubs) == set(lab_cells(AID)[1])
    for name, stub in stubs.items():
        failed = failures(name, stub)
        outcomes = run_all_for(AID, name, stub)
        assert set(failed) == set(outcomes), f"{name}: grade cells passing on the stub: {set(outcomes) - set(failed)}"
        assert all("not_implemented" in m for m in failed.values()), failed


def test_the_whole_untouched_release_fails_every_grade_cell_with_not_implemented():
    stubs = release_stubs()
    for g in grade_ids(AID):
        outcome = run_grade_cell(AID, g, stubs)
        assert not outcome.passed and "not_implemented" in outcome.message, (g, outcome.message)


def test_points_are_one_per_piece_and_more_for_the_capstone_exercises():
    nb = nbformat.read(lab(AID).solution, as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
              if is_grade(c)}
    for piece in ("LinearFunction", "Tanh", "SoftmaxCrossEntropy", "xavier_init", "adam_step"):
        assert points[f"test_{piece}"] == 1
    assert sum(v for k, v in points.items() if k.startswith("answer_")) == 4
    assert sum(points.values()) == lab(AID).points


# --- the pieces (same semantics as labs 2, 3 and 5) -------------------------------------------------

LINEAR_LAB5 = '''
class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b=None):
        ctx.save_for_backward(x, W)
        y = x @ W.T
        if b is not None:
            y = y + b
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, W = ctx.saved_tensors
        wanted = ctx.needs_input_grad
        grad_x = grad_output @ W if wanted[0] else None
        grad_W = grad_output.T @ x if wanted[1] else None
        grad_b = grad_output.sum(0) if len(wanted) > 2 and wanted[2] else None
        return grad_x, grad_W, grad_b
'''

TANH_LAB5 = '''
class Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)
'''

SOFTMAX_CE_LAB5 = '''
class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        B = logits.shape[0]
        shifted = logits - logits.max(dim=1, keepdim=True).values
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        ctx.save_for_backward(log_p, target)
        return -log_p[torch.arange(B), target].mean()

    @staticmethod
    def backward(ctx, grad_output):
        log_p, target = ctx.saved_tensors
        B = log_p.shape[0]
        grad_logits = torch.exp(log_p)
        grad_logits[torch.arange(B), target] -= 1
        return grad_logits * (grad_output / B), None
'''


@pytest.mark.parametrize("name, source", [("LinearFunction", LINEAR_LAB5), ("Tanh", TANH_LAB5),
                                          ("SoftmaxCrossEntropy", SOFTMAX_CE_LAB5)],
                         ids=["LinearFunction", "Tanh", "SoftmaxCrossEntropy"])
def test_lab5_functions_pasted_pass(name, source):
    assert_all_pass(name, source)


@pytest.mark.parametrize("earlier_lab, name", [
    ("lab5_custom_functions", "LinearFunction"), ("lab5_custom_functions", "Tanh"),
    ("lab5_custom_functions", "SoftmaxCrossEntropy"), ("lab3_mlp_backprop", "xavier_init"),
    ("lab2_gradient_descent", "adam_step"),
])
def test_pieces_pasted_from_the_earlier_labs_pass(earlier_lab, name):
    """Same names, same semantics: the reference answer of the lab that introduced a piece passes here."""
    assert_all_pass(name, lab_cells(earlier_lab)[1][name])


def test_tanh_backward_from_the_input_instead_of_the_output_fails():
    wrong = TANH_LAB5.replace("return grad_output * (1 - y * y)", "return grad_output * (1 - y)")
    assert_fails_with("Tanh", wrong, "values")


def test_linear_without_transpose_in_the_weight_gradient_fails():
    wrong = LINEAR_LAB5.replace("grad_output.T @ x", "(x.T @ grad_output).T * 2")
    assert_fails_with("LinearFunction", wrong, "scaled")


def test_cross_entropy_summed_over_the_batch_fails_with_batch_sum():
    wrong = SOFTMAX_CE_LAB5.replace("return -log_p[torch.arange(B), target].mean()",
                                    "return -log_p[torch.arange(B), target].sum()")
    assert_fails_with("SoftmaxCrossEntropy", wrong, "batch_sum")


XAVIER_ALTERNATIVES = {
    "uniform_with_generator": '''
def xavier_init(fan_in, fan_out, generator=None):
    a = (6 / (fan_in + fan_out)) ** 0.5
    return torch.empty(fan_out, fan_in).uniform_(-a, a, generator=generator)
''',
    "float64_draw_cast": '''
def xavier_init(fan_in, fan_out, generator=None):
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) * 2 * a - a).float()
''',
}


@pytest.mark.parametrize("source", XAVIER_ALTERNATIVES.values(), ids=XAVIER_ALTERNATIVES.keys())
def test_other_xavier_inits_pass(source):
    assert_all_pass("xavier_init", source)


@pytest.mark.parametrize("source, tag", [
    ("def xavier_init(fan_in, fan_out, generator=None):\n"
     "    return torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2 / (fan_in + fan_out))", "values"),
    ("def xavier_init(fan_in, fan_out, generator=None):\n"
     "    a = math.sqrt(2 / (fan_in + fan_out))\n"
     "    return (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * a", "values"),
    ("def xavier_init(fan_in, fan_out, generator=None):\n"
     "    a = math.sqrt(6 / (fan_in + fan_out))\n"
     "    return (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * a", "transposed_shape"),
    ("def xavier_init(fan_in, fan_out, generator=None):\n"
     "    a = math.sqrt(6 / (fan_in + fan_out))\n"
     "    return (torch.rand(fan_out, fan_in) * 2 - 1) * a", "ignores_generator"),
    ("def xavier_init(fan_in, fan_out, generator=None):\n"
     "    torch.manual_seed(0)\n"
     "    a = math.sqrt(6 / (fan_in + fan_out))\n"
     "    return (torch.rand(fan_out, fan_in) * 2 - 1) * a", "ignores_generator"),
], ids=["normal", "wrong_bound", "transposed", "no_generator", "seeds_the_global_generator"])
def test_xavier_mistakes_fail(source, tag):
    assert_fails_with("xavier_init", source, tag)


ADAM_TORCH_STYLE = '''
def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    b1, b2 = betas
    step = state.get("t", 0) + 1
    exp_avg = state["m"].clone() if state else torch.zeros_like(w)
    exp_avg_sq = state["v"].clone() if state else torch.zeros_like(w)
    exp_avg.lerp_(g, 1 - b1)
    exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
    bc1 = 1 - b1 ** step
    bc2_sqrt = math.sqrt(1 - b2 ** step)
    denom = exp_avg_sq.sqrt() / bc2_sqrt + eps
    return w.addcdiv(exp_avg, denom, value=-lr / bc1), {"t": step, "m": exp_avg, "v": exp_avg_sq}
'''


def test_adam_written_like_torch_optim_passes():
    assert_all_pass("adam_step", ADAM_TORCH_STYLE)


def test_adam_without_bias_correction_fails():
    wrong = ADAM_TORCH_STYLE.replace("bc1 = 1 - b1 ** step", "bc1 = 1").replace(
        "bc2_sqrt = math.sqrt(1 - b2 ** step)", "bc2_sqrt = 1")
    assert_fails_with("adam_step", wrong, "values")


def test_adam_with_eps_inside_the_square_root_fails():
    """The hidden checks use a small gradient scale with a large eps, where the difference always shows."""
    wrong = ADAM_TORCH_STYLE.replace("denom = exp_avg_sq.sqrt() / bc2_sqrt + eps",
                                     "denom = (exp_avg_sq / bc2_sqrt ** 2 + eps).sqrt()")
    assert_fails_with("adam_step", wrong, "values")


def test_adam_updating_the_state_in_place_fails_with_modified_input():
    wrong = ADAM_TORCH_STYLE.replace('state["m"].clone()', 'state["m"]').replace('state["v"].clone()', 'state["v"]')
    assert_fails_with("adam_step", wrong, "modified_input")


def test_adam_counting_from_zero_fails_with_step_count():
    wrong = ADAM_TORCH_STYLE.replace('{"t": step,', '{"t": step - 1,').replace(
        'step = state.get("t", 0) + 1', 'step = state.get("t", -1) + 2')
    assert_fails_with("adam_step", wrong, "step_count")


# --- Capstone ----------------------------------------------------------------------------------------

CAPSTONE_PAIRS = '''
class Capstone(nn.Module):
    def __init__(self, sizes, generator=None):
        super().__init__()
        self.nb_layers = len(sizes) - 1
        for i in range(self.nb_layers):
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(sizes[i + 1])))
            self.register_parameter(f"W{i}", nn.Parameter(xavier_init(sizes[i], sizes[i + 1], generator)))

    def forward(self, x):
        for i in range(self.nb_layers):
            x = LinearFunction.apply(x, self.get_parameter(f"W{i}"), self.get_parameter(f"b{i}"))
            if i < self.nb_layers - 1:
                x = Tanh.apply(x)
        return x
'''

CAPSTONE_SUBMODULES = '''
class _Dense(nn.Module):
    def __init__(self, n_in, n_out, generator):
        super().__init__()
        self.W = nn.Parameter(xavier_init(n_out, n_in, generator=generator).T)  # same law, transposed draw
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, h):
        return LinearFunction.apply(h, self.W, self.b)


class Capstone(nn.Module):
    def __init__(self, sizes, generator=None):
        super().__init__()
        self.layers = nn.ModuleList(_Dense(a, b, generator) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = Tanh.apply(layer(x))
        return last(x)
'''

CAPSTONE_BIASES_FIRST = '''
class Capstone(nn.Module):
    def __init__(self, sizes, generator=None):
        super().__init__()
        self.params = nn.ParameterList()
        for n_out in sizes[1:]:
            self.params.append(nn.Parameter(torch.zeros(n_out)))
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.params.append(nn.Parameter(xavier_init(fan_in=n_in, fan_out=n_out, generator=generator)))
        self.k = len(sizes) - 1

    def forward(self, x):
        out = x
        for i in range(self.k):
            out = LinearFunction.apply(out, self.params[self.k + i], self.params[i])
            out = Tanh.apply(out) if i + 1 < self.k else out
        return out
'''

CAPSTONES = {"per_layer_pairs": CAPSTONE_PAIRS, "sub_modules": CAPSTONE_SUBMODULES, "biases_first": CAPSTONE_BIASES_FIRST}


@pytest.mark.parametrize("source", CAPSTONES.values(), ids=CAPSTONES.keys())
def test_other_capstone_layouts_pass(source):
    assert_all_pass("Capstone", source)


def test_capstone_with_zero_weights_fails_with_zero_init():
    wrong = CAPSTONE_PAIRS.replace("nn.Parameter(xavier_init(sizes[i], sizes[i + 1], generator))",
                                   "nn.Parameter(torch.zeros(sizes[i + 1], sizes[i]))")
    assert_fails_with("Capstone", wrong, "zero_init", "test_Capstone_init")


def test_capstone_with_its_own_random_weights_fails_with_not_xavier():
    wrong = CAPSTONE_PAIRS.replace("nn.Parameter(xavier_init(sizes[i], sizes[i + 1], generator))",
                                   "nn.Parameter(torch.randn(sizes[i + 1], sizes[i], generator=generator) * 0.1)")
    assert_fails_with("Capstone", wrong, "not_xavier", "test_Capstone_init")
    assert run_grade_cell(AID, "test_Capstone_forward", {"Capstone": wrong}).passed  # the forward is still right


def test_capstone_dropping_the_generator_fails_with_ignores_generator():
    wrong = CAPSTONE_PAIRS.replace("xavier_init(sizes[i], sizes[i + 1], generator)", "xavier_init(sizes[i], sizes[i + 1])")
    assert_fails_with("Capstone", wrong, "ignores_generator", "test_Capstone_init")


def test_capstone_with_tanh_after_the_last_layer_fails_the_forward_only():
    wrong = CAPSTONE_PAIRS.replace("            if i < self.nb_layers - 1:\n                x = Tanh.apply(x)",
                                   "            x = Tanh.apply(x)")
    assert wrong != CAPSTONE_PAIRS
    failed = failures("Capstone", wrong)
    assert set(failed) == {"test_Capstone_forward"}, failed
    assert "logits" in failed["test_Capstone_forward"]


def test_capstone_with_builtin_layers_fails_with_builtin_used():
    wrong = CAPSTONE_PAIRS.replace("x = LinearFunction.apply(x,", "x = F.linear(x,")
    assert wrong != CAPSTONE_PAIRS
    assert_fails_with("Capstone", wrong, "builtin_used", "test_Capstone_forward")


def test_capstone_keeping_parameters_in_a_plain_list_fails_with_wrong_parameters():
    wrong = CAPSTONE_BIASES_FIRST.replace("self.params = nn.ParameterList()", "self.params = []")
    text = assert_fails_with("Capstone", wrong, "wrong_parameters")
    assert "ParameterList" in text


# --- initial_loss_check --------------------------------------------------------------------------------

INITIAL_ALTERNATIVES = {
    "builtin_cross_entropy": '''
def initial_loss_check(model, x, y):
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))
''',
    "log_softmax_by_hand": '''
def initial_loss_check(model, x, y):
    logits = model(x).detach().double()
    log_p = logits - logits.logsumexp(dim=1, keepdim=True)
    return -log_p.gather(1, y[:, None]).mean().item()
''',
    # all in float32, as the model computes, and the log of the softmax rather than log_softmax
    "log_of_softmax_in_float32": '''
def initial_loss_check(model, x, y):
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
        return float(-torch.log(probs[torch.arange(len(y)), y]).mean())
''',
}


@pytest.mark.parametrize("source", INITIAL_ALTERNATIVES.values(), ids=INITIAL_ALTERNATIVES.keys())
def test_other_initial_loss_checks_pass(source):
    assert_all_pass("initial_loss_check", source)


def test_softmax_applied_twice_fails_although_it_is_closer_to_log_k():
    wrong = '''
def initial_loss_check(model, x, y):
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
        return SoftmaxCrossEntropy.apply(probs, y).item()
'''
    text = assert_fails_with("initial_loss_check", wrong, "softmax_twice", public_only=True)
    assert "log K" in text


@pytest.mark.parametrize("source, tag", [
    ("def initial_loss_check(model, x, y):\n    return math.log(model(x).shape[1])", "values"),
    ("def initial_loss_check(model, x, y):\n    return F.cross_entropy(model(x), y, reduction='sum').item()", "values"),
    ("def initial_loss_check(model, x, y):\n    return F.cross_entropy(model(x), y)", "wrong_dtype"),
], ids=["log_k_constant", "summed", "tensor"])
def test_initial_loss_mistakes_fail(source, tag):
    assert_fails_with("initial_loss_check", source, tag)


# --- overfit_small --------------------------------------------------------------------------------------

OVERFIT_AFTER_UPDATE = '''
def overfit_small(model, x, y, nb_steps, lr):
    states = {name: {} for name, _ in model.named_parameters()}
    losses = []
    for _ in range(nb_steps):
        model.zero_grad()
        SoftmaxCrossEntropy.apply(model(x), y).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                p[...], states[name] = adam_step(p.detach().clone(), p.grad, states[name], lr)
            losses.append(float(F.cross_entropy(model(x), y)))  # recorded after the update
    return losses
'''


def test_overfit_recording_losses_after_the_update_passes():
    assert_all_pass("overfit_small", OVERFIT_AFTER_UPDATE)


@pytest.mark.parametrize("old, new, tag", [
    ("states[name] = adam_step(p.detach().clone(), p.grad, states[name], lr)",
     "_ = adam_step(p.detach().clone(), p.grad, {}, lr)", "optimizer_reset"),
    ("p[...], states[name] = adam_step(p.detach().clone(), p.grad, states[name], lr)",
     "p -= lr * p.grad", "adam_unused"),
    ("adam_step(p.detach().clone(), p.grad, states[name], lr)", "adam_step(p.detach().clone(), p.grad, states[name])",
     "values"),
    ("losses.append(float(F.cross_entropy(model(x), y)))", "losses.append(F.cross_entropy(model(x), y))", "wrong_dtype"),
], ids=["new_state_every_step", "plain_gradient_step", "default_lr", "tensors"])
def test_overfit_mistakes_fail(old, new, tag):
    wrong = OVERFIT_AFTER_UPDATE.replace(old, new)
    assert wrong != OVERFIT_AFTER_UPDATE
    assert_fails_with("overfit_small", wrong, tag)


def test_overfit_with_torch_optim_fails_with_adam_unused():
    wrong = '''
def overfit_small(model, x, y, nb_steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(nb_steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
'''
    assert_fails_with("overfit_small", wrong, "adam_unused")


# --- evaluate ---------------------------------------------------------------------------------------------

EVALUATE_ALTERNATIVES = {
    "float_mean_item": '''
def evaluate(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()
''',
    "loop": '''
def evaluate(model, x, y):
    correct = 0
    with torch.no_grad():
        for xi, yi in zip(x, y):
            correct += int(model(xi[None]).argmax() == yi)
    return correct / len(x)
''',
}


@pytest.mark.parametrize("source", EVALUATE_ALTERNATIVES.values(), ids=EVALUATE_ALTERNATIVES.keys())
def test_other_evaluates_pass(source):
    assert_all_pass("evaluate", source)


@pytest.mark.parametrize("source, tag", [
    ("def evaluate(model, x, y):\n    return 100 * (model(x).argmax(1) == y).float().mean().item()", "percentage"),
    ("def evaluate(model, x, y):\n    return (model(x).argmax(1) == y).float().mean()", "wrong_dtype"),
    ("def evaluate(model, x, y):\n    return float((model(x).argmax(1) == y).sum())", "values"),
], ids=["percentage", "tensor", "count"])
def test_evaluate_mistakes_fail(source, tag):
    assert_fails_with("evaluate", source, tag)


# --- train_capstone -------------------------------------------------------------------------------------

TRAIN_BACKWARD_ARGSORT = '''
def train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None):
    named = dict(model.named_parameters())
    states = {k: {} for k in named}
    means = []
    for epoch in range(nb_epochs):
        order = torch.rand(len(x), generator=generator).argsort()
        losses = []
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            model.zero_grad()
            loss = SoftmaxCrossEntropy.apply(model(x[idx]), y[idx])
            loss.backward()
            with torch.no_grad():
                for k, p in named.items():
                    new, states[k] = adam_step(p, p.grad, states[k], lr=lr)
                    p.copy_(new)
            losses.append(loss.detach())
        means.append(torch.stack(losses).mean().item())
    return means
'''

TRAIN_MULTINOMIAL = '''
def train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None):
    params = list(model.parameters())
    states = [dict() for _ in params]
    out = []
    n = x.shape[0]
    for _ in range(nb_epochs):
        perm = torch.multinomial(torch.ones(n), n, replacement=False, generator=generator)
        total = 0.0
        for xb, yb in zip(x[perm].split(batch_size), y[perm].split(batch_size)):
            loss = SoftmaxCrossEntropy.apply(model(xb), yb)
            for i, (p, g) in enumerate(zip(params, torch.autograd.grad(loss, params))):
                new_p, states[i] = adam_step(p.detach(), g, states[i], lr)
                p.data = new_p
            total += loss.item()
        out.append(total / (n // batch_size))
    return out
'''

TRAIN_ONE_FLAT_STATE = '''
def train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None):
    params = list(model.parameters())
    state = {}  # Adam is element-wise: one state over all the parameters, flattened, is the same update
    out = []
    for _ in range(nb_epochs):
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for rows in order.split(batch_size):
            loss = SoftmaxCrossEntropy.apply(model(x[rows]), y[rows])
            flat_g = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
            flat_w = torch.cat([p.detach().reshape(-1) for p in params])
            new_w, state = adam_step(flat_w, flat_g, state, lr=lr)
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(new_w, params)
            losses.append(loss.item())
        out.append(sum(losses) / len(losses))
    return out
'''

TRAINS = {"backward_and_argsort": TRAIN_BACKWARD_ARGSORT, "multinomial_and_split": TRAIN_MULTINOMIAL,
          "one_flat_adam_state": TRAIN_ONE_FLAT_STATE}


@pytest.mark.parametrize("source", TRAINS.values(), ids=TRAINS.keys())
def test_other_training_loops_pass(source):
    assert_all_pass("train_capstone", source)


def test_a_decorated_training_loop_is_graded_with_the_reference_pieces_too():
    """The stand-ins go where the student's code looks its names up, also behind a decorator."""
    decorated = ("import functools\n\n\ndef _logged(fn):\n    @functools.wraps(fn)\n    def wrapper(*args, **kwargs):\n"
                 "        return fn(*args, **kwargs)\n    return wrapper\n\n" + TRAIN_BACKWARD_ARGSORT.replace(
                     "\ndef train_capstone", "\n@_logged\ndef train_capstone"))
    broken_adam = "def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):\n    return w + 1.0, {}"
    for g in ("test_train_capstone", "test_train_capstone_adam", "test_train_capstone_generator"):
        outcome = run_grade_cell(AID, g, {"train_capstone": decorated, "adam_step": broken_adam})
        assert outcome.passed, (g, outcome.message)


def test_the_test_data_given_to_the_student_are_copies():
    """A function that scales x in place spoils only its own copy: the reference is computed on the test's data."""
    wrong = "def initial_loss_check(model, x, y):\n    x.mul_(0)\n    return float(F.cross_entropy(model(x), y))"
    assert_fails_with("initial_loss_check", wrong, "values", "test_initial_loss_check")


@pytest.mark.parametrize("old, new, tag, grade_id", [
    ("torch.rand(len(x), generator=generator).argsort()", "torch.rand(len(x)).argsort()", "ignores_generator",
     "test_train_capstone_generator"),
    ("torch.rand(len(x), generator=generator).argsort()", "torch.arange(len(x))", "not_shuffled",
     "test_train_capstone_generator"),
    ("    means = []\n    for epoch in range(nb_epochs):\n",
     "    means = []\n    for epoch in range(nb_epochs):\n        states = {k: {} for k in named}\n", "optimizer_reset",
     "test_train_capstone_adam"),
    ("                for k, p in named.items():\n", "                for k, p in list(named.items())[::2]:\n", "values",
     "test_train_capstone_adam"),
    ("means.append(torch.stack(losses).mean().item())", "means.append(torch.stack(losses).sum().item())", "sum_not_mean",
     "test_train_capstone"),
    ("means.append(torch.stack(losses).mean().item())", "means.append(losses[-1].item())", "values", "test_train_capstone"),
    ("means.append(torch.stack(losses).mean().item())", "means.append(torch.stack(losses).mean())", "wrong_dtype",
     "test_train_capstone"),
    ("loss = SoftmaxCrossEntropy.apply(model(x[idx]), y[idx])", "loss = F.cross_entropy(model(x[idx]), y[idx])",
     "builtin_used", "test_train_capstone"),
], ids=["global_rng", "no_shuffle", "new_adam_state_per_epoch", "half_the_parameters", "sum_per_epoch", "last_batch_loss", "tensors",
        "builtin_loss"])
def test_training_mistakes_fail(old, new, tag, grade_id):
    wrong = TRAIN_BACKWARD_ARGSORT.replace(old, new)
    assert wrong != TRAIN_BACKWARD_ARGSORT
    assert_fails_with("train_capstone", wrong, tag, grade_id)


def test_training_with_torch_optim_fails_every_cell_and_is_flagged_by_the_policy():
    wrong = '''
def train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    means = []
    for _ in range(nb_epochs):
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = SoftmaxCrossEntropy.apply(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        means.append(sum(losses) / len(losses))
    return means
'''
    failed = failures("train_capstone", wrong)
    assert {"test_train_capstone", "test_train_capstone_adam"} <= set(failed)
    assert all("adam_unused" in failed[g] for g in ("test_train_capstone", "test_train_capstone_adam"))
    nb = nbformat.read(lab(AID).solution, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "train_capstone":
            cell.source = wrong
    findings = scan(nb, AID)
    assert [f.exercise for f in findings] == ["train_capstone"] and findings[0].rule == "optimizer"


def test_reference_notebook_is_not_flagged_by_the_policy():
    assert scan(nbformat.read(lab(AID).solution, as_version=4), AID) == []


def test_only_the_reference_pieces_are_used_while_grading_the_loops():
    """Rule 6: a wrong adam_step or SoftmaxCrossEntropy costs nothing in the training exercises' cells."""
    broken = {"adam_step": "def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):\n    return w + 1.0, {}",
              "SoftmaxCrossEntropy": release_stubs()["SoftmaxCrossEntropy"],
              "LinearFunction": release_stubs()["LinearFunction"], "Tanh": release_stubs()["Tanh"],
              "xavier_init": release_stubs()["xavier_init"]}
    for g in grade_ids(AID):
        if g.startswith(("test_Capstone", "test_initial", "test_overfit", "test_evaluate", "test_train")):
            outcome = run_grade_cell(AID, g, broken)
            assert outcome.passed, (g, outcome.message)


# --- library helpers -----------------------------------------------------------------------------------


def test_capstone_split_of_the_digits_is_80_20_and_fixed_by_the_seed(monkeypatch):
    from backproplab import data

    monkeypatch.delenv("BACKPROPLAB_MNIST", raising=False)
    x_train, y_train, x_test, y_test, name = data.capstone_split(seed=0)
    assert name.startswith("digits") and len(x_train) + len(x_test) == 1797 and len(x_test) == round(0.2 * 1797)
    assert float(x_train.max()) <= 1.0 and x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    again = data.capstone_split(seed=0)
    assert torch.equal(again[0], x_train) and torch.equal(again[3], y_test)
    assert not torch.equal(data.capstone_split(seed=1)[1], y_train)


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="MNIST test files not on this machine")
def test_capstone_split_uses_mnist_t10k_alone_as_8000_and_2000(monkeypatch):
    from backproplab import data

    monkeypatch.setenv("BACKPROPLAB_MNIST", str(MNIST))
    x_train, y_train, x_test, y_test, name = data.capstone_split()
    assert name.startswith("MNIST") and x_train.shape == (8000, 784) and x_test.shape == (2000, 784)
    assert set(y_test.tolist()) == set(range(10)) and float(x_train.max()) <= 1.0


def test_adam_with_torch_matches_the_adam_formula():
    from backproplab import capstone_checks

    w = torch.randn(5, dtype=torch.float64)
    state, m, v, mine = {}, torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64), w.clone()
    for t in range(1, 5):
        g = torch.randn(5, dtype=torch.float64)
        w, state = capstone_checks.adam_with_torch(w, g, state, lr=0.1, betas=(0.8, 0.99), eps=1e-3)
        m, v = 0.8 * m + 0.2 * g, 0.99 * v + 0.01 * g * g
        mine = mine - 0.1 * (m / (1 - 0.8 ** t)) / ((v / (1 - 0.99 ** t)).sqrt() + 1e-3)
        assert state["t"] == t and torch.allclose(w, mine, rtol=1e-12, atol=1e-14)


def test_recording_loss_has_cross_entropy_gradients_and_records_trained_losses_only():
    from backproplab import capstone_checks

    cls, record = capstone_checks.recording_loss()
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 2, 1, 1])
    with torch.no_grad():
        cls.apply(z, t)
    assert record.calls == 1 and record.values == []
    assert torch.autograd.gradcheck(cls.apply, (z, t))
    loss = cls.apply(z, t)
    loss.backward()
    assert record.values[-1] == pytest.approx(torch.nn.functional.cross_entropy(z, t).item())


def test_stand_ins_go_into_the_namespace_the_students_code_reads():
    from backproplab import capstone_checks

    ns: dict = {"__name__": "__main__"}
    exec("import functools, torch\nfrom torch import nn\n"
         "def deco(f):\n    @functools.wraps(f)\n    def w(*a, **k):\n        return f(*a, **k)\n    return w\n"
         "@deco\ndef fit(model, x):\n    return adam_step\n"
         "class Net(nn.Module):\n    act = torch.tanh\n    def forward(self, x):\n        return x\n", ns)
    assert capstone_checks._namespace_of(ns["fit"]) is ns and capstone_checks._namespace_of(ns["Net"]) is ns
    with capstone_checks._swapped(ns["fit"], {"adam_step": "stand-in"}):
        assert ns["fit"](None, None) == "stand-in"
    assert "adam_step" not in ns


def test_the_global_generator_watch_sees_seeding_and_leaves_an_untouched_state_alone():
    from backproplab import capstone_checks

    torch.manual_seed(0)
    torch.rand(3)
    before = torch.get_rng_state()
    assert capstone_checks.call_watching_rng(lambda: torch.ones(2), name="f")[1] is False
    assert torch.equal(torch.get_rng_state(), before)

    def seeded():
        torch.manual_seed(0)
        return torch.rand(3)

    assert capstone_checks.call_watching_rng(seeded, name="f")[1] is True  # leaves the state it found behind
    assert capstone_checks.call_watching_rng(seeded, name="f")[1] is True


def test_params_by_shape_finds_layers_in_any_order_and_names_a_wrong_set():
    from backproplab import capstone_checks

    net = capstone_checks.builtin_mlp([4, 6, 5, 3])
    weights, biases = capstone_checks.params_by_shape(net, [4, 6, 5, 3])
    assert [tuple(w.shape) for w in weights] == [(6, 4), (5, 6), (3, 5)] and [tuple(b.shape) for b in biases] == [(6,), (5,), (3,)]
    with pytest.raises(AssertionError, match="wrong_parameters"):
        capstone_checks.params_by_shape(net, [4, 6, 3])


def test_confusion_matrix_counts_every_pair_once():
    from backproplab import capstone_plots

    y_true = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    y_pred = torch.tensor([0, 2, 2, 1, 1, 0, 2])
    counts = capstone_plots.confusion_matrix(y_true, y_pred, 3)
    assert counts.tolist() == [[2, 0, 0], [0, 1, 1], [0, 1, 2]]
    assert int(counts.sum()) == len(y_true) and int(counts.trace()) == int((y_true == y_pred).sum())


def test_plot_helpers_draw_on_the_given_axes_and_return_them():
    from backproplab import capstone_plots, plots

    fig, ax = plots.new_figure()
    assert capstone_plots.draw_confusion(ax, torch.eye(3, dtype=torch.int64) * 5) is ax
    fig, ax = plots.new_figure()
    assert capstone_plots.draw_lr_sweep(ax, {1e-3: [2.0, 1.0], 1e-1: [1.0, math.inf]}) is ax and len(ax.lines) == 2
    fig, axes = plots.new_figure(1, 3)
    drawn = capstone_plots.draw_misclassified(list(axes.reshape(-1)), torch.rand(2, 64), torch.tensor([1, 2]), torch.tensor([7, 3]))
    assert [a.get_title() for a in drawn] == ["1 -> 7", "2 -> 3", ""]
