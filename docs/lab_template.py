# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab N — Title
#
# What the student builds, in two or three sentences, and which lectures it follows.
#
# Every exercise has a cell that says `raise NotImplementedError()`: replace that line with your code,
# run the cell, then run the check below it.

# %%
import torch
from backproplab import checks, env, needs

# %%
env.check_environment()

# %% [markdown]
# ## 1. The first idea
#
# The idea, the formula, a picture; then the exercise.
#
# **Exercise 1.** Write `double(x)`: return `2 * x`, same shape and dtype as `x`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "double", "locked": false, "schema_version": 3, "solution": true, "task": false}
def double(x):
    """f(x) = 2 x, elementwise."""
    ### BEGIN SOLUTION
    return x + x
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_double", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks double on a small vector: values, shape and dtype.
checks.assert_close(checks.call(double, torch.tensor([1.0, -2.0])), torch.tensor([2.0, -4.0]), name="double")
### BEGIN HIDDEN TESTS
x = torch.randn(5, 3, dtype=torch.float64)
checks.assert_close(checks.call(double, x), 2 * x, name="double(float64 matrix)")
### END HIDDEN TESTS

# %% [markdown]
# A lesson cell that uses the exercise runs under `needs`, so the untouched release runs too:

# %%
with needs("double"):
    print(double(torch.arange(3.0)))
