"""The identity of a benchmark case: one frozen dataclass, torch-free.

The same ``Case`` (and its ``id``/``key``) names a measurement in the suite's test ids,
in every result file, in the report tables and in the comparison, so two runs can be
matched case by case without guessing.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

MODES = ("infer", "train")
DEVICES = ("cpu", "cuda")
FORMATS = ("contiguous", "channels_last")
# fp32: strict (TF32 off everywhere); default: PyTorch's own default numerics (fp32
# tensors; on CUDA, cuDNN convolutions may use TF32, matmuls do not); tf32: TF32 for
# both; bf16/fp16: autocast.
PRECISIONS = ("fp32", "default", "tf32", "bf16", "fp16")
# eager; torch.compile in its default mode, with CUDA graphs (reduce-overhead) or with
# autotuning (max-autotune); eager capture into CUDA graphs (cudagraph).
COMPILES = ("eager", "compile", "compile-reduce-overhead", "compile-max-autotune", "cudagraph")
# How data parallelism is run (resnets.measure.distributed): none (one process, no
# launcher), ddp or fsdp (full shard) under torchrun, one process per device.
STRATEGIES = ("none", "ddp", "fsdp")
# Where the step's inputs come from: synthetic tensors made on the device beforehand, or
# real image files decoded and augmented by a DataLoader (resnets.measure.pipeline).
INPUTS = ("synthetic", "real")

CHOICES = {"mode": MODES, "device": DEVICES, "memory_format": FORMATS,
           "precision": PRECISIONS, "compile": COMPILES, "strategy": STRATEGIES,
           "input": INPUTS}


@dataclass(frozen=True, order=True)
class Case:
    model: str
    mode: str = "infer"
    device: str = "cpu"
    memory_format: str = "contiguous"
    precision: str = "fp32"
    compile: str = "eager"
    batch_size: int = 1               # per device, when data-parallel
    input_shape: tuple[int, int, int] = (3, 224, 224)  # (C, H, W)
    world_size: int = 1               # processes (devices) of a data-parallel case
    strategy: str = "none"
    bucket_mb: int | None = None      # DDP gradient bucket size (None: PyTorch's 25 MiB)
    input: str = "synthetic"
    workers: int = 0                  # DataLoader worker processes, with real inputs

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch size must be >= 1, not {self.batch_size}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input shape must be C,H,W, not {self.input_shape}")
        object.__setattr__(self, "world_size", int(self.world_size))
        if self.world_size < 1:
            raise ValueError(f"world size must be >= 1, not {self.world_size}")
        if self.world_size > 1 and self.strategy == "none":
            raise ValueError("a world size above 1 needs a strategy (ddp or fsdp)")
        if self.bucket_mb is not None:
            object.__setattr__(self, "bucket_mb", int(self.bucket_mb))
        object.__setattr__(self, "workers", int(self.workers))
        if self.workers < 0 or (self.workers and self.input != "real"):
            raise ValueError("loader workers (>= 0) go with real inputs only")

    @property
    def id(self) -> str:
        """e.g. ``resnet50-train-cuda-channels_last-bf16-eager-bs64-3x224x224``; a
        data-parallel case adds ``-ws4-ddp`` (and ``-bucket50``), a real-input one
        ``-real-w2`` (2 loader workers)."""
        shape = "x".join(map(str, self.input_shape))
        out = (f"{self.model}-{self.mode}-{self.device}-{self.memory_format}-"
               f"{self.precision}-{self.compile}-bs{self.batch_size}-{shape}")
        if self.strategy != "none":
            out += f"-ws{self.world_size}-{self.strategy}"
        if self.bucket_mb is not None:
            out += f"-bucket{self.bucket_mb}"
        return out + (f"-real-w{self.workers}" if self.input == "real" else "")

    @property
    def variant(self) -> str:
        """What changes how a model runs, without the model: ``channels_last-bf16-eager``."""
        return f"{self.memory_format}-{self.precision}-{self.compile}"

    def key(self) -> dict:
        """The config fields as a JSON-ready dict (``input_shape`` as a list)."""
        d = {name: getattr(self, name) for name in FIELDS}
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_key(cls, d: dict) -> Case:
        return cls(**{k: (tuple(v) if k == "input_shape" else v)
                      for k, v in d.items() if k in FIELDS})

    def unsupported_reason(self) -> str | None:
        """Why this combination is never run, whatever the hardware; None if it can run."""
        if self.device == "cpu" and self.precision == "tf32":
            return "tf32 is a CUDA tensor-core math mode; it does not exist on CPU"
        if self.device == "cpu" and self.compile in ("compile-reduce-overhead", "cudagraph"):
            return f"{self.compile} captures CUDA graphs; there are none on CPU"
        if self.device == "cpu" and self.precision == "default":
            return ("on CPU PyTorch's default numerics are plain fp32 (no TF32): the fp32 "
                    "case measures them")
        if self.device == "cpu" and self.precision == "fp16":
            return "fp16 autocast is not benchmarked on CPU (no fast fp16 kernels); use bf16"
        if self.compile == "cudagraph" and self.mode == "train" and self.precision == "fp16":
            return ("cudagraph captures the whole training step, and fp16's GradScaler checks "
                    "for inf on the host inside it, which a CUDA graph cannot replay")
        if self.compile == "cudagraph" and self.input == "real":
            return ("cudagraph replays fixed input buffers, and a DataLoader hands over new "
                    "tensors each step")
        if self.strategy != "none" and (self.compile != "eager" or self.input == "real"):
            return ("data-parallel cases are measured eager on synthetic inputs; compiled, "
                    "graph-captured or real-input ones are not measured yet")
        if self.strategy == "fsdp" and self.memory_format == "channels_last":
            return ("FSDP (fully_shard) refuses non-contiguous parameters, and channels-last "
                    "convolution weights are not contiguous (torch 2.14)")
        return None


FIELDS = tuple(f.name for f in fields(Case))
