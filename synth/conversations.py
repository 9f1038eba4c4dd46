"""Load conversations in `messages` form (JSONL or Parquet): seeds and high-resource sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synth.errors import ConfigError
from synth.loading import check_parquet, iter_jsonl
from synth.text import lone_surrogate

ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class Conversation:
    id: str
    category: str | None
    messages: tuple[tuple[str, str], ...]  # (role, content); hashable and immutable

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def first(self, role: str) -> str:
        return next((c for r, c in self.messages if r == role), "")


def _records(path: Path, field: str) -> list[dict]:
    if path.suffix == ".parquet":
        import polars as pl

        check_parquet(path, f"{field}:")  # the footer and the column types' nesting, before any row is read
        try:
            return pl.read_parquet(path).to_dicts()
        except Exception as exc:  # polars raises several types for a file that is not Parquet
            raise ConfigError(f"{field}: {path} is not a readable Parquet file ({type(exc).__name__}); "
                              f"give a Parquet or JSONL file with a `messages` column") from None
    records = []
    for number, record in iter_jsonl(path, f"{field}:"):
        if not isinstance(record, dict):
            raise ConfigError(f"{field}: {path}:{number}: a JSON {type(record).__name__}, not an object; "
                              f"write one {{\"messages\": [...]}} object per line")
        records.append(record)
    return records


def load_conversations(path: Path, field: str) -> list[Conversation]:
    """Read and validate; `field` names the config field for error messages."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}: file {path} not found; give a JSONL or Parquet file with a `messages` column")
    conversations = [conversation_from_record(record, f"{field}: {path} row {number}", f"{path.stem}-{number}")
                     for number, record in enumerate(_records(path, field), 1)]
    if not conversations:
        raise ConfigError(f"{field}: {path} holds no conversations")
    return conversations


def conversation_from_record(record: dict, where: str, default_id: str) -> Conversation:
    """One record in `messages` form, validated; `where` starts each error (field, file, row).
    Shared by local files and `datasets`/Hub rows (synth/datasource.py maps other shapes to this one)."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: needs a non-empty `messages` list of {{role, content}}")
    turns = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(f"{where}: each message needs role in {sorted(ROLES)} and string content")
        if (at := lone_surrogate(m["content"])) is not None:
            raise ConfigError(f"{where}: a {m['role']} message holds a lone surrogate "
                              f"(U+{ord(m['content'][at]):04X} at character {at}, a broken \\u escape) that "
                              f"UTF-8 cannot hold; fix or drop that text")
        turns.append((m["role"], m["content"]))
    category = record.get("category")
    if category is not None and not isinstance(category, str):
        raise ConfigError(f"{where}: `category` must be a string such as \"open_qa\"")
    return Conversation(str(record.get("id") or default_id), category, tuple(turns))
