"""The `synth` command. Exit codes: 0 success, 2 invalid input or config (nothing written), 1 runtime failure."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from synth.engines.base import EngineUnavailable
from synth.errors import ConfigError, Interrupted, interrupt_in
from synth.secrets import ScrubLogs


def _run(args: argparse.Namespace) -> int:
    from synth.config import parse_job
    from synth.engines.base import EngineUnavailable
    from synth.prepare import prepare
    from synth.report import summary_table
    from synth.runner import JobRun
    from synth.shards import output_location

    prepared = prepare(parse_job(Path(args.job)))
    output = output_location(args.output) if args.output else Path("out") / prepared.job.name  # path or URL
    resume = f"synth run {args.job}" + (f" --output {args.output}" if args.output else "")
    try:
        manifest = JobRun(prepared, output, force_new=args.force_new).run()
    except EngineUnavailable as exc:
        print(f"synth: error: the engine keeps failing: {exc}\nsynth: stopped; every committed slice is kept in "
              f"{output} (status interrupted). Fix the engine, then run the same command to resume: {resume}",
              file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"\nsynth: stopped by {signal.Signals(exc.signum).name}; every committed slice is kept in {output}. "
              f"Run the same command to resume: {resume}", file=sys.stderr)
        return 128 + exc.signum
    print(summary_table(manifest))
    print(f"\noutput: {output.resolve()}  (report: {output.resolve() / 'report.html'})")
    return 0


def _stop_on_signals() -> dict:
    """SIGTERM and SIGINT raise Interrupted in the main thread: the runner stops the engines, keeps the
    committed slices (`synth verify` deletes its part-written file) and the CLI exits 128 + signal,
    without a traceback. Returns the handlers replaced."""
    def stop(signum, frame):
        raise Interrupted(signum)

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}


def _languages(args: argparse.Namespace) -> int:
    """One row per registry language; a coverage column is one entry in `columns` (and a key in `rows`)."""
    from synth.languages import load_registry
    from synth.verify.lid import LidRouter, lid_accuracy
    from synth.verify.pipeline import load_preset
    from synth.verify.fluency import fluency_coverage
    from synth.verify.semantic import semantic_coverage

    registry = load_registry()
    preset = load_preset(args.filters)
    router = LidRouter(registry, preset.lid_model, preset.lid_backends)
    measured = lid_accuracy()
    rows = [
        {"code": s.code, "name": s.name, "native_name": s.native_name, "script": s.script,
         "resource_level": s.resource_level, "lid_label": s.lid_label, "lid176": router.fasttext.covers(s.lid_label),
         "lid": [{"backend": backend.name, "label": label,
                  "udhr_top1": measured.get(s.code, {}).get(backend.name)} for backend, label in router.routes.get(s.code, [])],
         "laser": "laser3" if s.laser3 else "laser2", "semantic": semantic_coverage(s.code),
         "fluency": fluency_coverage(s),
         "reasoning_language": s.reasoning_language}
        for s in registry.values()
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0

    def lid(row: dict) -> str:
        return " + ".join(f"{b['backend']} {b['label']} {'-' if b['udhr_top1'] is None else format(b['udhr_top1'], '.2f')}"
                          for b in row["lid"]) or "none"

    columns = [  # (header, width, cell)
        ("code", 10, lambda r: r["code"]),
        ("name", 22, lambda r: r["name"]),
        ("level", 7, lambda r: r["resource_level"]),
        ("lid: backend label UDHR top-1", 32, lid),
        ("laser", 8, lambda r: r["laser"]),
        ("fluency", 42, lambda r: r["fluency"] or "none"),
        ("e5", 11, lambda r: r["semantic"]),
        ("reasons in", 0, lambda r: "native" if r["reasoning_language"] == r["code"] else r["reasoning_language"]),
    ]
    for row in [None, *rows]:
        print("".join(f"{(header if row is None else cell(row)):<{width}}" for header, width, cell in columns).rstrip())
    uncovered = [r["code"] for r in rows if not r["lid"]]
    print(f"{len(rows)} languages, LID by preset {preset.name!r}. UDHR top-1: share of UDHR articles the backend "
          f"names first (bench/lid_coverage.py; -: no UDHR text). fluency: the Hunspell dictionary, subword model, "
          f"word list or character model the `fluency` filter reads (none: not run for that language). "
          f"e5: the `meaning` preset's offline encoder "
          f"(weak: it separates real from misaligned translations poorly; bench/semantic_separation.py).")
    if uncovered:
        print(f"no LID: {', '.join(uncovered)}: set the preset's `lid_model: hf://cis-lmu/glotlid` "
              f"(downloads GlotLID once), or `lid: skip` on the target / --lid-skip")
    return 0


def _report(args: argparse.Namespace) -> int:
    from synth.report import render_html, summary_table
    from synth.shards import atomic_write_bytes, output_location, scan_committed

    out = output_location(args.dir)
    if not (out / "manifest.json").is_file():
        raise ConfigError(f"{out}: no manifest.json; give the output directory of a finished `synth run`")
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{out}/manifest.json: not valid JSON ({exc}); give the output directory of a `synth run`") from None
    needed = ("name", "status", "model", "languages", "filters", "rounds", "config_hash")
    if not isinstance(manifest, dict) or any(k not in manifest for k in needed):
        raise ConfigError(f"{out}/manifest.json: not a synth manifest (it needs {list(needed)}); give the output "
                          f"directory of a `synth run`")
    atomic_write_bytes(out / "report.html", render_html(manifest, scan_committed(out)).encode())
    print(summary_table(manifest))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from synth.verify.cli_verify import verify_file

    spec = None
    if args.judge:
        from synth.judging import judge_verified_file, load_judge_spec

        spec = load_judge_spec(Path(args.judge))  # a bad file is exit 2 before anything is written
    try:
        result = verify_file(Path(args.input), Path(args.output), args.filters,
                             Path(args.laser_dir) if args.laser_dir else None, set(args.lid_skip),
                             batch_rows=args.batch_rows, contamination=[Path(p) for p in args.contamination],
                             ngram=args.ngram)
    except Interrupted as exc:
        print(f"\nsynth: stopped by {signal.Signals(exc.signum).name}; {args.output} was not written",
              file=sys.stderr)
        return 128 + exc.signum
    if spec is not None:
        judged = judge_verified_file(Path(args.output), spec, args.filters)
        print(f"judge: {judged}")
        result["accepted"] = judged.get("accepted", result["accepted"])
    print(f"{result['accepted']}/{result['rows']} accepted; rejected by reason: {result['rejected_by_reason']}")
    for name, why in result["not_run"].items():
        print(f"NOT run: {name}: {why} (score_{name} is null)")
    return 0


def _standardise(args: argparse.Namespace) -> int:
    """`synth standardise`: the standardisation stage alone, on a file of the `synth verify` input schema."""
    import pyarrow.parquet as pq

    from synth.shards import atomic_local_file
    from synth.standardise import Standardiser, standardise_batch
    from synth.verify.pairs import open_pairs
    from synth.verify.pipeline import load_preset

    source, output = Path(args.input), Path(args.output)
    mark = {"synth": "standardise"}
    if output.is_dir():
        raise ConfigError(f"--output {output}: is a directory; give a file path such as standardised.parquet")
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise ConfigError(f"--output {output}: is the input file; write the result to another file")
    if output.exists():
        try:
            written = (pq.ParquetFile(output).metadata.metadata or {}).get(b"synth") == b"standardise"
        except Exception:  # not Parquet: a user's file
            written = False
        if not written:
            raise ConfigError(f"--output {output}: exists and was not written by synth standardise; give a new file "
                              f"name (synth never overwrites a user's file)")
    if args.batch_rows < 1:
        raise ConfigError(f"--batch-rows {args.batch_rows}: give at least 1 (rows read, standardised and written at a time)")
    preset = load_preset(args.filters)
    pairs = open_pairs(source, None)
    standardiser = Standardiser(preset.standardise, pairs.registry)
    changed = 0
    with atomic_local_file(output) as tmp:
        writer = None
        try:
            for batch in pairs.batches(args.batch_rows):
                batch = standardise_batch(batch, standardiser)
                changed += batch.num_rows - batch.column("raw_text").null_count
                table = _pa_table(batch).replace_schema_metadata(mark)
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    print(f"{changed}/{pairs.rows} rows changed; by language and rule: {json.dumps(standardiser.manifest())}")
    return 0


def _pa_table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch


def _calibrate(args: argparse.Namespace) -> int:
    from synth.verify.calibrate import calibrate

    result = calibrate(Path(args.input), Path(args.output), args.base, args.quantile, args.min_rows,
                       Path(args.laser_dir) if args.laser_dir else None, set(args.lid_skip))
    for lang, n in sorted(result["rows"].items()):
        values = result["calibrated"].get(lang)
        if values:
            print(f"{lang}: {n} rows; " + ", ".join(f"{k} {v['threshold']:.4g}" for k, v in values.items()))
        else:
            print(f"{lang}: {n} rows; kept the base thresholds (fewer than {args.min_rows})")
    for name, why in result["not_run"].items():
        print(f"NOT calibrated: {name}: {why}")
    print(f"wrote {result['output']}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from synth.hub import PushFailed, push

    try:
        url = push(Path(args.dir), args.repo_id, private=args.private, with_rejected=args.with_rejected)
    except PushFailed as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {args.dir}: {url}")
    return 0


def _prepare_model(args: argparse.Namespace) -> int:
    from synth.models import resolve_model

    print(resolve_model(args.model))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synth", description="Verified SFT data for low-resource languages")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job file (local Ray, or the cluster at RAY_ADDRESS)")
    run.add_argument("job")
    run.add_argument("--output", "-o", help="output directory (default: out/<job name>)")
    run.add_argument("--force-new", action="store_true", help="discard what the output directory holds and start over")
    run.set_defaults(func=_run)
    langs = sub.add_parser("languages", help="list languages with their LID / LASER coverage")
    langs.add_argument("--format", choices=["table", "json"], default="table")
    langs.add_argument("--filters", default="default", help="filter preset whose LID backends to show (name or YAML path)")
    langs.set_defaults(func=_languages)
    verify = sub.add_parser("verify", help="verify existing pairs (Parquet: id, lang, source_lang, source, text)")
    verify.add_argument("input")
    verify.add_argument("--output", "-o", required=True)
    verify.add_argument("--filters", default="default", help="filter preset name or YAML path")
    verify.add_argument("--laser-dir", help="directory with LASER weights (else LASER is not run)")
    verify.add_argument("--lid-skip", action="append", default=[], metavar="LANG", help="verify LANG without LID")
    verify.add_argument("--contamination", action="append", default=[], metavar="EVAL_FILE",
                        help="evaluation set (JSONL, Parquet or text) for the contamination filter; repeatable")
    verify.add_argument("--batch-rows", type=int, default=20_000, metavar="N",
                        help="rows read, scored and written at a time (memory grows with it; default 20000)")
    verify.add_argument("--ngram", type=int, default=13, help="words per n-gram for --contamination (default 13)")
    verify.add_argument("--judge", metavar="JOB_OR_ENGINE_YAML",
                        help="also grade the accepted rows with an LLM judge: a job file (its judge.engine, else its "
                        "engine) or a file with an engine: section")
    verify.set_defaults(func=_verify)
    std = sub.add_parser("standardise", help="standardise texts (encoding, NFC, invisibles, per-script rules) of a "
                                             "Parquet file of the verify input schema; adds raw_text, standardise_rules")
    std.add_argument("input")
    std.add_argument("--output", "-o", required=True)
    std.add_argument("--filters", default="default", help="filter preset whose `standardise:` section applies")
    std.add_argument("--batch-rows", type=int, default=20_000, metavar="N", help="rows read and written at a time")
    std.set_defaults(func=_standardise)
    cal = sub.add_parser("calibrate", help="per-language thresholds from known-good pairs, written as a filter preset")
    cal.add_argument("input", help="Parquet of known-good pairs (the `synth verify` input schema)")
    cal.add_argument("--output", "-o", required=True, help="preset to write, e.g. filters/mine.yaml")
    cal.add_argument("--base", default="default", help="preset whose filters are scored and whose thresholds are kept "
                     "where calibration does not apply (default: default)")
    cal.add_argument("--quantile", type=float, default=0.02, help="share of good rows each filter may reject (default 0.02)")
    cal.add_argument("--min-rows", type=int, default=20, help="fewer good rows in a language: keep the base thresholds")
    cal.add_argument("--laser-dir", help="directory with LASER weights (else LASER is not calibrated)")
    cal.add_argument("--lid-skip", action="append", default=[], metavar="LANG", help="score LANG without LID")
    cal.set_defaults(func=_calibrate)
    report = sub.add_parser("report", help="(re)write DIR/report.html and print the summary")
    report.add_argument("dir")
    report.set_defaults(func=_report)
    push = sub.add_parser("push", help="publish a finished run's shards and card as a Hugging Face Hub dataset "
                          "(token from HF_TOKEN)")
    push.add_argument("dir", help="output directory of a finished `synth run`")
    push.add_argument("repo_id", help="dataset repo OWNER/NAME (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps "
                      "its visibility)")
    push.add_argument("--with-rejected", action="store_true", help="also upload rejected/<lang>/part-*.parquet")
    push.set_defaults(func=_push)
    prep = sub.add_parser("prepare-model", help="convert a bundled model once and print its directory")
    prep.add_argument("model", nargs="?", default="bundled:smollm2")
    prep.set_defaults(func=_prepare_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubLogs())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request: noise at job scale
    replaced = _stop_on_signals() if args.func in (_run, _verify) and threading.current_thread() is threading.main_thread() else {}
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except EngineUnavailable as exc:  # synth verify --judge: the judge's engine keeps failing
        print(f"synth: error: the engine keeps failing: {exc}", file=sys.stderr)
        return 1
    except (Interrupted, SystemError) as exc:  # before the run started (e.g. while checking the config);
        if (stop := interrupt_in(exc)) is None:  # a SystemError: the signal arrived inside Ray's Cython code
            raise
        print(f"\nsynth: stopped by {signal.Signals(stop.signum).name}; nothing was started", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("\nsynth: stopped by SIGINT", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `synth languages | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for signum, handler in replaced.items():  # main() called from Python (tests, notebooks) restores them
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
