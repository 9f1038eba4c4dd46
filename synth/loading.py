"""The one way synth reads YAML and JSON: bounded in size, nesting and alias expansion, duplicate keys refused.

Every file a user hands synth (job files, presets, prompt templates, language files, seeds, sources,
evaluation sets, judge specs) and every JSON document synth reads back (manifests, run state) goes
through here, so a hostile or broken file is one ConfigError naming the file (and the line where
there is one) before any work starts, never a RecursionError, a memory blow-up or a silently
ignored second `rows:`. The limits are documented in docs/safety.md ("Hostile input files and limits").

Nesting and alias expansion are measured on YAML's event stream, which is not recursive, before
anything is composed: a 20,000-deep file or a billion-laughs alias bomb is refused after one linear
pass over its bytes, without building it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synth.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """What one document may hold: bytes, nesting depth of mappings/lists, nodes once aliases are expanded."""

    max_bytes: int
    max_depth: int
    max_nodes: int


MiB = 1 << 20
# job files, presets, prompt templates, language files, judge specs: written by hand, small
CONFIG = Limits(max_bytes=4 * MiB, max_depth=64, max_nodes=200_000)
# one JSONL line of seeds, sources or an evaluation set
DATA_LINE = Limits(max_bytes=16 * MiB, max_depth=64, max_nodes=1_000_000)
# a JSON document synth wrote and reads back (manifest, run state, caches) or a bundled table
DOCUMENT = Limits(max_bytes=256 * MiB, max_depth=64, max_nodes=50_000_000)
# nesting depth of a Parquet column's type (list of struct of list ...) in a user's Parquet file
MAX_PARQUET_DEPTH = 32


class Unreadable(ValueError):
    """A document that breaks a limit or is not valid YAML/JSON; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message, self.line = message, line


def _where(source: str, exc: Unreadable) -> str:
    return f"{source}:{exc.line}" if exc.line else source


# ---- YAML ------------------------------------------------------------------------------------

