"""Lab 3's grade cells judge the property each exercise asks for.

Other correct ways to write an answer (the lecture's own `backward`, einsum, per-example loops,
built-in softmax...) must pass every grade cell of that exercise, and each usual mistake must fail
with a message naming it. Grade cells run in-process through `gradecells`, with one solution cell
swapped for the version under test.
"""

from __future__ import annotations

import pytest

from tests.helpers.gradecells import run_all_for, run_grade_cell

AID = "lab3_mlp_backprop"


def assert_all_pass(solution_id: str, source: str, public_only: bool = False) -> None:
    outcomes = run_all_for(AID, solution_id, source, public_only=public_only)
    failed = {g: o.message for g, o in outcomes.items() if not o.passed}
    assert not failed, f"a correct {solution_id} failed:\n" + "\n".join(f"{g}: {m}" for g, m in failed.items())


def failure_messages(solution_id: str, source: str, public_only: bool = False) -> dict[str, str]:
    outcomes = run_all_for(AID, solution_id, source, public_only=public_only)
    return {g: o.message for g, o in outcomes.items() if not o.passed}


def assert_fails_with(solution_id: str, source: str, tag: str, grade_id: str | None = None,
                      public_only: bool = False) -> str:
    """The mistake fails (the given grade cell, or at least one) and the message carries ``(diagnosis: tag)``."""
    if grade_id is not None:
        outcome = run_grade_cell(AID, grade_id, {solution_id: source}, public_only=public_only)
        assert not outcome.passed, f"{grade_id} passed a wrong {solution_id}"
        assert f"(diagnosis: {tag})" in outcome.message, outcome.message
        return outcome.message
    failed = failure_messages(solution_id, source, public_only)
    assert failed, f"every grade cell passed a wrong {solution_id}"
    assert any(f"(diagnosis: {tag})" in m for m in failed.values()), "\n".join(failed.values())
    return "\n".join(failed.values())


# --- the reference solutions pass, the untouched stubs fail ---------------------------------------


def test_reference_solution_passes_every_grade_cell():
    from tests.helpers.gradecells import grade_ids

    for g in grade_ids(AID):
        outcome = run_grade_cell(AID, g)
        assert outcome.passed, f"{g}: {outcome.message}"


STUB = """
def {name}(*args, **kwargs):
    raise NotImplementedError()
"""


@pytest.mark.parametrize("name", ["fib_memo", "fib_tab", "init_params", "softmax", "cross_entropy", "forward",
                                  "backward", "sgd_step", "accuracy", "train_mlp", "deep_forward",
                                  "deep_backward", "layer_grad_norms", "xavier_init", "check_backward"])
def test_stub_fails_its_grade_cells_with_not_implemented(name):
    failed = failure_messages(name, STUB.format(name=name))
    outcomes = run_all_for(AID, name, STUB.format(name=name))
    assert set(failed) == set(outcomes), f"grade cells passing on the stub: {set(outcomes) - set(failed)}"
    assert all("not_implemented" in m for m in failed.values()), failed


# --- backward: other correct answers ----------------------------------------------------------------

LECTURE_BACKWARD = """
def backward(params, outputs, Y):
    bsize = Y.shape[0]
    grads = {}

    Y_tilde_grad = outputs["yhat"] - Y
    h_tilde_grad = torch.mm(Y_tilde_grad, params["Wy"])
    h_tilde_grad = h_tilde_grad * (1 - torch.pow(outputs["h"], 2))

    grads["Wy"] = torch.mm(Y_tilde_grad.T, outputs["h"])
    grads["Wh"] = torch.mm(h_tilde_grad.T, outputs["X"])
    grads["by"] = Y_tilde_grad.sum(dim=0, keepdim=True).T
    grads["bh"] = h_tilde_grad.sum(0, keepdim=True).T

    grads["Wy"] /= bsize
    grads["by"] /= bsize
    grads["Wh"] /= bsize
    grads["bh"] /= bsize

    return grads
"""

EINSUM_BACKWARD = """
def backward(params, outputs, Y):
    n = Y.shape[0]
    dy = (outputs["yhat"] - Y) / n
    dh = torch.einsum("bk,kh->bh", dy, params["Wy"]) * (1 - outputs["h"].pow(2))
    return {"Wy": torch.einsum("bk,bh->kh", dy, outputs["h"]), "by": torch.einsum("bk->k", dy)[:, None],
            "Wh": torch.einsum("bh,bx->hx", dh, outputs["X"]), "bh": torch.einsum("bh->h", dh).reshape(-1, 1)}
"""

