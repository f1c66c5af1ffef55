#!/usr/bin/env python3
"""The GPU path proven by one command, in at most five minutes (not a pytest file).

    python3 bench/gpu_proof.py [-o DIR] [--budget-s 285]   # on a machine with a CUDA GPU
    python3 bench/gpu_proof.py --rehearse [-o DIR]          # every step, toy sizes, CPU

A GPU is lent to this project now and then, for a quarter of an hour, with no network and
whatever PyTorch is installed there; so this runs the tree in place (``PYTHONPATH``, no
install and no download) and spends the GPU's minutes measuring, not setting up. Each
step runs in its own process with a deadline from one clock; a step that no longer fits
is dropped and says so, most important first:

1. the environment: GPU, driver, torch/CUDA/cuDNN, clocks, attainable bf16 and fp32 FLOP/s;
2. the CUDA tests (the CUDA-graph step against eager steps among them);
3. a gate A/A (this tree on both sides) and 4. a gate against a head slowed by one extra
   elementwise multiply per residual block (``slowed_copy``: a real code change, about
   5% of a ResNet step; LeNet has no residual block, so its cases are the control), both
   in one process on a GPU-sized subset of the gate preset;
5. the reference report's eager cases (``--preset reference``: ResNet-18/50 at 224x224,
   both modes, PyTorch's default numerics against channels-last bf16), with energy per
   sample where NVML can be read;
6. the launch-bound rescue: eager against ``cudagraph`` and ``compile-reduce-overhead``
   for lenet_bn and resnet20 training, with intervals (each captured case checks its
   graph against eager steps before it is timed);
7. the reference's compiled cases and 8. its batch sweep of ResNet-50 training, into the
   same run folder (``--resume``), then the report.

It writes ``DIR/PROOF.md`` (each claim, its number, passed / failed / dropped) and
``DIR/proof.json``; the reference report goes to ``reports/reference-<gpu>/``. With
``--rehearse`` the same steps run on CPU at toy sizes (the gate on lenet and resnet20
inference, the CUDA-only parts recorded as skipped) in about two minutes, in CI, so a
typo never costs GPU minutes. Its limit is wider than the GPU's (CI machines differ: the
same rehearsal took 75-111 s on three of them, and its steps timed out under a 110 s cap).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SLOWED_LINE = "        return self.relu(out)\n"
# The slowed head's change: on a GPU one more elementwise pass per block; on a CPU such a
# pass costs about 1-3% of a step (below what a short CPU gate detects), so the rehearsal
# adds one more 3x3 convolution per basic block (its output times 0: same numbers), ~40%.
SLOWED_WITH = {
    False: "        return self.relu(out * 1.0)  # gpu_proof: one more elementwise pass\n",
    True: "        return self.relu(out + 0.0 * self.conv2(out) if out.shape[1] == "
          "self.conv2.in_channels else out)  # gpu_proof: one more convolution\n",
}
SLOWED_CLAIM = {False: "one more elementwise pass per residual block",
                True: "one more 3x3 convolution per basic block"}
REHEARSAL_S = 240  # the rehearsal's budget: steps end early; it only caps a hung one
RESERVE_S = 8.0  # to write PROOF.md after the last step


@dataclass
class Claim:
    step: str
    claim: str
    value: str = ""
    result: str = "passed"  # passed | failed | dropped | skipped | ran (a rehearsal)


@dataclass
class Proof:
    rehearse: bool
    out: Path
    budget_s: float
    started: float = field(default_factory=time.monotonic)
    claims: list[Claim] = field(default_factory=list)
    steps: dict = field(default_factory=dict)

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started) - RESERVE_S

    def claim(self, step: str, claim: str, value="", ok: bool | None = True) -> None:
        """``ok``: True/False judged, None: not judged (skipped here)."""
        result = ("skipped" if ok is None else "ran" if self.rehearse and ok
                  else "passed" if ok else "failed")
        self.claims.append(Claim(step, claim, str(value), result))


def resnets(*args, timeout: float) -> subprocess.CompletedProcess:
    return call([sys.executable, "-m", "resnets", *map(str, args)], timeout)


def call(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``cmd`` with this tree first on the path; past ``timeout`` it gets SIGTERM (a run
    keeps what it measured), then SIGKILL. A timed-out call has return code 124."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(1.0, timeout))
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        code = 124
    return subprocess.CompletedProcess(cmd, code, out, err)


def tail(proc: subprocess.CompletedProcess, n: int = 3) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln]
    return " | ".join(lines[-n:])[-400:]


# --- the steps ----------------------------------------------------------------------------

def environment(p: Proof, timeout: float) -> None:
    import torch

    from resnets.measure.env import environment as env
    from resnets.measure.peak import attainable_flops

    device = "cuda" if torch.cuda.is_available() else "cpu"
    facts = {**env(), "device": device}
    if device == "cuda":
        query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,pstate"
        smi = call(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], 20)
        facts["nvidia_smi"] = {"query": query, "answer": smi.stdout.strip()}
    peaks = {prec: attainable_flops(device, prec)["attainable_flops_per_s"]
             for prec in ("fp32", "bf16")}
    facts["attainable_flops_per_s"] = peaks
    (p.out / "env.json").write_text(json.dumps(facts, indent=1, default=str))
    gpu = facts.get("gpu_name") or f"CPU {facts.get('cpu_model')}"
    p.claim("environment", "machine and software recorded (env.json)",
            f"{gpu}; driver {facts.get('driver')}; torch {facts['torch']}, CUDA "
            f"{facts['cuda']}, cuDNN {facts['cudnn']}")
    p.claim("environment", "attainable FLOP/s measured (large matmul)",
            f"bf16 {peaks['bf16'] / 1e12:.1f} TFLOP/s, fp32 {peaks['fp32'] / 1e12:.1f} TFLOP/s")
    if device == "cuda":
        torch.cuda.empty_cache()


def cuda_tests(p: Proof, timeout: float) -> None:
    r = call([sys.executable, "-m", "pytest", "tests/test_cuda_variants.py",
              "tests/test_measure.py", "-q", "-p", "no:cacheprovider", "-k",
              "cuda and not compile_modes and not torchrun"], timeout)
    (p.out / "cuda-tests.txt").write_text(r.stdout[-20000:] + r.stderr[-5000:])
    found = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                    r.stdout.strip().splitlines()[-1]
                                                    if r.stdout.strip() else ""))
    text = ", ".join(f"{n} {k}" for k, n in found.items()) or tail(r)
    if not found.get("passed") and not found.get("failed"):
        p.claim("cuda tests", "the CUDA tests pass", f"{text} (no CUDA here)", None)
        return
    p.claim("cuda tests", "the CUDA tests pass (CUDA-graph replays = eager steps among them)",
            text, r.returncode == 0 and not found.get("failed") and not found.get("error"))


def slowed_copy(dest: Path, rehearse: bool = False) -> Path:
    """This tree's package with one more elementwise pass (``out * 1.0``) at the end of
    every residual block: a real change of model code whose cost is a memory pass over
    each block's output (a few percent of a ResNet step, nothing for LeNet). Rehearsing,
    one more convolution per basic block instead (``SLOWED_WITH``)."""
    shutil.copytree(ROOT / "resnets", dest / "resnets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    blocks = dest / "resnets" / "models" / "blocks.py"
    text = blocks.read_text()
    if text.count(SLOWED_LINE) != 2:
        raise RuntimeError(f"{blocks}: expected both blocks to end with {SLOWED_LINE.strip()!r}")
    blocks.write_text(text.replace(SLOWED_LINE, SLOWED_WITH[rehearse]))
    return dest


def gate_subset(p: Proof) -> list[str]:
    if p.rehearse:
        return ["--devices", "cpu", "--models", "lenet_bn,resnet20", "--modes", "infer",
                "--memory-formats", "contiguous", "--precisions", "fp32", "--compile",
                "eager", "--time-budget", "0.4"]
    return ["--models", "resnet50,lenet_bn", "--modes", "train,infer", "--memory-formats",
            "channels_last", "--precisions", "bf16", "--compile", "eager", "--time-budget",
            "1.5"]


def gate(p: Proof, timeout: float, slowed: bool) -> None:
    name = "gate-slowed" if slowed else "gate-aa"
    out = p.out / name
    with tempfile.TemporaryDirectory(prefix="resnets-proof-") as tmp:
        head = slowed_copy(Path(tmp), p.rehearse) if slowed else ROOT
        r = resnets("gate", "--base-src", ROOT, "--head-src", head, "--preset", "gate",
                    *gate_subset(p), "-o", out, timeout=timeout)
    (out / "gate-log.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "gate-log.txt").write_text(r.stderr[-20000:])
    if not (out / "compare.json").is_file():
        p.claim(name, "the gate ran to a verdict", f"exit {r.returncode}: {tail(r)}", False)
        return
    cmp = json.loads((out / "compare.json").read_text())
    info = json.loads((out / "gate.json").read_text())
    verdicts = {c["key"]: c["verdict"] for c in cmp["cases"]}
    ratios = {c["key"]: c["timing"]["ratio"] for c in cmp["cases"] if c.get("timing")}
    detect = sorted(c["timing"]["detectable"] for c in cmp["cases"] if c.get("timing"))
    per_side = info["seconds"] / 2
    summary = "; ".join(f"{k.split('-bs')[0]}: {v} ({ratios[k] - 1:+.1%})" if k in ratios
                        else f"{k}: {v}" for k, v in verdicts.items())
    p.steps[name] = {"exit": r.returncode, "verdicts": verdicts, "ratios": ratios,
                     "seconds": info["seconds"], "repeats": info["repeats"]}
    median_detect = f"{detect[len(detect) // 2]:.1%}" if detect else "-"
    if not slowed:
        quiet = all(v in ("unchanged", "noisy") for v in verdicts.values())
        p.claim(name, "A/A: exit 0, no case called a regression or an improvement",
                f"exit {r.returncode}; {summary}", r.returncode == 0 and quiet)
    else:
        resnet = {k: v for k, v in verdicts.items() if not k.startswith("lenet")}
        control = {k: v for k, v in verdicts.items() if k.startswith("lenet")}
        p.claim(name, f"slowed head ({SLOWED_CLAIM[p.rehearse]}): exit 1, "
                "every ResNet case a regression, LeNet (no block) not",
                f"exit {r.returncode}; {summary}",
                r.returncode == 1 and all(v == "regression" for v in resnet.values())
                and not any(v == "regression" for v in control.values()))
    p.claim(name, "detectable change and time", f"median detectable {median_detect}; "
            f"{per_side:.0f} s per side, {max(info['repeats'].values(), default=0)} pass(es)")


def reference_folder(p: Proof) -> Path:
    if p.rehearse:
        return p.out / "reference-rehearsal"
    env = json.loads((p.out / "env.json").read_text()) if (p.out / "env.json").is_file() else {}
    gpu = re.sub(r"[^a-z0-9]+", "-", str(env.get("gpu_name") or "gpu").lower()).strip("-")
    return ROOT / "reports" / f"reference-{gpu.replace('nvidia-', '')}"


def reference_args(p: Proof) -> list[str]:
    toy = (["--devices", "cpu", "--models", "resnet18", "--image-sizes", "16", "--compile",
            "eager", "--time-budget", "0.2", "--min-rounds", "3"] if p.rehearse else [])
    return ["--preset", "reference", "--no-convergence", "--no-report", *toy]


# pytest -k expressions splitting the reference run into phases of one run folder.
PHASES = {"eager": "eager and not (resnet50 and train and channels_last)",
          "compiled": "compile", "sweep": ""}


def reference(p: Proof, timeout: float, phase: str) -> None:
    run = reference_folder(p)
    first = not (run / "run-options.json").exists()
    if first and run.exists():
        shutil.rmtree(run)  # an earlier proof's report: this one replaces it
    select = ["--", "-k", PHASES[phase]] if PHASES[phase] else []
    args = (reference_args(p) + ["-o", run] if first else ["--resume", run, "--no-report"])
    r = resnets("run", *args, *select, timeout=timeout)
    ok = r.returncode in (0, 1)
    p.claim(f"reference: {phase}", f"the reference run's {phase} cases measured",
            f"exit {r.returncode}" + ("" if ok else f": {tail(r)}"), ok)


def launch_rescue(p: Proof, timeout: float) -> None:
    from resnets.report import load, speedups

    run = p.out / "launch"
    r = resnets("run", "--preset", "launch", "--models", "lenet_bn,resnet20", "--modes", "train",
                "--precisions", "default", "--compile", "eager,cudagraph,compile-reduce-overhead",
                "--no-convergence", "--no-report", "--time-budget", "0.3" if p.rehearse else "2",
                "-o", run, timeout=timeout)
    try:
        df = load([run])
    except Exception as exc:
        p.claim("launch-bound rescue", "measured", f"exit {r.returncode}: {exc}", False)
        return
    if (df["status"] == "skipped").all():
        p.claim("launch-bound rescue", "eager vs cudagraph vs compile-reduce-overhead",
                "every case skipped: " + str(df["error"].iloc[0]), None)
        return
    table = speedups(df, "contiguous-default-eager")
    rows = [f"{t.model}: {t.variant.split('-', 2)[2]} {t.speedup:.2f}x "
            f"({t.speedup_low:.2f}-{t.speedup_high:.2f})"
            for t in table.itertuples() if t.variant != t.baseline]
    p.claim("launch-bound rescue", "speed-ups over eager (95% intervals)", "; ".join(rows),
            bool(rows))
    graphs = df[df["compile"] == "cudagraph"]
    bad = graphs[graphs["status"] != "ok"]
    p.claim("launch-bound rescue", "every CUDA graph passed its self-check (two replays = two "
            "eager steps) before timing", f"{len(graphs) - len(bad)} of {len(graphs)}"
            + (f"; {bad['error'].iloc[0]}" if len(bad) else ""), len(graphs) > 0 and bad.empty)


def report(p: Proof, timeout: float) -> None:
    from resnets.report import advise, load

    run = reference_folder(p)
    r = resnets("report", run, "-o", run, timeout=timeout)
    if r.returncode != 0:
        p.claim("reference report", "written", tail(r), False)
        return
    df = load([run])
    ok = df[df["status"] == "ok"]
    where = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    p.claim("reference report", f"written to {where}",
            f"{len(ok)} cases measured, {int((df['status'] != 'ok').sum())} without a measurement",
            not ok.empty)
    for a in advise(df):
        p.claim("reference report", f"{a.model} {a.mode} bs{a.batch_size}: {a.verdict}",
                f"{a.speedup:.2f}x ({a.speedup_low:.2f}-{a.speedup_high:.2f})" if a.pick
                and a.pick != a.baseline else "-")
    knees = ok["knee_batch"].dropna()
    if len(knees):
        p.claim("reference report", "ResNet-50 training batch sweep: knee",
                f"batch {int(knees.iloc[0])} ({len(knees)} points)")
    energy = ok.dropna(subset=["energy_j_per_sample"])
    why = df["energy_error"].dropna()
    p.claim("energy", "energy per sample recorded",
            "; ".join(f"{e.model} {e.mode} {e.variant}: {e.energy_j_per_sample * 1e3:.1f} mJ/"
                      f"sample, net {(e.energy_net_j_per_sample or float('nan')) * 1e3:.1f}"
                      for e in energy.itertuples()) if len(energy) else
            (why.iloc[0] if len(why) else "no case measured"),
            True if len(energy) else (None if p.rehearse else False))


# Most important first: (name, seconds it needs at least, the step).
STEPS: list[tuple[str, float, Callable]] = [
    ("environment", 10, environment),
    ("cuda tests", 20, cuda_tests),
    ("gate A/A", 30, lambda p, t: gate(p, t, slowed=False)),
    ("gate slowed", 30, lambda p, t: gate(p, t, slowed=True)),
    ("reference: eager", 20, lambda p, t: reference(p, t, "eager")),
    ("launch-bound rescue", 20, launch_rescue),
    ("reference: compiled", 30, lambda p, t: reference(p, t, "compiled")),
    ("reference: sweep", 20, lambda p, t: reference(p, t, "sweep")),
    ("reference report", 10, report),
]
# Of the time left, the share a step may take when later steps still wait (the report's
# phases take what is left: their partial results are kept).
SHARE = {"gate A/A": 0.25, "gate slowed": 0.33, "reference: eager": 0.3,
         "launch-bound rescue": 0.4, "reference: compiled": 0.6}


def run(p: Proof) -> None:
    for name, needs, step in STEPS:
        needs *= 0.25 if p.rehearse else 1.0  # toy sizes start faster
        left = p.left()
        if left < needs:
            p.claims.append(Claim(name, "dropped: out of time", f"{left:.0f} s left", "dropped"))
            continue
        t0 = time.monotonic()
        try:
            step(p, left * SHARE.get(name, 1.0) if left * SHARE.get(name, 1.0) >= needs else left)
        except Exception as exc:
            p.claim(name, "the step ran", f"{type(exc).__name__}: {exc}"[:300], False)
        p.steps.setdefault(name, {})["seconds"] = round(time.monotonic() - t0, 1)


def write(p: Proof) -> None:
    wall = time.monotonic() - p.started
    limit = REHEARSAL_S + 10 if p.rehearse else 300
    p.claim("total", f"finished in at most {limit} s", f"{wall:.0f} s", wall <= limit)
    mark = {"passed": "pass", "failed": "**FAIL**", "dropped": "dropped", "skipped": "skipped",
            "ran": "ran"}
    lines = [f"# GPU proof{' (rehearsal on CPU)' if p.rehearse else ''}", "",
             f"`python3 bench/gpu_proof.py{' --rehearse' if p.rehearse else ''}`, commit "
             f"{_commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "| step | claim | number | result |", "|---|---|---|---|"]
    from resnets.text import md

    lines += [f"| {md(c.step)} | {md(c.claim)} | {md(c.value)} | {mark[c.result]} |"
              for c in p.claims]
    counts = {k: sum(c.result == k for c in p.claims) for k in mark}
    lines += ["", ", ".join(f"{n} {k}" for k, n in counts.items() if n) + "."]
    (p.out / "PROOF.md").write_text("\n".join(lines) + "\n")
    (p.out / "proof.json").write_text(json.dumps(
        {"rehearse": p.rehearse, "wall_s": wall, "commit": _commit(),
         "claims": [asdict(c) for c in p.claims], "steps": p.steps}, indent=1, default=str))


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                       text=True, check=False)
    return r.stdout.strip() or "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rehearse", action="store_true",
                    help="every step at toy sizes on CPU (CUDA-only parts skipped)")
    ap.add_argument("-o", "--out", type=Path, help="the proof's folder (default "
                    "reports/gpu-proof-<UTC time>, or a temporary one with --rehearse)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help=f"wall-clock limit (default 285, rehearsal {REHEARSAL_S})")
    args = ap.parse_args(argv)
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu-proof-rehearsal-")) if args.rehearse
                       else ROOT / "reports" / time.strftime("gpu-proof-%Y%m%dT%H%M%SZ",
                                                               time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)
    p = Proof(args.rehearse, out, args.budget_s or (REHEARSAL_S if args.rehearse else 285))
    run(p)
    write(p)
    print((out / "PROOF.md").read_text())
    print(f"gpu_proof: {out / 'PROOF.md'}", file=sys.stderr)
    return 1 if any(c.result == "failed" for c in p.claims) else 0


if __name__ == "__main__":
    sys.exit(main())
