"""CUDA graphs, compile modes, launch-bound detection and torchrun on a GPU. Every test
here needs CUDA and skips without it (the CPU parts are in test_inputs and
test_distributed)."""
import pytest
import torch

from resnets.case import Case
from resnets.measure.runner import Settings, measure
from resnets.measure.timer import TimingPolicy
from resnets.measure.workload import runtime_skip_reason
from resnets.schema import Status

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
FAST = Settings(policy=TimingPolicy(budget_s=0.5, min_rounds=10, warmup_rounds=3,
                                    warmup_s=0.1), count_flops=False)


def _resnet20(compile="eager", mode="infer", precision="fp32", batch=128):
    return Case("resnet20", mode, "cuda", "contiguous", precision, compile, batch_size=batch,
                input_shape=(3, 32, 32))


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_cudagraph_replays_the_step(mode):
    r = measure(_resnet20("cudagraph", mode), FAST)
    assert r.status == Status.OK and r.samples_per_s > 0
    assert r.gpu_busy is not None and 0 < r.gpu_busy <= 1


def test_cudagraph_with_grad_scaler_is_skipped_with_its_reason():
    assert "GradScaler" in runtime_skip_reason(_resnet20("cudagraph", "train", "fp16"))


def test_small_batch_eager_is_flagged_launch_bound():
    r = measure(_resnet20(batch=1), FAST)
    assert r.launch_bound is True and r.gpu_busy < 0.5


@pytest.mark.parametrize("mode", ["compile", "compile-reduce-overhead"])
def test_compile_modes_record_a_cold_compile(mode):
    r = measure(_resnet20(mode), FAST)
    assert r.timing.compile_s > 0 and r.timing.compile_cache.startswith("cold")


def test_world_size_one_under_torchrun_matches_the_plain_case():
    """The launcher costs nothing measurable: DDP at world size 1 against the same case
    in one process, interleaved twice, within 10%."""
    from resnets.measure import distributed

    plain = _resnet20(mode="train")
    ddp = Case(**{**plain.key(), "input_shape": (3, 32, 32), "world_size": 1,
                  "strategy": "ddp"})
    ratios = []
    for _ in range(2):
        a = measure(plain, FAST).samples_per_s
        outcome, b = distributed.launch(ddp, FAST)
        assert outcome == "ok", b
        ratios.append(b.samples_per_s / a)
    assert min(abs(r - 1) for r in ratios) < 0.10, ratios
