"""Convergence runs on the bundled digits, CPU: BatchNorm's speed-up, determinism,
divergence, the seed summary, the shipped experiments and ``resnets train``.

No timing assertions: the seconds are recorded, never judged (the CPU is shared and noisy).
Runs use one thread: on a loaded 2-core machine, two OpenMP threads made LeNet steps 10-50x
slower (each small op waits for a descheduled thread), and threads do not change the curves.
"""
import dataclasses
import json
import pickle
import subprocess
import sys

import pandas as pd
import pytest
import torch
from helpers import cli, once, slow_setup

from resnets import convergence as cv
from resnets import presets, store
from resnets.case import Case
from resnets.errors import UserError

LENET = {"batch_size": 100, "input_shape": (1, 28, 28)}
SEEDS = (0, 1, 2)


def case(model, **kw):
    return Case(model, "train", **{**LENET, **kw})


def run(*args, **kwargs):
    return cv.run(*args, threads=1, **kwargs)


@pytest.fixture(scope="session")
@slow_setup
def lenet_runs(request):
    """Plain LeNet, 300 iterations, whole curve (no early stop), for every seed: made once
    per session, whichever worker asks first (``helpers.once``), and pickled (the results
    are plain data; ``test_result_is_json_ready_and_complete`` checks their JSON form)."""
    def make(folder):
        runs = {s: run(case("lenet"), "digits", 0.9, s, 300, stop_at_target=False)
                for s in SEEDS}
        (folder / "runs.pkl").write_bytes(pickle.dumps(runs))

    return pickle.loads((once(request, "test_convergence-lenet_runs", make) / "runs.pkl")
                        .read_bytes())


@pytest.mark.parametrize("seed", SEEDS)
def test_lenet_bn_reaches_90_percent_within_300_iterations(seed):
    r = run(case("lenet_bn"), "digits", 0.9, seed, max_iters=300)
    assert r.status == "reached", r.curve
    assert r.iters_to_target <= 300 and r.best_acc >= 0.9
    assert r.iters_run == r.iters_to_target  # stopped at the target
    assert r.samples_to_target == r.iters_to_target * 100
    assert 0 < r.train_s_to_target <= r.total_s_to_target
    assert r.benchmark_s == r.train_s_to_target
    # The bracket: the evaluation before the target was below it, 5 iterations earlier
    # while evaluations are dense; the interpolation lies inside.
    assert r.iters_to_target - r.iters_to_target_low == 5
    assert r.iters_to_target_low <= r.iters_to_target_interp <= r.iters_to_target
    below = r.curve["test_acc"][-2] if len(r.curve["test_acc"]) > 1 else 0.0
    assert below < 0.9 <= r.curve["test_acc"][-1]
    assert r.train_s_to_target_low <= r.train_s_to_target_interp <= r.train_s_to_target


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.slow
def test_plain_lenet_is_still_below_50_percent_at_300_iterations(lenet_runs, seed):
    r = lenet_runs[seed]
    assert r.status == "not_reached" and r.iters_run == 300
    assert r.curve["iters"] == [*range(5, 100, 5), 100, 125, 160, 200, 250, 300]
    assert r.epochs_run == pytest.approx(300 * 100 / 1347)
    assert max(r.curve["test_acc"]) < 0.5
    assert r.iters_to_target is None and r.train_s_to_target is None
    assert r.benchmark_s == r.train_s  # the whole budget's training seconds


