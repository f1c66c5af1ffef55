"""Everything about the machine and software that a number depends on."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The ISA features that decide how fast a precision runs on a CPU (x86: AVX-512, its bf16
# and VNNI extensions, AMX; Arm: SVE, bf16, int8 matmul), as /proc/cpuinfo names them.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16",
             "amx_int8", "amx_tile", "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_flags() -> str | None:
    """The relevant ``ISA_FLAGS`` this CPU has, space-separated (None: unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return " ".join(f for f in ISA_FLAGS if f in have)
    return None


def _run(cmd: list[str], cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=cwd)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def static_environment() -> dict:
    """What cannot change during a run (also the run's pytest-benchmark machine_info)."""
    pkg_dir = str(Path(__file__).resolve().parents[2])
    env = {
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        # What PyTorch's CPU kernels dispatch to (DEFAULT, AVX2, AVX512, ...) and the ISA
        # flags behind it: two "AMD EPYC" machines gave opposite bf16 advice on these.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "git_commit": _run(["git", "rev-parse", "HEAD"], cwd=pkg_dir),
        # Tracked files changed since the commit (what makes the commit not say the code).
        "git_dirty": bool(_run(["git", "diff", "HEAD", "--name-only"], cwd=pkg_dir)),
        "gpu_name": None, "gpu_count": 0, "gpu_sm_count": None, "gpu_memory_bytes": None,
        "gpu_capability": None, "driver": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu_name=props.name, gpu_count=torch.cuda.device_count(),
                   gpu_sm_count=props.multi_processor_count,
                   gpu_memory_bytes=props.total_memory,
                   gpu_capability=f"{props.major}.{props.minor}",
                   driver=_run(["nvidia-smi", "--query-gpu=driver_version",
                                "--format=csv,noheader"]))
    return env


def environment() -> dict:
    """Static facts plus the switches that can change between cases."""
    return {
        **static_environment(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }

