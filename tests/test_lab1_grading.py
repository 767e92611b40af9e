"""Lab 1's grade cells accept other correct answers (the lecture's own code among them) and reject
the usual mistakes with a message that names them."""

from __future__ import annotations

import pytest

from tests.helpers.gradecells import run_all_for, run_grade_cell

AID = "lab1_perceptron"


def assert_all_pass(solution_id: str, source: str) -> None:
    outcomes = run_all_for(AID, solution_id, source)
    failed = {g: o.message for g, o in outcomes.items() if not o.passed}
    assert not failed, f"a correct {solution_id} was rejected: {failed}"


def assert_fails(solution_id: str, source: str, *words: str, public_only: bool = False) -> str:
    outcomes = run_all_for(AID, solution_id, source, public_only=public_only)
    messages = [o.message for o in outcomes.values() if not o.passed]
    assert messages, f"the wrong {solution_id} passed every grade cell"
    text = "\n".join(messages)
    for word in words:
        assert word in text, f"expected {word!r} in the failure message, got:\n{text}"
    return text


# --- correct answers written differently ------------------------------------------------------

# The lecture's function exactly as seed 000 (Fleuret, "Deep Learning #3") writes it: w starts as a
# float32 torch.zeros(D) whatever x's dtype, and the stray `;` after `break` is valid Python.
TRANSCRIPT_TRAIN = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.size(1))

    for e in range(nb_epochs_max):
        nb_changes = 0
        for i in range(x.size(0)):
            if x[i].dot(w) * y[i] <= 0:
                w = w + y[i] * x[i]
                nb_changes = nb_changes + 1
        if nb_changes == 0: break;

    return w
"""

LECTURE_TRAIN = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.size(1), dtype=x.dtype)
    for e in range(nb_epochs_max):
        nb_changes = 0
        for i in range(x.size(0)):
            if x[i].dot(w) * y[i] <= 0:
                w = w + y[i] * x[i]
                nb_changes = nb_changes + 1
        if nb_changes == 0: break
    return w
"""

INPLACE_TRAIN = """
def train_perceptron(x, y, nb_epochs_max):
    w = x.new_zeros(x.shape[1])
    epoch = 0
    while epoch < nb_epochs_max:
        clean = True
        for xi, yi in zip(x, y):
            if (yi * torch.dot(xi, w)).item() <= 0:
                w += yi * xi
                clean = False
        epoch += 1
        if clean:
            return w
    return w
"""

WHILE_TRAIN = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1])
    epochs_done, converged = 0, False
    while not converged and epochs_done < nb_epochs_max:
        converged = True
        i = 0
        while i < len(x):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                converged = False
            i += 1
        epochs_done += 1
    return w
"""

MATMUL_FLAG_TRAIN = """
def train_perceptron(x, y, nb_epochs_max):
    n, d = x.shape
    w = torch.zeros(d, dtype=x.dtype)
    for _ in range(nb_epochs_max):
        updated = False
        for i in range(n):
            if float(y[i]) * float(torch.matmul(x[i], w)) <= 0.0:
                w = w + float(y[i]) * x[i]
                updated = True
        if not updated:
            return w
    return w
"""


@pytest.mark.parametrize("source", [TRANSCRIPT_TRAIN, LECTURE_TRAIN, INPLACE_TRAIN, WHILE_TRAIN, MATMUL_FLAG_TRAIN],
                         ids=["transcript", "lecture_dtype", "in_place_zip", "while_loops", "python_floats_flag"])
def test_other_correct_perceptrons_pass(source):
    assert_all_pass("train_perceptron", source)


def test_lecture_perceptron_as_in_the_transcript_passes_every_grade_cell():
    """The contract's rule for train_perceptron: tests use float32 only, so the lecture's own code,
    whose w is a float32 zeros(D), passes public and hidden checks alike."""
    outcomes = run_all_for(AID, "train_perceptron", TRANSCRIPT_TRAIN)
    assert outcomes and all(o.passed for o in outcomes.values()), {g: o.message for g, o in outcomes.items()}


def test_threshold_unit_written_with_where_passes():
    assert_all_pass("threshold_unit", """
def threshold_unit(x, w, b):
    s = torch.matmul(x, w) + b
    return torch.where(s >= 0, torch.ones_like(s), torch.zeros_like(s))
""")


def test_gates_with_lecture_weights_through_matmul_pass():
    assert_all_pass("logic_and", """
def logic_and(a, b):
    return threshold_unit(torch.stack((a, b), -1), torch.ones(2, dtype=a.dtype), -1.5)
""")
    assert_all_pass("logic_xor", """
def logic_xor(a, b):
    return logic_and(logic_or(a, b), logic_not(logic_and(a, b)))
""")


def test_error_rate_with_python_loop_passes():
    assert_all_pass("perceptron_error_rate", """
