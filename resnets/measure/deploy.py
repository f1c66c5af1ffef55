"""What users ship: an ahead-of-time package (``export-aoti``) and int8 post-training
quantization (``int8``), built the way PyTorch documents each, for the speed step
(``workload.build``) and the accuracy evaluation (``resnets.convergence.accuracy``) alike.

* ``export-aoti``: ``torch.export.export`` of the eval-mode model at the case's exact input
  (bf16: the forward under ``torch.autocast``, captured into the graph), then
  ``torch._inductor.aoti_compile_and_package`` into a ``.pt2`` file, loaded back with
  ``torch._inductor.aoti_load_package``: what a server runs without the model's Python
  code. The package's size is recorded, and the export plus packaging is the build time.
  The graph is static: it takes exactly the exported input shape.
* ``int8``: PT2E quantization with torchao's ``X86InductorQuantizer`` (the default static
  config: per-channel symmetric int8 weights, per-tensor affine uint8 activations):
  export, ``prepare_pt2e``, calibration on a fixed list of batches, ``convert_pt2e``; then
  Inductor with freezing, which folds the quantized weights into packed oneDNN int8
  weights and fuses quantize/dequantize into int8 convolutions and linears
  (``torch.compile``, or the same AOTI package as above). ``torch.ao.quantization``'s
  PT2E path is gone from torch 2.14; torchao is where it lives now.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

# Seeded N(0, 1) calibration batches for the speed step: scales from them differ from a
# real data set's, the kernels (what the speed case measures) do not.
CALIBRATION_BATCHES = 8
AOTI_METHOD = ("torch.export.export (eval mode, static shape{autocast}), "
               "torch._inductor.aoti_compile_and_package{freezing}, loaded with "
               "torch._inductor.aoti_load_package; compile_s = export + packaging")
INT8_METHOD = ("PT2E int8 (torchao {version} X86InductorQuantizer, default static config): "
               "torch.export, prepare_pt2e, {batches} calibration batches ({source}), "
               "convert_pt2e; {then}")


def int8_skip_reason() -> str | None:
    """Why int8 cannot run on this machine (None if it can)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return (f"X86InductorQuantizer lowers to x86 oneDNN kernels; this CPU is "
                f"{platform.machine()}")
    try:
        _quantizer()
    except ImportError as exc:
        return f"int8 needs torchao's PT2E quantizer (pip install torchao): {exc}"
    return None


def _quantizer():
    # torchao 0.18 registers an Enum with torch's pytree at import, and torch 2.14 logs a
    # deprecation warning for it on every import: a note to torchao, not to our users.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    finally:
        pytree_log.setLevel(level)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    return quantizer


@contextlib.contextmanager
def freezing():
    """Inductor's freezing on (and back after): the int8 path needs it at compile time,
    and ``torch.compile(options={"freezing": True})`` does not reach the constant folding
    of quantized weights in torch 2.14 (it fails on ``onednn.qconv_prepack``)."""
    import torch._inductor.config as config

    with config.patch(freezing=True):
        yield


