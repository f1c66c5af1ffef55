"""Turn a ``Case`` into something to time: a model, inputs on the device, and ``step()``.

The timed region is exactly one step. Inference: ``eval()`` + ``torch.inference_mode()``
forward. Training: ``zero_grad(set_to_none=True)`` + forward + cross-entropy + backward +
SGD-with-momentum step (with a ``GradScaler`` for fp16). Precision is applied the way a
user would: ``torch.autocast`` for bf16/fp16, the TF32 switches for tf32 (and both TF32
switches forced *off* for fp32, so fp32 on CUDA really is fp32), PT2E quantization for
int8. What users ship (an AOTInductor package, an int8 graph) is built by ``deploy``
before the step is timed.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..case import Case
from ..errors import UserError
from .deploy import Deployed, calibration_batches, deploy, freezing, int8_skip_reason

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def runtime_skip_reason(case: Case) -> str | None:
    """Why ``case`` cannot run on this machine (None if it can). Never substitute a case."""
    reason = case.unsupported_reason()
    if reason:
        return reason
    if case.model not in models.names():
        return f"unknown model {case.model!r}"
    if case.precision == "int8" and (why := int8_skip_reason()) is not None:
        return why
    if case.device == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available (torch.cuda.is_available() is False)"
        if case.precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name()} has no bf16 support"
        if case.precision in ("tf32", "default") and torch.cuda.get_device_capability()[0] < 8:
            return f"{torch.cuda.get_device_name()} has no TF32 tensor cores (needs sm_80+)"
    return None


# (matmul TF32, cuDNN TF32) per precision; "default" is what a fresh PyTorch process has.
TF32_SWITCHES = {"tf32": (True, True), "default": (False, True)}


@contextlib.contextmanager
def math_mode(case: Case):
    """Set the TF32 switches for the case (and, for int8, Inductor's freezing, without
    which its quantized weights are not packed into int8 kernels) and restore them
    afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    matmul, cudnn = TF32_SWITCHES.get(case.precision, (False, False))
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn
    try:
        with contextlib.ExitStack() as stack:
            if case.precision == "int8":
                stack.enter_context(freezing())
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(case: Case):
    dtype = AUTOCAST_DTYPES.get(case.precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=case.device, dtype=dtype)


