"""The GPU proof's own logic on CPU (bench/gpu_proof.py; the whole rehearsal runs in
.ci/run): the slowed head changes only the residual blocks, the reference run's phases
split its cases, and a step that no longer fits is dropped, not started."""
import filecmp
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from resnets.presets import Selection

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_proof", ROOT / "bench" / "gpu_proof.py")
proof = sys.modules["gpu_proof"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proof)


@pytest.mark.parametrize("rehearse", [False, True])
def test_the_slowed_head_changes_only_the_residual_blocks(tmp_path, rehearse):
    head = proof.slowed_copy(tmp_path, rehearse)
    diff = filecmp.dircmp(ROOT / "resnets", head / "resnets", ignore=["__pycache__"])
    changed = []

    def walk(d, where=""):
        changed.extend(where + f for f in d.diff_files)
        assert not d.left_only and not d.right_only
        for name, sub in d.subdirs.items():
            walk(sub, where + name + "/")

    walk(diff)
    assert changed == ["models/blocks.py"]
    new = (head / "resnets/models/blocks.py").read_text().splitlines()
    old = (ROOT / "resnets/models/blocks.py").read_text().splitlines()
    pair = (proof.SLOWED_LINE.rstrip("\n"), proof.SLOWED_WITH[rehearse].rstrip("\n"))
    assert [(a, b) for a, b in zip(old, new) if a != b] == [pair] * 2


@pytest.mark.slow
def test_the_rehearsals_slowed_blocks_compute_the_same_numbers(tmp_path):
    """The extra convolution is multiplied by 0, so the slowed head's outputs are this
    tree's; it runs in both block kinds (the bottleneck keeps its one pass)."""
    head = proof.slowed_copy(tmp_path, rehearse=True)
    code = ("import torch; from resnets import models; torch.manual_seed(0); "
            "x = torch.randn(2, 3, 32, 32); "
            "print([models.create(n).eval()(x).sum().item() for n in ('resnet20', 'resnet50')])")
    out = [subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True,
                          text=True, check=True).stdout for src in (ROOT, head)]
    assert out[0] == out[1] and out[0].startswith("[")


def _selected(expr, ids):
    if not expr:
        return set(ids)
    e = Expression.compile(expr)
    return {i for i in ids if e.evaluate(lambda word, i=i: word in f"test_speed[{i}]")}


def test_the_reference_phases_split_its_cases_and_the_sweep_comes_last():
    cases = Selection("reference").cases()
    ids = [c.id for c in cases]
    eager = _selected(proof.PHASES["eager"], ids)
    compiled = _selected(proof.PHASES["compiled"], ids)
    assert eager and compiled and not eager & compiled
    rest = set(ids) - eager - compiled
    assert rest == {c.id for c in cases if c.sweep}
    assert rest == {"resnet50-train-cuda-channels_last-bf16-eager-bs128-3x224x224"}
    assert {c.variant for c in cases} == {"contiguous-default-eager", "channels_last-bf16-eager",
                                          "channels_last-bf16-compile"}


def test_a_step_that_does_not_fit_is_dropped_and_the_rest_go_on(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(proof, "STEPS", [
        ("first", 1, lambda p, t: ran.append(("first", t))),
        ("too big", 1e6, lambda p, t: ran.append(("too big", t))),
        ("broken", 1, lambda p, t: 1 / 0),
        ("last", 1, lambda p, t: ran.append(("last", t)))])
    p = proof.Proof(False, tmp_path, budget_s=60)
    proof.run(p)
    assert [name for name, _ in ran] == ["first", "last"]
    assert all(0 < t <= 60 for _, t in ran)
    results = {c.step: c.result for c in p.claims}
    assert results == {"too big": "dropped", "broken": "failed"}
    proof.write(p)
    text = (tmp_path / "PROOF.md").read_text()
    assert "| too big | dropped: out of time |" in text and "**FAIL**" in text