def _check_events(text: str, limits: Limits) -> None:
    """Depth and expanded node count from the event stream: each anchor's expanded size is recorded
    when its node ends, and an alias adds that size, so `&a [*b, *b, ...]` chains are counted as the
    trees they expand to without expanding them."""
    sizes: dict[str, int] = {}
    stack: list[list] = []  # [anchor, expanded size so far] per open mapping/sequence
    total = 0

    def add(size: int, mark) -> None:
        nonlocal total
        if stack:
            stack[-1][1] += size
            grown = stack[-1][1]
        else:
            total += size
            grown = total
        if grown > limits.max_nodes:
            raise Unreadable(f"expands to more than {limits.max_nodes:,} nodes (aliases counted as the copies they "
                             f"make); a YAML alias bomb, or far too large for this file", mark.line + 1)

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > limits.max_depth:
                raise Unreadable(f"nested deeper than {limits.max_depth} levels", event.start_mark.line + 1)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, size = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
            add(size, event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            add(sizes.get(event.anchor, 1), event.start_mark)  # an unknown anchor: the composer says so


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML says keys are unique; PyYAML
    keeps the last silently). Keys brought in by a `<<` merge may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: SafeConstructor refuses it with its own message
                if first is not key_node:
                    raise Unreadable(f"key {key!r} appears twice in one mapping (first on line "
                                     f"{first.start_mark.line + 1}); keep one", key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def yaml_value(text: str, limits: Limits = CONFIG) -> Any:
    """The YAML document in `text`, or Unreadable (with the line) when it breaks `limits` or YAML."""
    if len(text) > limits.max_bytes:  # characters: at least as many bytes
        raise Unreadable(f"larger than {limits.max_bytes // MiB} MiB")
    try:
        _check_events(text, limits)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except Unreadable:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise Unreadable(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise Unreadable(f"not valid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # e.g. a 5,000-digit integer
        raise Unreadable(f"a value YAML cannot build: {type(exc).__name__}: {str(exc)[:200]}") from None


# ---- JSON ------------------------------------------------------------------------------------

def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise Unreadable(f"key {twice!r} appears twice in one object; keep one")
    return value


def _depth_over(value: Any, max_depth: int) -> bool:
    """Whether `value` nests deeper than `max_depth` (an explicit stack: no recursion on hostile data)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


def json_value(text: str | bytes, limits: Limits = DOCUMENT) -> Any:
    """The JSON value in `text`, or Unreadable when it breaks `limits`, JSON, or repeats a key."""
    if len(text) > limits.max_bytes:
        raise Unreadable(f"larger than {limits.max_bytes // MiB} MiB")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except Unreadable:
        raise
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not valid JSON ({exc.msg}, column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise Unreadable(f"nested deeper than {limits.max_depth} levels") from None
    except (ValueError, TypeError) as exc:  # not UTF-8 bytes, a 5,000-digit integer
        raise Unreadable(f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(text, bytes):
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = text.count("[") + text.count("{")
    if brackets > limits.max_depth and _depth_over(value, limits.max_depth):
        raise Unreadable(f"nested deeper than {limits.max_depth} levels")
    return value


# ---- files -----------------------------------------------------------------------------------

def read_text(path: Path, what: str, limits: Limits) -> str:
    """A whole UTF-8 file, at most `limits.max_bytes` (read no further: a huge file costs no memory)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    if len(data) > limits.max_bytes:
        raise ConfigError(f"{what} {path}: larger than {limits.max_bytes // MiB} MiB, the limit for this kind "
                          f"of file (docs/safety.md)")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark some editors write is not part of the text
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_yaml(path: Path, what: str = "file", limits: Limits = CONFIG) -> Any:
    """A user's YAML file; ConfigError `<what> <path>:<line>: <problem>` when it breaks a limit or YAML."""
    text = read_text(path, what, limits)
    try:
        return yaml_value(text, limits)
    except Unreadable as exc:
        raise ConfigError(f"{what} {_where(str(path), exc)}: {exc.message}") from None


def load_json(path: Path, what: str = "file", limits: Limits = DOCUMENT) -> Any:
    """A JSON file; ConfigError naming it when it breaks a limit or JSON."""
    text = read_text(path, what, limits)
    try:
        return json_value(text, limits)
    except Unreadable as exc:
        raise ConfigError(f"{what} {_where(str(path), exc)}: {exc.message}") from None


def json_text(text: str | bytes, where: str, limits: Limits = DOCUMENT) -> Any:
    """JSON read from somewhere other than a local file (an fsspec object, a command's output)."""
    try:
        return json_value(text, limits)
    except Unreadable as exc:
        raise ConfigError(f"{_where(where, exc)}: {exc.message}") from None


def iter_lines(path: Path, what: str = "file", max_bytes: int = DATA_LINE.max_bytes) -> Iterator[tuple[int, str]]:
    """(line number, text) for each non-blank line of a UTF-8 text file. A line is read at most
    `max_bytes` at a time, so a file without newlines is refused, not loaded whole."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    with handle:
        number = 0
        while line := handle.readline(max_bytes + 1):
            number += 1
            if len(line) > max_bytes and not line.endswith(b"\n"):
                raise ConfigError(f"{what} {path}:{number}: a line longer than {max_bytes // MiB} MiB, the "
                                  f"limit per line (docs/safety.md)")
            if not line.strip():
                continue
            try:
                yield number, line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{what} {path}:{number}: not UTF-8 text (byte {exc.start} of the line); "
                                  f"save it as UTF-8") from None


def iter_jsonl(path: Path, what: str = "file", limits: Limits = DATA_LINE) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file, each line within `limits`."""
    for number, text in iter_lines(path, what, limits.max_bytes):
        try:
            value = json_value(text, limits)
        except Unreadable as exc:
            raise ConfigError(f"{what} {path}:{number}: {exc.message}; one JSON object per line") from None
        yield number, value


def parquet_depth(arrow_type) -> int:
    """Nesting depth of an Arrow type (a flat column: 0), without recursion."""
    deepest, stack = 0, [(arrow_type, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        fields = [item.field(i) for i in range(item.num_fields)] if hasattr(item, "num_fields") else []
        stack.extend((f.type, depth + 1) for f in fields)
        if depth > MAX_PARQUET_DEPTH:
            break
    return deepest


def check_parquet(path: Path, what: str):
    """A user's Parquet file opened (its footer only) and its column types checked for absurd nesting:
    the pyarrow ParquetFile, or ConfigError naming the file."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        if "deeply nested" in str(exc):  # past pyarrow's own schema depth limit
            raise ConfigError(f"{what} {path}: a column is nested deeper than {MAX_PARQUET_DEPTH} levels; "
                              f"flatten it") from None
        raise ConfigError(f"{what} {path}: not a readable Parquet file ({type(exc).__name__})") from None
    for field in schema:
        if parquet_depth(field.type) > MAX_PARQUET_DEPTH:
            raise ConfigError(f"{what} {path}: column {field.name!r} is nested deeper than {MAX_PARQUET_DEPTH} "
                              f"levels; flatten it")
    return parquet
