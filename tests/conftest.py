import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = Path(os.environ.get("BACKPROPLAB_TEST_MNIST", SHARED / "data" / "mnist"))
    if not (folder / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip(f"MNIST test files not found in {folder}")
    return folder
