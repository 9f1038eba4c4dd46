"""The `synth` command. Exit codes: 0 success, 2 invalid input or config (nothing written), 1 runtime failure."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from synth.engines.base import EngineUnavailable
from synth.errors import ConfigError, DiskFull, Interrupted, interrupt_in
from synth.loading import json_value
from synth.secrets import install_redaction, scrub


def _run(args: argparse.Namespace) -> int:
    from synth.budget import BudgetSpent
    from synth.config import parse_job
    from synth.engines.base import EngineUnavailable
    from synth.prepare import prepare
    from synth.report import summary_table
    from synth.runner import JobRun
    from synth.shards import check_writable, output_location

    job = parse_job(Path(args.job))
    origin = None
    if args.targets_from:
        from synth.eval.targets import apply_targets

        job, origin = apply_targets(job, Path(args.targets_from))
    prepared = prepare(job)
    prepared.targets_from = origin
    if args.dry_run:  # the plan and its cost: no engine, no Ray, nothing written
        from synth.estimate import estimate, format_text

        est = estimate(prepared)
        print(json.dumps(est, indent=2) if args.format == "json" else format_text(est, args.job))
        return 0
    if args.format != "table":
        raise ConfigError("--format json: only with --dry-run (a run prints its summary; manifest.json is the JSON)")
    output = output_location(args.output) if args.output else Path("out") / prepared.job.name  # path or URL
    if isinstance(output, Path) and not output.is_file():  # (a file there: RunDir says so)
        check_writable(output / "manifest.json", "--output")  # a folder that cannot be made or written: exit 2
    resume = f"synth run {args.job}" + (f" --output {args.output}" if args.output else "") + \
        (f" --targets-from {args.targets_from}" if args.targets_from else "")
    try:
        manifest = JobRun(prepared, output, force_new=args.force_new).run()
    except EngineUnavailable as exc:
        print(f"synth: error: the engine keeps failing: {scrub(str(exc), shapes=False)}\nsynth: stopped; every committed slice is kept in "
              f"{output} (status interrupted). Fix the engine, then run the same command to resume: {resume}",
              file=sys.stderr)
        return 1
    except DiskFull as exc:
        print(f"synth: error: {exc}" + (" (status interrupted)" if _interrupted(output) else "") +
              f".\nsynth: free some space, then run the same command to resume: {resume}", file=sys.stderr)
        return exc.exit_code
    except BudgetSpent as exc:
        print(f"synth: {exc}; every committed slice is kept in {output} (status interrupted). Raise the limit in "
              f"plan.budget, then run the same command to resume: {resume}", file=sys.stderr)
        return 3
    except Interrupted as exc:
        print(f"\nsynth: stopped by {signal.Signals(exc.signum).name}; every committed slice is kept in {output}. "
              f"Run the same command to resume: {resume}", file=sys.stderr)
        return 128 + exc.signum
    print(summary_table(manifest))
    print(f"\noutput: {output.resolve()}  (report: {output.resolve() / 'report.html'})")
    return 0


def _interrupted(output) -> bool:
    """Whether the run directory's manifest (if one fit on the disk) says `interrupted`."""
    try:
        return json_value((output / "manifest.json").read_bytes()).get("status") == "interrupted"
    except Exception:
        return False


