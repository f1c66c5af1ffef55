"""Datasets: the digits split, synthetic data, torchvision folders and their errors (offline)."""
import json

import datasets
import numpy as np
import pytest
import torch
from helpers import cli, pytest_run

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
    with pytest.raises(UserError, match="digits, digits-augmented, fashion-mnist, cifar10"):
        data.load("mnist", (1, 28, 28))


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_loads_from_files_in_torchvision_layout(tmp_path, gz):
    """Gzipped IDX (as torchvision downloads them) or extracted; made here, not downloaded."""
    datasets.write_fashion_mnist(tmp_path, 30, 20, gz=gz)
    d = data.load("fashion-mnist", (1, 28, 28), data_root=tmp_path)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert d.train_y.tolist() == [i % 10 for i in range(30)]
    assert abs(float(d.train_x.mean())) < 1e-4
    raw_pixels = data.load("fashion-mnist", (1, 28, 28), data_root=tmp_path, normalize=False)
    assert 0 <= float(raw_pixels.train_x.min()) and float(raw_pixels.train_x.max()) <= 1
    resized = data.load("fashion-mnist", (3, 32, 32), data_root=tmp_path)
    assert resized.train_x.shape == (30, 3, 32, 32)


def test_cifar10_batches_load_through_the_restricted_unpickler(tmp_path):
    datasets.write_cifar10(tmp_path, per_batch=12, test=10)
    d = data.load("cifar10", (3, 32, 32), data_root=tmp_path)
    assert d.train_x.shape == (60, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.train_y.tolist()[:12] == [i % 10 for i in range(12)]


def test_a_malicious_cifar_pickle_is_refused_and_runs_nothing(tmp_path):
    from resnets.datafiles import DataFileError, read_cifar_batch

    marker = tmp_path / "pwned"
    bad = datasets.malicious_pickle(tmp_path / "data_batch_1", marker)
    with pytest.raises(DataFileError, match="refused to load .*system") as err:
        read_cifar_batch(bad)
    assert "\n" not in str(err.value) and not marker.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-7], "truncated or damaged"), (lambda b: b"\x01" + b[1:], "bad magic"),
])
def test_a_damaged_idx_file_is_one_line(tmp_path, damage, message):
    from resnets.datafiles import DataFileError, read_idx

    path = tmp_path / "x-ubyte"
    path.write_bytes(damage(datasets.idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))))
    with pytest.raises(DataFileError, match=message):
        read_idx(path)


def test_augmented_digits_are_harder_copies_named_as_such():
    d = data.load("digits-augmented", (1, 32, 32), normalize=False)
    assert d.train_x.shape == (1347 * data.AUGMENT_COPIES, 1, 32, 32)
    assert d.test_x.shape == (450 * data.AUGMENT_COPIES, 1, 32, 32)
    assert "augmented digits (synthetic" in d.info["source"]
    again = data.load("digits-augmented", (1, 32, 32), normalize=False)
    assert torch.equal(again.train_x, d.train_x)


def test_cli_missing_data_folder_exits_2_with_one_line(tmp_path):
    """``resnets train`` in this process (``helpers.cli``, which also refuses a traceback):
    the error is the command's, and a fresh interpreter only adds its torch import."""
    r = cli("train", "lenet", "--dataset", "cifar10", "--data-root", tmp_path / "none",
            "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CIFAR-10 not found under" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_cli_on_fashion_mnist_files(tmp_path):
    """In this process (``helpers.cli``): the files are what is tested here; ``resnets
    train`` in a fresh interpreter is test_convergence's."""
    datasets.write_fashion_mnist(tmp_path / "data", 300, 100)
    r = cli("train", "lenet_bn", "--dataset", "fashion-mnist", "--data-root", tmp_path / "data",
            "--max-iters", "30", "--threads", "1", "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "lenet_bn" in r.stdout and len(list((tmp_path / "out" / "cases").glob("*.json"))) == 1


@pytest.mark.slow
def test_the_suite_trains_on_cifar10_batches(tmp_path):
    """One of the experiment's three seeds (``-k seed0``): the files, not the seeds, are
    what is tested, and each seed is 150 ResNet-20 iterations."""
    from resnets.suite import convergence

    datasets.write_cifar10(tmp_path / "data", per_batch=60, test=60)
    r = pytest_run(tmp_path, "--bench-experiments", "degradation", "--bench-models", "resnet20",
                   "--bench-dataset", "cifar10", "--bench-data-root", str(tmp_path / "data"),
                   "--bench-threads", "1", "--bench-out", str(tmp_path / "run"), "-k", "seed0",
                   suite=convergence.__file__)
    assert r.returncode == 0 and "1 measured" in r.stdout, r.stdout[-2000:]
    (case,) = (tmp_path / "run" / "cases").glob("*.json")
    info = json.loads(case.read_text())["benchmarks"][0]["extra_info"]
    assert info["dataset_info"]["source"] == f"CIFAR-10 files under {tmp_path / 'data'}"
    assert info["dataset_info"]["n_train"] == 5 * 60 and info["iters_run"] > 0