def test_result_is_json_ready_and_complete(lenet_runs):
    from resnets.schema import SCHEMA_VERSION, from_dict

    r = lenet_runs[0]
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert from_dict(d, r.samples) == r
    assert d["schema_version"] == SCHEMA_VERSION and d["kind"] == "convergence"
    assert d["case_id"] == case("lenet").id and r.case == case("lenet")
    assert r.hyperparams["lr"] == 1.0 and r.hyperparams["momentum"] == 0.0
    assert r.hyperparams["eval_every"] is None and r.hyperparams["batch_size"] == 100
    curve = r.curve
    assert set(curve) == set(cv.CURVE_KEYS)
    assert all(len(v) == 25 for v in curve.values())
    assert all(0 <= a <= 1 for a in curve["train_eval_acc"])
    assert curve["train_s"] == sorted(curve["train_s"])
    assert all(t <= tot for t, tot in zip(curve["train_s"], curve["total_s"]))
    assert all(0 <= a <= 1 for a in curve["train_acc"])
    assert r.timing.clock and "train_s" in r.timing.method and r.timing.threads == 1


@pytest.mark.slow
def test_same_seed_same_curve_on_cpu(lenet_runs):
    """Seed 0 again, for its first 100 iterations (LeNet's learning rate is constant, so
    they do not depend on the budget): every dense evaluation up to 100 must match the
    fixture's run, made in another run of the trainer, maybe in another process."""
    again = run(case("lenet"), "digits", 0.9, 0, 100, stop_at_target=False)
    first = lenet_runs[0].curve
    n = first["iters"].index(100) + 1
    assert again.curve["iters"] == first["iters"][:n] == [*range(5, 101, 5)]
    for key in ("test_acc", "train_loss", "train_acc"):
        assert again.curve[key] == first[key][:n]
    assert lenet_runs[1].curve["train_loss"] != lenet_runs[0].curve["train_loss"]


def test_an_absurd_learning_rate_is_reported_as_diverged():
    c = Case("resnet20", "train", batch_size=32, input_shape=(1, 8, 8))
    hp = dataclasses.replace(cv.default_hyperparams("resnet20"), lr=1e4)
    r = run(c, "digits", 0.9, 0, max_iters=50, eval_every=10, hp=hp)
    assert r.status == "diverged"
    assert r.diverged_at_iter is not None and r.iters_run == r.diverged_at_iter < 50
    assert r.iters_to_target is None
    json.dumps(r.to_dict(), allow_nan=False)  # no NaN leaks into the result


def test_synthetic_data_is_learned():
    c = case("lenet_bn", batch_size=50)
    r = run(c, "synthetic", 0.9, 0, max_iters=200, eval_every=20)
    assert r.status == "reached", r.curve["test_acc"]


@pytest.mark.parametrize("bad, match", [
    ({"target_acc": 0.0}, "target accuracy"), ({"target_acc": 1.2}, "target accuracy"),
    ({"max_iters": 0}, "max iterations"), ({"case": Case("lenet", "infer", **LENET)}, "mode"),
    ({"case": case("lenet", batch_size=5000)}, "larger than"),
])
def test_bad_arguments_are_user_errors(bad, match):
    args = {"case": case("lenet"), "dataset": "digits", "target_acc": 0.9, "max_iters": 10,
            **bad}
    with pytest.raises(UserError, match=match):
        run(**args)


def test_schedule_warms_up_then_decays_to_zero():
    hp = cv.default_hyperparams("resnet20")
    lrs = [hp.lr_at(i, 200) for i in range(200)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.1) and lrs == lrs[:10] + sorted(lrs[10:], reverse=True)
    assert lrs[-1] < 1e-3
    lenet = cv.default_hyperparams("lenet")
    assert {lenet.lr_at(i, 100) for i in range(100)} == {1.0}