PER_EXAMPLE_BACKWARD = """
def backward(params, outputs, Y):
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for b in range(Y.shape[0]):
        dy = (outputs["yhat"][b] - Y[b])[:, None]                      # (ny, 1)
        h = outputs["h"][b][:, None]                                    # (nh, 1)
        dh = (params["Wy"].T @ dy) * (1 - h * h)                        # (nh, 1)
        total["Wy"] += dy @ h.T
        total["by"] += dy
        total["Wh"] += dh @ outputs["X"][b][None, :]
        total["bh"] += dh
    return {k: v / Y.shape[0] for k, v in total.items()}
"""

SUM_THEN_DIVIDE_BACKWARD = """
def backward(params, outputs, Y):
    dy = outputs["yhat"] - Y
    dh = dy.matmul(params["Wy"]).mul(1 - outputs["h"] ** 2)
    grads = {"Wy": dy.t().matmul(outputs["h"]), "by": dy.sum(0).view(-1, 1),
             "Wh": dh.t().matmul(outputs["X"]), "bh": dh.sum(0).view(-1, 1)}
    B = len(Y)
    return {key: value / B for key, value in grads.items()}
"""


@pytest.mark.parametrize("source", [LECTURE_BACKWARD, EINSUM_BACKWARD, PER_EXAMPLE_BACKWARD, SUM_THEN_DIVIDE_BACKWARD],
                         ids=["lecture", "einsum", "per_example_loop", "sum_then_divide"])
def test_correct_backward_variants_pass(source):
    assert_all_pass("backward", source)


# --- backward: usual mistakes, each named ----------------------------------------------------------


def _backward(by_line="dy.sum(0, keepdim=True).T / B", bh_line="dh.sum(0, keepdim=True).T / B",
              wy_line="dy.T @ outputs['h'] / B", wh_line="dh.T @ outputs['X'] / B",
              dh_line="(dy @ params['Wy']) * (1 - outputs['h'] ** 2)", dy_line="outputs['yhat'] - Y"):
    return f"""
def backward(params, outputs, Y):
    B = Y.shape[0]
    dy = {dy_line}
    dh = {dh_line}
    return {{"Wy": {wy_line}, "by": {by_line}, "Wh": {wh_line}, "bh": {bh_line}}}
"""


def test_correct_template_passes():
    assert_all_pass("backward", _backward())


def test_forgot_to_average_is_named_batch_sum():
    src = _backward(by_line="dy.sum(0, keepdim=True).T", bh_line="dh.sum(0, keepdim=True).T",
                    wy_line="dy.T @ outputs['h']", wh_line="dh.T @ outputs['X']")
    msg = assert_fails_with("backward", src, "batch_sum", "test_backward_output_layer")
    assert "average over the batch" in msg
    assert_fails_with("backward", src, "batch_sum", "test_backward_hidden_layer")
    assert_fails_with("backward", src, "batch_sum", "test_backward_batch")
    # The batch of one cannot see it, but the doubled batch does (public part alone).
    assert_fails_with("backward", src, "batch_sum", "test_backward_batch", public_only=True)


def test_transposed_weight_gradient_is_named():
    src = _backward(wy_line="outputs['h'].T @ dy / B")
    msg = assert_fails_with("backward", src, "transposed_shape", "test_backward_output_layer")
    assert "transpose" in msg
    src = _backward(wh_line="outputs['X'].T @ dh / B")
    assert_fails_with("backward", src, "transposed_shape", "test_backward_hidden_layer")


def test_missing_tanh_derivative_is_named():
    src = _backward(dh_line="dy @ params['Wy']")
    msg = assert_fails_with("backward", src, "missing_tanh_derivative", "test_backward_hidden_layer")
    assert "1 - h^2" in msg
    assert_fails_with("backward", src, "missing_tanh_derivative", "test_backward_hidden_layer", public_only=True)
    # The output layer does not involve tanh': that aspect keeps its points.
    assert run_grade_cell(AID, "test_backward_output_layer", {"backward": src}).passed


def test_missing_tanh_derivative_and_summed_is_still_named():
    src = _backward(dh_line="dy @ params['Wy']", wh_line="dh.T @ outputs['X']")
    assert_fails_with("backward", src, "missing_tanh_derivative", "test_backward_hidden_layer")


