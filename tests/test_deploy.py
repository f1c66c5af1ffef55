"""What users ship: the ``export-aoti`` and ``int8`` variants end to end through the engine
on CPU (export, package, load, time; quantize, calibrate, compile, time), their skip
reasons, the accuracy evaluation of a trained model in every form, and how the report,
the advice and the comparison take them. AOTInductor compiles for tens of seconds on a
2-core CPU: one package is built per module (``aoti``) and every check reads it."""
import contextlib
import json

import pytest
import records
import torch
from records import steady

from resnets import cli, models
from resnets.case import CHOICES, Case
from resnets.convergence import accuracy
from resnets.measure import deploy
from resnets.measure.runner import CaseRun, Settings, Skipped, measure
from resnets.measure.timer import TimingPolicy
from resnets.measure.workload import runtime_skip_reason
from resnets.presets import Selection
from resnets.report import accuracy as acc_table
from resnets.report import load, write_report
from resnets.report.advice import advice_rows, advise
from resnets.report.frame import variant_order

FAST = Settings(policy=TimingPolicy(budget_s=0.2, min_rounds=3, warmup_rounds=1, warmup_s=0.0),
                measure_energy=False)
LENET = {"model": "lenet", "input_shape": (1, 28, 28), "batch_size": 4}


def _engine(case: Case) -> dict:
    """One case through CaseRun, keeping what the record does not: the shipped runner's
    output beside the eager model's on the same input."""
    with CaseRun(case, FAST) as run:
        run.time_adaptive()
        with torch.inference_mode():
            shipped = run.work.runner(run.work.inputs).float()
            eager = run.work.model(run.work.inputs).float()
        graph = getattr(run.work.runner, "_orig_mod", None)
        ops = {str(n.target) for n in graph.graph.nodes} if graph is not None else set()
        return {"record": run.finish(), "shipped": shipped, "eager": eager, "ops": ops}


@pytest.fixture(scope="session")
def inductor_isa():
    """Inductor's probe of the CPU's vector ISAs, done once per process (torch caches it):
    it compiles and loads a test program per ISA, 10-25 s on a loaded 2-core machine
    unless torch's cache folder holds them. The engine compiles each case in a fresh,
    empty cache folder; the first compile of a process would make the probe there, in
    the case's compile time. Made here, in torch's own cache folder (once for both
    workers, which wait on torch's lock), it is the machine's, not the case's."""
    from torch._inductor import cpu_vec_isa

    cpu_vec_isa.valid_vec_isa_list()


