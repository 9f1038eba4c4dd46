"""Run Hub-loading cases in a fresh process, so HF_HUB_OFFLINE/HF_HUB_CACHE (read when huggingface_hub
is imported) take effect: `python tests/hub_driver.py CASES.json` prints {case: result} as JSON.

A case is {"entry": {...}, "field": ..., "need": ..., "quotas": ...} (synth.datasource.load_entry),
{"digest": {...}} (source_digest), {"prepare": JOB} (parse_job + prepare) or {"cli": [...]} (synth.cli.main, for exit codes and messages).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from synth.datasource import DatasetEntry, input_digest, load_entry, source_digest
from synth.errors import ConfigError


def run(case: dict) -> dict:
    if "cli" in case:
        from synth.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(case["cli"])
        return {"exit": code, "stderr": err.getvalue()}
    try:
        if "prepare" in case:
            from synth.config import parse_job
            from synth.prepare import prepare

            prepared = prepare(parse_job(case["prepare"]))
            return {"sources": len(prepared.sources), "categories": sorted({c.category for c in prepared.sources}),
                    "seeds": {lang: len(s) for lang, s in prepared.seeds.items()},
                    "first_source": [list(m) for m in prepared.sources[0].messages]}
        if "digest" in case:
            entry = DatasetEntry.model_validate(case["digest"])
            return {"digest": source_digest(entry), "input": input_digest(entry)}
        entry = DatasetEntry.model_validate(case["entry"])
        rows = load_entry(entry, case.get("field", "sources"), need=case.get("need"), quotas=case.get("quotas"))
        return {"rows": [{"id": c.id, "category": c.category, "messages": [list(m) for m in c.messages]}
                         for c in rows]}
    except ConfigError as exc:
        return {"error": str(exc)}


if __name__ == "__main__":
    cases = json.loads(open(sys.argv[1]).read())
    print(json.dumps({name: run(case) for name, case in cases.items()}))
