"""Damaged dataset files are one line (issue 27, item 10): a CIFAR-10 batch whose
``data`` holds strings or values beyond a byte, labels that are no class, and a gzip
bomb posing as Fashion-MNIST, refused after its header without inflating it."""
import gzip
import pickle
import tracemalloc
import zlib

import numpy as np
import pytest
from datasets import idx_bytes, write_cifar10, write_fashion_mnist

from resnets.datafiles import DataFileError, cifar10, fashion_mnist, read_cifar_batch, read_idx


def batch(path, data, labels):
    path.write_bytes(pickle.dumps({"batch_label": "t", "data": data, "labels": labels},
                                  protocol=2))
    return path


GOOD = np.zeros((2, 3072), np.uint8)


@pytest.mark.parametrize("data, labels, message", [
    (np.full((2, 3072), "x"), [0, 1], "'data' must be integers 0..255"),
    ([["x"] * 3072] * 2, [0, 1], "'data' must be integers 0..255"),
    (np.full((2, 3072), 300, np.int64), [0, 1], "'data' must be integers 0..255"),
    ([[256] * 3072] * 2, [0, 1], "'data' must be integers 0..255"),
    (np.full((2, 3072), -1, np.int16), [0, 1], "'data' must be integers 0..255"),
    (np.zeros((2, 3072), np.float32), [0, 1], "'data' must be integers 0..255"),
    (GOOD, ["cat", "dog"], "'labels' integers 0..9"),
    (GOOD, [0, 10 ** 30], "'labels' integers 0..9"),
    (GOOD, [0, 10], "'labels' integers 0..9"),
    (GOOD, [True, False], "'labels' integers 0..9"),
    (GOOD, {"a": 1}, "'labels' integers 0..9"),
    (np.zeros((2, 3071), np.uint8), [0, 1], "are not CIFAR-10's"),
    (GOOD, [0], "are not CIFAR-10's"),
])
def test_a_damaged_cifar_batch_is_one_line(tmp_path, data, labels, message):
    with pytest.raises(DataFileError, match=message) as err:
        read_cifar_batch(batch(tmp_path / "data_batch_1", data, labels))
    assert "\n" not in str(err.value)


def test_a_good_cifar_batch_reads_as_bytes_and_classes(tmp_path):
    data = np.arange(2 * 3072).reshape(2, 3072) % 256
    x, y = read_cifar_batch(batch(tmp_path / "b", data.astype(np.int64), [3, np.int64(9)]))
    assert x.dtype == np.uint8 and x.shape == (2, 3, 32, 32) and (x.reshape(2, -1) == data).all()
    assert y.tolist() == [3, 9] and y.dtype == np.int64


def test_a_damaged_batch_among_good_ones_names_itself(tmp_path):
    root = write_cifar10(tmp_path, per_batch=4, test=4)
    batch(root / "cifar-10-batches-py" / "data_batch_3", np.full((4, 3072), 999), [0] * 4)
    with pytest.raises(DataFileError, match="data_batch_3: not a CIFAR-10 batch"):
        cifar10(root, "train")


def gzip_bomb(path, header_shape, inflated: int):
    """An IDX header for ``header_shape`` followed by ``inflated`` zero bytes, gzipped:
    a few hundred KiB on disk."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    parts = [z.compress(idx_bytes(np.zeros(header_shape, np.uint8)))]
    chunk = bytes(1 << 24)
    parts += [z.compress(chunk) for _ in range(inflated // len(chunk))]
    path.write_bytes(b"".join(parts) + z.flush())
    return path


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """256 MiB of zeros behind a header for ten images: the old reader inflated all of
    it before looking at the header (a bigger bomb: MemoryError)."""
    root = write_fashion_mnist(tmp_path, n_train=10, n_test=10)
    bomb = gzip_bomb(root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz",
                     (10, 28, 28), 256 * 2 ** 20)
    assert bomb.stat().st_size < 2 ** 20
    tracemalloc.start()
    try:
        with pytest.raises(DataFileError, match="holds more than the 7840 bytes"):
            fashion_mnist(root, "train")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, peak


def test_a_header_that_claims_too_much_is_refused_before_reading(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (2 ** 31, 28, 28))
    path.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(DataFileError, match="its header claims 1,683,627,180,032 bytes"):
        read_idx(path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: gzip.compress(b)[:40], "not a readable gzip file"),
    (lambda b: gzip.compress(b)[:10] + b"\xff" * 30 + gzip.compress(b)[40:],
     "not a readable gzip file"),
    (lambda b: gzip.compress(b[:6]), "truncated IDX header"),
    (lambda b: gzip.compress(b[:-1]), "holds 7839 bytes, not the 7840"),
])
def test_a_damaged_gzip_is_one_line(tmp_path, damage, message):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(damage(idx_bytes(np.zeros((10, 28, 28), np.uint8))))
    with pytest.raises(DataFileError, match=message):
        read_idx(path)


def test_fashion_labels_must_be_classes_and_images_bytes(tmp_path):
    root = write_fashion_mnist(tmp_path, n_train=10, n_test=10)
    raw = root / "FashionMNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(10, 10))))
    with pytest.raises(DataFileError, match="labels integers 0..9"):
        fashion_mnist(root, "test")
    floats = np.zeros((10, 28, 28), ">f4")
    header = bytes([0, 0, 0x0D, 3]) + b"".join(n.to_bytes(4, "big") for n in floats.shape)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + floats.tobytes()))
    with pytest.raises(DataFileError, match="images must be bytes"):
        fashion_mnist(root, "train")
