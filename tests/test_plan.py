"""Plans: the dry run, estimates from a cost model or an earlier run, and shards that split
a selection into disjoint parts of about equal time, the same on every machine."""
import json
import os
import subprocess
import sys

import pytest
import records
from helpers import cli

import resnets.models  # noqa: F401 - before in-process pytest runs (torch loads once)
from resnets import options, plan, presets
from resnets.case import Case

DEFAULTS = {o.name: o.initial for o in options.SUITE}


def select(**opts):
    p = plan.select({**DEFAULTS, **opts})
    return p.cases, p.trials


# The full preset (the nightly's, split over machines) on its CIFAR and MNIST models and
# ResNet-18 (its deploy variants): every kind of case and every convergence trial of the
# preset, 322 in all. Counting the FLOPs of its other ImageNet models on the meta device
# takes most of a minute here and adds only more of the same kinds.
FULL = {**DEFAULTS, "preset": "full", "models": ("lenet", "lenet_bn", "resnet20", "plain20",
                                                 "resnet56", "plain56", "resnet18")}
# Another interpreter's four shards of that selection. It is given this process's counted
# (FLOPs, layers) per model shape, which do not depend on string hashes, and does
# everything else (selection, estimates, the split) itself, in well under a second.
OTHER_SHARDS = """
import json, sys
from resnets import options, plan
given = json.load(sys.stdin)
work = {(m, mode, b, tuple(shape)): (f, n) for m, mode, b, shape, f, n in given["work"]}
plan._shape_of_work = lambda *key: work[key]
opts = {o.name: o.initial for o in options.SUITE} | given["opts"]
print(json.dumps([sorted(c.id for c in p.cases) + sorted(t.id for t in p.trials)
                  for p in (plan.select({**opts, "shard": (k, 4)}) for k in range(1, 5))]))
"""


@pytest.mark.slow
def test_shards_are_disjoint_cover_the_selection_and_balance():
    cases, trials = select(**FULL)
    every = {c.id for c in cases} | {t.id for t in trials}
    assert {c.compile for c in cases} == {"eager", "compile", "export-aoti"} and len(trials) == 40
    costs = {e.name: e.seconds for e in plan.run_estimates(FULL, cases, trials)}
    parts = [select(**{**FULL, "shard": (k, 4)}) for k in range(1, 5)]
    names = [{c.id for c in cs} | {t.id for t in ts} for cs, ts in parts]
    assert set().union(*names) == every and sum(map(len, names)) == len(every)
    loads = [sum(costs[n] for n in part) for part in names]
    assert max(loads) - min(loads) <= max(costs.values())  # greedy longest-first bound
    # The same split on every machine: another interpreter, with other string hashes (so
    # another set order), must give each shard the same names.
    shapes = {(c.model, c.mode, c.batch_size, c.input_shape)
              for c in [*cases, *(t.case for t in trials)]}
    given = json.dumps({"opts": {"preset": "full", "models": FULL["models"]},
                        "work": [[*key, *plan._shape_of_work(*key)] for key in sorted(shapes)]})
    for seed in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", OTHER_SHARDS], input=given,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        assert [set(part) for part in json.loads(r.stdout)] == names, r.stderr


def test_cases_that_never_run_cost_nothing_anywhere():
    [est] = plan.estimates([Case("lenet", precision="tf32", input_shape=(1, 28, 28))], [],
                           2.0, 10, 0.3)
    assert est.seconds == 0 and est.source.startswith("never runs")


def test_an_earlier_run_is_the_estimate_where_it_has_the_case(tmp_path):
    case = Case("lenet", input_shape=(1, 28, 28), batch_size=64)
    rec = records.speed(case, records.steady(0.01))
    rec.timing.case_s = 3.25
    records.write(tmp_path / "earlier", rec)
    opts = {**DEFAULTS, "models": ("lenet", "lenet_bn"), "devices": ("cpu",), "modes": ("infer",),
            "memory_formats": ("contiguous",), "precisions": ("fp32",), "convergence": False,
            "estimate_from": str(tmp_path / "earlier")}
    est = {e.name: e for e in plan.run_estimates(opts, *select(**opts))}
    assert est[case.id].seconds == 3.25 and est[case.id].source == "earlier run"
    other = next(e for n, e in est.items() if n != case.id)
    assert other.source == "cost model" and other.seconds > 0


def test_dry_run_lists_cases_and_a_total_and_runs_nothing(tmp_path, monkeypatch):
    """In this process (``helpers.cli``): a dry run that started anything (the suite, a
    worker, torchrun) would meet the refusing ``Popen``."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a dry run started a process: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    r = cli("run", "--dry-run", "--models", "lenet", "--devices", "cpu,cuda",
            "--no-convergence", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "lenet-infer-cpu-contiguous-fp32-eager-bs64-1x28x28" in r.stdout
    assert "16 speed case(s), 0 convergence run(s)" in r.stdout and "estimated total" in r.stdout
    cuda = [ln for ln in r.stdout.splitlines() if "-cuda-" in ln]
    assert cuda and all("skipped here" in ln for ln in cuda) == (not _cuda())
    assert not list(tmp_path.iterdir())  # no run folder (reports/...), nothing written


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_the_pytest_suite_runs_only_its_shard(pytester):
    from resnets.suite import speed

    every = {c.id for c in presets.Selection(models=("lenet",), devices=("cpu",)).cases()}
    seen = set()
    for k in (1, 2):
        r = pytester.runpytest_inprocess(speed.__file__, "-p", "resnets.suite.plugin",
                                         "--benchmark-only", "--collect-only", "-q",
                                         "--bench-models", "lenet", "--bench-devices", "cpu",
                                         "--no-bench-convergence", "--bench-shard", f"{k}/2")
        assert r.ret == 0
        ids = {line.split("[", 1)[1].rstrip("]") for line in r.outlines if "[" in line}
        assert ids and not ids & seen
        seen |= ids
    assert seen == every


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1-2", "a/b"])
def test_a_bad_shard_is_a_usage_error(bad):
    with pytest.raises(options.Invalid):
        options.shard(bad)
