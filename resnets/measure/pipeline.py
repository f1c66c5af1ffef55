"""Real inputs: JPEG files decoded and augmented by a DataLoader, feeding the step.

A case with ``input="real"`` takes each step's batch from a ``torch.utils.data.DataLoader``
(``workers`` processes, pinned memory and ``non_blocking`` copies on CUDA) over a folder of
generated JPEGs, decoded by ``torchvision.io.decode_jpeg`` and augmented with torchvision's
transforms v2 the way ImageNet training does (random resized crop to the case's input,
horizontal flip, scale to float, normalize). The timed step is then loader + copy +
model, which is what a training loop sees. After timing, the loader alone (batches per
second, nothing else running) and the model alone (the same step on a fixed batch) are
timed too, so the record names the bottleneck: the slower of the two, and how much of
it the combined step keeps (below 1, they also get in each other's way, e.g. loader
workers and the model's threads sharing CPU cores).

The images are made here, never downloaded: ``IMAGES`` photos-sized (500x375, ImageNet's
most common size) smooth random images with noise, written once per machine into a
cache folder (``RESNETS_IMAGE_DIR`` or the temporary directory) and reused.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

IMAGES = 256
IMAGE_SIZE = (375, 500)                      # H, W
FOLDER_ENV = "RESNETS_IMAGE_DIR"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet's, per channel
METHOD = (f"DataLoader over {IMAGES} generated {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]} JPEGs: "
          "decode_jpeg, RandomResizedCrop, RandomHorizontalFlip, ToDtype, Normalize "
          "(transforms v2); loader alone and model alone each timed after the combined "
          "steps; bottleneck = the slower alone")


def image_folder(root: Path | None = None) -> Path:
    """The folder of generated JPEGs, made on first use (atomically: a half-written
    folder is never used, and two processes making it at once both end with it)."""
    from torchvision.io import encode_jpeg

    root = Path(root or os.environ.get(FOLDER_ENV) or Path(tempfile.gettempdir()))
    folder = root / f"resnets-images-v1-{IMAGES}"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resnets-images-", dir=root))
    g = torch.Generator().manual_seed(0)
    h, w = IMAGE_SIZE
    for i in range(IMAGES):
        coarse = torch.rand(1, 3, h // 25, w // 25, generator=g)
        smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic")[0]
        pixels = (smooth + 0.08 * torch.randn(3, h, w, generator=g)).clamp(0, 1)
        jpeg = encode_jpeg((pixels * 255).to(torch.uint8), quality=90)
        (tmp / f"{i:04d}-class{i % 10}.jpg").write_bytes(jpeg.numpy().tobytes())
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class ImageFiles(torch.utils.data.Dataset):
    """JPEG files as (C, H, W) float tensors in the case's input shape, label from the name."""

    def __init__(self, folder: Path, shape: tuple[int, int, int], length: int):
        from torchvision.transforms import v2

        self.files = sorted(folder.glob("*.jpg"))
        self.length = length
        channels, h, w = shape
        steps = [v2.RandomResizedCrop((h, w), antialias=True), v2.RandomHorizontalFlip()]
        if channels == 1:
            steps.append(v2.Grayscale())
        steps += [v2.ToDtype(torch.float32, scale=True),
                  v2.Normalize(MEAN[:channels], STD[:channels])]
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        from torchvision.io import decode_jpeg, read_file

        path = self.files[i % len(self.files)]
        label = int(path.stem.rsplit("class", 1)[1])
        return self.transform(decode_jpeg(read_file(str(path)))), label


class Feed:
    """An endless stream of the case's batches from a DataLoader, copied to its device."""

    def __init__(self, case, seed: int = 0):
        self.case = case
        cuda = case.device == "cuda"
        dataset = ImageFiles(image_folder(), case.input_shape,
                             length=max(IMAGES, 4 * case.batch_size))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=case.batch_size, shuffle=True, drop_last=True,
            num_workers=case.workers, pin_memory=cuda, persistent_workers=case.workers > 0,
            generator=torch.Generator().manual_seed(seed))
        self._batches = itertools.chain.from_iterable(itertools.repeat(self.loader))
        self.format = (torch.channels_last if case.memory_format == "channels_last"
                       else torch.contiguous_format)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next(self._batches)
        return (x.to(self.case.device, non_blocking=True).contiguous(memory_format=self.format),
                y.to(self.case.device, non_blocking=True))

    def feeding(self, work):
        """``work``'s step, taking its inputs from the loader first."""
        model_step = work.step

        def step() -> None:
            work.inputs, work.targets = self.next()
            model_step()
        return step

    def loader_samples_per_s(self, seconds: float, min_batches: int = 3) -> float:
        """Batches pulled (and copied) with nothing else running, as samples/s."""
        n, t0 = 0, time.perf_counter()
        while n < min_batches or time.perf_counter() - t0 < seconds:
            x, _ = self.next()
            n += 1
        if self.case.device == "cuda":
            torch.cuda.synchronize()
        return n * self.case.batch_size / (time.perf_counter() - t0)

    def close(self) -> None:
        """Stop the worker processes now, not whenever the iterator is collected."""
        self._batches = None
        self.loader = None


def verdict(combined: float, loader: float, model: float) -> dict:
    """The record's pipeline fields from the three throughputs (samples/s)."""
    slower = min(loader, model)
    return {"loader_samples_per_s": loader, "model_samples_per_s": model,
            "bottleneck": "loader" if loader < model else "model",
            "pipeline_efficiency": combined / slower if slower > 0 else None,
            "pipeline_method": METHOD}
