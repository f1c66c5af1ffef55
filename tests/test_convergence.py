"""Convergence runs on the bundled digits, CPU: BatchNorm's speed-up, determinism,
divergence, the seed summary, the shipped experiments and ``resnets train``.

No timing assertions: the seconds are recorded, never judged (the CPU is shared and noisy).
Runs use one thread: on a loaded 2-core machine, two OpenMP threads made LeNet steps 10-50x
slower (each small op waits for a descheduled thread), and threads do not change the curves.
"""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

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


@pytest.fixture(scope="module")
def lenet_runs():
    """Plain LeNet, 300 iterations, whole curve (no early stop), for every seed."""
    return {s: run(case("lenet"), "digits", 0.9, s, 300, stop_at_target=False)
            for s in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
def test_lenet_bn_reaches_90_percent_within_300_iterations(seed):
    r = run(case("lenet_bn"), "digits", 0.9, seed, max_iters=300)
    assert r.status == "reached", r.curve
    assert r.iters_to_target <= 300 and r.best_acc >= 0.9
    assert r.iters_run == r.iters_to_target  # stopped at the target
    assert r.samples_to_target == r.iters_to_target * 100
    assert 0 < r.train_s_to_target <= r.total_s_to_target
    assert r.benchmark_s == r.train_s_to_target


@pytest.mark.parametrize("seed", SEEDS)
def test_plain_lenet_is_still_below_50_percent_at_300_iterations(lenet_runs, seed):
    r = lenet_runs[seed]
    assert r.status == "not_reached" and r.iters_run == 300
    assert r.curve["iters"] == [50, 100, 150, 200, 250, 300]
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
    assert r.hyperparams["eval_every"] == 50 and r.hyperparams["batch_size"] == 100
    curve = r.curve
    assert set(curve) == set(cv.CURVE_KEYS)
    assert all(len(v) == 6 for v in curve.values())
    assert curve["train_s"] == sorted(curve["train_s"])
    assert all(t <= tot for t, tot in zip(curve["train_s"], curve["total_s"]))
    assert all(0 <= a <= 1 for a in curve["train_acc"])
    assert r.timing.clock and "train_s" in r.timing.method and r.timing.threads == 1


def test_same_seed_same_curve_on_cpu(lenet_runs):
    again = run(case("lenet"), "digits", 0.9, 0, 300, stop_at_target=False)
    for key in ("iters", "test_acc", "train_loss", "train_acc"):
        assert again.curve[key] == lenet_runs[0].curve[key]
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
    r = subprocess.run([sys.executable, "-m", "resnets", "train", *argv, "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_cuda_training_under_each_precision_reaches_the_target(precision):
    """AMP paths on the GPU: bf16/fp16 autocast (fp16 with a GradScaler), TF32 switches."""
    case = Case("lenet_bn", "train", "cuda", "channels_last", precision, batch_size=100,
                input_shape=(1, 28, 28))
    result = cv.run(case, "digits", 0.9, seed=0, max_iters=300)
    assert result.status == "reached", (result.best_acc, result.final_acc)
    assert result.iters_to_target <= 300
