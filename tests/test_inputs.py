"""Real inputs through a DataLoader, and batch-size sweeps: what exists on CPU."""
import json

import pandas as pd
import pytest
import torch
from helpers import cli, once, slow_setup

from resnets import store
from resnets.case import Case
from resnets.measure import pipeline, sweep
from resnets.measure.runner import Settings, measure
from resnets.measure.timer import TimingPolicy
from resnets.outcome import Outcome
from resnets.schema import SpeedResult, Status

SHORT = Settings(policy=TimingPolicy(budget_s=0.2, min_rounds=3, warmup_rounds=1,
                                     warmup_s=0.0), count_flops=False)


@pytest.fixture(scope="session")
@slow_setup
def images(request):
    """The generated JPEGs, made once per session however many workers read them; the
    tests only read them (``image_folder`` finds the folder it made and returns it)."""
    root = once(request, "test_inputs-images", pipeline.image_folder)
    return pipeline.image_folder(root)


@pytest.mark.slow
def test_generated_images_are_real_jpegs_made_once(images):
    from torchvision.io import decode_jpeg, read_file

    files = sorted(images.glob("*.jpg"))
    assert len(files) == pipeline.IMAGES
    img = decode_jpeg(read_file(str(files[0])))
    assert img.shape == (3, *pipeline.IMAGE_SIZE) and img.dtype == torch.uint8
    before = files[0].stat().st_mtime_ns
    assert pipeline.image_folder(images.parent) == images
    assert files[0].stat().st_mtime_ns == before


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
@pytest.mark.slow
def test_dataset_yields_the_case_input(images, shape):
    x, y = pipeline.ImageFiles(images, shape, length=8)[3]
    assert x.shape == shape and x.dtype == torch.float32 and 0 <= y < 10


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_real_input_case_names_its_bottleneck(images, monkeypatch, workers):
    monkeypatch.setenv(pipeline.FOLDER_ENV, str(images.parent))
    case = Case("resnet20", "train", batch_size=8, input_shape=(3, 32, 32), input="real",
                workers=workers)
    r = measure(case, SHORT)
    assert r.status == Status.OK and r.case.id.endswith(f"-real-w{workers}")
    assert r.loader_samples_per_s > 0 and r.model_samples_per_s > 0
    assert r.bottleneck == ("loader" if r.loader_samples_per_s < r.model_samples_per_s
                            else "model")
    assert r.pipeline_efficiency == pytest.approx(
        r.samples_per_s / min(r.loader_samples_per_s, r.model_samples_per_s))
    assert "DataLoader" in r.pipeline_method


def test_real_inputs_are_refused_where_they_cannot_run():
    from resnets.measure.workload import runtime_skip_reason

    assert "DataLoader" in runtime_skip_reason(
        Case("resnet20", device="cuda", compile="cudagraph", input="real"))
    with pytest.raises(ValueError, match="real inputs only"):
        Case("resnet20", workers=2)


# --- sweeps -------------------------------------------------------------------------------

def test_sweep_batches_double_and_keep_the_case_batch():
    assert sweep.batches(Case("lenet", batch_size=100), 256) == [1, 2, 4, 8, 16, 32, 64, 100,
                                                                   128, 256]
    assert sweep.batches(Case("lenet", batch_size=8), 6) == [1, 2, 4, 6]


def test_knee_is_the_smallest_batch_near_the_best():
    assert sweep.knee([(1, 10.0), (2, 19.0), (4, 30.0), (8, 31.0), (16, 30.5)]) == 4
    assert sweep.knee([(1, 10.0)]) == 1
    assert sweep.knee([]) is None


def _fake(throughput):
    """A measure function whose throughput at batch b is throughput(b)."""
    seen = []

    def measure_point(case):
        seen.append(case.batch_size)
        sps = throughput(case.batch_size)
        return Outcome.ok(SpeedResult(case=case, status=Status.OK, samples_per_s=sps,
                                      latency_s=case.batch_size / sps))
    return measure_point, seen


def test_cpu_sweep_stops_on_a_plateau_but_measures_the_case_batch():
    fn, seen = _fake(lambda b: 1000 * min(b, 16))   # flat from 16 on
    case = Case("lenet", batch_size=100)
    out = list(sweep.run(case, fn))
    assert seen == [1, 2, 4, 8, 16, 32, 64, 100]
    assert {o.record.knee_batch for _, o in out} == {16}
    assert [p.batch_size for p, _ in out] == seen


def test_sweep_stops_at_a_failure():
    def fn(case):
        if case.batch_size == 4:
            return Outcome.failed("OutOfMemoryError")
        return Outcome.ok(SpeedResult(case=case, status=Status.OK,
                                      samples_per_s=case.batch_size, latency_s=1.0))
    out = list(sweep.run(Case("lenet", batch_size=2), fn, ceiling=64))
    assert [(p.batch_size, o.status) for p, o in out] == [(4, "failed"), (1, "ok"), (2, "ok")]


@pytest.mark.slow
def test_auto_batch_sizes_record_every_point_and_the_knee(tmp_path):
    """``resnets run`` in this process (``helpers.cli``; its pytest child is the suite
    itself), one thread (a loaded 2-core machine times two threads' waits, not LeNet),
    and the report the run writes at its end: the sweep table of ``write_report``, which
    ``resnets report`` writes too."""
    run = tmp_path / "run"
    r = cli("run", "--models", "lenet", "--modes", "infer", "--devices", "cpu",
            "--memory-formats", "contiguous", "--precisions", "fp32", "--compile", "eager",
            "--batch-sizes", "auto", "--no-convergence", "--time-budget", "0.1",
            "--min-rounds", "3", "--threads", "1", "-o", run, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    docs = [json.loads(p.read_text()) for p in (run / store.CASES_DIR).glob("*.json")]
    extra = [d["benchmarks"][0]["extra_info"] for d in docs]
    batches = sorted(e["batch_size"] for e in extra)
    assert batches[:4] == [1, 2, 4, 8] and 64 in batches
    knees = {e["knee_batch"] for e in extra}
    assert len(knees) == 1 and knees.pop() in batches
    table = pd.read_csv(run / "tables" / "sweep.csv")
    assert len(table) == 1 and table["knee batch"].iloc[0] in batches


def test_compile_modes_that_need_cuda_graphs_skip_on_cpu():
    from resnets.measure.workload import runtime_skip_reason

    for mode in ("compile-reduce-overhead", "cudagraph"):
        assert "CUDA graphs" in runtime_skip_reason(Case("lenet", compile=mode))
    assert runtime_skip_reason(Case("lenet", compile="compile-max-autotune")) is None
