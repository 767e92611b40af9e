"""Data sets for the labs, all offline.

The default is scikit-learn's 8x8 digits (1,797 images shipped inside the package). MNIST is read
from IDX files in a folder the user names (argument or ``BACKPROPLAB_MNIST``); nothing is ever
downloaded. 2-D synthetic sets are generated from a ``torch.Generator`` so every figure is
reproducible.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import torch

__all__ = [
    "load_digits",
    "digits_binary",
    "train_test_split",
    "one_hot",
    "standardize",
    "linearly_separable",
    "xor",
    "moons",
    "spirals",
    "read_idx",
    "load_mnist",
    "MNIST_FILES",
    "capstone_split",
]


def load_digits(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: ``x`` ``(N, 64)`` with pixel values scaled to [0, 1], labels ``(N,)`` int64."""
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.data, dtype=dtype) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    return x, y


def _parse_classes(spec: str) -> tuple[set[int], set[int] | None]:
    """'0 vs 1' -> ({0}, {1}); '8 vs rest' -> ({8}, None); '3,5 vs 8' -> ({3, 5}, {8})."""
    left, sep, right = spec.partition("vs")
    if not sep:
        raise ValueError(f"expected a task like '0 vs 1' or '8 vs rest', got {spec!r}")

    def digits(part: str) -> set[int]:
        values = {int(t) for t in part.replace(",", " ").split()}
        if not values or not values <= set(range(10)):
            raise ValueError(f"digits must be between 0 and 9 in {spec!r}")
        return values

    pos = digits(left)
    right = right.strip()
    neg = None if right in ("rest", "others", "the rest") else digits(right)
    return pos, neg