def test_presets_plan_every_run():
    quick = presets.trials("quick")
    assert len(quick) == (2 + 4) * 3
    assert {t.seed for t in quick} == {0, 1, 2} and len({t.id for t in quick}) == len(quick)
    assert all(t.case.mode == "train" and t.case.device == "cpu" for t in quick)
    bn = presets.trials("quick", ("bn",))
    assert {t.case.model for t in bn} == {"lenet", "lenet_bn"}
    assert all(t.dataset == "digits" and t.stop_at_target for t in bn)
    deg = presets.trials("quick", ("degradation",))
    assert {t.case.model for t in deg} == {"plain20", "plain56", "resnet20", "resnet56"}
    assert not any(t.stop_at_target for t in deg)
    full = presets.trials("full")
    assert {t.seed for t in full} == set(range(5)) and all(t.case.device == "cuda" for t in full)
    assert {t.dataset for t in presets.trials("full", ("degradation",))} == {"cifar10"}
    with pytest.raises(UserError):
        presets.trials("quick", ("nope",))
    assert all(t.max_iters >= 3000 for t in bn if t.case.model == "lenet")  # room to break out
    assert not presets.trials("quick", ("degradation-augmented",))[0].stop_at_target
    assert "seed" not in {t.experiment for t in quick}  # needs data: only when named


def test_the_seed_experiment_is_the_notebooks_protocol():
    trial = presets.trials("full", ("seed",))[0]
    hp = dataclasses.replace(cv.default_hyperparams(trial.case.model), **dict(trial.protocol))
    assert (trial.dataset, trial.case.batch_size, trial.max_iters) == ("fashion-mnist", 100, 6000)
    assert (hp.lr, hp.momentum, hp.shuffle, hp.normalize) == (1.0, 0.0, False, False)
    assert hp.eval_points(6000) == list(range(500, 6001, 500))
    assert {t.case.model for t in presets.trials("full", ("seed",))} == {"lenet", "lenet_bn"}


@pytest.mark.slow
def test_the_seed_protocol_runs_on_fashion_mnist_files_and_is_judged(tmp_path):
    """The seed experiment's trials, shortened to 500 iterations (its first evaluation,
    the iteration the finding reads; fewer and there is nothing to judge), on generated
    files in the real format; the report's finding compares them with the notebook's
    figures."""
    import datasets

    from resnets.report.findings import findings
    from resnets.results import rows_frame

    datasets.write_fashion_mnist(tmp_path, 600, 200)
    results = [cv.run_trial(t._replace(max_iters=500), data_root=tmp_path, threads=1)
               for t in presets.trials("quick", ("seed",)) if t.seed == 0]
    assert [r.hyperparams["shuffle"] for r in results] == [False, False]
    assert all(r.curve["iters"] == [500] for r in results)  # eval_every 500, not dense
    assert results[0].dataset_info["normalization"].startswith("none")
    [finding] = findings(rows_frame([r.row() for r in results]))
    assert finding.experiment == "seed" and finding.observed in ("yes", "no")
    assert "seed notebook 10.0%" in finding.evidence and "at iteration 500" in finding.evidence


def test_findings_state_what_the_runs_show_with_their_spread(tmp_path):
    """Synthetic runs with known outcomes: BN 10x faster, plain56 worse, resnet56 not."""
    import records

    from resnets.report.findings import findings
    from resnets.results import rows_frame
    from resnets.schema import Status

    def run_of(model, seed, iters=None, final_err=0.0, experiment="bn"):
        reached = iters is not None
        return records.convergence(
            Case(model, "train", batch_size=100, input_shape=(1, 28, 28)), seed,
            Status.REACHED if reached else Status.NOT_REACHED, dataset="digits",
            experiment=experiment, iters_to_target=iters, iters_to_target_low=iters and iters - 5,
            iters_to_target_interp=iters and iters - 2, iters_run=iters or 3000, epochs_run=223.0,
            curve={"iters": [iters or 3000], "test_acc": [0.95 if reached else 0.1],
                   "train_eval_acc": [1 - final_err]})
    rows = [run_of("lenet_bn", s, 20 + 5 * s) for s in range(3)]
    rows += [run_of("lenet", s, 250 + 10 * s) for s in range(3)]
    rows += [run_of(m, s, 100, err, "degradation") for s in range(3) for m, err in
             (("plain20", 0.01), ("plain56", 0.3 + 0.1 * s), ("resnet20", 0.0),
                             ("resnet56", 0.005))]
    found = {f.claim.split()[1] + f.claim.split()[-1]: f
             for f in findings(rows_frame([r.row() for r in rows]))}
    bn = next(f for f in found.values() if f.experiment == "bn")
    assert bn.observed == "yes" and "lenet_bn reached 90% in 18-28 iterations" in bn.evidence
    assert "fewer than lenet (seeds: 9.6-13.8x" in bn.evidence
    worse = next(f for f in found.values() if "plain" in f.claim)
    assert worse.observed == "yes" and "plain56 40.0% (seeds 30.0-50.0%)" in worse.evidence
    resid = next(f for f in found.values() if "ResNet" in f.claim)
    assert resid.observed == "yes"


