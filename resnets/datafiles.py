"""Reading the real datasets' files as torchvision lays them out, safely.

* Fashion-MNIST: ``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (or the
  same with ``.gz``): the IDX format, a big-endian header (magic number: type code and
  number of dimensions; then each dimension's size) followed by the raw bytes.
* CIFAR-10: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``, each a Python pickle of
  a dict with ``data`` (uint8, N x 3072) and ``labels``. Unpickling a file from the
  internet can run any code, so these are read with ``SafeUnpickler``, which admits only
  the types the format uses (builtin containers and strings, and the numpy functions that
  rebuild an array); anything else is refused in one line.

A damaged file is one line too, never a traceback or an exhausted memory: an IDX header
is checked before its data is decompressed, and only as much as it declares is read;
pixel values and labels are checked for type and range before they are converted.

Torch-free: the readers return numpy arrays (N, C, H, W) uint8 and labels int64.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import zlib
from pathlib import Path

import numpy as np

from . import files
from .errors import UserError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# Fashion-MNIST's largest file holds 47 MB; a header that claims more than this is not one.
MAX_IDX_BYTES = 2 ** 30
CLASSES = 10  # both datasets' labels are 0..9
CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


class DataFileError(UserError):
    """A dataset file that is missing, damaged or not what it claims; one line."""


def read_idx(path: Path, limit: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array of its declared type and shape.

    The header is read first, from the (decompressing) stream, and says how many bytes
    must follow; no more than that is ever decompressed, so a gzip bomb (a few KiB that
    inflate to gigabytes) is refused after its header, as is a header that claims more
    than ``limit`` bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            magic = stream.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
                raise DataFileError(f"{path}: not an IDX file (bad magic number)")
            sizes = stream.read(4 * magic[3])
            if len(sizes) < 4 * magic[3]:
                raise DataFileError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(sizes[i:i + 4], "big") for i in range(0, len(sizes), 4))
            dtype = np.dtype(IDX_TYPES[magic[2]])
            expected = math.prod(shape) * dtype.itemsize
            if expected > limit:
                raise DataFileError(f"{path}: its header claims {expected:,} bytes of data "
                                    f"({'x'.join(map(str, shape))}), more than the "
                                    f"{limit:,} a dataset file may hold")
            raw = stream.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{path}: not a readable {'gzip' if opener is gzip.open else 'IDX'}"
                            f" file ({exc})") from None
    if len(raw) != expected:
        more = "more than" if len(raw) > expected else f"{len(raw)} bytes, not"
        raise DataFileError(f"{path}: holds {more} the {expected} bytes of data its header "
                            "says (truncated or damaged)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


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
    classes = _integers(labels, 0, CLASSES - 1)
    if images.dtype != np.uint8 or classes is None:
        raise DataFileError(f"{folder}: {part} images must be bytes (IDX type 0x08) and "
                            f"labels integers 0..{CLASSES - 1}")
    return images[:, None].copy(), classes


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


def _integers(value, low: int, high: int):
    """``value`` as an int64 array if it is an integer array, or a flat list of Python
    or numpy integers, all in ``low..high``; else None. Checked before any conversion: a
    string in the list, or 256 in a uint8 cast, would be a traceback or silently wrap."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "ui":  # not bool, float, str, object
            return None
        inside = value.size == 0 or (int(value.min()) >= low and int(value.max()) <= high)
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return None
        inside = all(low <= v <= high for v in value)
    else:
        return None
    return np.asarray(value, dtype=np.int64) if inside else None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x 32 x 32 uint8, labels N int64) of one CIFAR-10 python batch."""
    try:
        batch = SafeUnpickler(io.BytesIO(files.read_bytes(path)), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, RecursionError, MemoryError) as exc:
        raise DataFileError(f"{path}: not a CIFAR-10 batch: {str(exc)[:200]}") from None
    if not isinstance(batch, dict) or "data" not in batch:
        raise DataFileError(f"{path}: not a CIFAR-10 batch (no 'data')")
    data = _integers(batch["data"], 0, 255)
    labels = _integers(batch.get("labels", batch.get("fine_labels", [])), 0, CLASSES - 1)
    if data is None or labels is None:
        raise DataFileError(f"{path}: not a CIFAR-10 batch ('data' must be integers 0..255 "
                            f"and 'labels' integers 0..{CLASSES - 1})")
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(labels) != len(data):
        raise DataFileError(f"{path}: data {data.shape} and labels {labels.shape} are not "
                            "CIFAR-10's (N x 3072 and N)")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels


def cifar10(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(root) / "cifar-10-batches-py"
    parts = [read_cifar_batch(_find(folder, name)) for name in CIFAR_FILES[part]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


READERS = {"fashion-mnist": fashion_mnist, "cifar10": cifar10}
