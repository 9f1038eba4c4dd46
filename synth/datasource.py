"""Seeds and sources from local files, local `datasets` folders and Hugging Face Hub datasets.

An entry (`sources:` or `targets[i].seeds:`) names where conversations come from and how the rows map
to synth's `messages` form. Local JSONL/Parquet files read as they always did (synth/conversations.py);
a Hub dataset or a `datasets` folder is read through the `datasets` library, streamed, and only as many
rows as the job can use are taken (a 10M-row dataset is never materialised for 500 sources). The common
SFT shapes map without configuration where the columns say which one it is: `messages` (role/content),
ShareGPT `conversations` (from/value), Alpaca `instruction`/`input`/`output`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from synth.conversations import Conversation, conversation_from_record, load_conversations
from synth.errors import ConfigError
from synth.limits import MAX_ATTEMPTS, MAX_SCALAR
from synth.loading import DATA_LINE, Unreadable, json_value

log = logging.getLogger("synth")

HUB_PREFIX = "hf://datasets/"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
Format = Literal["auto", "messages", "sharegpt", "alpaca"]
# a `where:` value: text, a yes/no, or a number within the bounds synth takes for any count (synth/limits.py)
Scalar = (Annotated[str, Field(max_length=4096)] | StrictBool | Annotated[int, Field(ge=-MAX_SCALAR, le=MAX_SCALAR)]
          | Annotated[float, Field(ge=-MAX_SCALAR, le=MAX_SCALAR, allow_inf_nan=False)])
# ShareGPT speakers and other common spellings of the three roles synth knows
ROLE_ALIASES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
                "model": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant"}
INSTALL_HINT = "install the Hub extra: pip install 'synth[hub]' (datasets and huggingface_hub)"


class Columns(BaseModel):
    """Which dataset column holds what; unset: found by its usual name."""

    model_config = ConfigDict(extra="forbid")

    messages: str | None = Field(None, description="column holding the turns: a list of {role, content} "
                                 "(`messages` format) or {from, value} (`sharegpt`); default `messages`, "
                                 "`conversations` for sharegpt")
    instruction: str | None = Field(None, description="alpaca: the instruction column (default `instruction`)")
    input: str | None = Field(None, description="alpaca: the optional input/context column appended to the "
                              "instruction after a blank line (default `input` when present)")
    output: str | None = Field(None, description="alpaca: the response column (default `output`)")
    system: str | None = Field(None, description="alpaca: an optional system-prompt column")
    category: str | None = Field(None, description="column holding a synth category per row (default `category` "
                                 "when present)")
    id: str | None = Field(None, description="column holding a row id (default `id` when present, else "
                           "<dataset name>-<row number>)")


class DatasetEntry(BaseModel):
    """Where conversations come from: a local file or folder, or a Hub dataset."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    path: str = Field(description="a JSONL or Parquet file of {messages} rows, a folder written by datasets' "
                      "save_to_disk (or a local copy of a Hub dataset repo), or hf://datasets/OWNER/NAME")
    config: str | None = Field(None, description="the dataset's configuration (subset) name; needed when it has "
                               "several")
    split: str | None = Field(None, description="the split to read; unset: the only split, else `train`")
    revision: str | None = Field(None, description="Hub datasets: a branch, tag or commit sha; unset: main. The "
                                 "commit it resolves to is part of the resume check; pin a sha to reproduce a run")
    format: Format = Field("auto", description="the rows' shape: messages (role/content), sharegpt (from/value "
                           "with human/gpt/system), alpaca (instruction/input/output); auto: found from the "
                           "column names, an error when they fit none or several")
    columns: Columns = Field(default_factory=Columns, description="column names where they differ from the "
                             "format's usual ones")
    where: dict[str, Scalar | Annotated[list[Scalar], Field(max_length=10_000)]] = Field(
        default_factory=dict, max_length=100, description="keep only rows whose column equals the value (or one "
        "of a list), e.g. {language: Swahili}; at most 100 columns, 10,000 values each, numbers within "
        "+-10^15")
    category: str | None = Field(None, description="category of every row (e.g. math), when the dataset has no "
                                 "category column of synth's names")
    limit: int | None = Field(None, ge=1, le=MAX_ATTEMPTS, description="most rows to take (1 to 20,000,000); "
                              "unset: local JSONL/Parquet files are read whole, datasets as many rows as the job "
                              "can use")

    @field_validator("path")
    @classmethod
    def _path_form(cls, value: str) -> str:
        if value.startswith("hf://"):
            rest = value[len(HUB_PREFIX):] if value.startswith(HUB_PREFIX) else None
            if rest is None:
                raise ValueError(f"{value!r}: a Hub dataset is hf://datasets/OWNER/NAME (models and files are not "
                                 f"read here)")
            if "@" in rest:
                raise ValueError(f"{value!r}: give the revision as `revision: {rest.split('@', 1)[1]}`, not after @")
            if not _REPO_ID.fullmatch(rest.rstrip("/")):
                raise ValueError(f"{value!r}: a Hub dataset is hf://datasets/OWNER/NAME (letters, digits, - _ .); "
                                 f"choose files with `config:` and `split:`")
            return HUB_PREFIX + rest.rstrip("/")
        if not value.strip():
            raise ValueError("give a file, a datasets folder or hf://datasets/OWNER/NAME")
        return value

    @model_validator(mode="after")
    def _hub_only_keys(self) -> "DatasetEntry":
        if self.revision is not None and not self.is_hub:
            raise ValueError("revision: only hf://datasets/ paths have revisions; remove it")
        return self

    @property
    def is_hub(self) -> bool:
        return self.path.startswith(HUB_PREFIX)

    @property
    def repo_id(self) -> str:
        return self.path[len(HUB_PREFIX):]

    def is_plain_file(self) -> bool:
        """A local JSONL/Parquet file with no mapping whose rows are not in another known shape: read
        exactly as before Hub support (synth.conversations.load_conversations)."""
        return (not self.is_hub and not Path(self.path).is_dir() and self.format == "auto" and not self.where
                and self.columns == Columns() and self.category is None and self.limit is None
                and not _other_shape(Path(self.path)))

    def absolute(self, base: Path) -> None:
        """Make a local path relative to the job file absolute (Hub ids stay as written)."""
        if not self.is_hub and not Path(self.path).is_absolute():
            self.path = str(base / self.path)