def calibration_batches(example: torch.Tensor, seed: int, n: int = CALIBRATION_BATCHES
                        ) -> list[torch.Tensor]:
    """``n`` seeded N(0, 1) batches shaped like ``example`` (same device and layout)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(example.shape, generator=g).to(example.device).contiguous(
        memory_format=_layout(example)) for _ in range(n)]


def _layout(t: torch.Tensor) -> torch.memory_format:
    return (torch.channels_last if t.dim() == 4 and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)


def quantize(model: nn.Module, example: torch.Tensor, calibration: Iterable[torch.Tensor]
             ) -> nn.Module:
    """The eval-mode ``model`` quantized to int8 by PT2E (module doc), calibrated on
    ``calibration`` (batches shaped like ``example``). Runs eagerly as simulated
    quantization; compile it (``freezing`` on) for the int8 kernels."""
    quantizer = _quantizer()  # first: it imports torchao quietly
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model.eval()
    with torch.no_grad():
        graph = torch.export.export(model, (example,)).module()
        name_each_call(graph)
        prepared = prepare_pt2e(graph, quantizer)
        for batch in calibration:
            prepared(batch)
        converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def name_each_call(graph: torch.fx.GraphModule) -> None:
    """Give each call of a torch.nn leaf module its own source partition, as dynamo's
    ``source_fn_stack`` did. torch 2.14's export records none, so the quantizer's
    partitions fall back to the module's path, which merges the two calls of a module
    used twice (every ResNet block's ReLU, torchvision's too) into one partition with two
    outputs, and X86InductorQuantizer refuses the model ("Input partition has more than
    one output node", torchao 0.18). The module stack's innermost key is per call
    (``layer1.0.relu@1``), so it names the partition."""
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack or node.meta.get("source_fn_stack"):
            continue
        key, (_, cls) = list(stack.items())[-1]
        if isinstance(cls, str):
            where, _, name = cls.rpartition(".")
            cls = getattr(importlib.import_module(where), name, None) if where else None
        if isinstance(cls, type) and issubclass(cls, nn.Module) \
                and cls.__module__.startswith("torch.nn."):
            node.meta["source_fn_stack"] = [(key, cls)]


class Autocast(nn.Module):
    """``model`` with its forward under autocast, so torch.export captures the casts."""

    def __init__(self, model: nn.Module, device: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device, self.dtype = model, device, dtype

    def forward(self, x):
        with torch.autocast(device_type=self.device, dtype=self.dtype):
            return self.model(x)


def package(model: nn.Module, example: torch.Tensor, folder: str, frozen: bool = False
            ) -> tuple[Callable, int]:
    """``model`` exported at ``example`` and compiled by AOTInductor into
    ``folder/model.pt2``; returns (the loaded package, the package's bytes)."""
    path = os.path.join(folder, "model.pt2")
    with torch.no_grad():
        program = torch.export.export(model, (example,))
        path = torch._inductor.aoti_compile_and_package(
            program, package_path=path, inductor_configs={"freezing": True} if frozen else {})
    return torch._inductor.aoti_load_package(path), os.path.getsize(path)


@dataclass
class Deployed:
    """A model in the form a case ships it: what a step calls, and what building it cost."""

    runner: Callable
    method: str
    compile_s: float | None = None    # export + packaging (export-aoti), else None
    quantize_s: float | None = None   # export + calibration + convert (int8), else None
    package_bytes: int | None = None


def deploy(model: nn.Module, example: torch.Tensor, compile_mode: str, precision: str,
           calibration: Iterable[torch.Tensor] = (), calibration_source: str = "",
           compile_fn: Callable[[nn.Module], Callable] | None = None) -> Deployed:
    """``model`` (eval mode, on its device) as ``export-aoti`` and/or ``int8`` at
    ``example``'s shape. ``compile_fn`` compiles an int8 graph that is not packaged
    (the case's torch.compile mode). The package is written to a temporary folder and
    removed once loaded (the loader keeps what it needs)."""
    module, quantize_s, methods = model, None, []
    if precision == "int8":
        t0 = time.perf_counter()
        calibration = list(calibration)
        module = quantize(model, example, calibration)
        quantize_s = time.perf_counter() - t0
        import torchao

        methods.append(INT8_METHOD.format(
            version=torchao.__version__, batches=len(calibration), source=calibration_source,
            then=("packaged by AOTInductor with freezing" if compile_mode == "export-aoti"
                  else "torch.compile with Inductor freezing")))
    elif precision in ("bf16", "fp16") and compile_mode == "export-aoti":
        module = Autocast(model, example.device.type,
                          torch.bfloat16 if precision == "bf16" else torch.float16)
    if compile_mode != "export-aoti":
        return Deployed(compile_fn(module), "; ".join(methods), quantize_s=quantize_s)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="resnets-aoti-") as folder:
        runner, size = package(module, example, folder, frozen=precision == "int8")
    methods.append(AOTI_METHOD.format(
        autocast=", forward under autocast" if isinstance(module, Autocast) else "",
        freezing=" with freezing" if precision == "int8" else ""))
    return Deployed(runner, "; ".join(methods), time.perf_counter() - t0, quantize_s, size)
