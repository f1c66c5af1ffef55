"""Reading the real datasets' files as torchvision lays them out, safely.

* Fashion-MNIST: ``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (or the
  same with ``.gz``): the IDX format, a big-endian header (magic number: type code and
  number of dimensions; then each dimension's size) followed by the raw bytes.
* CIFAR-10: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``, each a Python pickle of
  a dict with ``data`` (uint8, N x 3072) and ``labels``. Unpickling a file from the
  internet can run any code, so these are read with ``SafeUnpickler``, which admits only
  the types the format uses (builtin containers and strings, and the numpy functions that
  rebuild an array); anything else is refused in one line.

Torch-free: the readers return numpy arrays (N, C, H, W) uint8 and labels int64.
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np

from .errors import UserError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


class DataFileError(UserError):
    """A dataset file that is missing, damaged or not what it claims; one line."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array of its declared type and shape."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFileError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataFileError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(f"{path}: holds {len(raw) - header} bytes of data, its header "
                            f"says {expected} (truncated or damaged)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(folder / name)


def fashion_mnist(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 1 x 28 x 28 uint8, labels N int64) of ``part`` ("train" or "test")."""
    folder = Path(root) / "FashionMNIST" / "raw"
    images_name, labels_name = FASHION_FILES[part]
    images, labels = read_idx(_find(folder, images_name)), read_idx(_find(folder, labels_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFileError(f"{folder}: {part} images {images.shape} and labels "
                            f"{labels.shape} do not match")
    return images[:, None].copy(), labels.astype(np.int64)


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: builtin containers, strings, bytes,
    numbers and numpy arrays. Any other global (``os.system``, say) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("builtins", "bytes"),
               ("_codecs", "encode")}  # how Python 3 pickles bytes at protocol 2

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch "
                                     "holds only arrays, lists and strings")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x 32 x 32 uint8, labels N int64) of one CIFAR-10 python batch."""
    try:
        batch = SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as exc:
        raise DataFileError(f"{path}: not a CIFAR-10 batch: {exc}") from None
    if not isinstance(batch, dict) or "data" not in batch:
        raise DataFileError(f"{path}: not a CIFAR-10 batch (no 'data')")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch.get("labels", batch.get("fine_labels", [])), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataFileError(f"{path}: data {data.shape} and labels {labels.shape} are not "
                            "CIFAR-10's (N x 3072 and N)")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(root) / "cifar-10-batches-py"
    parts = [read_cifar_batch(_find(folder, name)) for name in CIFAR_FILES[part]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


READERS = {"fashion-mnist": fashion_mnist, "cifar10": cifar10}
