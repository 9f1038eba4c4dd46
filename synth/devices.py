"""What hardware a process may use and which dtype suits it, decided where the work runs (not on the head)."""

from __future__ import annotations

import os
from pathlib import Path

# the variables through which CUDA (and ROCm) runtimes pick their devices
VISIBLE_DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
# x86 CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic; elsewhere bf16 is emulated and slower than fp32
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def hide_unreserved_gpus() -> bool:
    """In a Ray worker that reserved no GPU, hide every GPU; returns whether it did.

    Ray (>= 2.48) no longer sets CUDA_VISIBLE_DEVICES for a worker given 0 GPUs, so torch in such a
    worker sees all of the node's GPUs and uses cuda:0, beside the replica that reserved it. Call this
    before torch or vLLM initialise CUDA.
    """
    import ray

    if ray.get_gpu_ids():
        return False
    for name in VISIBLE_DEVICE_VARS:
        os.environ[name] = ""
    return True


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_dtype(on_gpu: bool, flags: set[str] | None = None) -> tuple[str, str]:
    """The dtype for an engine on this hardware, and why (for the log), when the job does not set one."""
    if on_gpu:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16", "GPU with bfloat16 support"
        return "float16", "GPU without bfloat16 support (compute capability < 8.0)"
    native = sorted(set(NATIVE_BF16_FLAGS) & (cpu_flags() if flags is None else flags))
    if native:
        return "bfloat16", f"CPU with native bfloat16 ({', '.join(native)})"
    return "float32", "CPU without native bfloat16 (no avx512_bf16 or amx_bf16: bfloat16 would be emulated)"