def _other_shape(path: Path) -> bool:
    """Whether a local file's first row (or Parquet schema) has ShareGPT or Alpaca columns and no
    `messages`; read cheaply, any failure left for the file's own reader to report."""
    try:
        if path.suffix == ".parquet":
            import polars as pl

            columns = set(pl.read_parquet_schema(path))
        else:
            with path.open(encoding="utf-8") as handle:
                line = next((line for line in handle if line.strip()), "")
            try:
                first = json_value(line, DATA_LINE)
            except Unreadable:
                first = None
            columns = set(first) if isinstance(first, dict) else set()
    except Exception:
        return False
    return "messages" not in columns and ("conversations" in columns or {"instruction", "output"} <= columns)


def as_entry(value: Any) -> Any:
    """A plain string or path in the job file stands for {path: ...} (a pydantic `before` hook)."""
    return {"path": str(value)} if isinstance(value, (str, os.PathLike)) else value


# ---- reading --------------------------------------------------------------------------------------

def load_entry(entry: DatasetEntry, field: str, need: int | None = None,
               quotas: dict[str, int] | None = None, path_field: str | None = None) -> list[Conversation]:
    """The conversations of one entry, validated. `need`: rows the job can use (a dataset is read no
    further); `quotas`: most rows per category, rows of other categories dropped (sources: each needed
    category gets its share without holding rows of the rest). `field` names the config key in errors
    (`path_field` for a plain local file, whose messages stay as they were)."""
    if entry.is_plain_file():
        return load_conversations(Path(entry.path), path_field or field)
    limit = entry.limit if entry.limit is not None else need
    if entry.is_hub or Path(entry.path).is_dir():
        rows, label = _dataset_rows(entry, field)
    else:
        path = Path(entry.path)
        if not path.is_file():
            raise ConfigError(f"{field}: file {path} not found; give a JSONL or Parquet file, a datasets folder or "
                              f"hf://datasets/OWNER/NAME")
        from synth.conversations import _records

        rows, label = iter(_records(path, field)), str(path)
    conversations = _take(_mapped(rows, entry, field, label), limit, quotas)
    if not conversations:
        raise ConfigError(f"{field}: {label} holds no conversations" + (f" where {entry.where}" if entry.where else ""))
    log.info("%s: %d conversations from %s", field, len(conversations), label)
    return conversations


