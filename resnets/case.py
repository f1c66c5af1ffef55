"""The identity of a benchmark case, and every dimension of the case matrix, declared once.
Torch-free.

The same ``Case`` (and its ``id``/``key``) names a measurement in the suite's test ids,
in every result file, in the report tables and in the comparison, so two runs can be
matched case by case without guessing.

Each field of ``Case`` is a dimension, declared with ``dim(...)``: its values, its
command-line option (a list in ``resnets run`` and pytest; one value in ``profile`` and
``train``), its part of the case id and the variant, whether it groups report rows or is
a variant of them, its label in reports, and the combinations it can never run in. The
options (``resnets.options``), the presets' product (``resnets.presets``), the result
columns (``resnets.schema``) and the report's groupings (``resnets.report.frame``) all
derive from ``DIMENSIONS``, so a new dimension is a field here plus the code that acts on
it (``measure/workload.py``): README, "Where a new thing goes".
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from . import checks

MODES = ("infer", "train")
DEVICES = ("cpu", "cuda")
FORMATS = ("contiguous", "channels_last")
# fp32: strict (TF32 off everywhere); default: PyTorch's own default numerics (fp32
# tensors; on CUDA, cuDNN convolutions may use TF32, matmuls do not); tf32: TF32 for
# both; bf16/fp16: autocast; int8: PT2E post-training quantization (X86InductorQuantizer,
# calibrated on seeded batches) run through Inductor (measure/workload.py: quantize).
PRECISIONS = ("fp32", "default", "tf32", "bf16", "fp16", "int8")
# eager; torch.compile in its default mode, with CUDA graphs (reduce-overhead) or with
# autotuning (max-autotune); eager capture into CUDA graphs (cudagraph); an ahead-of-time
# package (export-aoti: torch.export, AOTInductor's .pt2, loaded with aoti_load_package).
COMPILES = ("eager", "compile", "compile-reduce-overhead", "compile-max-autotune", "cudagraph",
            "export-aoti")
# The compile variants whose code Inductor generates (each starts from a cold cache).
INDUCTOR = ("compile", "compile-reduce-overhead", "compile-max-autotune", "export-aoti")
# How data parallelism is run (resnets.measure.distributed): none (one process, no
# launcher), ddp or fsdp (full shard) under torchrun, one process per device.
STRATEGIES = ("none", "ddp", "fsdp")
# Where the step's inputs come from: synthetic tensors made on the device beforehand, or
# real image files decoded and augmented by a DataLoader (resnets.measure.pipeline).
INPUTS = ("synthetic", "real")

# Sizes beyond these are not a benchmark of anything a machine here can hold.
MAX_BATCH = 2 ** 20
MAX_SIDE = 2 ** 14
MAX_WORLD = 2 ** 16


@dataclass(frozen=True)
class Dimension:
    """One axis of the case matrix. ``role``: "group" (cases that differ in it are other
    rows of a report table: model, batch), "variant" (they are variants of one row, their
    speed-ups compared: precision) or "how" (how a case is run, not what it measures: not
    in the id)."""

    name: str = ""
    default: Any = None          # (MISSING for the model: every case names one)
    choices: tuple[str, ...] = ()
    role: str = "group"
    option: str | None = None             # the list option of run and pytest (plural)
    parse: Callable[[str], Any] | None = None   # its value from the command line
    help: str = ""
    one: bool = False                     # also a one-value option of profile and train
    label: str | None = None              # its column header in reports
    quiet: bool = False                   # in a table only where a row is not the default
    fragment: Callable[[Any, Any], str | None] | None = None  # (value, case) -> id part
    check: Callable[[Any], Any] | None = None   # a stored value -> its field value, or ValueError
    unsupported: Callable[[Any], str | None] | None = None  # (case) -> why it never runs
    applies: Callable[[dict], bool] | None = None  # in a product: whether it varies here
    option_extra: dict = field(default_factory=dict)  # old spellings, aliases, metavar

    def part(self, case) -> str | None:
        value = getattr(case, self.name)
        return self.fragment(value, case) if self.fragment else str(value)

    def list_parser(self) -> Callable[[str], Any]:
        return self.parse or checks.some_of(self.choices)

    def list_help(self) -> str:
        return self.help or f"comma-separated: {','.join(self.choices)} (default: the preset's)"


def dim(default: Any = MISSING, **spec) -> Any:
    """A ``Case`` field that is a dimension (``Dimension``'s fields as keywords)."""
    return field(default=default, metadata={"dim": Dimension(default=default, **spec)})


# --- checks of stored values: a result file is hostile until proven otherwise ----------

def _text(allowed: tuple[str, ...] = ()):
    def check(value):
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {type(value).__name__}")
        if allowed and value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        if not allowed and not 0 < len(value) <= 200:  # escaped wherever it is shown
            raise ValueError(f"must be a name of 1-200 characters, not {value[:40]!r}")
        return value
    return check


def _whole(low: int, high: int, optional: bool = False):
    def check(value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a whole number, not {type(value).__name__}")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"must be a whole number, not {value}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high:,}, not {value:g}"
                             if isinstance(value, float) else
                             f"must be between {low} and {high:,}, not {value}")
        return int(value)
    return check


