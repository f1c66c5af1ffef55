"""Does the engine's throughput agree with a plain hand-written loop? (Not a pytest file.)

    python bench/agreement.py resnet18:infer:cpu:contiguous:fp32:8:64 \
                              resnet50:train:cuda:channels_last:bf16:128:224

For each MODEL:MODE:DEVICE:FORMAT:PRECISION:BATCH:SIZE, in one process and interleaved
three times: the engine's samples/s (batch / median step, adaptive rounds) against a
loop that runs the same number of steps back to back and divides by the wall time, with
one device sync at each end. The loop shares only the model, data and step definition
(``workload.build``) with the engine, not its timer. Prints the median of each and the
ratio; the engine should agree within 3%.
"""
import statistics
import sys
import time

from resnets import models
from resnets.case import Case
from resnets.measure.device import synchronizer
from resnets.measure.runner import Settings, measure
from resnets.measure.timer import TimingPolicy
from resnets.measure.workload import build, math_mode


def hand_loop(case: Case, steps: int) -> float:
    with math_mode(case):
        work = build(case)
        sync = synchronizer(case.device)
        for _ in range(5):
            work.step()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            work.step()
        sync()
        return case.batch_size * steps / (time.perf_counter() - t0)


def main(specs: list[str]) -> None:
    settings = Settings(policy=TimingPolicy(budget_s=2.0), count_flops=False, measure_memory=False)
    for spec in specs:
        model, mode, device, fmt, precision, batch, size = spec.split(":")
        channels = models.spec(model).input_shape[0]
        case = Case(model, mode, device, fmt, precision, "eager", int(batch),
                    (channels, int(size), int(size)))
        engine, loop = [], []
        for _ in range(3):
            result = measure(case, settings)
            engine.append(result.samples_per_s)
            loop.append(hand_loop(case, max(10, len(result.samples))))
        e, h = statistics.median(engine), statistics.median(loop)
        print(f"{case.id}: engine {e:.1f}/s, hand loop {h:.1f}/s, ratio {e / h:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
