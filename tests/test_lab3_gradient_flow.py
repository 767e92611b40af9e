"""Lab 3, gradient flow and initialisation: `layer_grad_norms`, `xavier_init` and the prediction.

Other correct answers (the ones the contract names: `torch.rand` scaled, `uniform_`, drawing in float64
and casting, `torch.nn.init.xavier_uniform_`) pass every grade cell of their exercise; the usual
mistakes fail with their diagnosis; the lib module `grad_flow` behaves as its docstrings say.
"""

from __future__ import annotations

import math

import pytest
import torch
from backproplab import grad_flow as gf

from tests.helpers.gradecells import run_all_for, run_grade_cell

AID = "lab3_mlp_backprop"


def assert_all_pass(sid: str, source: str) -> None:
    failed = {g: o.message for g, o in run_all_for(AID, sid, source).items() if not o.passed}
    assert not failed, "\n".join(f"{g}: {m}" for g, m in failed.items())


def assert_fails_with(sid: str, source: str, tag: str, grade_id: str, public_only: bool = False) -> str:
    outcome = run_grade_cell(AID, grade_id, {sid: source}, public_only=public_only)
    assert not outcome.passed, f"{grade_id} passed a wrong {sid}"
    assert f"(diagnosis: {tag})" in outcome.message, outcome.message
    return outcome.message


# --- layer_grad_norms ------------------------------------------------------------------------------

NORMS_RIGHT = {
    "matrix_norm": "def layer_grad_norms(dweights):\n    return [float(torch.linalg.matrix_norm(g)) for g in dweights]\n",
    "sum_of_squares": "def layer_grad_norms(dweights):\n    return [math.sqrt(float((g * g).sum())) for g in dweights]\n",
    "float64_sqrt": ("def layer_grad_norms(dweights):\n"
                     "    return [torch.sqrt((g.double() ** 2).sum()).item() for g in dweights]\n"),
    "loop_fro": ("def layer_grad_norms(dweights):\n    out = []\n    for g in dweights:\n"
                 "        out.append(torch.norm(g, p='fro').item())\n    return out\n"),
    "map_list": "def layer_grad_norms(dweights):\n    return list(map(lambda g: g.pow(2).sum().sqrt().item(), dweights))\n",
}


@pytest.mark.parametrize("name", sorted(NORMS_RIGHT))
def test_correct_layer_grad_norms_variants_pass(name):
    assert_all_pass("layer_grad_norms", NORMS_RIGHT[name])


@pytest.mark.parametrize("source,tag", [
    ("def layer_grad_norms(dweights):\n    return torch.stack([g.norm() for g in dweights])\n", "wrong_return"),
    ("def layer_grad_norms(dweights):\n    return [g.norm() for g in dweights]\n", "wrong_dtype"),
    ("def layer_grad_norms(dweights):\n    return [g.norm().item() for g in reversed(dweights)]\n", "reversed_order"),
    ("def layer_grad_norms(dweights):\n    return [float((g * g).sum()) for g in dweights]\n", "squared_norm"),
    ("def layer_grad_norms(dweights):\n    return [g.abs().max().item() for g in dweights]\n", "values"),
    ("def layer_grad_norms(dweights):\n    return [float(torch.linalg.matrix_norm(g, ord=2)) for g in dweights]\n",
     "values"),
    ("def layer_grad_norms(dweights):\n    return [g.norm().item() for g in dweights][:-1]\n", "wrong_shape"),
], ids=["tensor", "tensors_in_list", "reversed", "squared", "max_abs", "spectral", "one_missing"])
def test_layer_grad_norms_mistakes_are_named(source, tag):
    assert_fails_with("layer_grad_norms", source, tag, "test_layer_grad_norms", public_only=True)
    assert_fails_with("layer_grad_norms", source, tag, "test_layer_grad_norms")


def test_layer_grad_norms_modifying_its_input_is_named():
    src = ("def layer_grad_norms(dweights):\n    out = [g.norm().item() for g in dweights]\n"
           "    for g in dweights:\n        g.zero_()\n    return out\n")
    assert_fails_with("layer_grad_norms", src, "modifies_input", "test_layer_grad_norms")


