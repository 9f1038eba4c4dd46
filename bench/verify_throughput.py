"""Throughput of synth's offline verification vs OpusFilter on the same UDHR pairs, in one run.

Pairs: the held-out set of bench/_udhr_pairs.py (good pairs and every defect kind, real UDHR text) for
the bench languages that synth's registry defines (27 of the 30 since the registry grew to 57 languages;
10 before), drawn with a fixed seed to N rows (20,000 by default: 5,082 pairs, each appearing ~4 times; synth's
dedup rejects the repeats, after every other filter has scored them).

synth: `synth.verify.cli_verify.verify_file` (= `synth verify IN.parquet --output OUT.parquet`) with the
`default` preset, offline: Parquet in, every filter, Parquet out, on every core the process may use
(forked workers score chunks, dedup runs in order in the parent); the LID model cache is cleared first
so loading lid.176 is timed.
OpusFilter 3.3.1 in its own venv (bench/_opusfilter.py): a YAML config with one `filter` step per
language (LanguageIDFilter with fasttext lid.176 on both sides, LengthRatioFilter char 2,
RepetitionFilter) on plain-text files, run by `OpusFilter(config).execute_steps()` (what the
`opusfilter` command runs), timed after its imports; the subprocess's whole wall time is shown too.
Neither time includes creating the venv or writing the input files. OpusFilter runs with its default
`default_n_jobs: 1` (one process), the configuration the target names; `--opusfilter-jobs 2` lets it
split each filter step over two processes too. The CPU ratio (all processes' CPU seconds) compares the
work per core either way.

Prints pairs/s of each and, as the last line, `ratio <synth pairs/s / OpusFilter pairs/s>`.

    .venv/bin/python bench/verify_throughput.py             # 20,000 pairs, ~1 min
    .venv/bin/python bench/verify_throughput.py --pairs 5000
    .venv/bin/python bench/verify_throughput.py --opusfilter-jobs 2   # OpusFilter on both cores as well
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import polars as pl
import yaml

import _opusfilter
from _udhr_pairs import LANGUAGES, SEED, Pair, build_pairs


def registry_codes() -> list[str]:
    """UDHR codes of the bench languages that synth's own registry defines (verify_file reads only that)."""
    from synth.languages import load_registry

    registry = load_registry()
    return [code for code, (flores, _, _) in LANGUAGES.items() if flores in registry]


def draw(n: int, seed: int) -> list[Pair]:
    pool = build_pairs(registry_codes(), seed=seed)
    rows = pool * -(-n // len(pool))  # repeated as often as needed, then shuffled
    random.Random(seed).shuffle(rows)
    return rows[:n]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_synth(rows: list[Pair], tmp: Path) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of this process and its (forked, reaped) workers."""
    from synth.verify.cli_verify import verify_file
    from synth.verify.lid.router import load_lid

    src = tmp / "pairs.parquet"
    pl.DataFrame({
        "id": [f"{p.id}-{i}" for i, p in enumerate(rows)],
        "lang": [p.lang for p in rows],
        "source_lang": ["eng_Latn"] * len(rows),
        "source": [p.source for p in rows],
        "text": [p.text for p in rows],
    }).write_parquet(src)
    load_lid.cache_clear()  # also drops the model's last-batch window cache: nothing is reused
    start, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    counts = verify_file(src, tmp / "verified.parquet", "default")
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu + _children_cpu() - children
    assert counts["rows"] == len(rows), counts
    print(f"synth: {counts['accepted']}/{counts['rows']} accepted; rejected by {counts['rejected_by_reason']}")
    return seconds, cpu_seconds


def time_opusfilter(rows: list[Pair], tmp: Path, jobs: int = 1) -> dict:
    by_label: dict[str, list[Pair]] = defaultdict(list)
    for p in rows:
        by_label[p.lid_label].append(p)
    steps = []
    for label, group in by_label.items():
        for side, texts in (("en", [p.source for p in group]), (label, [p.text for p in group])):
            (tmp / f"in.{label}.{side}").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        steps.append({"type": "filter", "parameters": {
            "inputs": [f"in.{label}.en", f"in.{label}.{label}"],
            "outputs": [f"out.{label}.en", f"out.{label}.{label}"],
            "filters": _opusfilter.filters(label),
        }})
    config = tmp / "opusfilter.yaml"
    config.write_text(yaml.safe_dump({"common": {"output_directory": str(tmp), "default_n_jobs": jobs}, "steps": steps},
                                     allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = _opusfilter.run_config(config)
    kept = sum(1 for label in by_label for _ in open(tmp / f"out.{label}.en", encoding="utf-8"))
    print(f"opusfilter: {kept}/{len(rows)} accepted ({len(steps)} filter steps, one per language)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--opusfilter-jobs", type=int, default=1,
                        help="OpusFilter's `default_n_jobs` (its filter steps split the files over that many "
                             "processes); 1, its default, is the baseline of the target")
    args = parser.parse_args()

    _opusfilter.ensure_venv()  # outside the timings
    rows = draw(args.pairs, args.seed)
    langs = sorted({p.lang for p in rows})
    print(f"{len(rows)} pairs in {len(langs)} languages ({', '.join(langs)}), "
          f"{sum(len(p.source) + len(p.text) for p in rows) / len(rows):.0f} characters per pair")
    with tempfile.TemporaryDirectory() as tmp:
        synth_seconds, synth_cpu = time_synth(rows, Path(tmp))
        opus = time_opusfilter(rows, Path(tmp), args.opusfilter_jobs)
    synth, baseline = len(rows) / synth_seconds, len(rows) / opus["seconds"]
    print(f"synth verify_file (default preset, offline): {synth_seconds:.1f}s = {synth:.0f} pairs/s")
    print(f"OpusFilter 3.3.1 execute_steps, n_jobs {args.opusfilter_jobs}:    {opus['seconds']:.1f}s = {baseline:.0f} pairs/s "
          f"(subprocess wall time with interpreter start and imports {opus['wall_seconds']:.1f}s = "
          f"{len(rows) / opus['wall_seconds']:.0f} pairs/s)")
    print(f"CPU seconds (all processes, so a busy machine does not skew them): synth {synth_cpu:.1f}s "
          f"({len(rows) / synth_cpu:.0f} pairs per CPU-second), OpusFilter {opus['cpu_seconds']:.1f}s "
          f"({len(rows) / opus['cpu_seconds']:.0f}); cpu ratio {opus['cpu_seconds'] / synth_cpu:.2f}")
    print(f"ratio {synth / baseline:.2f}")


if __name__ == "__main__":
    main()