def _take(conversations: Iterator[Conversation], limit: int | None,
          quotas: dict[str, int] | None) -> list[Conversation]:
    taken: list[Conversation] = []
    counts: dict[str, int] = {}
    for conversation in conversations:
        if quotas is not None:
            category = conversation.category or "open_qa"
            if category not in quotas or counts.get(category, 0) >= quotas[category]:
                continue
            counts[category] = counts.get(category, 0) + 1
        taken.append(conversation)
        if limit is not None and len(taken) >= limit:
            break
        if quotas is not None and all(counts.get(c, 0) >= n for c, n in quotas.items()):
            break
    return taken


def _label(entry: DatasetEntry) -> str:
    parts = [f"config {entry.config}"] if entry.config else []
    parts += [f"split {entry.split}"] if entry.split else []
    parts += [f"revision {entry.revision}"] if entry.revision else []
    return entry.path + (f" ({', '.join(parts)})" if parts else "")


def _datasets():
    try:
        import datasets
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise ConfigError(f"reading datasets folders and hf://datasets/ needs the `datasets` library; "
                          f"{INSTALL_HINT}") from None
    datasets.logging.set_verbosity_error()  # its "Using the latest cached version" chatter is not the user's
    return datasets


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)())


@functools.lru_cache(maxsize=64)
def resolve_hub(repo_id: str, revision: str | None) -> tuple[str, str | None]:
    """(commit sha, local snapshot folder or None). Offline (HF_HUB_OFFLINE=1) the revision resolves in
    the local Hub cache (refs/ and snapshots/ of datasets--OWNER--NAME) and the snapshot is read from
    disk; online the Hub answers and rows stream from it. Cached: the resume check asks again."""
    _datasets()
    import httpx
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub import errors as hub_errors

    where = f"hf://datasets/{repo_id}" + (f" revision {revision}" if revision else "")
    try:
        if is_offline():
            folder = snapshot_download(repo_id, repo_type="dataset", revision=revision)
            return Path(folder).name, folder
        return HfApi().dataset_info(repo_id, revision=revision).sha, None
    except hub_errors.LocalEntryNotFoundError:
        raise ConfigError(f"{where}: not in the local Hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                          f"forbids downloading; run once online, or point HF_HUB_CACHE at a cache that holds "
                          f"it") from None
    except hub_errors.RevisionNotFoundError:
        raise ConfigError(f"{where}: no such revision on the Hub; give a branch, tag or commit sha") from None
    except hub_errors.GatedRepoError:
        raise ConfigError(f"{where}: a gated dataset; accept its terms on the Hub and export HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise ConfigError(f"{where}: not found on the Hub (a private dataset needs HF_TOKEN in the "
                          f"environment); check OWNER/NAME") from None
    except (hub_errors.OfflineModeIsEnabled, OSError, httpx.TransportError) as exc:
        raise ConfigError(f"{where}: could not reach the Hub at {constants.ENDPOINT} ({type(exc).__name__}); "
                          f"check the network, or set HF_HUB_OFFLINE=1 to read the local Hub cache") from None
    except Exception as exc:  # HfHubHTTPError (5xx, 401 ...) and other refusals
        raise ConfigError(f"{where}: the Hub refused ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _is_saved(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _dataset_rows(entry: DatasetEntry, field: str) -> tuple[Iterator[dict], str]:
    """Rows of a Hub dataset, a save_to_disk folder or a local Hub-layout folder, streamed."""
    datasets = _datasets()
    label = _label(entry)
    if entry.is_hub:
        sha, folder = resolve_hub(entry.repo_id, entry.revision)
        label = _label(entry).replace(entry.path, f"{entry.path}@{sha[:12]}", 1)
        source, revision = (folder, None) if folder else (entry.repo_id, sha)
        loaded = _load_streaming(datasets, source, entry, field, label, revision)
    else:
        folder = Path(entry.path)
        if _is_saved(folder):
            if entry.config is not None:
                raise ConfigError(f"{field}.config: {folder} is a save_to_disk folder, which has no configs; "
                                  f"remove `config` (choose a split with `split`)")
            try:
                loaded = datasets.load_from_disk(str(folder))  # memory-mapped Arrow: nothing is read yet
            except Exception as exc:
                raise ConfigError(f"{field}: {folder} is not a readable save_to_disk folder "
                                  f"({type(exc).__name__}: {_first_line(exc)})") from None
        else:
            loaded = _load_streaming(datasets, str(folder), entry, field, label, None)
    dataset = _split(loaded, entry, field, label)
    return _rows(dataset, field, label), label


def _load_streaming(datasets, source: str, entry: DatasetEntry, field: str, label: str, revision: str | None):
    try:
        return datasets.load_dataset(source, name=entry.config, revision=revision, streaming=True)
    except ValueError as exc:
        text = str(exc)
        if "config" in text.lower():
            try:
                names = datasets.get_dataset_config_names(source, revision=revision)
            except Exception:
                names = []
            key = f"{field}.config"
            if entry.config is None:
                raise ConfigError(f"{key}: {label} has several configs; choose one: {names}") from None
            raise ConfigError(f"{key}: {label} has no config {entry.config!r}; available: {names}") from None
        raise ConfigError(f"{field}: {label}: {type(exc).__name__}: {_first_line(exc)}") from None
    except FileNotFoundError as exc:
        raise ConfigError(f"{field}: {label}: no data files found ({_first_line(exc)}); give a folder or dataset "
                          f"with JSONL/Parquet/CSV data files") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{field}: {label}: could not open ({type(exc).__name__}: {_first_line(exc)})") from None


def _split(loaded, entry: DatasetEntry, field: str, label: str):
    if not hasattr(loaded, "keys"):  # a single Dataset (save_to_disk of one split)
        if entry.split is not None:
            raise ConfigError(f"{field}.split: {label} holds a single dataset without splits; remove `split`")
        return loaded
    splits = list(loaded.keys())
    split = entry.split or (splits[0] if len(splits) == 1 else "train" if "train" in splits else None)
    if split is None:
        raise ConfigError(f"{field}.split: {label} has splits {splits}; choose one with `split:`")
    if split not in splits:
        raise ConfigError(f"{field}.split: {label} has no split {split!r}; available: {splits}")
    return loaded[split]


def _rows(dataset, field: str, label: str) -> Iterator[dict]:
    """Rows as dicts; a file that breaks mid-stream is exit 2 naming the dataset, not a traceback."""
    try:
        yield from dataset
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{field}: {label}: could not read its rows ({type(exc).__name__}: "
                          f"{_first_line(exc)})") from None


# ---- shapes ---------------------------------------------------------------------------------------

def _columns_of(dataset_first: dict) -> list[str]:
    return sorted(dataset_first)


def detect_format(columns: Iterable[str], entry: DatasetEntry, field: str, label: str) -> str:
    """The rows' shape from their column names (or the entry's `format`/`columns`); exit 2 naming the
    entry and the columns found when the columns fit none of the shapes, or several."""
    columns = list(columns)
    c = entry.columns
    found = f"columns found: {columns}"
    if entry.format != "auto":
        fmt = entry.format
    elif c.messages:
        fmt = "turns"
    elif c.instruction or c.output:
        fmt = "alpaca"
    else:
        fits = [name for name, cols in (("messages", ["messages"]), ("sharegpt", ["conversations"]),
                                        ("alpaca", ["instruction", "output"])) if all(x in columns for x in cols)]
        if not fits:
            raise ConfigError(f"{field}: {label}: no SFT columns of a known shape ({found}); set `format:` "
                              f"(messages, sharegpt, alpaca) and name the columns, e.g. "
                              f"columns: {{instruction: prompt, output: response}}")
        if len(fits) > 1:
            raise ConfigError(f"{field}: {label}: the columns fit several shapes {fits} ({found}); set `format:` "
                              f"to one of them")
        fmt = fits[0]
    needed = _needed_columns(fmt, entry)
    missing = [name for name in needed if name not in columns]
    if missing:
        raise ConfigError(f"{field}: {label}: format {fmt if fmt != 'turns' else 'messages'} needs column(s) "
                          f"{missing} ({found}); name them under `columns:`")
    return fmt


def _needed_columns(fmt: str, entry: DatasetEntry) -> list[str]:
    c = entry.columns
    if fmt == "alpaca":
        return [c.instruction or "instruction", c.output or "output"] + [x for x in (c.input, c.system) if x]
    default = "conversations" if fmt == "sharegpt" else "messages"
    return [c.messages or default] + [x for x in (c.category, c.id) if x]


def _turns(value: Any, where: str) -> list[dict] | Any:
    """role/content or from/value turns, as synth messages; anything else is left for the validator."""
    if not isinstance(value, list):
        return value
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            return value
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if isinstance(role, str) and role.lower() not in ROLE_ALIASES:
            raise ConfigError(f"{where}: a turn of role {role!r}; synth reads {sorted(ROLE_ALIASES)} (drop such "
                              f"rows with `where:` or map the dataset to system/user/assistant turns)")
        turns.append({"role": ROLE_ALIASES.get(role.lower(), role) if isinstance(role, str) else role,
                      "content": content})
    return turns


def _alpaca(row: dict, entry: DatasetEntry, where: str) -> list[dict]:
    c = entry.columns
    instruction = row.get(c.instruction or "instruction")
    extra = row.get(c.input or "input") if (c.input or "input" in row) else None
    output = row.get(c.output or "output")
    system = row.get(c.system) if c.system else None
    for name, value in (("instruction", instruction), ("output", output)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: alpaca `{getattr(c, name) or name}` must be a non-empty string")
    if extra is not None and not isinstance(extra, str):
        raise ConfigError(f"{where}: alpaca `{c.input or 'input'}` must be a string")
    user = instruction.strip() + (f"\n\n{extra.strip()}" if extra and extra.strip() else "")
    messages = [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _matches(row: dict, where: dict[str, Any]) -> bool:
    return all(row.get(k) in (v if isinstance(v, list) else [v]) for k, v in where.items())


def _mapped(rows: Iterator[dict], entry: DatasetEntry, field: str, label: str) -> Iterator[Conversation]:
    """Each row as a Conversation: the shape is detected on the first row's columns (the dataset's schema),
    every row is validated by the same code as local files (conversations.conversation_from_record)."""
    fmt = None
    c = entry.columns
    name = Path(entry.repo_id if entry.is_hub else entry.path).name.split(".")[0] or "row"
    for number, row in enumerate(rows, 1):
        if fmt is None:
            columns = _columns_of(row)
            fmt = detect_format(columns, entry, field, label)
            absent = [k for k in entry.where if k not in columns]
            if absent:
                raise ConfigError(f"{field}.where: {label} has no column(s) {absent} (columns found: {columns})")
        if entry.where and not _matches(row, entry.where):
            continue
        where = f"{field}: {label} row {number}"
        if fmt == "alpaca":
            messages = _alpaca(row, entry, where)
        else:
            messages = _turns(row.get(c.messages or ("conversations" if fmt == "sharegpt" else "messages")), where)
        category = row.get(c.category) if c.category else entry.category or row.get("category")
        ident = row.get(c.id or "id")
        record = {"messages": messages, "category": category, "id": None if ident is None else str(ident)}
        yield conversation_from_record(record, where, f"{name}-{number}")


# ---- what identifies an entry's rows -----------------------------------------

def source_digest(entry: DatasetEntry) -> str | None:
    """What identifies an entry's rows beyond the job file, for the resume check: for a Hub dataset the
    repo id, the commit its revision resolves to now, config, split and mapping; for a save_to_disk
    folder the datasets fingerprint of each split; for a local Hub-layout folder a content hash of its
    files. None for a plain local file (its bytes are digested like any other input file)."""
    if entry.is_plain_file() or (not entry.is_hub and Path(entry.path).is_file()):
        return None
    mapping = entry.model_dump(mode="json", exclude={"path", "revision"})
    if entry.is_hub:
        sha, _ = resolve_hub(entry.repo_id, entry.revision)
        identity = {"repo": entry.repo_id, "commit": sha}
    else:
        folder = Path(entry.path)
        if _is_saved(folder):
            states = sorted(folder.glob("state.json")) + sorted(folder.glob("*/state.json"))
            identity = {"fingerprints": {s.parent.name: (json_value(s.read_bytes()) or {}).get("_fingerprint")
                                         for s in states}}
        else:
            files = hashlib.sha256()
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
                with path.open("rb") as handle:
                    files.update(path.relative_to(folder).as_posix().encode() + b"\0")
                    files.update(hashlib.file_digest(handle, "sha256").digest())
            identity = {"files": files.hexdigest()}
    payload = json.dumps({**identity, **mapping}, sort_keys=True)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def input_digest(entry: DatasetEntry) -> tuple[str, str] | None:
    """(input name, digest) for the resume check's {input name: digest} (synth.inputs), or None for a
    local file, which is digested by its bytes under its path. The name stays the same across commits
    of a Hub dataset; the digest changes with the commit `revision` resolves to."""
    digest = source_digest(entry)
    if digest is None:
        return None
    name = entry.path if entry.is_hub else str(Path(entry.path).absolute())
    return f"{name}?config={entry.config or ''}&split={entry.split or ''}", digest