def perceptron_error_rate(w, x, y):
    errors = 0
    for i in range(len(y)):
        if y[i] * (x[i] @ w) <= 0:
            errors += 1
    return errors / len(y)
""")


def test_error_rate_as_a_float32_mean_of_a_list_passes():
    # the mean taken in float32 before .item(): 1/3 is then 0.3333333432674408, as right as float64's
    assert_all_pass("perceptron_error_rate", """
def perceptron_error_rate(w, x, y):
    wrong = [float(y[i] * (x[i] @ w) <= 0) for i in range(len(y))]
    return torch.tensor(wrong, dtype=torch.float32).mean().item()
""")


def test_product_features_with_randperm_pairs_passes():
    assert_all_pass("product_features", """
def product_features(x, nb_pairs, generator=None):
    cols = [x]
    for _ in range(nb_pairs):
        i, j = torch.randperm(x.shape[1], generator=generator)[:2].tolist()
        cols.append((x[:, i] * x[:, j]).unsqueeze(1))
    return torch.cat(cols, 1)
""")


# --- usual mistakes ----------------------------------------------------------------------------

def test_strict_inequality_in_threshold_unit_is_named():
    assert_fails("threshold_unit", """
def threshold_unit(x, w, b):
    return (x @ w + b > 0).float()
""", ">= 0", public_only=True)


def test_threshold_unit_returning_bool_fails_on_dtype():
    assert_fails("threshold_unit", """
def threshold_unit(x, w, b):
    return x @ w + b >= 0
""", "diagnosis: wrong_dtype", public_only=True)


@pytest.mark.parametrize("condition", ["< 0", "> 0", ">= 0"])
def test_wrong_update_condition_leaves_w_at_zero_and_is_tagged_zero(condition):
    # from w = 0 every score is 0: "< 0" and "> 0" never update (the demo class expects the tag `zero`)
    text = assert_fails("train_perceptron", TRANSCRIPT_TRAIN.replace("<= 0", condition), public_only=True)
    assert "train_perceptron" in text
    if condition != ">= 0":  # ">= 0" does move, the wrong way: the hand-worked values catch it
        assert "diagnosis: zero" in text and "<= 0" in text


def test_perceptron_that_never_stops_early_times_out_on_the_million_epoch_cap():
    source = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(nb_epochs_max):
        for i in range(x.shape[0]):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
    return w
"""
    outcome = run_grade_cell(AID, "test_train_perceptron", {"train_perceptron": source}, public_only=True)
    assert not outcome.passed
    assert "diagnosis: timeout" in outcome.message and "first epoch with no update" in outcome.message


@pytest.mark.parametrize("start", ["torch.ones(x.shape[1])", "0.01 * torch.randn(x.shape[1])"], ids=["ones", "random"])
def test_perceptron_not_starting_from_zeros_fails(start):
    source = LECTURE_TRAIN.replace("torch.zeros(x.size(1), dtype=x.dtype)", start)
    assert source != LECTURE_TRAIN
    assert_fails("train_perceptron", source, "train_perceptron(3 samples worked out by hand)", public_only=True)


def test_perceptron_returning_the_list_of_weights_fails_as_not_a_tensor():
    source = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1])
    history = [w]
    for _ in range(nb_epochs_max):
        changed = False
        for i in range(len(x)):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                history.append(w)
                changed = True
        if not changed:
            break
    return history
"""
    assert_fails("train_perceptron", source, "diagnosis: not_a_tensor", public_only=True)


def test_perceptron_returning_float64_for_float32_inputs_fails_on_dtype():
    source = TRANSCRIPT_TRAIN.replace("torch.zeros(x.size(1))", "torch.zeros(x.size(1), dtype=torch.float64)")
    source = source.replace("w = w + y[i] * x[i]", "w = w + (y[i] * x[i]).double()").replace("x[i].dot(w)", "x[i].double().dot(w)")
    assert_fails("train_perceptron", source, "diagnosis: wrong_dtype", public_only=True)


def test_perceptron_stub_is_not_implemented():
    assert_fails("train_perceptron", """
def train_perceptron(x, y, nb_epochs_max):
    raise NotImplementedError()
""", "diagnosis: not_implemented", public_only=True)


def test_perceptron_update_without_label_fails():
    assert_fails("train_perceptron", LECTURE_TRAIN.replace("w + y[i] * x[i]", "w + x[i]"), public_only=True)


def test_perceptron_ignoring_epoch_cap_times_out_with_a_message():
    source = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1], dtype=x.dtype)
    while True:
        changes = 0
        for i in range(x.shape[0]):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                changes += 1
        if changes == 0:
            return w
"""
    # the public part uses separable data, so only the hidden random-label part can loop forever
    outcome = run_grade_cell(AID, "test_train_perceptron", {"train_perceptron": source})
    assert not outcome.passed
    assert "nb_epochs_max" in outcome.message and "diagnosis: timeout" in outcome.message