def train_step(case: Case, runner: Callable, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, inputs: torch.Tensor,
               targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step as every benchmark defines it (speed and convergence alike):
    zero_grad(set_to_none) + autocast forward + cross-entropy + backward + optimizer step,
    through a GradScaler when given. Returns (loss, logits) for callers that track them."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(case):
        logits = runner(inputs)
        loss = F.cross_entropy(logits, targets)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, logits


@dataclass
class Workload:
    case: Case
    model: nn.Module          # the eager module (FLOP counting always uses this one)
    runner: Callable          # what the step calls: the model or its torch.compile'd twin
    inputs: torch.Tensor
    targets: torch.Tensor
    optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    step: Callable[[], None] = field(init=False)
    output: torch.Tensor | None = None   # a captured inference graph's static output
    deployed: Deployed | None = None     # export-aoti / int8: how the runner was built

    def __post_init__(self):
        self.step = self._train_step if self.case.mode == "train" else self._infer_step

    def _infer_step(self) -> None:
        with torch.inference_mode(), autocast(self.case):
            self.runner(self.inputs)

    def _train_step(self) -> None:
        train_step(self.case, self.runner, self.optimizer, self.scaler, self.inputs, self.targets)

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor alive between steps: weights, buffers, grads, optimizer state, data."""
        out = [*self.model.parameters(), *self.model.buffers(), self.inputs, self.targets]
        out += [p.grad for p in self.model.parameters() if p.grad is not None]
        if self.optimizer is not None:
            out += [v for st in self.optimizer.state.values() for v in st.values()
                    if torch.is_tensor(v)]
        return out


def check_input_shape(case: Case) -> None:
    """Fail early, in one line, on an input the model cannot take (LeNet's classifier wants
    28x28, say): one forward on the meta device costs no arithmetic."""
    spec = models.spec(case.model)
    with torch.device("meta"):
        model = models.create(case.model, num_classes=spec.num_classes,
                              in_channels=case.input_shape[0])
        try:
            model.eval()(torch.empty(2, *case.input_shape))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shape = "x".join(map(str, case.input_shape))
            own = "x".join(map(str, spec.input_shape))
            if not _forwards(model, (case.input_shape[0], *spec.input_shape[1:])):
                raise UserError(f"{case.model}: its forward raised at a {shape} input "
                                f"(RuntimeError: {first})") from None
            raise UserError(f"{case.model} cannot take a {shape} input ({first}); its own is "
                            f"{own}") from None


def _forwards(model: nn.Module, shape) -> bool:
    """Whether a meta-device forward at ``shape`` goes through: at the model's own input
    it does unless the model itself is broken, which is then not a matter of shape."""
    try:
        model(torch.empty(2, *shape, device="meta"))
        return True
    except RuntimeError:
        return False


def memory_format(case: Case) -> torch.memory_format:
    return torch.channels_last if case.memory_format == "channels_last" else torch.contiguous_format


def build_model(case: Case, num_classes: int | None = None) -> nn.Module:
    """The case's model on its device, in its memory format and mode (the speed step and
    the convergence trainer both build it here). Seed torch first for repeatable weights."""
    spec = models.spec(case.model)
    model = models.create(case.model, num_classes=num_classes or spec.num_classes,
                          in_channels=case.input_shape[0])
    model.to(case.device, memory_format=memory_format(case))
    return model.train(case.mode == "train")


def make_optimizer(case: Case, model: nn.Module, lr: float = 0.01, momentum: float = 0.9,
                   weight_decay: float = 0.0):
    """SGD and, for fp16 autocast, a GradScaler (None otherwise)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(case.device) if case.precision == "fp16" else None
    return optimizer, scaler


# torch.compile's mode for each compile variant ("cudagraph" is eager capture: capture()).
COMPILE_MODES = {"compile": "default", "compile-reduce-overhead": "reduce-overhead",
                 "compile-max-autotune": "max-autotune"}


def compiled(case: Case, model: nn.Module) -> Callable:
    """What a step calls: the model, or its ``torch.compile``'d twin in the case's mode."""
    mode = COMPILE_MODES.get(case.compile)
    return torch.compile(model, mode=mode) if mode else model


