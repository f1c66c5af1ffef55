"""Data-parallel cases: DDP or FSDP (full shard) across processes, launched by torchrun.

``launch`` runs PyTorch's elastic launcher (``python -m torch.distributed.run``, i.e.
``torchrun``) with one process per device (``--standalone`` on one machine); every rank
runs ``main`` here: it joins the process group (NCCL on CUDA, gloo on CPU, with a
timeout, so a rank that dies never hangs the others), builds the case's workload on its
device with the model wrapped in ``DistributedDataParallel`` (``bucket_cap_mb`` from the
case) or sharded by FSDP2's ``fully_shard`` (full shard; it runs on CPU too), warms
up, and times steps. Rank 0 writes the result. On several machines every node starts
the same torchrun with a c10d rendezvous (``torchrun_command``; ``follow`` is the other
nodes' side; README, "Beyond one GPU").

What a case records, and how:

* step time: each rank times every step (device synchronized); a step's time is the
  slowest rank's (per-step times are gathered to rank 0), so global samples/s =
  world size x per-device batch / median step;
* communication alone: the step's collectives on a buffer of the gradients' size, timed
  in isolation: an all-reduce for DDP, an all-gather and a reduce-scatter for FSDP; bus
  bandwidth as nccl-tests define it: algbw x 2(n-1)/n for all-reduce, x (n-1)/n for
  all-gather and reduce-scatter, algbw = bytes / seconds;
* the share of communication hidden behind backward (DDP): a step under ``no_sync`` does
  no gradient communication, so exposed = step - step without sync, and hidden =
  1 - exposed / communication time (0 to 1);
* peak memory per device: the largest over ranks (CUDA allocator peak; on CPU the live
  tensor bytes of one step on each rank), which is where FSDP's sharding shows.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import children
from ..case import Case
from ..errors import UserError

TIMEOUT_S = 300        # a collective that waits this long means a rank is gone
COMM_REPEATS = 10
REQUEST = "request.json"
FOLDER = "distributed"   # in a run folder: one sub-folder per case on several nodes


def torchrun_command(case: Case, settings, request: Path, out: Path,
                     python: str = sys.executable) -> list[str]:
    """torchrun for one case: ``--standalone`` on one machine; across ``settings.nnodes``
    machines, a c10d rendezvous at ``settings.rdzv_endpoint`` whose id names the case, so
    every node's torchrun for the same case meets in the same rendezvous."""
    nodes = settings.nnodes
    if case.world_size % nodes:
        raise UserError(f"world size {case.world_size} does not split over {nodes} nodes")
    where = (["--standalone"] if nodes == 1 else
             [f"--nnodes={nodes}", "--rdzv-backend=c10d",
              f"--rdzv-endpoint={settings.rdzv_endpoint}",
              f"--rdzv-id={hashlib.sha1(case.id.encode()).hexdigest()[:16]}"])
    return [python, "-m", "torch.distributed.run", *where,
            f"--nproc-per-node={case.world_size // nodes}", "-m", "resnets.measure.distributed",
            str(request), str(out)]


