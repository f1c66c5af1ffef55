"""Data-parallel cases: DDP or FSDP (full shard) across processes, launched by torchrun.

``launch`` runs PyTorch's elastic launcher (``python -m torch.distributed.run``, i.e.
``torchrun``) with one process per device (``--standalone`` on one machine); every rank
runs ``main`` here: it joins the process group (NCCL on CUDA, gloo on CPU, with a
timeout, so a rank that dies never hangs the others) and runs the case through the one
engine (``runner.CaseRun``) with a ``Rank``: the model wrapped in
``DistributedDataParallel`` (``bucket_cap_mb`` from the case) or sharded by FSDP2's
``fully_shard`` (full shard; it runs on CPU too) before it is compiled, and a stop hook
through which rank 0's clock decides, once per block of steps, when every rank stops
(so all take the same steps and their collectives stay matched). So a data-parallel case
is timed with the single-device clock (CUDA events, no per-step synchronize), GC policy
and settings, and takes compile modes and real inputs. Rank 0 writes the result. On
several machines every node starts the same torchrun with a c10d rendezvous
(``torchrun_command``; ``follow`` is the other nodes' side; README, "Beyond one GPU").

What a case records, and how:

* step time: each rank times every step with the engine's clock; a step's time is the
  slowest rank's (per-step times are gathered), so global samples/s =
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
from dataclasses import replace
from pathlib import Path

from .. import children
from ..case import Case
from ..errors import UserError
from ..outcome import Outcome
from ..schema import SchemaError
from .allocator import child_env

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


def rank_settings(settings, cases):
    """Settings for the ranks of a run's data-parallel ``cases``. On CPU every rank of
    every world size gets the same threads (the cores over the largest number of ranks
    per node in the run), so world size n is n times the compute of world size 1, as
    with GPUs: otherwise world size 1 would use every core and efficiency would be
    measured against it."""
    if settings.threads:
        return settings
    local = max((c.world_size // settings.nnodes for c in cases
                 if c.strategy != "none" and c.device == "cpu"), default=1)
    return replace(settings, threads=max(1, (os.cpu_count() or 1) // local))


def launch(case: Case, settings, workdir: Path | None = None, timeout_s: float = 1800,
           python: str = sys.executable, src: Path | None = None) -> Outcome:
    """Run ``case`` under torchrun; a failure's reason is one line. ``workdir`` holds the
    request, the result and each failed rank's error (a temporary folder when None; on
    several nodes, a folder they all see). The ranks run ``python`` with the ``resnets``
    package in ``src`` (the gate's sides; None: the installed one)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="resnets-ddp-") as tmp:
            return launch(case, settings, Path(tmp), timeout_s, python, src)
    workdir.mkdir(parents=True, exist_ok=True)
    request, out = workdir / REQUEST, workdir / "result.json"
    for stale in (out, *workdir.glob("error-rank*.txt")):
        stale.unlink(missing_ok=True)
    from ..store import atomic_write_text

    atomic_write_text(request, json.dumps({"case": case.key(), "settings": settings.to_dict()}))
    env = child_env()  # the heap as this version's ranks set it, whichever code they run
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    proc = _torchrun(torchrun_command(case, settings, request, out, python), timeout_s, env)
    if isinstance(proc, str):
        return Outcome.failed(proc)
    if proc.returncode != 0 or not out.is_file():
        return Outcome.failed(_failure(proc, workdir))
    try:
        return Outcome.from_json(out.read_text())
    except SchemaError as exc:
        return Outcome.failed(f"rank 0 wrote an unreadable result: {exc}")


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

    from ..files import read_json

    done: set[Path] = set()
    idle_since = time.monotonic()
    while not newer(stop):
        new = sorted((p for p in folder.glob(f"*/{REQUEST}") if p not in done and newer(p)),
                     key=lambda p: p.stat().st_mtime)
        if not new:
            if time.monotonic() - idle_since > idle_timeout_s:
                raise UserError(f"no new case in {folder} for {idle_timeout_s:.0f} s; stopped "
                                "following (is the first node's run still going?)")
            time.sleep(poll_s)
            continue
        for request in new:
            done.add(request)
            try:
                case = Case.from_key(read_json(request)["case"])
            except (UserError, KeyError, TypeError, ValueError) as exc:
                print(f"{request}: not a case request, skipped ({str(exc)[:200]})", flush=True)
                continue
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


# Stop decisions, as rank 0 broadcasts them (None: go on).
DECISIONS = (None, "ci", "budget", "max_rounds", "warm")


class RankZeroDecides:
    """The timer's stop hook on a rank (``timer.Agreement``): rank 0's decision, broadcast
    to all once per ``every`` steps (outside the timed region). On its own clock a rank
    could take one step more than another, and that step's collectives (DDP's all-reduce,
    FSDP's gathers, DDP's BatchNorm-buffer broadcast, sent even under ``no_sync``) would
    meet the other's next ones: a hang until the timeout (seen once: gloo "Timed out
    waiting 300000ms for recv", DDP on a busy CPU)."""

    every = 5

    def __init__(self, device):
        import torch

        self._flag = torch.zeros(1, dtype=torch.int32, device=device)

    def decide(self, local: str | None) -> str | None:
        import torch.distributed as dist

        self._flag.fill_(DECISIONS.index(local))
        dist.broadcast(self._flag, src=0)
        return DECISIONS[int(self._flag.item())]


class Rank:
    """What a torchrun rank adds to the engine (``runner.CaseRun(..., rank=)``): its index
    (its seed offset), the model wrapped for the strategy, and the agreed stop hook."""

    def __init__(self, case: Case, device):
        self.case, self.device = case, device
        self.index = int(os.environ.get("RANK", 0))
        self.agreement = RankZeroDecides(device)
        self.module = None
        self.grad_bytes = 0

    def wrap(self, model):
        """DDP or FSDP2 around ``model``, after noting the full gradients' size."""
        self.grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.module = _wrap(model, self.case, self.device)
        return self.module


def run_rank(case: Case, settings) -> Outcome | None:
    """This rank's part of the case; rank 0 returns the outcome, the others None."""
    import torch
    import torch.distributed as dist

    from .runner import CaseRun, Skipped
    from .timer import time_block

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
        local_n = int(os.environ.get("LOCAL_WORLD_SIZE", n))
        settings = replace(settings, threads=settings.threads
                           or max(1, (os.cpu_count() or 1) // local_n))
        hooks = Rank(case, device)
        try:
            with CaseRun(case, settings, rank=hooks) as run:
                run.time_adaptive()
                nosync = []
                if case.strategy == "ddp" and case.mode == "train":
                    with run.mode(), hooks.module.no_sync():  # BN buffers still broadcast
                        nosync = time_block(run.work.step, case.device,
                                            settings.policy.budget_s / 2, 3, hooks.agreement)
                comm = (_comm_seconds(case, hooks.grad_bytes, device)
                        if case.mode == "train" else None)
                steps = _slowest([run.samples, nosync])
                run.samples = steps[0]
                record = run.finish()
        except Skipped as exc:  # the same on every rank: the rules and the hardware agree
            return Outcome.skipped(str(exc)) if rank == 0 else None
        peaks = _gathered(record.peak_memory_bytes)
        if rank != 0:
            # Leave with rank 0: a rank that tears its process group down while rank 0
            # still builds the record can end in gloo's "connection closed" abort (a
            # rank exited with -6, once, on a loaded 2-core machine).
            dist.barrier()
            return None
        record.peak_memory_bytes = max(peaks)
        record.memory_method = f"per device, the largest over ranks: {record.memory_method}"
        record.grad_bytes = hooks.grad_bytes
        if steps[1]:
            record.compute_s = statistics.median(steps[1])
        if comm is not None:
            record.comm_s, record.busbw, record.comm_method = comm
            if record.compute_s is not None and comm[0] > 0:
                exposed = max(0.0, record.latency_s - record.compute_s)
                record.comm_hidden = min(1.0, max(0.0, 1 - exposed / comm[0]))
        dist.barrier()
        return Outcome.ok(record)
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _gathered(value) -> list:
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def _slowest(series: list[list[float]]) -> list[list[float]]:
    """Each of this rank's step-time series, as the slowest rank's step by step (every
    rank took the same steps: their stop decisions were agreed)."""
    ranks = _gathered(series)
    return [[max(r[k][i] for r in ranks) for i in range(min(len(r[k]) for r in ranks))]
            for k in range(len(series))]


def main(argv: list[str]) -> int:
    """A rank: ``python -m resnets.measure.distributed REQUEST.json RESULT.json`` (torchrun
    sets RANK, LOCAL_RANK and WORLD_SIZE). An error is written beside the result, one line
    per rank, for the launcher to report."""
    from .runner import Settings

    request_path, out = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    rank = os.environ.get("RANK", "0")
    try:
        outcome = run_rank(Case.from_key(request["case"]), Settings.from_dict(request["settings"]))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        (out.parent / f"error-rank{rank}.txt").write_text(
            f"rank {rank}: {type(exc).__name__}: {first}\n")
        raise
    if outcome is not None:
        from ..store import atomic_write_text

        atomic_write_text(out, outcome.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