def test_perceptron_with_random_order_fails():
    source = """
def train_perceptron(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(nb_epochs_max):
        changed = False
        for i in torch.randperm(x.shape[0]).tolist():
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                changed = True
        if not changed:
            break
    return w
"""
    assert_fails("train_perceptron", source)


def test_error_rate_returning_tensor_is_named():
    assert_fails("perceptron_error_rate", """
def perceptron_error_rate(w, x, y):
    return ((y * (x @ w)) <= 0).float().mean()
""", "Python float", public_only=True)


def test_error_rate_with_strict_inequality_fails():
    assert_fails("perceptron_error_rate", """
def perceptron_error_rate(w, x, y):
    return ((y * (x @ w)) < 0).float().mean().item()
""", public_only=True)


def test_bias_column_in_front_fails():
    assert_fails("add_bias_column", """
def add_bias_column(x):
    return torch.cat([torch.ones(x.shape[0], 1, dtype=x.dtype), x], 1)
""", public_only=True)


def test_bias_column_converted_to_float32_fails_on_dtype():
    assert_fails("add_bias_column", """
def add_bias_column(x):
    return torch.cat([x.float(), torch.ones(x.shape[0], 1)], 1)
""", "wrong_dtype")


def test_product_features_allowing_i_equal_j_fails():
    assert_fails("product_features", """
def product_features(x, nb_pairs, generator=None):
    i = torch.randint(0, x.shape[1], (nb_pairs,), generator=generator)
    return torch.cat([x, x[:, i] * x[:, i]], 1)
""", "i != j")


def test_product_features_ignoring_generator_fails():
    assert_fails("product_features", """
def product_features(x, nb_pairs, generator=None):
    d = x.shape[1]
    i = torch.randint(0, d, (nb_pairs,))
    j = (i + torch.randint(1, d, (nb_pairs,))) % d
    return torch.cat([x, x[:, i] * x[:, j]], 1)
""", "generator")


def test_xor_with_one_unit_fails():
    assert_fails("logic_xor", """
def logic_xor(a, b):
    return threshold_unit(torch.stack([a, b], -1), torch.tensor([1.0, 1.0], dtype=a.dtype), -0.5)
""", "logic_xor", public_only=True)


def test_gate_that_only_handles_vectors_fails_in_hidden_checks():
    source = """
def logic_or(a, b):
    return threshold_unit(torch.stack([a, b], dim=1), torch.tensor([1.0, 1.0]), -0.5)
"""
    assert run_all_for(AID, "logic_or", source, public_only=True)["test_logic_or"].passed
    assert not run_all_for(AID, "logic_or", source)["test_logic_or"].passed


# --- predict, then check ------------------------------------------------------------------------

PREDICTION_STUB = """
with needs("predicted_updates"):
    # YOUR CODE HERE
    raise NotImplementedError()
"""


@pytest.mark.parametrize("value", ["1", "1.0"])
def test_right_prediction_of_third_epoch_updates_passes(value):
    # four points, no bias: epochs make 2, 1, 1, 0 updates (the third one on a point lying on the line)
    assert_all_pass("predicted_updates", f"predicted_updates = {value}\n")


@pytest.mark.parametrize("value", ["0", "2", "4"])
def test_wrong_prediction_fails_naming_both_numbers(value):
    text = assert_fails("predicted_updates", f"predicted_updates = {value}\n", "diagnosis: prediction")
    assert f"you predicted {value} update(s)" in text and "makes 1" in text


def test_prediction_is_compared_only_in_the_hidden_part():
    # the student's own run of the check must not give the answer away before the experiment
    assert run_all_for(AID, "predicted_updates", "predicted_updates = 3\n", public_only=True)["test_predicted_updates"]


@pytest.mark.parametrize("value", ["'one'", "1.5", "True", "None", "float('inf')", "float('nan')", "[1]"])
def test_prediction_that_is_not_a_whole_number_is_named(value):
    assert_fails("predicted_updates", f"predicted_updates = {value}\n", "whole number", "diagnosis: prediction",
                 public_only=True)


def test_untouched_prediction_cell_fails_as_not_implemented():
    assert_fails("predicted_updates", PREDICTION_STUB, "diagnosis: not_implemented", public_only=True)


# --- the gates are made of threshold units ------------------------------------------------------