@pytest.mark.parametrize("by_line", ["dy.T / B", "dy.sum(1, keepdim=True) / B", "dy / B"])
def test_bias_gradient_not_summed_over_the_batch_is_named(by_line):
    msg = assert_fails_with("backward", _backward(by_line=by_line), "bias_not_summed", "test_backward_output_layer")
    assert "sums the deltas over the batch" in msg


def test_bias_gradient_with_a_flat_shape_fails_on_shape():
    assert_fails_with("backward", _backward(bh_line="dh.sum(0) / B"), "wrong_shape", "test_backward_hidden_layer")


def test_sign_flipped_is_named():
    src = _backward(dy_line="Y - outputs['yhat']")
    assert_fails_with("backward", src, "sign", "test_backward_output_layer")
    assert_fails_with("backward", src, "sign", "test_backward_hidden_layer")


AUTOGRAD_BACKWARD = """
def backward(params, outputs, Y):
    loss = -(Y * torch.log(outputs["yhat"])).sum(1).mean()
    loss.backward()
    return {k: v.grad for k, v in params.items()}
"""

AUTOGRAD_GRAD_BACKWARD = """
def backward(params, outputs, Y):
    loss = -(Y * torch.log(outputs["yhat"])).sum(1).mean()
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
"""


AUTOGRAD_ENABLED_BACKWARD = """
def backward(params, outputs, Y):
    with torch.enable_grad():
        p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        h = torch.tanh(outputs["X"] @ p["Wh"].T + p["bh"].T)
        logits = h @ p["Wy"].T + p["by"].T
        loss = -(Y * torch.log_softmax(logits, dim=1)).sum(1).mean()
        loss.backward()
    return {k: v.grad for k, v in p.items()}
"""


@pytest.mark.parametrize("source", [AUTOGRAD_BACKWARD, AUTOGRAD_GRAD_BACKWARD, AUTOGRAD_ENABLED_BACKWARD],
                         ids=["loss.backward", "autograd.grad", "inside_enable_grad"])
def test_autograd_inside_backward_fails_and_is_named(source):
    failed = failure_messages("backward", source)
    assert set(failed) == {"test_backward_output_layer", "test_backward_hidden_layer", "test_backward_batch",
                           "test_backward_no_autograd"}
    assert all("(diagnosis: uses_autograd)" in m for m in failed.values()), failed


def test_backward_that_modifies_outputs_is_named():
    src = """
def backward(params, outputs, Y):
    B = Y.shape[0]
    dy = outputs["yhat"]
    dy -= Y
    dh = (dy @ params["Wy"]) * (1 - outputs["h"] ** 2)
    return {"Wy": dy.T @ outputs["h"] / B, "by": dy.sum(0, keepdim=True).T / B,
            "Wh": dh.T @ outputs["X"] / B, "bh": dh.sum(0, keepdim=True).T / B}
"""
    assert_fails_with("backward", src, "modifies_input", "test_backward_no_autograd")


def test_backward_in_float64_only_fails_the_dtype_check():
    src = _backward(dy_line="(outputs['yhat'] - Y).double()",
                    dh_line="(dy @ params['Wy'].double()) * (1 - outputs['h'].double() ** 2)",
                    wy_line="dy.T @ outputs['h'].double() / B", wh_line="dh.T @ outputs['X'].double() / B")
    assert_fails_with("backward", src, "wrong_dtype", "test_backward_no_autograd")


# --- softmax, cross_entropy, forward --------------------------------------------------------------


# In float32 at logits of 1e4 the logsumexp is rounded to a step of 1e-3 (the row [1e4, 1e4 - 1, 1e4 - 2]
# is off by 2.5e-4 that way): right, and inside the rule's magnitude max|z|, not its default.
@pytest.mark.parametrize("source", [
    "def softmax(z):\n    return torch.softmax(z, dim=1)",
    "def softmax(z):\n    return torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True))",
    "def softmax(z):\n    m, _ = z.max(1, keepdim=True)\n    e = (z - m).exp()\n    return e / e.sum(-1, keepdim=True)",
    "def softmax(z):\n    return torch.log_softmax(z, dim=1).exp()",
], ids=["torch.softmax", "logsumexp", "max_shift", "log_softmax"])
def test_correct_softmax_variants_pass(source):
    assert_all_pass("softmax", source)


def test_naive_softmax_overflows_and_is_told_to_subtract_the_max():
    msg = assert_fails_with("softmax", "def softmax(z):\n    return z.exp() / z.exp().sum(1, keepdim=True)", "nan",
                            "test_softmax")
    assert "maximum" in msg