@contextlib.contextmanager
def one_thread():
    """LeNet's small ops on one thread, put back after: on a loaded 2-core machine two
    OpenMP threads made each step many times slower (see test_convergence)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def aoti(inductor_isa):
    return _engine(Case(**LENET, compile="export-aoti"))


@pytest.fixture(scope="module")
def int8(inductor_isa):
    return _engine(Case(**{**LENET, "model": "lenet_bn"}, precision="int8", compile="compile"))


@pytest.mark.slow
def test_export_aoti_is_packaged_loaded_and_timed_by_the_engine(aoti):
    r = aoti["record"]
    assert r.case.variant == "contiguous-fp32-export-aoti"
    assert r.timing.rounds >= 3 and r.samples_per_s > 0 and r.timing.first_step_s > 0
    # The package's build is its compile time, made from a cold cache, before any step.
    assert r.timing.compile_s > 1 and r.timing.setup_s >= r.timing.compile_s
    assert r.timing.compile_cache.startswith("cold")
    weights = sum(p.numel() * 4 for p in models.create("lenet").parameters())
    assert r.package_bytes > weights  # it holds them
    assert "aoti_compile_and_package" in r.deploy_method
    # C++ allocations are out of the CPU method's sight: not measured, and said so.
    assert r.peak_memory_bytes is None and "not measured" in r.memory_method
    assert torch.allclose(aoti["shipped"], aoti["eager"], rtol=1e-4, atol=1e-5)
    assert r.flops_step > 0  # counted on the eager twin


@pytest.mark.slow
def test_int8_is_quantized_calibrated_compiled_and_timed(int8):
    r = int8["record"]
    assert r.case.variant == "contiguous-int8-compile"
    assert r.timing.rounds >= 3 and r.samples_per_s > 0
    assert r.timing.quantize_s > 0 and r.timing.compile_s > 0
    assert "X86InductorQuantizer" in r.deploy_method and "8 calibration batches" in r.deploy_method
    # The compiled graph is the quantized one (quantize/dequantize ops), and it still
    # computes the model: int8 rounding moves logits by a little, not by their size.
    assert any("quantize_per_tensor" in op for op in int8["ops"])
    err = (int8["shipped"] - int8["eager"]).abs().max() / int8["eager"].abs().max()
    assert 0 < err < 0.1
    assert r.attainable_flops_per_s > 0 and "int8" in r.attainable_method


def test_int8_quantizes_a_residual_network():
    """Every ResNet block calls its ReLU twice; torchao 0.18 refuses that on torch 2.14's
    export unless each call is named apart (``deploy.name_each_call``)."""
    torch.manual_seed(0)
    model = models.create("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    q = deploy.quantize(model, x, [x])
    ops = [str(n.target) for n in q.graph.nodes]
    assert sum("quantize_per_tensor" in op for op in ops) > 20  # every conv's input
    assert (q(x) - model(x)).abs().max() < 0.2 * model(x).abs().max()


def test_skip_reasons_say_why_pytorch_cannot():
    def why(**kw):
        return Case(**{**LENET, **kw}).unsupported_reason() or ""

    assert "post-training" in why(mode="train", precision="int8", compile="compile")
    assert "CUDA" in why(device="cuda", precision="int8", compile="compile")
    assert "Inductor" in why(precision="int8")                      # eager int8
    assert "inference graph" in why(mode="train", compile="export-aoti")
    assert "one process" in why(compile="export-aoti", strategy="ddp", world_size=2)
    assert why(precision="int8", compile="export-aoti") == ""
    assert why(device="cuda", compile="export-aoti", precision="bf16") == ""
    with pytest.raises(Skipped, match="post-training"):
        measure(Case(**LENET, mode="train", precision="int8", compile="compile"), FAST)


def test_int8_skips_without_torchao_or_off_x86(monkeypatch):
    case = Case(**LENET, precision="int8", compile="compile")
    assert runtime_skip_reason(case) is None

    def missing():
        raise ImportError("No module named 'torchao'")

    monkeypatch.setattr(deploy, "_quantizer", missing)
    assert "pip install torchao" in runtime_skip_reason(case)
    monkeypatch.undo()
    monkeypatch.setattr(deploy.platform, "machine", lambda: "aarch64")
    assert "aarch64" in runtime_skip_reason(case)


def test_full_preset_ships_resnet50_and_resnet18_inference_where_it_can_run():
    def shipped(cases):
        return {(c.model, c.mode, c.device, c.variant) for c in cases
                if c.compile == "export-aoti" or c.precision == "int8"}

    cuda = shipped(Selection("full").cases())
    assert cuda == {(m, "infer", "cuda", v) for m in ("resnet50", "resnet18")
                    for v in ("contiguous-fp32-export-aoti", "channels_last-bf16-export-aoti")}
    cpu = shipped(Selection("full", devices=("cpu",)).cases())
    assert {v for *_, v in cpu} == {"contiguous-fp32-export-aoti",
                                    "channels_last-bf16-export-aoti",
                                    "contiguous-int8-compile", "contiguous-int8-export-aoti"}
    assert {(m, mode) for m, mode, *_ in cpu} == {("resnet50", "infer"), ("resnet18", "infer")}
    # The user's filters narrow them like any variant.
    only = shipped(Selection("full", devices=("cpu",), precisions=("fp32",)).cases())
    assert {v for *_, v in only} == {"contiguous-fp32-export-aoti"}


def test_variant_order_reads_the_new_variants():
    got = variant_order(["contiguous-int8-export-aoti", "channels_last-bf16-eager",
                         "contiguous-int8-compile", "contiguous-fp32-export-aoti",
                         "contiguous-fp32-eager"])
    assert got == ["contiguous-fp32-eager", "contiguous-fp32-export-aoti",
                   "contiguous-int8-compile", "contiguous-int8-export-aoti",
                   "channels_last-bf16-eager"]
    assert CHOICES["precision"][-1] == "int8" and "export-aoti" in CHOICES["compile"]


# --- accuracy ----------------------------------------------------------------------------

def test_padded_batches_feed_a_static_graph_exactly_its_batch():
    seen = []

    def runner(x):
        seen.append(len(x))
        return torch.nn.functional.one_hot(x[:, 0].long(), 5).float()

    x = torch.arange(7.0).remainder(5).reshape(7, 1)
    case = accuracy.form_case("lenet", (1, 28, 28), "fp32")
    got = accuracy.predict(runner, x, Case(**{**case.key(), "batch_size": 3,
                                              "input_shape": (1, 28, 28)}))
    assert seen == [3, 3, 3] and got.tolist() == x[:, 0].long().tolist()


@pytest.mark.slow
def test_accuracy_of_a_trained_model_in_every_form(inductor_isa):
    """Trained on one thread (``one_thread``); the forms are built and run as shipped."""
    recipe = accuracy.recipe("lenet_bn")
    assert recipe.experiment == "bn" and recipe.case.input_shape == (1, 28, 28)
    with one_thread():
        model, ds, iters = accuracy.train(recipe, seed=0, iters=40)
    assert iters == 40
    skipped = []
    rows = accuracy.evaluate(model, "lenet_bn", ds, 0, dataset="digits", iters=iters,
                             skipped=skipped)
    by = {r["form"]: r for r in rows}
    assert set(by) == {"fp32", "bf16", "int8", "export-aoti"} and not skipped
    with torch.no_grad():
        direct = int((model(ds.test_x).argmax(1) == ds.test_y).sum()) / len(ds.test_y)
    assert by["fp32"]["test_acc"] == direct > 0.5
    assert by["export-aoti"]["agreement"] > 0.99      # the same fp32 graph, compiled
    assert by["int8"]["variant"] == "contiguous-int8-compile"
    for r in rows:
        assert r["delta_points"] == pytest.approx((r["test_acc"] - direct) * 100, abs=1e-4)
        assert 0.5 < r["agreement"] <= 1 and r["n_test"] == len(ds.test_y)
    assert by["fp32"]["agreement"] == 1 and by["fp32"]["delta_points"] == 0


def test_no_experiment_trains_this_model_is_one_line(capsys):
    assert cli.main(["accuracy", "--models", "resnet50", "--iters", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnets accuracy: error: no convergence experiment trains resnet50")
    assert "\n" not in err


# --- what the report and the advice make of them -----------------------------------------

def _case(variant, model="lenet"):
    fmt, precision, comp = variant.split("-", 2)
    return Case(model, "infer", "cpu", fmt, precision, comp, 64, (1, 28, 28))


def _run(tmp_path, steps: dict, name="run", **fields):
    return records.write(tmp_path / name, *(
        records.speed(_case(v), steady(s, seed=i), **{**fields, **extra})
        for i, (v, (s, extra)) in enumerate(steps.items())))


def _accuracy(path, deltas: dict, model="lenet", fp32=0.95):
    rows = [{"model": model, "dataset": "digits", "seed": 0, "form": form,
             "variant": "-".join(accuracy.FORM_VARIANTS[form]),
             "test_acc": fp32 + d / 100, "agreement": 1.0 if form == "fp32" else 0.98,
             "delta_points": d, "n_test": 450, "iters_trained": 100}
            for form, d in {"fp32": 0.0, **deltas}.items()]
    path.write_text(json.dumps({"format": acc_table.FORMAT, "version": acc_table.VERSION,
                                "rows": rows}))
    return path


STEPS = {"contiguous-fp32-eager": (0.010, {}), "contiguous-bf16-eager": (0.007, {}),
         "contiguous-int8-compile": (0.004, {})}


def _advice(tmp_path, deltas=None, **kw):
    run = _run(tmp_path, STEPS)
    acc = acc_table.load([_accuracy(tmp_path / "acc.json", deltas)]) if deltas else None
    (a,) = advise(load([run]), accuracy=acc, **kw)
    return a


def test_int8_unmeasured_is_held_back_and_bf16_is_picked(tmp_path):
    a = _advice(tmp_path)
    assert a.pick == "contiguous-bf16-eager"
    (held,) = a.held
    assert held[0] == "contiguous-int8-compile" and held[1] > 2 and "not measured" in held[4]
    assert "held back for accuracy: contiguous-int8-compile" in advice_rows([a])["notes"][0]


def test_a_quantized_pick_carries_its_accuracy_delta(tmp_path):
    a = _advice(tmp_path, {"int8": -0.4, "bf16": 0.0})
    assert a.pick == "contiguous-int8-compile" and not a.held
    assert "accuracy -0.40 points vs fp32" in a.accuracy and "98.0%" in a.accuracy


def test_nothing_more_than_the_allowed_drop_below_fp32_is_recommended(tmp_path):
    a = _advice(tmp_path, {"int8": -2.5, "bf16": -0.1})
    assert a.pick == "contiguous-bf16-eager" and "-0.10 points" in a.accuracy
    assert [h[0] for h in a.held] == ["contiguous-int8-compile"]
    assert "more than 1 point below fp32" in a.held[0][4]
    looser = _advice(tmp_path, {"int8": -2.5, "bf16": -0.1}, max_drop=3.0)
    assert looser.pick == "contiguous-int8-compile"
    strict = _advice(tmp_path, {"int8": -2.5, "bf16": -1.5})
    assert strict.pick is None and {h[0] for h in strict.held} == {
        "contiguous-int8-compile", "contiguous-bf16-eager"}


def test_an_export_aoti_pick_carries_its_build_and_package(tmp_path):
    from resnets.schema import Timing

    run = _run(tmp_path, {"contiguous-fp32-eager": (0.010, {}),
                          "contiguous-fp32-export-aoti": (0.005, {
                              "package_bytes": 3 * 2 ** 20,
                              "timing": Timing(compile_s=42.0, first_step_s=0.01)})})
    (a,) = advise(load([run]))
    assert a.pick == "contiguous-fp32-export-aoti" and a.package_s == 42.0
    notes = advice_rows([a])["notes"][0]
    assert "built once in 42 s" in notes and "package 3 MiB" in notes


def test_advise_and_report_read_the_accuracy_table(tmp_path, capsys):
    run = _run(tmp_path, STEPS)
    acc = _accuracy(tmp_path / "acc.json", {"int8": -0.4})
    assert cli.main(["advise", str(run), "--accuracy", str(acc)]) == 0
    out = capsys.readouterr().out
    assert "use contiguous-int8-compile" in out and "accuracy -0.40 points" in out
    # A run folder's own accuracy.json is read with it; the drop option gates it.
    _accuracy(run / "accuracy.json", {"int8": -0.6})
    assert cli.main(["advise", str(run), "--max-accuracy-drop", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "use contiguous-bf16-eager" in out and "held back: contiguous-int8-compile" in out
    report = write_report([run], tmp_path / "report")
    table = (report / "tables" / "accuracy.md").read_text()
    assert "-0.60" in table and "contiguous-int8-compile" in table
    assert "accuracy -0.60 points" in (report / "summary.md").read_text()


@pytest.mark.parametrize("row, why", [
    ({"test_acc": 5}, "test_acc must be a share"),
    ({"form": "fp8"}, "form must be one of"),
    ({"model": ["x"]}, "model must be a name"),
    ({"n_test": 1.5}, "n_test must be a whole number"),
])
def test_a_damaged_accuracy_table_is_one_line_and_exit_2(tmp_path, capsys, row, why):
    run = _run(tmp_path, STEPS)
    good = json.loads(_accuracy(tmp_path / "acc.json", {"int8": 0.0}).read_text())
    good["rows"][1].update(row)
    (tmp_path / "acc.json").write_text(json.dumps(good))
    assert cli.main(["advise", str(run), "--accuracy", str(tmp_path / "acc.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnets advise: error:") and why in err and "\n" not in err


def test_bad_accuracy_drop_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["advise", str(tmp_path), "--max-accuracy-drop", "-1"])
    assert exc.value.code == 2 and "between 0 and 100" in capsys.readouterr().err


def test_hostile_names_in_the_accuracy_table_stay_text(tmp_path):
    run = _run(tmp_path, STEPS)
    doc = json.loads(_accuracy(tmp_path / "acc.json", {"int8": 0.0}).read_text())
    for r in doc["rows"]:
        r["dataset"] = "<script>x</script>|=cmd"
    (run / "accuracy.json").write_text(json.dumps(doc))
    report = write_report([run], tmp_path / "report")
    assert "<script>" not in (report / "index.html").read_text()
    assert "<script>" not in (report / "tables" / "accuracy.md").read_text()


def test_compare_gates_a_package_that_grew(tmp_path, capsys):
    base = _run(tmp_path, {"contiguous-fp32-export-aoti": (0.005, {"package_bytes": 1000})},
                "base")
    cand = _run(tmp_path, {"contiguous-fp32-export-aoti": (0.005, {"package_bytes": 1300})},
                "cand")
    assert cli.main(["compare", str(base), str(cand)]) == 1
    assert "package_bytes 1,000 -> 1,300" in capsys.readouterr().out