def _eval(args: argparse.Namespace) -> int:
    from synth.eval.config import parse_eval
    from synth.eval.prepare import prepare_eval
    from synth.eval.run import EvalRun
    from synth.shards import output_location

    prepared = prepare_eval(parse_eval(Path(args.eval)))
    output = output_location(args.output) if args.output else Path("out") / prepared.config.name
    resume = f"synth eval {args.eval}" + (f" --output {args.output}" if args.output else "")
    try:
        summary = EvalRun(prepared, output, force_new=args.force_new).run()
    except EngineUnavailable as exc:
        print(f"synth: error: an engine keeps failing: {exc}\nsynth: stopped; every committed slice is kept in "
              f"{output}/_work. Fix the engine, then run the same command to resume: {resume}", file=sys.stderr)
        return 1
    except (Interrupted, SystemError) as exc:  # SystemError: a signal that arrived inside Ray's Cython code
        if (stop := interrupt_in(exc)) is None:
            raise
        print(f"\nsynth: stopped by {signal.Signals(stop.signum).name}; every committed slice is kept in {output}/_work. "
              f"Run the same command to resume: {resume}", file=sys.stderr)
        return 128 + stop.signum
    from synth.eval.report import summary_text

    print(summary_text(summary))
    print(f"\noutput: {output.resolve()}  (report: {output.resolve() / 'report.html'}; next round: "
          f"synth run JOB.yaml --targets-from {output})")
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
    from synth.verify.lid.router import LidRouter, lid_accuracy
    from synth.verify.pipeline import load_preset
    from synth.verify.fluency.filter import fluency_coverage
    from synth.verify.meaning.semantic import semantic_coverage

    registry = load_registry()
    preset = load_preset(args.filters)
    router = LidRouter(registry, preset.lid_model, preset.lid_backends)
    measured = lid_accuracy()
    semantic_measured = load_preset("default").languages
    rows = [
        {"code": s.code, "name": s.name, "native_name": s.native_name, "script": s.script,
         "resource_level": s.resource_level, "lid_label": s.lid_label, "lid176": router.fasttext.covers(s.lid_label),
         "lid": [{"backend": backend.name, "label": label,
                  "udhr_top1": measured.get(s.code, {}).get(backend.name)} for backend, label in router.routes.get(s.code, [])],
         "laser": "laser3" if s.laser3 else "laser2", "semantic": semantic_coverage(s.code, semantic_measured),
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
    from synth.report import check_slices, read_manifest, render_html, summary_table
    from synth.shards import atomic_write_bytes, output_location, scan_committed

    out = output_location(args.dir)
    if not (out / "manifest.json").is_file():
        raise ConfigError(f"{out}: no manifest.json; give the output directory of a finished `synth run`")
    manifest = read_manifest(out / "manifest.json")  # exit 2 on a file that is not synth's manifest
    check_slices(out)
    atomic_write_bytes(out / "report.html", render_html(manifest, scan_committed(out)).encode(), root=out)
    print(summary_table(manifest))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from synth.shards import check_writable, remove_stale_temporaries
    from synth.verify.cli_verify import verify_file
    from synth.verify.pairs import check_output

    spec, output = None, Path(args.output)
    if args.judge:
        from synth.judging import judge_verified_file, load_judge_spec

        spec = load_judge_spec(Path(args.judge))  # a bad file is exit 2 before anything is written
    # with --judge, the verified rows are staged under a temporary name and renamed onto --output only
    # once judged: a judge that fails leaves no output that looks finished (every row accepted, no judge)
    staging = output
    while spec is not None and (staging == output or staging.exists() or staging.is_symlink()):
        staging = output.with_name(f".{output.name}.{os.urandom(4).hex()}.tmp")  # a free name: ours to delete
    try:
        if spec is not None:
            check_output(Path(args.input), output)
            check_writable(output)
            remove_stale_temporaries(output)
        result = verify_file(Path(args.input), staging, args.filters,
                             Path(args.laser_dir) if args.laser_dir else None, set(args.lid_skip),
                             batch_rows=args.batch_rows, contamination=[Path(p) for p in args.contamination],
                             ngram=args.ngram)
        if spec is not None:
            judged = judge_verified_file(staging, spec, args.filters)
            os.replace(staging, output)
            print(f"judge: {judged}")
            result["accepted"] = judged.get("accepted", result["accepted"])
    except Interrupted as exc:
        print(f"\nsynth: stopped by {signal.Signals(exc.signum).name}; {args.output} was not written",
              file=sys.stderr)
        return 128 + exc.signum
    finally:
        if staging != output:
            staging.unlink(missing_ok=True)
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
    from synth.shards import check_writable
    if args.labels:
        from synth.eval.calibrate import calibrate_judge

        result = calibrate_judge(Path(args.input), Path(args.labels), Path(args.output), args.base, args.min_rows)
        for lang, dims in sorted(result["results"].items()):
            for dim, r in sorted(dims.items()):
                print(f"{lang} {dim}: {r['rows']} rows; " + (f"judge threshold {r['base']:g} -> {r['threshold']:g}, "
                      f"balanced agreement {r['agreement']:.3f}" if "threshold" in r else f"kept {r['base']:g} ({r['kept']})"))
        print(f"wrote {result['output']}")
        return 0
    from synth.verify.calibrate import calibrate

    check_writable(Path(args.output))
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


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag like every other input mistake: one `synth: error:` line, exit 2."""

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): (\1 )", r"\2", message)  # the flag's own message names it already
        self.exit(2, f"synth: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _whole(flag: str, low: int, high: int):
    """An argparse type: a whole number in [low, high] (a float, 1e20 or a word is refused with the range)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text}: not a whole number; give {low:,} to {high:,}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} {text}: out of range; give {low:,} to {high:,}")
        return value
    return parse