def digits_binary(
    task: str = "0 vs 1", dtype: torch.dtype = torch.float32, labels: str = "pm1"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A binary subset of the digits: ``task`` is ``"0 vs 1"``, ``"8 vs rest"``, ``"3,5 vs 8"``...

    The first group is the positive class. ``labels="pm1"`` gives targets in {-1., +1.} (the
    perceptron's convention), ``labels="01"`` gives {0., 1.}.
    """
    pos, neg = _parse_classes(task)
    x, y = load_digits(dtype)
    is_pos = torch.isin(y, torch.tensor(sorted(pos)))
    keep = torch.ones_like(is_pos) if neg is None else is_pos | torch.isin(y, torch.tensor(sorted(neg)))
    x, is_pos = x[keep], is_pos[keep]
    if labels == "pm1":
        t = is_pos.to(dtype) * 2 - 1
    elif labels == "01":
        t = is_pos.to(dtype)
    else:
        raise ValueError("labels must be 'pm1' or '01'")
    return x, t


def train_test_split(
    x: torch.Tensor,
    y: torch.Tensor,
    test_fraction: float = 0.25,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle with ``generator`` and split; returns ``x_train, y_train, x_test, y_test``."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    perm = torch.randperm(len(x), generator=generator)
    n_test = max(1, round(len(x) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def one_hot(labels: torch.Tensor, nb_classes: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N,)`` integer labels to ``(N, K)`` float rows with a single 1."""
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point:
        raise TypeError("one_hot expects integer labels")
    k = int(labels.max()) + 1 if nb_classes is None else nb_classes
    return torch.nn.functional.one_hot(labels.long(), k).to(dtype)


def standardize(x_train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Center and scale by the training set's mean and standard deviation (as the lecture does)."""
    mu, sigma = x_train.mean(), x_train.std()
    return tuple((t - mu) / sigma for t in (x_train, *others))


# --- 2-D synthetic sets: x (N, 2), y (N,) int64 in {0, 1} (or K classes for spirals) -------------


def linearly_separable(
    n: int = 100, margin: float = 0.2, generator: torch.Generator | None = None, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [-1, 1]^2 on either side of a random line through the origin, at least ``margin`` away."""
    angle = torch.rand((), generator=generator) * 2 * math.pi
    normal = torch.stack([torch.cos(angle), torch.sin(angle)])
    xs = []
    while sum(len(t) for t in xs) < n:
        cand = torch.rand(4 * n, 2, generator=generator) * 2 - 1
        xs.append(cand[(cand @ normal).abs() >= margin])
    x = torch.cat(xs)[:n]
    y = (x @ normal > 0).long()
    return x.to(dtype), y


def xor(n: int = 200, noise: float = 0.1, generator: torch.Generator | None = None, dtype=torch.float32):
    """Four clusters at (+-1, +-1); label 1 where the signs differ."""
    corners = torch.randint(0, 2, (n, 2), generator=generator)
    x = (corners * 2 - 1).to(torch.float64) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y = (corners[:, 0] != corners[:, 1]).long()
    return x.to(dtype), y


def moons(n: int = 200, noise: float = 0.1, generator: torch.Generator | None = None, dtype=torch.float32):
    """Two interleaving half circles."""
    n0 = n // 2
    t = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(t[:n0]), torch.sin(t[:n0])], 1)
    lower = torch.stack([1 - torch.cos(t[n0:]), 0.5 - torch.sin(t[n0:])], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n - n0, dtype=torch.long)])
    return x.to(dtype), y


def spirals(
    n: int = 300, nb_classes: int = 2, noise: float = 0.05, generator: torch.Generator | None = None, dtype=torch.float32
):
    """``nb_classes`` interleaved spiral arms in the unit disc."""
    y = torch.arange(n) % nb_classes
    r = torch.rand(n, generator=generator, dtype=torch.float64) * 0.9 + 0.1
    theta = 3 * math.pi * r + 2 * math.pi * y.to(torch.float64) / nb_classes
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.to(dtype), y


# --- MNIST from IDX files ------------------------------------------------------------------------

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: torch.uint8, 0x09: torch.int8, 0x0B: torch.int16, 0x0C: torch.int32, 0x0D: torch.float32, 0x0E: torch.float64}


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read one IDX file (raw or gzip-compressed, chosen by its first bytes) into a tensor."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = math.prod(dims)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) - offset != count * itemsize:
        raise ValueError(f"{path}: header says {dims} but the file holds {len(raw) - offset} bytes of data")
    data = bytearray(raw[offset:])
    t = torch.frombuffer(data, dtype=dtype) if count else torch.empty(0, dtype=dtype)
    if itemsize > 1:  # IDX is big-endian
        t = t.view(torch.uint8).reshape(-1, itemsize).flip(1).reshape(-1).view(dtype)
    return t.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"MNIST file {stem}(.gz) not found in {folder}. Put the IDX files there "
        f"(for example {stem}.gz) or point BACKPROPLAB_MNIST at the folder that holds them."
    )


def load_mnist(
    folder: str | os.PathLike | None = None, split: str = "test", dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from IDX files: ``x`` ``(N, 784)`` scaled to [0, 1], labels ``(N,)`` int64.

    ``folder`` defaults to the environment variable ``BACKPROPLAB_MNIST``. ``split`` is ``"train"``
    or ``"test"``. Nothing is downloaded.
    """
    if split not in MNIST_FILES:
        raise ValueError("split must be 'train' or 'test'")
    if folder is None:
        folder = os.environ.get("BACKPROPLAB_MNIST")
        if not folder:
            raise FileNotFoundError(
                "no MNIST folder given: pass load_mnist(folder=...) or set BACKPROPLAB_MNIST "
                "to a folder holding the IDX files (nothing is downloaded)"
            )
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {folder} does not exist")
    images_stem, labels_stem = MNIST_FILES[split]
    images = read_idx(_find(folder, images_stem))
    labels = read_idx(_find(folder, labels_stem))
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST files in {folder} disagree: images {tuple(images.shape)}, labels {tuple(labels.shape)}")
    x = images.reshape(len(images), -1).to(dtype) / 255.0
    return x, labels.long()


def capstone_split(
    folder: str | os.PathLike | None = None, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Lab 6's data: ``x_train, y_train, x_test, y_test, name``.

    ``folder`` (default: ``BACKPROPLAB_MNIST``, when set) holding MNIST IDX files gives MNIST: the
    official train and test sets when both are there, else the t10k file alone split 8,000/2,000
    with ``seed``. Without a folder: the 8x8 digits (pixels / 16) split 80/20 with ``seed``.
    """
    if folder is None:
        folder = os.environ.get("BACKPROPLAB_MNIST") or None
    gen = torch.Generator().manual_seed(seed)
    if folder is None:
        x, y = load_digits(dtype)
        return (*train_test_split(x, y, test_fraction=0.2, generator=gen), "digits 8x8")
    x_test, y_test = load_mnist(folder, "test", dtype)
    try:
        x_train, y_train = load_mnist(folder, "train", dtype)
    except FileNotFoundError:
        x_train, y_train, x_test, y_test = train_test_split(x_test, y_test, test_fraction=0.2, generator=gen)
        return x_train, y_train, x_test, y_test, "MNIST t10k split 8,000/2,000"
    return x_train, y_train, x_test, y_test, "MNIST"