def test_softmax_over_the_wrong_dimension_is_named():
    assert_fails_with("softmax", "def softmax(z):\n    return torch.softmax(z, dim=0)", "wrong_dim", "test_softmax")


def test_softmax_modifying_its_input_is_named():
    src = "def softmax(z):\n    z -= z.max(1, keepdim=True).values\n    return z.exp() / z.exp().sum(1, keepdim=True)"
    assert_fails_with("softmax", src, "modifies_input", "test_softmax")


@pytest.mark.parametrize("source", [
    "def cross_entropy(yhat, Y):\n    return torch.nn.functional.nll_loss(torch.log(yhat), Y.argmax(1))",
    "def cross_entropy(yhat, Y):\n    return -torch.log(yhat.gather(1, Y.argmax(1, keepdim=True))).mean()",
    "def cross_entropy(yhat, Y):\n    return -(Y * yhat.log()).sum() / Y.shape[0]",
], ids=["nll_loss", "gather", "sum_then_divide"])
def test_correct_cross_entropy_variants_pass(source):
    assert_all_pass("cross_entropy", source)


def test_cross_entropy_summed_is_named_batch_sum():
    assert_fails_with("cross_entropy", "def cross_entropy(yhat, Y):\n    return -(Y * torch.log(yhat)).sum()",
                      "batch_sum", "test_cross_entropy")


def test_cross_entropy_per_example_is_named():
    assert_fails_with("cross_entropy", "def cross_entropy(yhat, Y):\n    return -(Y * torch.log(yhat)).sum(1)",
                      "batch_dim_kept", "test_cross_entropy")


@pytest.mark.parametrize("source", [
    """
def forward(params, X):
    ht = torch.addmm(params["bh"].T, X, params["Wh"].T)
    h = ht.tanh()
    yt = torch.addmm(params["by"].T, h, params["Wy"].T)
    return dict(X=X, htilde=ht, h=h, ytilde=yt, yhat=softmax(yt))
""",
    """
def forward(params, X):
    F = torch.nn.functional
    ht = F.linear(X, params["Wh"], params["bh"].squeeze(1))
    yt = F.linear(torch.tanh(ht), params["Wy"], params["by"].squeeze(1))
    return {"X": X, "htilde": ht, "h": torch.tanh(ht), "ytilde": yt, "yhat": torch.softmax(yt, 1)}
""",
], ids=["addmm", "functional"])
def test_correct_forward_variants_pass(source):
    assert_all_pass("forward", source)


def test_forward_is_graded_without_the_students_softmax():
    # A broken softmax costs the softmax points only.
    outcome = run_grade_cell(AID, "test_forward", {"softmax": "def softmax(z):\n    raise NotImplementedError()"})
    assert outcome.passed, outcome.message


def test_forward_with_untransposed_bias_fails():
    src = """
def forward(params, X):
    ht = X @ params["Wh"].T + params["bh"]
    h = torch.tanh(ht)
    yt = h @ params["Wy"].T + params["by"]
    return {"X": X, "htilde": ht, "h": h, "ytilde": yt, "yhat": softmax(yt)}
"""
    assert failure_messages("forward", src)


# --- fibonacci, init, sgd_step, accuracy -----------------------------------------------------------


@pytest.mark.parametrize("source", [
    "import functools\n@functools.lru_cache(maxsize=None)\ndef fib_memo(n):\n    return n if n < 2 else fib_memo(n - 1) + fib_memo(n - 2)",
    "def fib_memo(n, memo={0: 0, 1: 1}):\n    if n not in memo:\n        memo[n] = fib_memo(n - 1) + fib_memo(n - 2)\n    return memo[n]",
    "def fib_memo(n, memo=None):\n    memo = {} if memo is None else memo\n    if n < 2:\n        return n\n"
    "    if n not in memo:\n        memo[n] = fib_memo(n - 1, memo) + fib_memo(n - 2, memo)\n    return memo[n]",
], ids=["lru_cache", "default_dict", "memo_argument"])
def test_correct_fib_memo_variants_pass(source):
    assert_all_pass("fib_memo", source)


def test_naive_fib_memo_is_stopped_and_named():
    msg = assert_fails_with("fib_memo", "def fib_memo(n):\n    return n if n < 2 else fib_memo(n - 1) + fib_memo(n - 2)",
                            "no_memo", "test_fib_memo")
    assert "same F(i)" in msg