def launch(case: Case, settings, workdir: Path | None = None, timeout_s: float = 1800,
           python: str = sys.executable, src: Path | None = None) -> tuple[str, object]:
    """Run ``case`` under torchrun: ("ok", record), ("skipped", reason) or ("failed",
    one-line reason). ``workdir`` holds the request, the result and each failed rank's
    error (a temporary folder when None; on several nodes, a folder they all see). The
    ranks run ``python`` with the ``resnets`` package in ``src`` (the gate's sides;
    None: the installed one)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="resnets-ddp-") as tmp:
            return launch(case, settings, Path(tmp), timeout_s, python, src)
    from ..schema import from_dict

    workdir.mkdir(parents=True, exist_ok=True)
    request, out = workdir / REQUEST, workdir / "result.json"
    for stale in (out, *workdir.glob("error-rank*.txt")):
        stale.unlink(missing_ok=True)
    from ..store import atomic_write_text

    atomic_write_text(request, json.dumps({"case": case.key(), "settings": settings.to_dict()}))
    env = None
    if src is not None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    proc = _torchrun(torchrun_command(case, settings, request, out, python), timeout_s, env)
    if isinstance(proc, str):
        return "failed", proc
    if proc.returncode != 0 or not out.is_file():
        return "failed", _failure(proc, workdir)
    reply = json.loads(out.read_text())
    if reply.get("outcome") == "skipped":
        return "skipped", reply["reason"]
    return "ok", from_dict(reply["record"], reply["samples"])


def _torchrun(cmd: list[str], timeout_s: float, env: dict | None = None):
    """The finished torchrun, or why it did not finish. torchrun stops every rank when it
    gets SIGTERM, so a timeout, Ctrl-C or a SIGTERM to us ends in ``_stop``; it stays in
    our process group, so a signal to the whole run reaches it too."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=children.dies_with_us())
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return f"torchrun did not finish within {timeout_s:.0f} s (every rank stopped)"
    except BaseException:
        _stop(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _stop(proc: subprocess.Popen, grace_s: float = 30) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _failure(proc, workdir: Path) -> str:
    """One line: the first failed rank's own error if it wrote one, else torchrun's
    summary of which rank exited with which code."""
    errors = sorted(workdir.glob("error-rank*.txt"))
    if errors:
        return errors[0].read_text().strip().splitlines()[-1]
    text = proc.stderr or ""
    # torchrun's summary: "Root Cause (first observed failure)", then "rank : 1
    # (local_rank: 1)" and "exitcode : 7".
    cause = text.rpartition("Root Cause")[2]
    found = re.search(r"^\s*rank\s*:\s*(\d+).*?^\s*exitcode\s*:\s*(-?\d+)", cause, re.S | re.M)
    if found:
        rank, code = found.groups()
        return (f"rank {rank} exited with code {code} and torchrun stopped the others "
                f"(torchrun exit {proc.returncode})")
    tail = [ln for ln in text.splitlines() if ln.strip()][-1:]
    return f"torchrun exited {proc.returncode}: {tail[0] if tail else 'no output'}"


def follow(folder: Path, settings, stop: Path, since: float, poll_s: float = 0.5,
           idle_timeout_s: float = 3600) -> int:
    """The other nodes' side of a multi-node run: run each case request the first node
    writes under ``folder`` (a shared file system) after ``since``, in the order they
    appear, until ``stop`` (the run's final state file) is written after ``since``. Each
    joins the first node's torchrun through the rendezvous; only global rank 0 writes
    the result."""
    def newer(p: Path) -> bool:
        return p.exists() and p.stat().st_mtime >= since

    done: set[Path] = set()
    idle_since = time.monotonic()
    while not newer(stop):
        new = sorted((p for p in folder.glob(f"*/{REQUEST}") if p not in done and newer(p)),
                     key=lambda p: p.stat().st_mtime)
        if not new:
            if time.monotonic() - idle_since > idle_timeout_s:
                raise UserError(f"no new case in {folder} for {idle_timeout_s:.0f} s")
            time.sleep(poll_s)
            continue
        for request in new:
            done.add(request)
            case = Case.from_key(json.loads(request.read_text())["case"])
            proc = _torchrun(torchrun_command(case, settings, request,
                                              request.parent / "result.json"), 1800)
            status = proc if isinstance(proc, str) else f"torchrun exit {proc.returncode}"
            print(f"{case.id}: {status}", flush=True)
        idle_since = time.monotonic()
    return 0


def _wrap(model, case: Case, device):
    if case.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        kwargs = {"bucket_cap_mb": case.bucket_mb} if case.bucket_mb else {}
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, **kwargs)
    # FSDP2 (fully_shard, which also runs on CPU with gloo): each child module with
    # parameters is one unit whose weights are gathered just before it runs and freed
    # after, then the root; gradients are reduce-scattered.
    from torch.distributed.fsdp import fully_shard

    for child in model.children():
        if any(True for _ in child.parameters()):
            fully_shard(child)
    return fully_shard(model)


