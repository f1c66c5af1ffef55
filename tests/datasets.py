"""Small dataset files in the real on-disk formats, made here (nothing is downloaded):
Fashion-MNIST as torchvision lays it out (gzipped IDX) and CIFAR-10's python batches.
The images are class templates plus noise, so a model can learn them."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format: magic (0, 0, type 0x08, ndim), sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big")
                                                        for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def templates(shape, classes: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (classes, *shape)).astype(float)


def images(n: int, shape, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    noisy = templates(shape)[labels] + rng.normal(0, 40, (n, *shape))
    return np.clip(noisy, 0, 255).astype(np.uint8), labels


def write_fashion_mnist(root: Path, n_train: int = 600, n_test: int = 200, gz: bool = True):
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        x, y = images(n, (28, 28), seed)
        for name, array in ((f"{prefix}-images-idx3-ubyte", x),
                            (f"{prefix}-labels-idx1-ubyte", y)):
            data = idx_bytes(array)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return Path(root)


def write_cifar10(root: Path, per_batch: int = 100, test: int = 100):
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [(f"data_batch_{i}", per_batch, i) for i in range(1, 6)] + [("test_batch", test, 9)]
    for name, n, seed in names:
        x, y = images(n, (3, 32, 32), seed)
        batch = {"batch_label": f"{name} (generated)", "labels": y.tolist(),
                 "data": x.reshape(n, 3072), "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return Path(root)


class _Exploit:
    """Unpickles as a call to os.system: what a hostile download could hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def malicious_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"data": _Exploit(f"touch {marker}"), "labels": []}))
    return path
