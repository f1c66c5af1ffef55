"""FLOPs at the case's exact input, counted two independent ways.

``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per multiply-add for the
matmul/conv family, forward and (for training) backward. fvcore's ``FlopCountAnalysis``
traces the forward and reports *multiply-adds* (its "flops" are MACs), including its
estimates for norms and pooling; it is kept beside ours under the name ``macs_fvcore``.
Both always run on the eager model: a ``torch.compile``'d module can't be traced by
fvcore, and counting the eager twin is exact because compilation does not change the math.
"""
from __future__ import annotations

import logging
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .. import models
from ..case import Case


def _inputs(case: Case, device: str):
    spec = models.spec(case.model)
    with torch.device(device):
        model = models.create(case.model, num_classes=spec.num_classes,
                              in_channels=case.input_shape[0])
        x = torch.randn(case.batch_size, *case.input_shape)
        y = torch.randint(0, spec.num_classes, (case.batch_size,))
    return model, x, y


def count_flops(model: str, mode: str, batch_size: int, input_shape: tuple[int, int, int]) -> dict:
    """FLOPs of one forward and of one step, and fvcore's multiply-adds; memory format,
    precision and device don't change the counts, so each is computed once per (model,
    mode, batch, shape)."""
    return {**meta_flops(model, mode, batch_size, input_shape),
            **_fvcore(model, batch_size, input_shape)}


@lru_cache(maxsize=256)
def meta_flops(model: str, mode: str, batch_size: int, input_shape: tuple[int, int, int]) -> dict:
    """``FlopCounterMode``'s forward and step FLOPs, counted on the meta device."""
    case = Case(model, mode, batch_size=batch_size, input_shape=input_shape)
    # On the meta device: shapes only, no arithmetic, so counting a large batch is free.
    net, x, y = _inputs(case, "meta")
    net.train(mode == "train")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    fwd = counter.get_total_flops()
    by_op_fwd = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    step = fwd
    if mode == "train":
        counter = FlopCounterMode(display=False)
        with counter:
            F.cross_entropy(net(x), y).backward()
        step = counter.get_total_flops()
    return {"flops_fwd": int(fwd), "flops_step": int(step), "flops_fwd_by_op": by_op_fwd,
            "flops_method": "torch.utils.flop_counter.FlopCounterMode, 2 FLOPs per "
                            "multiply-add, eager model"
                            + (", forward+backward" if mode == "train" else "")}


@lru_cache(maxsize=256)
def _fvcore(model: str, batch_size: int, input_shape: tuple[int, int, int]) -> dict:
    """fvcore traces with real tensors (torch.jit.trace), so this one computes a forward:
    cached apart from the mode, which does not change a forward's multiply-adds."""
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError as exc:  # optional at run time: say so instead of failing the case
        return {"macs_fvcore": None, "macs_fvcore_note": f"fvcore unavailable: {exc}"}
    net, x, _ = _inputs(Case(model, batch_size=batch_size, input_shape=input_shape), "cpu")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fca = (FlopCountAnalysis(net.eval(), x).unsupported_ops_warnings(False)
               .uncalled_modules_warnings(False))
        total, by_op = fca.total(), fca.by_operator()
    return {"macs_fvcore": int(total),
            "macs_fvcore_by_op": {k: int(v) for k, v in by_op.items()},
            "macs_fvcore_note": "fvcore FlopCountAnalysis forward, multiply-adds (eager model)"}
