"""Datasets: the digits split, synthetic data, torchvision folders and their errors (offline)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from resnets import data
from resnets.errors import UserError


def test_digits_split_sizes_and_shapes():
    d = data.load("digits", (1, 28, 28))
    assert d.train_x.shape == (1347, 1, 28, 28) and d.test_x.shape == (450, 1, 28, 28)
    assert d.train_y.shape == (1347,) and d.test_y.shape == (450,)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert d.num_classes == 10 and d.info["n_train"] == 1347 and d.info["n_test"] == 450
    cifar = data.load("digits", (3, 32, 32))
    assert cifar.train_x.shape == (1347, 3, 32, 32)
    assert torch.equal(cifar.train_y, d.train_y)  # same split whatever the shape
    native = data.load("digits", (1, 8, 8))
    assert native.test_x.shape == (450, 1, 8, 8)


def test_digits_split_is_stratified_fixed_and_disjoint():
    from sklearn.datasets import load_digits

    d = data.load("digits", (1, 8, 8))
    all_counts = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(d.test_y.numpy(), minlength=10)
    # Stratified: every class holds its share of the 450 test images (up to rounding).
    assert np.all(np.abs(test_counts - all_counts * 450 / all_counts.sum()) <= 1)
    assert np.array_equal(np.bincount(d.train_y.numpy(), minlength=10) + test_counts, all_counts)
    # The run's seed does not move the split.
    assert torch.equal(data.load("digits", (1, 8, 8), seed=7).test_y, d.test_y)
    # No image is in both halves (8x8 digits repeat rarely; compare raw pixels).
    train = {tuple(r) for r in d.train_x.flatten(1).tolist()}
    shared = sum(tuple(r) in train for r in d.test_x.flatten(1).tolist())
    assert shared <= 2, shared


def test_inputs_are_standardized_with_training_statistics():
    d = data.load("digits", (3, 32, 32))
    mean = d.train_x.mean(dim=(0, 2, 3))
    std = d.train_x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert torch.allclose(std, torch.ones(3), atol=1e-4)
    assert len(d.info["normalization"]["mean"]) == 3


def test_synthetic_shapes_balance_and_seed():
    a = data.load("synthetic", (3, 16, 16), seed=1)
    assert a.train_x.shape == (data.SYNTHETIC_SIZES[0], 3, 16, 16)
    assert a.test_x.shape == (data.SYNTHETIC_SIZES[1], 3, 16, 16)
    assert np.bincount(a.train_y.numpy()).tolist() == [data.SYNTHETIC_SIZES[0] // 10] * 10
    assert torch.equal(data.load("synthetic", (3, 16, 16), seed=1).train_x, a.train_x)
    assert not torch.equal(data.load("synthetic", (3, 16, 16), seed=2).train_x, a.train_x)


def test_synthetic_is_learnable_by_a_linear_probe():
    """Class templates + noise: a nearest-class-mean rule already separates the classes
    (so a training run that stays at chance is a bug, not a hard dataset)."""
    d = data.load("synthetic", (1, 8, 8))
    x, y = d.train_x.flatten(1), d.train_y
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    pred = torch.cdist(d.test_x.flatten(1), means).argmin(1)
    assert (pred == d.test_y).float().mean() > 0.9


@pytest.mark.parametrize("name, title, expected", [
    ("cifar10", "CIFAR-10", "cifar-10-batches-py/"),
    ("fashion-mnist", "Fashion-MNIST", "FashionMNIST/raw/"),
])
def test_missing_folder_is_a_one_line_user_error(tmp_path, name, title, expected):
    root = tmp_path / "nowhere"
    with pytest.raises(UserError) as err:
        data.load(name, (3, 32, 32), data_root=root)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{title} not found under {root}")
    assert expected in msg and "--download" in msg


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UserError, match="digits, fashion-mnist, cifar10, synthetic"):
        data.load("mnist", (1, 28, 28))


def _idx(path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (the MNIST format torchvision reads)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_loads_from_a_local_folder(tmp_path):
    """The real torchvision loading path, on a tiny folder made here (nothing downloaded)."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = data.load("fashion-mnist", (1, 28, 28), data_root=tmp_path)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert d.train_y.tolist() == [i % 10 for i in range(30)]
    assert abs(float(d.train_x.mean())) < 1e-4
    resized = data.load("fashion-mnist", (3, 32, 32), data_root=tmp_path)
    assert resized.train_x.shape == (30, 3, 32, 32)


def test_cli_missing_data_folder_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resnets", "train", "lenet", "--dataset",
                        "cifar10", "--data-root", str(tmp_path / "none"), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CIFAR-10 not found under" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
