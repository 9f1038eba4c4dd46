"""`synth push DIR REPO_ID`: publish a finished run's shards and card as a Hugging Face Hub dataset.

What goes up is chosen from the run directory's contract (../shared/DESIGN.md section 4), never by a
folder upload: the accepted shards `<lang>/train-*.parquet`, README.md (the card, whose YAML `configs:`
point at those shards) and, when asked, `rejected/<lang>/part-*.parquet`. `_work/`, manifest.json and
report.html stay local. Shards an earlier push left in the repo that this run does not have are deleted
in the same commit, so the card's `<lang>/train-*` globs never mix two runs. The token comes from
HF_TOKEN and is handed to huggingface_hub only: never written, never logged.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from synth.datasource import HUB_PREFIX, INSTALL_HINT, _REPO_ID
from synth.errors import ConfigError
from synth.report import read_manifest

log = logging.getLogger("synth")

TOKEN_ENV = "HF_TOKEN"
_CODE = r"[a-z]{3}_[A-Z][a-z]{3}"
ACCEPTED = re.compile(rf"^{_CODE}/train-\d{{5}}-of-\d{{5}}\.parquet$")
REJECTED = re.compile(rf"^rejected/{_CODE}/part-\d{{5}}\.parquet$")
CARD = "README.md"
FINISHED = ("complete", "partial")


class PushFailed(Exception):
    """The Hub refused or could not be reached: a runtime failure (exit 1), nothing half-published
    (one commit holds every file)."""


def repo_id_of(value: str) -> str:
    """OWNER/NAME, also accepted as hf://datasets/OWNER/NAME."""
    repo = value[len(HUB_PREFIX):] if value.startswith(HUB_PREFIX) else value
    if not _REPO_ID.fullmatch(repo):
        raise ConfigError(f"REPO_ID {value!r}: give a dataset repo as OWNER/NAME (letters, digits, - _ .), "
                          f"e.g. my-org/swahili-sft")
    return repo


def finished_run(out: Path) -> dict:
    """The manifest of a finished `synth run` in `out`; exit 2 for anything else."""
    hint = "give the output directory of a finished `synth run`"
    if str(out).startswith(("s3://", "gs://", "az://", "hf://")) or "://" in str(out):
        raise ConfigError(f"{out}: synth push reads a local run directory; copy the run here first, or {hint}")
    if not out.is_dir():
        raise ConfigError(f"{out}: not a directory; {hint}")
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{out}: no manifest.json; {hint}")
    manifest = read_manifest(manifest_path)  # exit 2 on a file that is not synth's manifest
    if not isinstance(manifest, dict) or not {"config_hash", "status", "languages"} <= set(manifest):
        raise ConfigError(f"{manifest_path}: not a synth manifest; {hint}")
    if manifest["status"] not in FINISHED:
        raise ConfigError(f"{out}: the run's status is {manifest['status']!r}, not finished; resume it with the "
                          f"same `synth run` command, then push")
    if not (out / CARD).is_file():
        raise ConfigError(f"{out}: no {CARD} (the dataset card); rerun the same `synth run` command to rewrite "
                          f"the outputs, then push")
    return manifest


def files_to_push(out: Path, with_rejected: bool) -> list[str]:
    """Paths relative to `out`: the card, every accepted shard and, if asked, the rejected parts.
    Matched by name against the run directory's contract; a symlink is never followed out."""
    names = []
    for path in sorted(out.rglob("*.parquet")):
        rel = path.relative_to(out).as_posix()
        if path.is_symlink() or not path.is_file():
            continue
        if ACCEPTED.match(rel) or (with_rejected and REJECTED.match(rel)):
            names.append(rel)
    if not any(ACCEPTED.match(n) for n in names):
        raise ConfigError(f"{out}: no accepted shards (<lang>/train-*.parquet) to publish; rerun the same "
                          f"`synth run` command to rewrite the outputs")
    return [CARD] + names


def push(out: Path, repo: str, private: bool = False, with_rejected: bool = False) -> str:
    """Create the dataset repo if needed and publish the run in one commit; returns the commit URL."""
    out = Path(out)
    repo_id = repo_id_of(repo)
    manifest = finished_run(out)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set; export a Hugging Face token with write access "
                          f"(https://huggingface.co/settings/tokens) as {TOKEN_ENV}, then run synth push again")
    rows = sum(s.get("accepted", 0) for s in manifest["languages"].values() if isinstance(s, dict))
    if not rows:
        raise ConfigError(f"{out}: the run accepted no rows; nothing to publish (see {out}/report.html for why)")
    names = files_to_push(out, with_rejected)
    try:
        import httpx
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:
        raise ConfigError(f"synth push needs huggingface_hub; {INSTALL_HINT}") from None
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        existing = api.list_repo_files(repo_id, repo_type="dataset")
        stale = [f for f in existing if (ACCEPTED.match(f) or REJECTED.match(f)) and f not in names]
        operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(out / n)) for n in names]
        operations += [CommitOperationDelete(path_in_repo=f) for f in stale]
        log.info("pushing %d files (%d stale removed) to datasets/%s", len(names), len(stale), repo_id)
        info = api.create_commit(repo_id, operations, repo_type="dataset",
                                 commit_message=f"synth push: {manifest.get('name', out.name)}, {rows} accepted rows")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        why = {401: f"the token in {TOKEN_ENV} was refused", 403: f"the token in {TOKEN_ENV} may not write to "
               f"{repo_id}"}.get(status, f"HTTP {status}")
        raise PushFailed(f"the Hub refused the push to datasets/{repo_id}: {why} "
                         f"({(str(exc).splitlines() or [''])[0][:200]})") from None
    except (OSError, httpx.TransportError, OfflineModeIsEnabled) as exc:
        raise PushFailed(f"could not reach the Hub at {constants.ENDPOINT} ({type(exc).__name__}); nothing was "
                         f"published" + ("; unset HF_HUB_OFFLINE to push" if isinstance(exc, OfflineModeIsEnabled)
                                         else "")) from None
    except ValueError as exc:  # huggingface_hub's own checks, e.g. the Hub rejecting the card's metadata
        raise PushFailed(f"the Hub refused the push to datasets/{repo_id}: {exc}") from None
    return str(info.commit_url if hasattr(info, "commit_url") else info)