def test_reference_gates_are_computed_by_calls_to_threshold_unit():
    """The reference gates call `threshold_unit` (one unit per gate, three for xor). No grade cell checks
    this: on inputs in {0, 1} a gate's truth table is all a test can see, any Boolean function is some
    network of threshold units, and counting calls would reject a unit written out inline
    (`(a + b - 1.5 >= 0).to(a.dtype)` is one threshold unit too)."""
    import torch

    from tests.helpers.gradecells import lab_cells

    setup, solutions, _ = lab_cells(AID)
    ns: dict = {"__name__": "__main__"}
    exec(setup, ns)
    for sid in ("threshold_unit", "logic_and", "logic_or", "logic_not", "logic_xor"):
        exec(solutions[sid], ns)
    calls = []
    unit = ns["threshold_unit"]

    def counting(x, w, b):
        calls.append(1)
        return unit(x, w, b)

    ns["threshold_unit"] = counting
    a, b = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0.0, 1.0, 0.0, 1.0])
    for name, args, expected_calls in [("logic_and", (a, b), 1), ("logic_or", (a, b), 1), ("logic_not", (a,), 1),
                                       ("logic_xor", (a, b), 3)]:
        calls.clear()
        ns[name](*args)
        assert len(calls) == expected_calls, f"{name} made {len(calls)} threshold_unit calls"


# --- the gates, the bias column and the xor features: other right answers and the usual mistakes ---

@pytest.mark.parametrize("name, source", [
    ("logic_and", "def logic_and(a, b):\n    return threshold_unit(torch.stack([a, b], -1), torch.tensor([2.0, 2.0], dtype=a.dtype), -3.0)\n"),
    ("logic_and", "def logic_and(a, b):\n    x = torch.stack((a, b), dim=-1)\n"
                  "    return threshold_unit(x, torch.ones(2, dtype=a.dtype), -2.0)\n"),
    ("logic_or", "def logic_or(a, b):\n    return threshold_unit(torch.stack([a, b], -1), torch.ones(2, dtype=a.dtype), -1.0)\n"),
    ("logic_or", "def logic_or(a, b):\n    x = torch.cat([a.unsqueeze(-1), b.unsqueeze(-1)], dim=-1)\n"
                 "    return threshold_unit(x, torch.tensor([0.5, 0.5], dtype=a.dtype), -0.25)\n"),
    ("logic_not", "def logic_not(a):\n    return threshold_unit(a[..., None], torch.tensor([-2.0], dtype=a.dtype), 1.0)\n"),
    ("logic_not", "def logic_not(a):\n    return threshold_unit(a.reshape(-1, 1), -torch.ones(1, dtype=a.dtype), 0.0)"
                  ".reshape(a.shape)\n"),
    ("add_bias_column", "def add_bias_column(x):\n    return torch.hstack([x, torch.ones_like(x[:, :1])])\n"),
    ("add_bias_column", "def add_bias_column(x):\n    out = torch.ones(x.shape[0], x.shape[1] + 1, dtype=x.dtype)\n"
                        "    out[:, :-1] = x\n    return out\n"),
    ("xor_features", "def xor_features(x):\n    return torch.stack([x[:, 0], x[:, 1], x[:, 0] * x[:, 1]], dim=1)\n"),
    ("xor_features", "def xor_features(x):\n    return torch.cat([x, x.prod(dim=1, keepdim=True)], 1)\n"),
], ids=["and_scaled", "and_bias_2", "or_bias_1", "or_halved", "not_scaled", "not_reshape",
        "bias_hstack", "bias_fill", "xor_stack", "xor_prod"])
def test_other_right_gates_and_features_pass(name, source):
    assert_all_pass(name, source)


@pytest.mark.parametrize("name, source, word", [
    ("logic_and", "def logic_and(a, b):\n    return threshold_unit(torch.stack([a, b], -1), torch.ones(2, dtype=a.dtype), -0.5)\n",
     "diagnosis:"),
    ("logic_or", "def logic_or(a, b):\n    return threshold_unit(torch.stack([a, b], -1), torch.ones(2, dtype=a.dtype), -1.5)\n",
     "diagnosis:"),
    ("logic_not", "def logic_not(a):\n    return threshold_unit(a[..., None], torch.tensor([1.0], dtype=a.dtype), -0.5)\n",
     "diagnosis:"),
    ("add_bias_column", "def add_bias_column(x):\n    return torch.cat([torch.ones(x.shape[0], 1, dtype=x.dtype), x], 1)\n",
     "diagnosis: values"),
    ("xor_features", "def xor_features(x):\n    return torch.cat([x, (x[:, 0] + x[:, 1]).unsqueeze(1)], 1)\n",
     "diagnosis:"),
    ("xor_features", "def xor_features(x):\n    return x[:, 0:1] * x[:, 1:2]\n", "diagnosis: wrong_shape"),
], ids=["and_is_or", "or_is_and", "not_is_identity", "bias_first", "xor_sum",
        "xor_product_only"])
def test_usual_mistakes_in_gates_and_features_fail(name, source, word):
    assert_fails(name, source, word)
