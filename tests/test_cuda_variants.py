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


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_training_replays_are_eager_steps(precision):
    """After N replays of the captured training step the weights are those of N eager
    steps from the same start. The old capture zeroed the gradients once (set_to_none=
    False), so each replay's backward added to the last one's: the k-th step used the
    sum of k gradients, and this failed from the second replay on."""
    from dataclasses import replace

    from resnets.measure.workload import REPLAY_RTOL, build, restore, snapshot

    case = _resnet20("cudagraph", "train", precision, batch=32)
    graph = build(case)                      # warmed up, captured, self-checked, restored
    eager = build(replace(case, compile="eager"))
    restore(eager, snapshot(graph))          # the same weights, buffers, momentum
    for _ in range(5):
        graph.step()
        eager.step()
    torch.cuda.synchronize()
    for g, e in zip(graph.model.parameters(), eager.model.parameters()):
        torch.testing.assert_close(g, e, rtol=REPLAY_RTOL[precision], atol=1e-6)


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
        outcome = distributed.launch(ddp, FAST)
        assert outcome.is_ok, outcome.reason
        ratios.append(outcome.record.samples_per_s / a)
    assert min(abs(r - 1) for r in ratios) < 0.10, ratios