def test_fib_tab_variants():
    assert_all_pass("fib_tab", "def fib_tab(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a")
    assert_all_pass("fib_tab", "def fib_tab(n):\n    t = [0] * (n + 2)\n    t[1] = 1\n    for i in range(2, n + 1):\n"
                               "        t[i] = t[i - 1] + t[i - 2]\n    return t[n]")
    recursive = ("import functools\n@functools.lru_cache(maxsize=None)\n"
                 "def fib_tab(n):\n    return n if n < 2 else fib_tab(n - 1) + fib_tab(n - 2)")
    assert_fails_with("fib_tab", recursive, "not_bottom_up", "test_fib_tab")
    binet = "def fib_tab(n):\n    return round(((1 + 5 ** 0.5) / 2) ** n / 5 ** 0.5)"  # floats: overflows at 2000
    assert_fails_with("fib_tab", binet, "crash", "test_fib_tab")


def test_init_params_variants():
    assert_all_pass("init_params", """
def init_params(nx, nh, ny, generator=None):
    Wy = torch.randn(ny, nh, generator=generator) * 0.3
    Wh = torch.randn(nh, nx, generator=generator) * 0.3
    return {"Wh": Wh, "bh": torch.zeros(nh, 1), "Wy": Wy, "by": torch.zeros(ny, 1)}
""")
    assert_fails_with("init_params", """
def init_params(nx, nh, ny, generator=None):
    return {"Wh": torch.randn(nh, nx) * 0.3, "bh": torch.zeros(nh, 1), "Wy": torch.randn(ny, nh) * 0.3,
            "by": torch.zeros(ny, 1)}
""", "ignores_generator", "test_init_params")
    assert_fails_with("init_params", """
def init_params(nx, nh, ny, generator=None):
    return {"Wh": torch.randn(nh, nx, generator=generator) * 0.3, "bh": torch.zeros(nh),
            "Wy": torch.randn(ny, nh, generator=generator) * 0.3, "by": torch.zeros(ny)}
""", "wrong_shape", "test_init_params")


def test_sgd_step_variants():
    assert_all_pass("sgd_step", """
def sgd_step(params, grads, eta):
    with torch.no_grad():
        for k in params:
            params[k] -= eta * grads[k]
""")
    assert_fails_with("sgd_step", """
def sgd_step(params, grads, eta):
    for k in params:
        params[k] = params[k] - eta * grads[k]
""", "not_in_place", "test_sgd_step")


def test_accuracy_variants():
    assert_all_pass("accuracy", "def accuracy(yhat, Y):\n    return float((yhat.argmax(1) == Y.argmax(1)).sum()) / len(Y)")
    assert_fails_with("accuracy", "def accuracy(yhat, Y):\n    return (yhat.argmax(1) == Y.argmax(1)).float().mean()",
                      "wrong_dtype", "test_accuracy")


# --- train_mlp ------------------------------------------------------------------------------------

TRAIN_FULL_LOSS = """
def train_mlp(params, X, Y, eta, nb_epochs, batch_size, generator=None):
    history = []
    for epoch in range(nb_epochs):
        perm = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), batch_size):
            b = perm[i:i + batch_size]
            out = forward(params, X[b])
            sgd_step(params, backward(params, out, Y[b]), eta)
        history.append(cross_entropy(forward(params, X)["yhat"], Y).item())
    return history
"""


def test_train_mlp_variant_with_end_of_epoch_loss_passes():
    assert_all_pass("train_mlp", TRAIN_FULL_LOSS)


def test_train_mlp_ignoring_the_generator_is_named():
    src = TRAIN_FULL_LOSS.replace("torch.randperm(len(X), generator=generator)", "torch.randperm(len(X))")
    assert_fails_with("train_mlp", src, "ignores_generator", "test_train_mlp")


def test_train_mlp_returning_tensors_is_named():
    src = TRAIN_FULL_LOSS.replace(".item()", "")
    assert_fails_with("train_mlp", src, "wrong_dtype", "test_train_mlp")


def test_train_mlp_public_part_uses_the_students_helpers_and_hidden_part_its_own():
    # The public part runs the student's own forward/backward/sgd_step (a broken backward makes it fail,
    # and its comment says so); the hidden part swaps in correct helpers so train_mlp alone is judged.
    broken = "def backward(params, outputs, Y):\n    raise NotImplementedError()"
    outcome = run_grade_cell(AID, "test_train_mlp", {"backward": broken})
    assert not outcome.passed
    from tests.helpers.gradecells import lab_cells

    hidden_only = lab_cells(AID)[2]["test_train_mlp"]
    assert "### BEGIN HIDDEN TESTS" in hidden_only and "_ref_backward" in hidden_only