def _comm_seconds(case: Case, grad_bytes: int, device) -> tuple[float, float, str]:
    """(seconds per step of the strategy's collectives alone, bus bandwidth, method)."""
    import torch
    import torch.distributed as dist

    n = case.world_size
    numel = max(1, grad_bytes // 4)
    buf = torch.ones(numel, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if case.strategy == "ddp":
        def once():
            dist.all_reduce(buf)
        factor, what = 2 * (n - 1) / n, "all-reduce"
    else:
        shard = torch.empty(numel // n + 1, dtype=torch.float32, device=device)
        full = torch.empty(shard.numel() * n, dtype=torch.float32, device=device)

        def once():
            dist.all_gather_into_tensor(full, shard)
            dist.reduce_scatter_tensor(shard, full)
        factor, what = (n - 1) / n, "all-gather + reduce-scatter"
    times = []
    for i in range(COMM_REPEATS + 2):
        dist.barrier()
        sync()
        t0 = time.perf_counter()
        once()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    busbw = (grad_bytes / t) * factor * (2 if case.strategy == "fsdp" else 1) if t > 0 else None
    return t, busbw, (f"{what} of a {grad_bytes / 2**20:.1f} MiB buffer (the gradients), "
                      f"median of {COMM_REPEATS}; bus bandwidth = bytes / s x "
                      f"{'2(n-1)/n' if case.strategy == 'ddp' else '(n-1)/n per collective'}")


def _timed_steps(step, sync, seconds: float, min_steps: int, device=None) -> list[float]:
    """Per-step seconds, for ``seconds`` and at least ``min_steps``. With ``device``, every
    rank takes the same number of steps: rank 0's clock decides, broadcast after each
    (untimed) step. On its own clock a rank could take one step more than another, and
    that step's collectives would meet the other's next ones: a hang until the timeout
    (seen once: gloo "Timed out waiting 300000ms for recv", DDP on a busy CPU)."""
    import torch
    import torch.distributed as dist

    out, end = [], time.perf_counter() + seconds
    go = torch.ones(1, dtype=torch.int32, device=device) if device is not None else None
    while True:
        t0 = time.perf_counter()
        step()
        sync()
        out.append(time.perf_counter() - t0)
        more = len(out) < min_steps or time.perf_counter() < end
        if go is not None:
            go.fill_(int(more))
            dist.broadcast(go, src=0)
            more = bool(go.item())
        if not more:
            return out


def run_rank(case: Case, settings) -> dict | None:
    """This rank's part of the case; rank 0 returns the reply, the others None."""
    import torch
    import torch.distributed as dist

    from ..schema import Env, SpeedResult, Status, Timing
    from ..stats import Measurement
    from .env import environment
    from .flops import count_flops
    from .memory import LiveTensorBytes
    from .workload import build, math_mode, runtime_skip_reason

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    n = int(os.environ["WORLD_SIZE"])
    if n != case.world_size:
        raise UserError(f"launched with {n} processes for a world size of {case.world_size}")
    cuda = case.device == "cuda"
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        reason = runtime_skip_reason(case)
        if reason:
            return {"outcome": "skipped", "reason": reason} if rank == 0 else None
        local_n = int(os.environ.get("LOCAL_WORLD_SIZE", n))
        threads = settings.threads or max(1, (os.cpu_count() or 1) // local_n)
        torch.set_num_threads(threads)
        torch.set_flush_denormal(settings.flush_denormal)
        single = Case(**{**case.key(), "input_shape": tuple(case.input_shape),
                         "device": case.device, "world_size": 1, "strategy": "none"})
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        with math_mode(case):
            torch.manual_seed(settings.seed + rank)
            work = build(single)
            if cuda:
                work.model.to(device)
                work.inputs, work.targets = work.inputs.to(device), work.targets.to(device)
            params = sum(p.numel() for p in work.model.parameters())
            grad_bytes = sum(p.numel() * p.element_size() for p in work.model.parameters())
            work.runner = _wrap(work.model, case, device)
            if case.mode == "train":
                from .workload import make_optimizer

                work.optimizer, work.scaler = make_optimizer(single, work.runner)
            policy = settings.policy
            for _ in range(max(3, policy.warmup_rounds)):
                work.step()
            sync()
            dist.barrier()
            steps = _timed_steps(work.step, sync, policy.budget_s, max(3, policy.min_rounds),
                                 device)
            nosync = []
            if case.strategy == "ddp" and case.mode == "train":
                with work.runner.no_sync():  # forward still broadcasts BN buffers: agree
                    nosync = _timed_steps(work.step, sync, policy.budget_s / 2, 3, device)
            comm = _comm_seconds(case, grad_bytes, device) if case.mode == "train" else None
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                work.step()
                sync()
                peak = torch.cuda.max_memory_allocated(device)
            else:
                tracker = LiveTensorBytes(work.tensors())
                with tracker:
                    work.step()
                peak = tracker.peak
        gathered = [None] * n
        dist.all_gather_object(gathered, {"steps": steps, "nosync": nosync, "peak": peak})
        if rank != 0:
            return None
        rounds = min(len(g["steps"]) for g in gathered)
        samples = [max(g["steps"][i] for g in gathered) for i in range(rounds)]
        m = Measurement(tuple(samples))
        flops = count_flops(case.model, case.mode, case.batch_size, case.input_shape)
        record = SpeedResult(
            case=case, status=Status.OK, samples=list(m.samples), time=m.summary(),
            params=params, samples_per_s=n * case.batch_size / m.median, latency_s=m.median,
            samples_per_s_per_device=case.batch_size / m.median,
            peak_memory_bytes=max(g["peak"] for g in gathered),
            memory_method=("per device, the largest over ranks: " +
                           ("torch.cuda.max_memory_allocated" if cuda else
                            "live tensor-storage bytes of one step")),
            flops_fwd=flops["flops_fwd"], flops_step=flops["flops_step"],
            flops_method=flops["flops_method"] + ", per device", grad_bytes=grad_bytes,
            env=Env(**environment()),
            timing=Timing(
                method=f"one {case.strategy.upper()} step per sample on each of {n} ranks "
                       f"(torchrun, {'nccl' if cuda else 'gloo'}); a step's time is the "
                       "slowest rank's", clock="time.perf_counter per step, device synchronized",
                rounds=m.rounds, stop_reason="budget", threads=threads,
                budget_s=policy.budget_s, min_rounds=policy.min_rounds, seed=settings.seed))
        if nosync:
            record.compute_s = statistics.median(
                max(g["nosync"][i] for g in gathered)
                for i in range(min(len(g["nosync"]) for g in gathered)))
        if comm is not None:
            record.comm_s, record.busbw, record.comm_method = comm
            if record.compute_s is not None and comm[0] > 0:
                exposed = max(0.0, m.median - record.compute_s)
                record.comm_hidden = min(1.0, max(0.0, 1 - exposed / comm[0]))
        return {"outcome": "ok", "record": record.to_dict(), "samples": record.samples}
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def main(argv: list[str]) -> int:
    """A rank: ``python -m resnets.measure.distributed REQUEST.json RESULT.json`` (torchrun
    sets RANK, LOCAL_RANK and WORLD_SIZE). An error is written beside the result, one line
    per rank, for the launcher to report."""
    from .runner import Settings

    request_path, out = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    rank = os.environ.get("RANK", "0")
    try:
        reply = run_rank(Case.from_key(request["case"]), Settings.from_dict(request["settings"]))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        (out.parent / f"error-rank{rank}.txt").write_text(
            f"rank {rank}: {type(exc).__name__}: {first}\n")
        raise
    if reply is not None:
        from ..store import atomic_write_text

        atomic_write_text(out, json.dumps(reply, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