# --- xavier_init -----------------------------------------------------------------------------------

XAVIER_RIGHT = {
    "rand_scaled": ("def xavier_init(fan_in, fan_out, generator=None):\n"
                    "    a = math.sqrt(6 / (fan_in + fan_out))\n"
                    "    return torch.rand(fan_out, fan_in, generator=generator) * 2 * a - a\n"),
    "uniform_": ("def xavier_init(fan_in, fan_out, generator=None):\n"
                 "    a = (6 / (fan_in + fan_out)) ** 0.5\n"
                 "    return torch.empty(fan_out, fan_in).uniform_(-a, a, generator=generator)\n"),
    "float64_then_cast": ("def xavier_init(fan_in, fan_out, generator=None):\n"
                          "    a = math.sqrt(6.0 / (fan_in + fan_out))\n"
                          "    w = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64)\n"
                          "    return ((2 * w - 1) * a).float()\n"),
    "nn_init": ("def xavier_init(fan_in, fan_out, generator=None):\n"
                "    return torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in), generator=generator)\n"),
}


@pytest.mark.parametrize("name", sorted(XAVIER_RIGHT))
def test_correct_xavier_init_variants_pass(name):
    assert_all_pass("xavier_init", XAVIER_RIGHT[name])


def _xavier(body: str) -> str:
    return ("def xavier_init(fan_in, fan_out, generator=None):\n"
            "    a = math.sqrt(6 / (fan_in + fan_out))\n" + "".join(f"    {line}\n" for line in body.splitlines()))


@pytest.mark.parametrize("body,tag,grade_id", [
    ("return torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2 / (fan_in + fan_out))",
     "normal_not_uniform", "test_xavier_init_distribution"),
    ("return torch.randn(fan_out, fan_in, generator=generator) * a", "normal_not_uniform",
     "test_xavier_init_distribution"),
    ("b = math.sqrt(2 / (fan_in + fan_out))\nreturn torch.empty(fan_out, fan_in).uniform_(-b, b, generator=generator)",
     "wrong_bound", "test_xavier_init_distribution"),
    ("return torch.rand(fan_in, fan_out, generator=generator) * 2 * a - a", "transposed_shape",
     "test_xavier_init_shape"),
    ("return torch.rand(fan_in, fan_out, generator=generator) * 2 * a - a", "transposed_shape",
     "test_xavier_init_distribution"),
    ("return torch.rand(fan_out, fan_in) * 2 * a - a", "ignores_generator", "test_xavier_init_shape"),
    ("return torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) * 2 * a - a", "wrong_dtype",
     "test_xavier_init_shape"),
    ("return torch.rand(fan_out, fan_in, generator=generator) * a", "values", "test_xavier_init_distribution"),
], ids=["glorot_normal", "normal_with_bound_as_std", "bound_sqrt2", "transposed", "transposed_distribution",
        "ignores_generator", "float64", "zero_to_a"])
def test_xavier_init_mistakes_are_named(body, tag, grade_id):
    assert_fails_with("xavier_init", _xavier(body), tag, grade_id, public_only=True)


def test_xavier_init_consuming_the_global_generator_is_named():
    body = ("torch.rand(1)\nreturn torch.rand(fan_out, fan_in, generator=generator) * 2 * a - a")
    msg = assert_fails_with("xavier_init", _xavier(body), "ignores_generator", "test_xavier_init_shape")
    assert "global" in msg


def test_xavier_float64_result_keeps_the_distribution_points():
    body = "return torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) * 2 * a - a"
    assert run_grade_cell(AID, "test_xavier_init_distribution", {"xavier_init": _xavier(body)}).passed


# --- the prediction --------------------------------------------------------------------------------

PREDICTION = 'with needs("predicted_gradient_profile"):\n    predicted_gradient_profile = {!r}\n'


def test_prediction_right_passes_and_wrong_ones_are_named_prediction():
    assert run_grade_cell(AID, "test_predicted_gradient_profile",
                          {"predicted_gradient_profile": PREDICTION.format("about equal")}).passed
    for wrong in ("first layer largest", "last layer largest"):
        msg = assert_fails_with("predicted_gradient_profile", PREDICTION.format(wrong), "prediction",
                                "test_predicted_gradient_profile")
        assert "about equal" in msg and wrong in msg