# --- deep_forward / deep_backward -----------------------------------------------------------------

DEEP_PAIRS_CACHE = """
def deep_forward(weights, biases, A0):
    cache, A = [], A0
    for W, b in zip(weights, biases):
        U = torch.addmm(b, A, W.t())
        cache.append((A, U))
        A = torch.tanh(U)
    return cache
"""

DEEP_PAIRS_BACKWARD = """
def deep_backward(weights, biases, cache, dL_dAk):
    dWs, dbs, g = [], [], dL_dAk
    for (A_prev, U), W in zip(reversed(cache), reversed(weights)):
        g = g * (1 - torch.tanh(U) ** 2)
        dWs.insert(0, torch.einsum("bi,bj->ij", g, A_prev))
        dbs.insert(0, g.sum(0))
        g = g @ W
    return dWs, dbs
"""


def test_deep_variants_with_another_cache_pass():
    outcomes = {}
    for g in ("test_deep_forward", "test_deep_backward"):
        outcomes[g] = run_grade_cell(AID, g, {"deep_forward": DEEP_PAIRS_CACHE, "deep_backward": DEEP_PAIRS_BACKWARD})
    assert all(o.passed for o in outcomes.values()), {g: o.message for g, o in outcomes.items()}


def test_deep_backward_missing_derivative_fails():
    src = DEEP_PAIRS_BACKWARD.replace("g = g * (1 - torch.tanh(U) ** 2)", "pass")
    outcome = run_grade_cell(AID, "test_deep_backward", {"deep_forward": DEEP_PAIRS_CACHE, "deep_backward": src})
    assert not outcome.passed and "dweights" in outcome.message


def test_deep_backward_bias_not_summed_fails_on_shape():
    src = DEEP_PAIRS_BACKWARD.replace("g.sum(0)", "g")
    outcome = run_grade_cell(AID, "test_deep_backward", {"deep_forward": DEEP_PAIRS_CACHE, "deep_backward": src})
    assert not outcome.passed and "(diagnosis: batch_dim_kept)" in outcome.message, outcome.message


def test_deep_backward_with_autograd_is_named():
    src = """
def deep_backward(weights, biases, cache, dL_dAk):
    Ws = [w.clone().requires_grad_() for w in weights]
    bs = [b.clone().requires_grad_() for b in biases]
    A = cache["A"][0]
    for W, b in zip(Ws, bs):
        A = torch.tanh(A @ W.T + b)
    gs = torch.autograd.grad((A * dL_dAk).sum(), Ws + bs)
    return list(gs[:len(Ws)]), list(gs[len(Ws):])
"""
    assert_fails_with("deep_backward", src, "uses_autograd", "test_deep_backward")


# --- what a student sees: the public parts alone already name the usual mistakes --------------------

PUBLIC_CASES = [
    ("backward", _backward(by_line="dy.sum(0, keepdim=True).T", wy_line="dy.T @ outputs['h']"),
     "test_backward_output_layer", "batch_sum"),
    ("backward", _backward(wy_line="outputs['h'].T @ dy / B"), "test_backward_output_layer", "transposed_shape"),
    ("backward", _backward(by_line="dy.T / B"), "test_backward_output_layer", "bias_not_summed"),
    ("backward", _backward(dy_line="Y - outputs['yhat']"), "test_backward_hidden_layer", "sign"),
    ("backward", AUTOGRAD_BACKWARD, "test_backward_no_autograd", "uses_autograd"),
    ("softmax", "def softmax(z):\n    return z.exp() / z.exp().sum(1, keepdim=True)", "test_softmax", "nan"),
    ("cross_entropy", "def cross_entropy(yhat, Y):\n    return -(Y * torch.log(yhat)).sum()", "test_cross_entropy",
     "batch_sum"),
    ("fib_memo", "def fib_memo(n):\n    return n if n < 2 else fib_memo(n - 1) + fib_memo(n - 2)", "test_fib_memo",
     "no_memo"),
]


@pytest.mark.parametrize("sid,source,grade_id,tag", PUBLIC_CASES, ids=[f"{c[0]}-{c[3]}" for c in PUBLIC_CASES])
def test_public_part_names_the_mistake(sid, source, grade_id, tag):
    assert_fails_with(sid, source, tag, grade_id, public_only=True)
