"""Datasets for the convergence runs, as tensors already on the training device.

Every dataset is held whole in memory, on the device, as float32 tensors: the training
loop then gathers a batch by indexing (no DataLoader, no worker processes, no
host-to-device copy per step), which is the airbench / hlb-CIFAR10 way and keeps what is
timed the same for every dataset. The largest one, CIFAR-10, is 0.6 GB in float32: small
for a GPU, and fine in a CPU's RAM. There is no augmentation during training.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, offline),
  split once, stratified, with the fixed seed ``DIGITS_SPLIT_SEED``: 1,347 train / 450
  test (as ``train_test_split``'s default 25%), whatever the run's seed.
- ``digits-augmented``: a harder task made offline from the same digits, and named as
  such: each training and test image is copied ``AUGMENT_COPIES`` times, upsampled to
  32x32 and shifted by up to 4 pixels, with Gaussian noise (sd 0.3) and a random contrast,
  drawn from a fixed generator: 10,776 training and 3,600 test images, where the
  1,347 originals are too easy for a deep net's depth to show.
- ``fashion-mnist`` and ``cifar10``: the real files in a local folder, in torchvision's
  layout, read by ``resnets.datafiles`` (CIFAR-10's pickles through a restricted
  unpickler); downloaded only when asked. A missing or damaged folder is a ``UserError``
  saying what to put where.
- ``synthetic``: class templates plus noise (``seed`` picks them), for smoke tests of any shape.

Images are resized (bilinear) to the case's ``(C, H, W)``, gray is repeated to 3 channels
(colour is averaged to 1), then, unless ``normalize`` is off, each channel is
standardized with the *training* set's mean and std (off: pixels stay in [0, 1], as
torchvision's ``ToTensor`` leaves them: the seed notebook's protocol). Loaded datasets
are cached; treat their tensors as read-only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .presets import DATASETS as NAMES  # declared torch-free, with the experiments

if TYPE_CHECKING:  # torch is imported lazily: `resnets train --help` stays fast
    import torch

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 450
AUGMENT_COPIES, AUGMENT_SIZE, AUGMENT_SHIFT, AUGMENT_NOISE = 8, 32, 4, 0.3
DATA_ROOT_ENV = "RESNETS_DATA"   # default --data-root; else ./data
SYNTHETIC_SIZES = (1000, 500)    # train, test
SYNTHETIC_NOISE = 1.0            # std of the noise around unit-variance class templates

# What to put under the data root, for the "not found" message.
_EXPECTED = {
    "fashion-mnist": ("Fashion-MNIST", "FashionMNIST/raw/ (the four *-ubyte or *-ubyte.gz "
                                       "files)"),
    "cifar10": ("CIFAR-10", "cifar-10-batches-py/ (data_batch_1..5 and test_batch)"),
}


@dataclass(frozen=True)
class Dataset:
    train_x: torch.Tensor    # (N, C, H, W) float32, on the device
    train_y: torch.Tensor    # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    info: dict               # JSON-ready: source, sizes, split, resize, normalization


def default_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


def load(name: str, input_shape, device="cpu", data_root=None, download: bool = False,
         seed: int = 0, normalize: bool = True) -> Dataset:
    """Dataset ``name`` at ``input_shape`` (C, H, W) on ``device``.

    ``seed`` only picks the ``synthetic`` data; the real datasets, the digits split and the
    augmented digits are fixed. Raises ``UserError`` for an unknown name or missing files."""
    if name not in NAMES:
        raise UserError(f"unknown dataset {name!r} (datasets: {', '.join(NAMES)})")
    root = Path(data_root) if data_root is not None else default_root()
    return _load(name, tuple(int(d) for d in input_shape), str(device), str(root),
                 bool(download), int(seed), bool(normalize))


@lru_cache(maxsize=4)
def _load(name, input_shape, device, root, download, seed, normalize) -> Dataset:
    if name == "synthetic":
        (train_x, train_y), (test_x, test_y), num_classes, source = _synthetic(input_shape, seed)
    else:
        loader = {"digits": _digits, "digits-augmented": _augmented}.get(name, _files)
        train, test, num_classes, source = loader(name, Path(root), download)
        train_x, test_x = _fit(train[0], input_shape), _fit(test[0], input_shape)
        train_y, test_y = train[1], test[1]
    info = {"name": name, **source, "input_shape": list(input_shape),
            "n_train": len(train_y), "n_test": len(test_y), "num_classes": num_classes,
            "storage": f"whole dataset as float32 tensors on {device}"}
    if normalize:
        mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
        std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        info["normalization"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist(),
                                 "from": "training set, per channel"}
    else:
        info["normalization"] = "none: pixels in [0, 1] (as ToTensor gives them)"
    return Dataset(train_x.to(device), train_y.long().to(device), test_x.to(device),
                   test_y.long().to(device), num_classes, info)


def _fit(x, input_shape):
    """uint8/float (N, C, h, w) in [0, 1] -> float32 (N, *input_shape): channels, then size."""
    import torch.nn.functional as F

    c, h, w = input_shape
    x = x.float()
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1)
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False,
                          antialias=h < x.shape[2] or w < x.shape[3])
    return x.contiguous()


def _digits(name, root, download):
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0  # 0..16 gray levels
    y = torch.from_numpy(bunch.target)
    idx_train, idx_test = train_test_split(range(len(y)), test_size=DIGITS_TEST_SIZE,
                                           stratify=bunch.target, random_state=DIGITS_SPLIT_SEED)
    source = {"source": "sklearn.datasets.load_digits (bundled, 8x8 gray)",
              "split": f"stratified train_test_split, test_size={DIGITS_TEST_SIZE}, "
                       f"random_state={DIGITS_SPLIT_SEED}"}
    return ((x[idx_train], y[idx_train]), (x[idx_test], y[idx_test]), 10, source)


def _augmented(name, root, download):
    """The digits split, each image in ``AUGMENT_COPIES`` shifted, noisy, re-contrasted
    32x32 copies, from a fixed generator (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    train, test, classes, source = _digits(name, root, download)
    g = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)

    def copies(x, y):
        big = F.interpolate(x, size=(AUGMENT_SIZE - 2 * AUGMENT_SHIFT,) * 2, mode="bilinear",
                            align_corners=False).repeat(AUGMENT_COPIES, 1, 1, 1)
        out = torch.zeros(len(big), 1, AUGMENT_SIZE, AUGMENT_SIZE)
        shifts = torch.randint(0, 2 * AUGMENT_SHIFT + 1, (len(big), 2), generator=g)
        side = AUGMENT_SIZE - 2 * AUGMENT_SHIFT
        for i, (dy, dx) in enumerate(shifts.tolist()):
            out[i, :, dy:dy + side, dx:dx + side] = big[i]
        contrast = torch.empty(len(big), 1, 1, 1).uniform_(0.5, 1.5, generator=g)
        noise = AUGMENT_NOISE * torch.randn(out.shape, generator=g)
        return (out * contrast + noise).clamp(0, 1), y.repeat(AUGMENT_COPIES)

    source = {"source": f"augmented digits (synthetic, offline): each of the bundled 8x8 "
                        f"digits as {AUGMENT_COPIES} copies at {AUGMENT_SIZE}x{AUGMENT_SIZE}, "
                        f"shifted up to {AUGMENT_SHIFT} px, contrast 0.5-1.5, noise sd "
                        f"{AUGMENT_NOISE}, fixed generator", "split": source["split"]}
    return copies(*train), copies(*test), classes, source


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _files(name, root, download):
    """Fashion-MNIST or CIFAR-10 from their files (downloaded first only if asked)."""
    import torch

    from .datafiles import READERS

    title, expected = _EXPECTED[name]
    if download:
        from torchvision import datasets

        cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.CIFAR10
        try:
            for train in (True, False):
                cls(str(root), train=train, download=True)
        except Exception as exc:
            raise UserError(f"could not download {title} into {root}: {_first_line(exc)}") from None
    try:
        parts = [READERS[name](root, part) for part in ("train", "test")]
    except FileNotFoundError as exc:
        raise UserError(f"{title} not found under {root} ({Path(exc.args[0]).name} is "
                        f"missing): put {expected} there or pass --download") from None
    out = [(torch.from_numpy(x).float() / 255.0, torch.from_numpy(y)) for x, y in parts]
    source = {"source": f"{title} files under {root}", "split": "the official train/test split"}
    return out[0], out[1], 10, source


def _synthetic(input_shape, seed):
    """Each class is a smooth random template (4x4, upsampled); a sample is its class's
    template plus white noise, so a classifier must average out noise to learn it."""
    import torch
    import torch.nn.functional as F

    num_classes = 10
    g = torch.Generator().manual_seed(seed)
    c, h, w = input_shape
    templates = F.interpolate(torch.randn(num_classes, c, 4, 4, generator=g), size=(h, w),
                              mode="bilinear", align_corners=False)
    templates /= templates.flatten(1).std(dim=1).view(-1, 1, 1, 1)

    def sample(n):
        y = torch.randperm(n, generator=g) % num_classes
        return templates[y] + SYNTHETIC_NOISE * torch.randn(n, c, h, w, generator=g), y

    source = {"source": f"synthetic: {num_classes} smooth class templates + N(0, "
                        f"{SYNTHETIC_NOISE}) noise, seed {seed}",
              "split": "independent samples"}
    return sample(SYNTHETIC_SIZES[0]), sample(SYNTHETIC_SIZES[1]), num_classes, source