def _shape(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValueError(f"must be C,H,W, not {str(value)[:40]}")
    return tuple(_whole(1, MAX_SIDE)(d) for d in value)


def _flag(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {type(value).__name__}")
    return value


# --- rules: combinations that never run, whatever the hardware -------------------------

def _precision_rule(c) -> str | None:
    if c.device == "cpu" and c.precision == "tf32":
        return "tf32 is a CUDA tensor-core math mode; it does not exist on CPU"
    if c.device == "cpu" and c.precision == "default":
        return ("on CPU PyTorch's default numerics are plain fp32 (no TF32): the fp32 "
                "case measures them")
    if c.device == "cpu" and c.precision == "fp16":
        return "fp16 autocast is not benchmarked on CPU (no fast fp16 kernels); use bf16"
    if c.precision == "int8":
        return _int8_rule(c)
    return None


def _int8_rule(c) -> str | None:
    if c.mode == "train":
        return ("int8 is post-training quantization of an inference graph (PT2E); training "
                "in int8 (quantization-aware training) is another method, not measured here")
    if c.device == "cuda":
        return ("int8 here is PT2E with X86InductorQuantizer, whose quantized convolutions "
                "Inductor lowers to x86 CPU (oneDNN) kernels; it has no CUDA lowering")
    if c.compile not in INDUCTOR:
        return ("a PT2E int8 graph becomes int8 kernels only through Inductor (compile or "
                "export-aoti); run eagerly it is fp32 arithmetic between quantize and "
                "dequantize ops, which measures nothing anyone ships")
    return None


def _compile_rule(c) -> str | None:
    if c.device == "cpu" and c.compile in ("compile-reduce-overhead", "cudagraph"):
        return f"{c.compile} captures CUDA graphs; there are none on CPU"
    if c.compile == "cudagraph" and c.mode == "train" and c.precision == "fp16":
        return ("cudagraph captures the whole training step, and fp16's GradScaler checks "
                "for inf on the host inside it, which a CUDA graph cannot replay")
    if c.compile == "cudagraph" and c.input == "real":
        return ("cudagraph replays fixed input buffers, and a DataLoader hands over new "
                "tensors each step")
    if c.compile == "export-aoti" and c.mode == "train":
        return ("export-aoti packages an inference graph: torch.export captures no optimizer "
                "step, and AOTInductor compiles no backward (aoti_compile_and_package takes "
                "a forward-only ExportedProgram)")
    return None


def _strategy_rule(c) -> str | None:
    if c.strategy != "none" and c.compile == "cudagraph":
        return ("cudagraph captures one process's whole step; capturing DDP's or FSDP's "
                "collectives needs PyTorch's separate recipe (DDP built on a side stream, "
                "11 eager iterations first, no async error handling), not set up here; "
                "compile-reduce-overhead is the data-parallel way to CUDA graphs")
    if c.strategy != "none" and (c.compile == "export-aoti" or c.precision == "int8"):
        return ("an exported package or a quantized graph is one process's inference "
                "artifact; DDP and FSDP wrap a module that trains")
    if c.strategy == "fsdp" and c.memory_format == "channels_last":
        return ("FSDP (fully_shard) refuses non-contiguous parameters, and channels-last "
                "convolution weights are not contiguous (torch 2.14)")
    return None


@dataclass(frozen=True, order=True)
class Case:
    model: str = dim(option="models", parse=checks.model_names, check=_text(),
                     help="comma-separated models (default: the preset's)",
                     option_extra={"metavar": "A,B"})
    mode: str = dim("infer", choices=MODES, option="modes", one=True)
    device: str = dim("cpu", choices=DEVICES, option="devices", one=True)
    memory_format: str = dim("contiguous", choices=FORMATS, role="variant",
                             option="memory_formats", one=True,
                             option_extra={"old": ("formats",)})
    precision: str = dim("fp32", choices=PRECISIONS, role="variant", option="precisions",
                         one=True, unsupported=_precision_rule)
    compile: str = dim("eager", choices=COMPILES, role="variant", option="compile", one=True,
                       unsupported=_compile_rule)
    # per device, when data-parallel
    batch_size: int = dim(1, option="batch_sizes", label="batch", check=_whole(1, MAX_BATCH),
                          fragment=lambda v, c: f"bs{v}",
                          parse=lambda t: "auto" if str(t).strip() == "auto"
                          else checks.ints_in(1, MAX_BATCH)(t),
                          help="comma-separated batch sizes (per device), or auto: doubling "
                               "up to the largest batch that fits, and the knee (default: "
                               "per model in the preset)",
                          option_extra={"metavar": "N,M|auto"})
    input_shape: tuple[int, int, int] = dim(
        (3, 224, 224), option="image_sizes", label="input size", check=_shape,
        fragment=lambda v, c: "x".join(map(str, v)), parse=checks.ints_in(1, MAX_SIDE),
        help="comma-separated square input sizes in pixels, e.g. 224,128 (default: per "
             "model in the preset)", option_extra={"metavar": "N,M", "aliases": ("image-size",)})
    world_size: int = dim(1, option="world_sizes", label="world size", quiet=True,
                          check=_whole(1, MAX_WORLD), parse=checks.ints_in(1, MAX_WORLD),
                          fragment=lambda v, c: f"ws{v}" if c.strategy != "none" else None,
                          help="comma-separated world sizes of data-parallel cases, one "
                               "process per device, under torchrun (default: single-process)",
                          option_extra={"metavar": "N,M"})
    strategy: str = dim("none", choices=STRATEGIES, option="strategies", quiet=True,
                        parse=checks.some_of(("ddp", "fsdp")),
                        fragment=lambda v, c: v if v != "none" else None,
                        unsupported=_strategy_rule,
                        help="comma-separated data-parallel strategies: ddp,fsdp (default "
                             "ddp when --world-sizes is given)", option_extra={"metavar": "A,B"})
    # DDP gradient bucket size (None: PyTorch's 25 MiB)
    bucket_mb: int | None = dim(None, option="bucket_mbs", label="bucket MiB", quiet=True,
                                check=_whole(1, 2 ** 20, optional=True),
                                parse=checks.ints_in(1, 2 ** 20),
                                fragment=lambda v, c: None if v is None else f"bucket{v}",
                                applies=lambda row: row["strategy"] == "ddp",
                                help="comma-separated DDP gradient bucket sizes in MiB "
                                     "(bucket_cap_mb) to compare (default: PyTorch's 25)",
                                option_extra={"metavar": "N,M"})
    input: str = dim("synthetic", choices=INPUTS, option="input", label="inputs", quiet=True,
                     fragment=lambda v, c: "real" if v == "real" else None,
                     help="comma-separated: synthetic (tensors on the device) and/or real "
                          "(image files through a DataLoader) (default synthetic)",
                     option_extra={"metavar": "A,B"})
    # DataLoader worker processes, with real inputs
    workers: int = dim(0, option="loader_workers", label="loader workers", quiet=True,
                       check=_whole(0, 256), parse=checks.ints_in(0, 256),
                       fragment=lambda v, c: f"w{v}" if c.input == "real" else None,
                       applies=lambda row: row["input"] == "real",
                       help="comma-separated DataLoader worker counts for real inputs "
                            "(default 0: load in the training process)",
                       option_extra={"metavar": "N,M"})
    # Part of a batch sweep (--batch-sizes auto, measure.sweep): how the case's batch is
    # chosen, so not part of what it measures or of its id.
    sweep: bool = dim(False, role="how", check=_flag, fragment=lambda v, c: None)

    def __post_init__(self):
        for d in DIMENSIONS.values():
            value = getattr(self, d.name)
            try:
                if d.check is not None:
                    value = d.check(value)
                elif d.choices:
                    value = _text(d.choices)(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{d.name} {exc}") from None
            object.__setattr__(self, d.name, value)
        if self.world_size > 1 and self.strategy == "none":
            raise ValueError("a world size above 1 needs a strategy (ddp or fsdp)")
        if self.workers and self.input != "real":
            raise ValueError("loader workers (>= 0) go with real inputs only")

    @property
    def id(self) -> str:
        """e.g. ``resnet50-train-cuda-channels_last-bf16-eager-bs64-3x224x224``; a
        data-parallel case adds ``-ws4-ddp`` (and ``-bucket50``), a real-input one
        ``-real-w2`` (2 loader workers)."""
        return "-".join(p for d in DIMENSIONS.values() if d.role != "how"
                        and (p := d.part(self)) is not None)

    @property
    def variant(self) -> str:
        """What changes how a model runs, without the model: ``channels_last-bf16-eager``."""
        return "-".join(p for d in VARIANTS if (p := d.part(self)) is not None)

    def key(self) -> dict:
        """The config fields as a JSON-ready dict (``input_shape`` as a list)."""
        d = {name: getattr(self, name) for name in FIELDS}
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_key(cls, d: dict) -> Case:
        return cls(**{k: v for k, v in d.items() if k in FIELDS})

    def unsupported_reason(self) -> str | None:
        """Why this combination is never run, whatever the hardware; None if it can run."""
        return next((why for d in DIMENSIONS.values() if d.unsupported
                     and (why := d.unsupported(self))), None)

    def single(self) -> Case:
        """The same case in one process (what each rank of a data-parallel case runs)."""
        return replace(self, world_size=1, strategy="none", bucket_mb=None)


DIMENSIONS: dict[str, Dimension] = {
    f.name: replace(f.metadata["dim"], name=f.name) for f in fields(Case)}
FIELDS = tuple(DIMENSIONS)
VARIANTS = tuple(d for d in DIMENSIONS.values() if d.role == "variant")
# The cases that differ only by variant: one row of a report table.
ROW_KEYS = [d.name for d in DIMENSIONS.values() if d.role == "group"]
CHOICES = {name: d.choices for name, d in DIMENSIONS.items() if d.choices}
