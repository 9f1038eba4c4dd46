"""One executor for verification? `synth verify`'s fork pool against `synth run`'s Ray actors, same pairs.

Both executors score the same pairs with the same Verifier (the `default` preset, offline), with the
same number of workers (`--workers`, the cores by default), and the bench checks that they reach the
same verdicts (what is accepted does not depend on the executor):

(a) fork: `synth.verify.pairs.scored_batches`, what `synth verify` runs: a `fork` Pool of processes that
    inherit the loaded Verifier, Arrow batches sent to them in chunks of whole languages, dedup
    finished in the parent from the sketches they send back.
(b) ray: `synth.verify.workers.VerificationPool`, what `synth run` runs: `VerifierWorker` actors on a
    local Ray, each building its own Verifier from the job's `VerifierSpec`; Candidates sent in slices
    (`--slice-rows`, the next slice submitted before the last one's scores are read, as the runner
    overlaps them with generation), dedup finished in the driver with `Verifier.finish`.

Prints, for each, the start-up (Ray's start; the actors' start, each loading the filters) and the
scoring wall time, then `ratio <ray scoring seconds / fork scoring seconds>`. CPU seconds are not
compared: Ray's workers are the raylet's children, not this process's.

    .venv/bin/python bench/verify_executors.py                  # 8,000 pairs, about 2-3 min on 2 cores
    .venv/bin/python bench/verify_executors.py --pairs 20000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_throughput import draw  # noqa: E402
from _udhr_pairs import SEED  # noqa: E402


def pairs_table(rows) -> pa.Table:
    return pa.table({
        "id": [f"{p.id}-{i}" for i, p in enumerate(rows)],
        "lang": [p.lang for p in rows],
        "source_lang": ["eng_Latn"] * len(rows),
        "source": [p.source for p in rows],
        "text": [p.text for p in rows],
    })


def run_fork(spec, table: pa.Table, workers: int, batch_rows: int) -> tuple[dict, list]:
    from synth.verify import pairs

    pairs._workers = lambda: workers  # the pool's size; it takes every core the process may use otherwise
    start = time.perf_counter()
    verifier = spec.build()
    built = time.perf_counter()
    batches = (table.slice(at, batch_rows) for at in range(0, table.num_rows, batch_rows))
    verdicts = []
    for _, scored in pairs.scored_batches(verifier, batches, table.num_rows, batch_rows):
        verdicts += list(zip(scored.accepted, scored.reasons))
    done = time.perf_counter()
    return {"start": built - start, "score": done - built}, verdicts


def run_ray(spec, table: pa.Table, workers: int, slice_rows: int) -> tuple[dict, list]:
    import ray

    from synth.verify.pairs import candidates, columns_of
    from synth.verify.workers import VerificationPool

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ray_up = time.perf_counter()
    try:
        driver = spec.build()
        pool = VerificationPool(spec.for_workers(driver), driver, workers=workers, num_cpus=1.0)
        ready = time.perf_counter()
        rows = candidates(columns_of(table))
        slices = [rows[at:at + slice_rows] for at in range(0, len(rows), slice_rows)]
        verdicts, pending = [], None
        for batch in slices + [None]:
            submitted = pool.submit(batch) if batch is not None else None
            if pending is not None:
                previous, scoring = pending
                verdicts += [(v.accepted, v.reasons) for v in driver.finish(previous, scoring.result())]
            pending = (batch, submitted) if batch is not None else None
        done = time.perf_counter()
        pool.shutdown()
    finally:
        ray.shutdown()
    return {"ray_start": ray_up - start, "start": ready - ray_up, "score": done - ready}, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-rows", type=int, default=20_000, help="synth verify's --batch-rows")
    parser.add_argument("--slice-rows", type=int, default=2_000, help="Candidates per slice sent to the actors")
    parser.add_argument("--order", default="fork,ray", help="run order (the first also warms the page cache)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from synth.languages import load_registry
    from synth.verify.pipeline import load_preset
    from synth.verify.workers import VerifierSpec

    rows = draw(args.pairs, args.seed)
    table = pairs_table(rows)
    registry = load_registry()
    languages = {code: registry[code] for code in {p.lang for p in rows} | {"eng_Latn"}}
    spec = VerifierSpec((load_preset("default"), languages, set(), None, None),
                        {"meaning_langs": set(languages), "fetch_laser": False})
    print(f"{len(rows)} pairs in {len(languages) - 1} languages, {args.workers} workers, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    results = {}
    for name in args.order.split(","):
        run = run_fork if name == "fork" else run_ray
        times, verdicts = run(spec, table, args.workers, args.batch_rows if name == "fork" else args.slice_rows)
        results[name] = (times, verdicts)
        accepted = sum(a for a, _ in verdicts)
        print(f"{name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
              + f"; {len(rows) / times['score']:.0f} pairs/s scoring; {accepted}/{len(verdicts)} accepted")
    fork, ray_ = results["fork"], results["ray"]
    same = fork[1] == ray_[1]
    print(f"same verdicts: {same}")
    print(f"ratio {ray_[0]['score'] / fork[0]['score']:.2f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
