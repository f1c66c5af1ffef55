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
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
COMPILES = ("eager", "compile")

CHOICES = {"mode": MODES, "device": DEVICES, "memory_format": FORMATS,
           "precision": PRECISIONS, "compile": COMPILES}


@dataclass(frozen=True, order=True)
class Case:
    model: str
    mode: str = "infer"
    device: str = "cpu"
    memory_format: str = "contiguous"
    precision: str = "fp32"
    compile: str = "eager"
    batch_size: int = 1
    input_shape: tuple[int, int, int] = (3, 224, 224)  # (C, H, W)

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

    @property
    def id(self) -> str:
        """e.g. ``resnet50-train-cuda-channels_last-bf16-eager-bs64-3x224x224``."""
        shape = "x".join(map(str, self.input_shape))
        return (f"{self.model}-{self.mode}-{self.device}-{self.memory_format}-"
                f"{self.precision}-{self.compile}-bs{self.batch_size}-{shape}")

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
        if self.device == "cpu" and self.precision == "fp16":
            return "fp16 autocast is not benchmarked on CPU (no fast fp16 kernels); use bf16"
        return None


FIELDS = tuple(f.name for f in fields(Case))
