"""What users ship beside eager, timed side by side. (Not a pytest file.)

    python bench/deploy.py -o reports/deploy-cpu/resnet50 --model resnet50 --batch 4 --size 224
    resnets advise reports/deploy-cpu/resnet50 --accuracy reports/deploy-cpu/accuracy-digits

The deployment forms of one model, batch and input (eager, an AOTInductor package, int8
compiled or packaged: ``--variants``) are one group of variants that no preset's product
holds, so this names them and times them as ``resnets run`` times any group
(``measure.group``: built and warmed up together, then rotating blocks), ``--rounds``
blocks each of ``--block-s`` seconds. Each record is written as a case file under
``-o DIR`` for ``resnets report`` and ``resnets advise``.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnets import models, store
from resnets.case import Case
from resnets.measure.group import measure_group
from resnets.measure.runner import Settings
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
    cases = [Case(args.model, "infer", "cpu", *v.split("-", 2), args.batch,
                  (channels, args.size, args.size)) for v in args.variants.split(",")]
    settings = Settings(policy=TimingPolicy(budget_s=args.rounds * args.block_s),
                        threads=args.threads, measure_energy=False)
    outcomes = measure_group(cases, settings, f"deploy-{store.utc_stamp()}", args.rounds)
    if outcomes is None:
        sys.exit("bench/deploy.py: the variants do not fit in memory at once")
    for case, outcome in outcomes.items():
        store.write_case(args.out, store.benchmark_entry(outcome.result(case)), {}, {})
        print(f"{case.id}: {outcome.status}"
              + (f", {outcome.record.samples_per_s:.2f} samples/s" if outcome.is_ok
                 else f": {outcome.reason}"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
