"""backproplab.data: digits subsets, splits, synthetic sets and the MNIST IDX reader."""

from __future__ import annotations

import gzip
import struct

import pytest
import torch
from backproplab import data


def test_digits_are_the_full_scikit_learn_set_scaled_to_unit_interval():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert sorted(y.unique().tolist()) == list(range(10))


def test_binary_subsets_keep_only_the_named_digits_with_the_right_labels():
    x_all, y_all = data.load_digits()
    x, t = data.digits_binary("0 vs 1")
    assert len(x) == int(((y_all == 0) | (y_all == 1)).sum())
    assert set(t.tolist()) == {-1.0, 1.0}
    x, t = data.digits_binary("8 vs rest", labels="01")
    assert len(x) == 1797 and int(t.sum()) == int((y_all == 8).sum())
    x, t = data.digits_binary("3,5 vs 8")
    assert int((t > 0).sum()) == int(((y_all == 3) | (y_all == 5)).sum())
    with pytest.raises(ValueError, match="0 vs 1"):
        data.digits_binary("zero and one")


def test_split_is_a_partition_and_reproducible_with_a_generator():
    x = torch.arange(40.0).reshape(20, 2)
    y = torch.arange(20)
    a = data.train_test_split(x, y, 0.25, generator=torch.Generator().manual_seed(3))
    b = data.train_test_split(x, y, 0.25, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    xtr, ytr, xte, yte = a
    assert len(xte) == 5 and sorted(torch.cat([ytr, yte]).tolist()) == list(range(20))
    assert torch.equal(xtr[:, 0], ytr.float() * 2)
    with pytest.raises(ValueError):
        data.train_test_split(x, y[:5])


def test_one_hot_rows():
    oh = data.one_hot(torch.tensor([2, 0, 1]), 4, dtype=torch.float64)
    assert oh.dtype == torch.float64
    assert torch.equal(oh, torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.float64))
    with pytest.raises(TypeError):
        data.one_hot(torch.tensor([0.0, 1.0]))


def test_synthetic_sets_have_their_defining_property():
    g = torch.Generator().manual_seed(0)
    x, y = data.linearly_separable(200, margin=0.2, generator=g)
    w = torch.linalg.lstsq(torch.cat([x, torch.ones(200, 1)], 1), (y.float() * 2 - 1).unsqueeze(1)).solution
    # a separating direction exists: the least-squares line separates points with a margin this wide
    assert float((((torch.cat([x, torch.ones(200, 1)], 1) @ w).squeeze() > 0).long() == y).float().mean()) == 1.0
    x, y = data.xor(400, noise=0.05, generator=g)
    assert torch.equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).long())
    x, y = data.moons(100, generator=g)
    assert x.shape == (100, 2) and y.sum() == 50
    x, y = data.spirals(300, nb_classes=3, generator=g)
    assert sorted(y.unique().tolist()) == [0, 1, 2] and float(x.norm(dim=1).max()) < 1.5


def test_synthetic_sets_are_reproducible():
    a = data.moons(50, generator=torch.Generator().manual_seed(1))
    b = data.moons(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0])


def _write_idx(path, tensor, code, fmt, compress):
    header = struct.pack(">BBBB", 0, 0, code, tensor.dim()) + struct.pack(">" + "I" * tensor.dim(), *tensor.shape)
    body = b"".join(struct.pack(">" + fmt, v) for v in tensor.reshape(-1).tolist())
    raw = header + body
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_idx_reader_round_trips_uint8_and_big_endian_int32(tmp_path, compress):
    images = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    _write_idx(tmp_path / "a", images, 0x08, "B", compress)
    assert torch.equal(data.read_idx(tmp_path / "a"), images)
    ints = torch.tensor([1, -2, 70000, 2**30], dtype=torch.int32)
    _write_idx(tmp_path / "b", ints, 0x0C, "i", compress)
    assert torch.equal(data.read_idx(tmp_path / "b"), ints)


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")


def test_mnist_missing_file_is_named(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load_mnist(tmp_path)
    monkeypatch.delenv("BACKPROPLAB_MNIST", raising=False)
    with pytest.raises(FileNotFoundError, match="BACKPROPLAB_MNIST"):
        data.load_mnist()


def test_real_mnist_test_set(mnist_dir, monkeypatch):
    x, y = data.load_mnist(mnist_dir, split="test")
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    monkeypatch.setenv("BACKPROPLAB_MNIST", str(mnist_dir))
    x2, _ = data.load_mnist()
    assert torch.equal(x, x2)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(mnist_dir, split="train")