@pytest.mark.slow
def test_train_cli_writes_a_valid_case_file(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "resnets", "train", "lenet_bn", "--max-iters",
                        "20", "--eval-every", "10", "--seeds", "3", "--threads", "1",
                        "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "lenet_bn" in r.stdout and "status" in r.stdout
    files = list((out / store.CASES_DIR).glob("*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    (bench,) = doc["benchmarks"]
    info = bench["extra_info"]
    assert info["kind"] == "convergence" and info["seed"] == 3 and info["iters_run"] <= 20
    assert bench["param"].startswith(info["case_id"]) and bench["param"].endswith("seed3")
    assert bench["stats"]["rounds"] == 1 and bench["stats"]["data"][0] > 0
    assert "resnets_env" in doc["machine_info"] and "id" in doc["commit_info"]
    assert store.finished_case_ids(out) == {bench["param"]}


@pytest.mark.parametrize("argv, match", [
    (["lenet_bnn"], "did you mean lenet_bn"),
    (["lenet", "--dataset", "mnist"], "invalid value 'mnist'"),
    (["lenet", "--target-acc", "1.5"], "--target-acc: must be in (0, 1]"),
    (["lenet", "--seeds", "a,b"], "--seeds"),
    (["lenet", "--batch-size", "0"], "--batch-size: must be >= 1"),
])
def test_train_cli_bad_input_is_one_line(tmp_path, argv, match):
    """In this process (``helpers.cli``, which also refuses a traceback): the input is
    refused before anything trains; a fresh interpreter only adds its torch import
    (``test_train_cli_writes_a_valid_case_file`` runs ``train`` as a user does)."""
    r = cli("train", *argv, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_cuda_training_under_each_precision_reaches_the_target(precision):
    """AMP paths on the GPU: bf16/fp16 autocast (fp16 with a GradScaler), TF32 switches."""
    case = Case("lenet_bn", "train", "cuda", "channels_last", precision, batch_size=100,
                input_shape=(1, 28, 28))
    result = cv.run(case, "digits", 0.9, seed=0, max_iters=300)
    assert result.status == "reached", (result.best_acc, result.final_acc)
    assert result.iters_to_target <= 300


def test_findings_pair_seeds_within_a_variant():
    """The reference's runs again at a second precision: each variant is judged on its
    own seeds (pairing across variants indexed a seed twice and raised)."""
    from pathlib import Path

    from resnets.report import load
    from resnets.report.findings import findings

    df = load(Path(__file__).resolve().parents[1] / "reports" / "reference-cpu")
    conv = df[df["kind"] == "convergence"]
    again = conv.assign(precision="bf16", variant=conv["variant"].str.replace("fp32", "bf16"),
                        trial_id=conv["trial_id"].str.replace("fp32", "bf16"))
    alone = findings(df)
    both = findings(pd.concat([df, again], ignore_index=True))
    assert len(both) == 2 * len(alone)
    assert {f.data for f in both} >= {f.data + ", cpu contiguous-fp32-eager" for f in alone}
    by = {(f.data, f.claim): f.observed for f in both}
    assert all(by[f.data + ", cpu contiguous-fp32-eager", f.claim] == f.observed for f in alone)