def test_prediction_not_set_or_not_a_choice():
    stub = 'with needs("predicted_gradient_profile"):\n    raise NotImplementedError()\n'
    assert_fails_with("predicted_gradient_profile", stub, "not_implemented", "test_predicted_gradient_profile")
    assert_fails_with("predicted_gradient_profile", PREDICTION.format("equal"), "wrong_return",
                      "test_predicted_gradient_profile")


@pytest.mark.parametrize("seed", range(4))
def test_the_prediction_outcome_is_robust_to_the_seed(seed):
    """The true outcome does not hang on the seed the grade cell uses: first/last stays within 10x."""
    weights, biases = gf.gaussian_weights(20, 64, 0.1, seed=seed)
    A0, G = gf.deep_inputs(32, 64, seed=seed + 10)
    grads = gf.autograd_weight_grads(weights, biases, A0, G)
    ratio = float(grads[0].norm() / grads[-1].norm())
    assert 0.3 < ratio < 3.0


# --- the grad_flow library -------------------------------------------------------------------------


def test_autograd_weight_grads_match_the_tanh_reference():
    from backproplab import backprop_tools as bt

    weights, biases, A0, G = bt.random_deep_case(4, batch=3, seed=5)
    _, dW_ref, _ = bt.deep_reference(weights, biases, A0, G)
    for got, want in zip(gf.autograd_weight_grads(weights, biases, A0, G, "tanh"), dW_ref, strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_relu_and_sigmoid_networks_and_activations_have_one_entry_per_layer():
    weights, biases = gf.gaussian_weights(5, 6, 0.5, seed=1)
    A0, G = gf.deep_inputs(4, 6)
    for name in ("sigmoid", "relu"):
        grads = gf.autograd_weight_grads(weights, biases, A0, G, name)
        assert [tuple(g.shape) for g in grads] == [(6, 6)] * 5
        acts = gf.activations(weights, biases, A0, name)
        assert len(acts) == 5 and all(a.shape == (4, 6) for a in acts)
    relu_acts = gf.activations(weights, biases, A0, "relu")
    assert all(bool((a >= 0).all()) for a in relu_acts)


def test_saturated_fraction_and_distinct_rows():
    acts = [torch.tensor([[0.995, -0.999, 0.5, 0.0]]), torch.tensor([[1.0, 0.2]])]
    assert math.isclose(gf.saturated_fraction(acts, 0.99), 3 / 6)
    assert gf.saturated_fraction([], 0.99) == 0.0
    m = torch.tensor([[1.0, 2.0], [1.0, 2.0 + 1e-9], [0.0, 2.0]])
    assert gf.distinct_rows(m) == 2
    assert gf.distinct_rows(torch.zeros(16, 2)) == 1


def test_gaussian_weights_scale_and_inputs_are_seeded():
    w1, b1 = gf.gaussian_weights(3, 200, 0.3, seed=2)
    w2, _ = gf.gaussian_weights(3, 200, 0.3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert abs(float(torch.cat([w.reshape(-1) for w in w1]).std()) - 0.3) < 0.01
    assert all(float(b.abs().max()) == 0.0 for b in b1)
    A0, G = gf.deep_inputs(8, 5, dtype=torch.float32)
    assert A0.dtype == G.dtype == torch.float32 and A0.shape == G.shape == (8, 5)


def test_plot_helpers_take_an_ax_and_return_it():
    from backproplab import plots

    fig, axes = plots.new_figure(1, 2)
    ax = gf.plot_per_layer(axes[0][0], {"a": [1.0, 0.1, 0.0, float("inf")], "b": [1, 2, 3, 4]}, title="t")
    assert ax is axes[0][0] and ax.get_yscale() == "log" and len(ax.lines) == 2
    acts = [torch.tanh(torch.randn(10, 4) * 3)]
    ax2 = gf.plot_activation_histogram(axes[0][1], acts, title="x")
    assert ax2 is axes[0][1] and "saturated" in ax2.get_title()
