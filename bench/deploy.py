"""What users ship beside eager, in one process, interleaved. (Not a pytest file.)

    python bench/deploy.py -o reports/deploy-cpu --model resnet50 --batch 4 --size 224
    resnets advise reports/deploy-cpu --accuracy reports/accuracy-digits

Builds every variant of ``--variants`` for one model, batch and input (the engine's
``CaseRun``: eager, an AOTInductor package, int8 compiled or packaged, each built and
warmed up as a timed case is), then times them in blocks of ``--block-s`` seconds, the
order rotating each round and reversed every other, for ``--rounds`` rounds, so load from
other work lands on every variant alike rather than on whichever ran while it lasted.
Each variant's record (the memory pass and FLOP count after all timing) is written as a
case file under ``-o DIR``, with the cores other work kept busy during its own blocks
(``timing.other_cores``) and one ``pair`` id for the group, for ``resnets report`` and
``resnets advise``.
"""
import argparse
import contextlib
import sys

from resnets import models, store
from resnets.case import Case
from resnets.measure.load import Snapshot, other_cores
from resnets.measure.runner import CaseRun, Settings, Skipped
from resnets.measure.timer import TimingPolicy

VARIANTS = ("contiguous-fp32-eager", "channels_last-bf16-eager", "contiguous-int8-compile",
            "contiguous-int8-export-aoti", "contiguous-fp32-export-aoti",
            "channels_last-bf16-export-aoti")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", required=True, help="run folder to write the cases into")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    channels = models.spec(args.model).input_shape[0]
    settings = Settings(policy=TimingPolicy(budget_s=0.0, min_rounds=1), threads=args.threads,
                        measure_energy=False)
    runs, load = [], {}
    with contextlib.ExitStack() as stack:
        for variant in args.variants.split(","):
            fmt, precision, compile_ = variant.split("-", 2)
            case = Case(args.model, "infer", "cpu", fmt, precision, compile_, args.batch,
                        (channels, args.size, args.size))
            try:
                run = stack.enter_context(CaseRun(case, settings))
            except Skipped as why:
                print(f"{case.id}: skipped: {why}", file=sys.stderr)
                continue
            run.warm_up()
            print(f"{case.id}: built in {run.setup_s:.1f} s, first step "
                  f"{run.timed.first_step_s:.2f} s", file=sys.stderr)
            runs.append(run)
            load[case.id] = [0.0, 0.0, 0.0]  # other core-seconds, steal, wall
        for i in range(args.rounds):
            order = runs[i % len(runs):] + runs[:i % len(runs)]
            for run in order if i % 2 == 0 else order[::-1]:
                cpu0, snap = run._cpu_s, Snapshot.now()
                run.block(args.block_s, min_steps=3)
                end = Snapshot.now()
                others, steal = other_cores(snap, end, run._cpu_s - cpu0)
                wall = end.wall - snap.wall
                acc = load[run.case.id]
                acc[0] += (others or 0.0) * wall
                acc[1] += (steal or 0.0) * wall
                acc[2] += wall
        pairing = (f"side by side with {len(runs) - 1} other variants in one process: "
                   f"{args.rounds} rounds of one {args.block_s:g} s block each, the order "
                   "rotating each round and reversed every other (bench/deploy.py)")
        group = f"deploy-{store.utc_stamp()}"
        for run in runs:
            others, steal, wall = load[run.case.id]
            record = run.finish(pairing=pairing, other_cores=others / wall,
                                steal_cores=steal / wall)
            record.pair = group  # timed side by side: one pair id for the group
            store.write_case(args.out, store.benchmark_entry(record), {}, {})
            print(f"{run.case.id}: {record.samples_per_s:.2f} samples/s over "
                  f"{len(record.samples)} steps, other work {others / wall:.2f} cores",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
