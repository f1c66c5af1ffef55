"""Re-make the noise fixtures: real repeated runs of a few cases, for the compare tests.

Each *run* is a fresh Python process (as a real ``resnets run`` is) that measures every
case once with the quick preset's timing policy (2 s budget, stop at a +-2% median CI,
at least 10 rounds), so the fixtures hold the rounds a default run really takes. Runs
follow each other back to back, so they show both the within-run spread and the
between-run level shift. Samples are in microseconds.

* ``noise_cpu.json``: ``python tests/data/make_noise_fixture.py --runs 12`` on the
  project's shared 2-core VM (Xeon, 2 threads) while other engineers' benchmarks and
  tests ran: 3-5 of the 12 runs of each case had the cores to themselves (their medians
  scatter by 4-6%), the others overlapped another benchmark and ran 2-50x slower.
* ``noise_cuda.json``: ``python tests/data/make_noise_fixture.py --runs 10 --device
  cuda`` on an H100 host (16 cores), full-preset-sized cases.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys

# Small cases of the quick preset (CPU) and of the full preset (CUDA).
CASES = {
    "cpu": [
        dict(model="lenet", mode="infer", batch_size=64, input_shape=(1, 28, 28)),
        dict(model="lenet", mode="train", batch_size=64, input_shape=(1, 28, 28)),
        dict(model="resnet20", mode="infer", batch_size=16, input_shape=(3, 32, 32)),
        dict(model="resnet20", mode="train", batch_size=16, input_shape=(3, 32, 32)),
        dict(model="resnet18", mode="infer", batch_size=8, input_shape=(3, 64, 64)),
    ],
    "cuda": [
        dict(model="lenet", mode="train", batch_size=256, input_shape=(1, 28, 28)),
        dict(model="resnet20", mode="train", batch_size=128, input_shape=(3, 32, 32)),
        dict(model="resnet18", mode="infer", batch_size=256, input_shape=(3, 224, 224)),
        dict(model="resnet18", mode="train", batch_size=256, input_shape=(3, 224, 224)),
        dict(model="resnet50", mode="train", batch_size=128, input_shape=(3, 224, 224)),
    ],
}


def one_run(device: str, threads: int | None) -> dict:
    """Measure every case once in this process; {case_id: samples in seconds}."""
    from resnets.measure.case import Case
    from resnets.measure.runner import Settings, measure
    from resnets.measure.timer import TimingPolicy

    settings = Settings(policy=TimingPolicy(budget_s=2.0), threads=threads,
                        count_flops=False, measure_memory=False)
    out = {}
    for key in CASES[device]:
        case = Case(**key, device=device)
        out[case.id] = list(measure(case, settings).measurement.samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--device", choices=sorted(CASES), default="cpu")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.device, args.threads)))
        return
    runs = []
    for i in range(args.runs):
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        child = [sys.executable, __file__, "--child", "--device", args.device]
        if args.threads:
            child += ["--threads", str(args.threads)]
        proc = subprocess.run(child, capture_output=True, text=True, check=True)
        samples = json.loads(proc.stdout.strip().splitlines()[-1])
        runs.append({"started": started, "samples_us": {
            cid: [round(s * 1e6, 2) for s in xs] for cid, xs in samples.items()}})
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    from resnets.measure.env import environment

    env = environment()
    json.dump({"made_by": "python " + " ".join(sys.argv),
               "machine": {**{k: env[k] for k in ("cpu_model", "cpu_count", "gpu_name", "torch")},
                           "threads": args.threads or env["cpu_count"]},
               "policy": "quick preset timing: budget 2 s, rel_ci 0.02, min 10 rounds",
               "runs": runs}, sys.stdout, indent=None, separators=(",", ":"))
    print()


if __name__ == "__main__":
    main()