def _share(text: str) -> float:
    """`--quantile`: a finite share strictly between 0 and 0.5."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"--quantile {text}: give a share of good rows to give up, between 0 and "
                                         f"0.5 (e.g. 0.02)")
    return value


def build_parser() -> argparse.ArgumentParser:
    from synth.limits import MAX_BATCH_ROWS, MAX_NGRAM, MAX_ROWS

    parser = _Parser(prog="synth", description="Verified SFT data for low-resource languages")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job file (local Ray, or the cluster at RAY_ADDRESS)")
    run.add_argument("job", help="the job file (YAML)")
    run.add_argument("--output", "-o", help="output directory (default: out/<job name>)")
    run.add_argument("--force-new", action="store_true", help="discard what the output directory holds and start over")
    run.add_argument("--dry-run", action="store_true", help="print the plan and its cost (attempts per cell, tokens, "
                     "engine-hours, money at engine.price) without starting an engine or writing anything")
    run.add_argument("--format", choices=["table", "json"], default="table", help="with --dry-run: a table for "
                     "people, or JSON for scripts")
    run.add_argument("--targets-from", metavar="DIR_OR_YAML", help="replace the job's targets with those `synth eval` "
                     "wrote (its output directory or its next_targets.yaml); seeds, lid and sources stay the job's")
    run.set_defaults(func=_run)
    ev = sub.add_parser("eval", help="evaluate a model per language x category x level and write the next round's "
                        "targets")
    ev.add_argument("eval", help="the evaluation file (YAML: name, model, prompts, judge, baseline, next_rows)")
    ev.add_argument("--output", "-o", help="output directory (default: out/<name>)")
    ev.add_argument("--force-new", action="store_true", help="discard what the output directory holds and start over")
    ev.set_defaults(func=_eval)
    langs = sub.add_parser("languages", help="list languages with their LID / LASER coverage")
    langs.add_argument("--format", choices=["table", "json"], default="table", help="a table for people, or JSON for scripts")
    langs.add_argument("--filters", default="default", help="filter preset whose LID backends to show (name or YAML path)")
    langs.set_defaults(func=_languages)
    verify = sub.add_parser("verify", help="verify existing pairs (Parquet: id, lang, source_lang, source, text)")
    verify.add_argument("input", help="Parquet of pairs: id, lang, source_lang, source, text (optional back_translation, truncated)")
    verify.add_argument("--output", "-o", required=True, help="Parquet to write: the input columns, score_<filter>, accepted, "
                        "reject_reasons, reject_details (replaces only a file synth verify wrote)")
    verify.add_argument("--filters", default="default", help="filter preset name or YAML path")
    verify.add_argument("--laser-dir", help="directory with LASER weights (else LASER is not run)")
    verify.add_argument("--lid-skip", action="append", default=[], metavar="LANG", help="verify LANG without LID")
    verify.add_argument("--contamination", action="append", default=[], metavar="EVAL_FILE",
                        help="evaluation set (JSONL, Parquet or text) for the contamination filter; repeatable")
    verify.add_argument("--batch-rows", type=_whole("--batch-rows", 1, MAX_BATCH_ROWS), default=20_000, metavar="N",
                        help=f"rows read, scored and written at a time (1 to {MAX_BATCH_ROWS:,}; memory grows with "
                        f"it; default 20000)")
    verify.add_argument("--ngram", type=_whole("--ngram", 3, MAX_NGRAM), default=13,
                        help=f"words per n-gram for --contamination (3 to {MAX_NGRAM}; default 13)")
    verify.add_argument("--judge", metavar="JOB_OR_ENGINE_YAML",
                        help="also grade the accepted rows with an LLM judge: a job file (its judge.engine, else its "
                        "engine) or a file with an engine: section")
    verify.set_defaults(func=_verify)
    std = sub.add_parser("standardise", help="standardise texts (encoding, NFC, invisibles, per-script rules) of a "
                                             "Parquet file of the verify input schema; adds raw_text, standardise_rules")
    std.add_argument("input", help="Parquet file in the `synth verify` input schema (id, lang, source_lang, source, text)")
    std.add_argument("--output", "-o", required=True, help="the Parquet file to write (text standardised, plus "
                     "raw_text and standardise_rules)")
    std.add_argument("--filters", default="default", help="filter preset whose `standardise:` section applies")
    std.add_argument("--batch-rows", type=int, default=20_000, metavar="N", help="rows read and written at a time")
    std.set_defaults(func=_standardise)
    cal = sub.add_parser("calibrate", help="per-language thresholds from known-good pairs, written as a filter preset")
    cal.add_argument("input", help="Parquet of known-good pairs (the `synth verify` input schema); with --labels, "
                     "the judged rows")
    cal.add_argument("--output", "-o", required=True, help="preset to write, e.g. filters/mine.yaml")
    cal.add_argument("--base", default="default", help="preset whose filters are scored and whose thresholds are kept "
                     "where calibration does not apply (default: default)")
    cal.add_argument("--quantile", type=_share, default=0.02,
                     help="share of good rows each filter may reject (between 0 and 0.5; default 0.02)")
    cal.add_argument("--min-rows", type=_whole("--min-rows", 1, MAX_ROWS), default=20,
                     help=f"fewer good rows in a language: keep the base thresholds (1 to {MAX_ROWS:,}; default 20)")
    cal.add_argument("--laser-dir", help="directory with LASER weights (else LASER is not calibrated)")
    cal.add_argument("--lid-skip", action="append", default=[], metavar="LANG", help="score LANG without LID")
    cal.add_argument("--labels", metavar="LABELS", help="native speakers' verdicts (JSONL/Parquet/CSV: id, lang, "
                     "dimension, verdict) on rows the judge graded: INPUT is then a `synth verify --judge` output or "
                     "a synth eval results.parquet, and the judge's thresholds per language and dimension are set")
    cal.set_defaults(func=_calibrate)
    report = sub.add_parser("report", help="(re)write DIR/report.html and print the summary")
    report.add_argument("dir", help="output directory (or URL) of a synth run")
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
    prep.add_argument("model", nargs="?", default="bundled:smollm2", help="a bundled model (bundled:smollm2)")
    prep.set_defaults(func=_prepare_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a bad flag (exit 2, one line already printed) or --help (0): a code, from Python too
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    install_redaction()  # every logger, handler, warning and traceback: whatever the HTTP stack logs through
    for name in ("httpx", "httpx2"):  # one line per request: noise at job scale
        logging.getLogger(name).setLevel(logging.WARNING)
    replaced = _stop_on_signals() if args.func in (_run, _verify, _eval) and threading.current_thread() is threading.main_thread() else {}
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"synth: error: {scrub(str(exc), shapes=False)}", file=sys.stderr)
        return exc.exit_code
    except EngineUnavailable as exc:  # synth verify --judge: the judge's engine keeps failing
        print(f"synth: error: the engine keeps failing: {scrub(str(exc), shapes=False)}", file=sys.stderr)
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