def capture(work: Workload, warmup: int = 3) -> Callable[[], None]:
    """The step recorded once into a CUDA graph and replayed, as PyTorch documents
    whole-network capture: static inputs (the workload's own tensors), a few warm-up steps
    on a side stream (lazy initialization and the optimizer's state happen outside the
    graph), gradients set to None before capture (so backward allocates them from the
    graph's pool and each replay writes, never accumulates, them), then capture of the
    forward (inference) or of forward, loss, backward and optimizer step (training).
    Before it is timed, the graph checks itself (``check_replay``): two replays must land
    where two eager steps from the same start do; a graph that does not raises
    ``CaptureMismatch`` (the case fails with that reason)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            work.step()
    torch.cuda.current_stream().wait_stream(side)
    start = snapshot(work)
    eager = _eager_twin(work)
    graph = torch.cuda.CUDAGraph()
    if work.case.mode == "train":
        work.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            with autocast(work.case):
                loss = F.cross_entropy(work.runner(work.inputs), work.targets)
            loss.backward()
            work.optimizer.step()
    else:
        with torch.inference_mode(), torch.cuda.graph(graph), autocast(work.case):
            work.output = work.runner(work.inputs)
    check_replay(work, graph.replay, eager, start)
    return graph.replay


class CaptureMismatch(RuntimeError):
    """A captured step that does not do what the eager step does."""


# How far a replay may land from the eager step: kernels may differ in the last bits (and
# autocast rounds to 8 mantissa bits), a wrong graph misses by whole steps.
REPLAY_RTOL = {"fp32": 1e-4, "default": 2e-3, "tf32": 2e-3, "bf16": 2e-2, "fp16": 5e-3}


def snapshot(work: Workload) -> list[torch.Tensor]:
    """Copies of the state a step changes (weights, buffers, optimizer state), in order."""
    return [t.detach().clone() for t in _state(work)]


def restore(work: Workload, saved: list[torch.Tensor]) -> None:
    """Put ``snapshot``'s values back in place (a graph holds these tensors' addresses)."""
    with torch.no_grad():
        for t, s in zip(_state(work), saved):
            t.copy_(s)


def _state(work: Workload) -> list[torch.Tensor]:
    out = [*work.model.parameters(), *work.model.buffers()]
    if work.optimizer is not None:
        out += [v for group in work.optimizer.param_groups for p in group["params"]
                for v in work.optimizer.state.get(p, {}).values() if torch.is_tensor(v)]
    return out


def _eager_twin(work: Workload, steps: int = 2) -> list[torch.Tensor]:
    """What ``steps`` eager steps from the current state give (the weights after them in
    training, the output in inference); the state is put back after."""
    start = snapshot(work)
    if work.case.mode == "train":
        for _ in range(steps):
            work.step()
        out = [p.detach().clone() for p in work.model.parameters()]
    else:
        with torch.inference_mode(), autocast(work.case):
            out = [work.runner(work.inputs).detach().clone()]
    restore(work, start)
    return out


def check_replay(work: Workload, replay: Callable[[], None], eager: list[torch.Tensor],
                 start: list[torch.Tensor], steps: int = 2) -> None:
    """Run ``replay`` ``steps`` times from ``start`` and compare with ``eager`` (the
    weights after as many eager steps, or the eager output); put ``start`` back after.
    Raises ``CaptureMismatch`` naming the largest relative difference."""
    restore(work, start)
    for _ in range(steps if work.case.mode == "train" else 1):
        replay()
    got = (list(work.model.parameters()) if work.case.mode == "train" else [work.output])
    rtol = REPLAY_RTOL[work.case.precision]
    worst = max(_relative(g, e) for g, e in zip(got, eager))
    restore(work, start)
    if not worst <= rtol:
        what = f"{steps} replays" if work.case.mode == "train" else "a replay"
        raise CaptureMismatch(f"the captured step is not the eager step: after {what} the "
                              f"{'weights' if work.case.mode == 'train' else 'output'} differ "
                              f"by {worst:.2g} (relative; tolerance {rtol:g})")


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest difference relative to the largest value (NaN counts as infinitely far)."""
    got, want = got.detach().float(), want.detach().float()
    diff = float((got - want).abs().max())
    return diff / max(float(want.abs().max()), 1e-12) if diff == diff else math.inf


def build(case: Case, seed: int = 0, wrap: Callable[[nn.Module], nn.Module] | None = None
          ) -> Workload:
    """Model, data and step for ``case``, everything already on the case's device.
    ``wrap`` (a data-parallel rank's DDP or FSDP) wraps the model before it is compiled
    and before the optimizer takes its parameters (FSDP replaces them by shards)."""
    check_input_shape(case)
    torch.manual_seed(seed)
    model = build_model(case)
    num_classes = models.spec(case.model).num_classes
    inputs = torch.randn(case.batch_size, *case.input_shape, device=case.device)
    inputs = inputs.contiguous(memory_format=memory_format(case))
    targets = torch.randint(0, num_classes, (case.batch_size,), device=case.device)
    module = wrap(model) if wrap is not None else model
    optimizer = scaler = None
    if case.mode == "train":
        optimizer, scaler = make_optimizer(case, module)
    if case.compile == "export-aoti" or case.precision == "int8":
        shipped = deploy(model, inputs, case.compile, case.precision,
                         calibration_batches(inputs, seed), "seeded N(0, 1) inputs",
                         lambda m: compiled(case, m))
        return Workload(case, model, shipped.runner, inputs, targets, deployed=shipped)
    work = Workload(case, model, compiled(case, module), inputs, targets, optimizer, scaler)
    if case.compile == "cudagraph":
        work.step = capture(work)
    return work
