"""Evaluation prompts: the `prompts:` files, read through synth/datasource.py and mapped to items.

Every row is checked before any model answers: a missing or wrong column is exit 2 naming the file,
the row and the fix. Items are `id, lang, category, level, messages` (the last message a user turn)
and optionally `reference`, `choices` with the correct `answer`, or a numeric `answer`.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from synth.config import CATEGORIES
from synth.conversations import ROLES, _records
from synth.datasource import _dataset_rows, _matches, _turns
from synth.errors import ConfigError
from synth.eval.config import LEVELS, PromptsEntry
from synth.text import lone_surrogate

TRANSLATION = "translation"  # an item category of its own: scored by chrF++ against its reference
EVAL_CATEGORIES = (*CATEGORIES, TRANSLATION)
LETTERS = string.ascii_uppercase


@dataclass
class Item:
    id: str
    lang: str
    category: str
    level: str
    messages: list[dict[str, str]]
    reference: str | None = None
    choices: list[str] | None = None
    answer_index: int | None = None  # the correct option of a choices item
    numeric: float | None = None  # the correct number of a numeric item
    origin: str = ""  # file and row, for messages

    @property
    def kind(self) -> str:
        """How the item is scored apart from the judge: choices, numeric, translation or judged."""
        if self.choices is not None:
            return "choices"
        if self.numeric is not None:
            return "numeric"
        if self.category == TRANSLATION and self.reference:
            return "translation"
        return "judged"

    def question(self) -> str:
        return self.messages[-1]["content"]


def _rows(entry: PromptsEntry, field: str) -> tuple[Iterator[dict], str]:
    if entry.is_hub or Path(entry.path).is_dir():
        return _dataset_rows(entry, field)
    path = Path(entry.path)
    if not path.is_file():
        raise ConfigError(f"{field}: file {path} not found; give a JSONL or Parquet file, a datasets folder or "
                          f"hf://datasets/OWNER/NAME")
    return iter(_records(path, field)), str(path)


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: `{name}` must be a non-empty string")
    if (at := lone_surrogate(value)) is not None:
        raise ConfigError(f"{where}: `{name}` holds a lone surrogate at character {at} (a broken \\u escape)")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _answer_index(answer: Any, choices: list[str], where: str, column: str) -> int:
    """The correct option: a letter (A, B, ...), a 0-based index, or the option's text."""
    if isinstance(answer, bool):
        answer = None
    if isinstance(answer, int) and 0 <= answer < len(choices):
        return answer
    if isinstance(answer, str):
        text = answer.strip()
        if len(text) == 1 and text.upper() in LETTERS[:len(choices)]:
            return LETTERS.index(text.upper())
        if text.isdigit() and int(text) < len(choices):
            return int(text)
        folded = [c.strip().casefold() for c in choices]
        if text.casefold() in folded:
            return folded.index(text.casefold())
    raise ConfigError(f"{where}: `{column}` {answer!r} names none of the {len(choices)} choices; give a letter "
                      f"(A-{LETTERS[len(choices) - 1]}), a 0-based index or the option's text")


def _with_options(question: str, choices: list[str]) -> str:
    """The question with its options listed, unless the text already lists every option."""
    if all(c.strip() in question for c in choices):
        return question
    options = "\n".join(f"{LETTERS[i]}. {c.strip()}" for i, c in enumerate(choices))
    return f"{question.rstrip()}\n\n{options}"


def _item(row: dict, entry: PromptsEntry, where: str, default_id: str) -> Item:
    c = entry.columns
    # a column named in `columns:` first, then the entry's constant, then the column's usual name
    lang = row.get(c.lang) if c.lang else entry.lang if entry.lang is not None else row.get("lang")
    if lang is None:
        raise ConfigError(f"{where}: no language: add a `lang` column, map one with columns.lang, or set `lang:` "
                          f"on the prompts entry")
    lang = _text(lang, where, c.lang or "lang")
    level = row.get(c.level) if c.level else entry.level if entry.level is not None else row.get("level")
    if level not in LEVELS:
        raise ConfigError(f"{where}: level {level!r}; each item is one of {list(LEVELS)} (a `level` column, "
                          f"columns.level, or `level:` on the prompts entry)")
    category = row.get(c.category) if c.category else entry.category if entry.category is not None else row.get("category")
    if category not in EVAL_CATEGORIES:
        raise ConfigError(f"{where}: category {category!r}; use one of {list(EVAL_CATEGORIES)} (a `category` "
                          f"column, columns.category, or `category:` on the prompts entry)")
    alpaca = entry.format == "alpaca" or (entry.format == "auto" and not c.messages and not c.prompt and
                                          (c.instruction or ("instruction" in row and "messages" not in row)))
    if c.prompt:
        messages = [{"role": "user", "content": _text(row.get(c.prompt), where, c.prompt)}]
    elif alpaca:  # instruction (+ input) is the question; output, when there, the reference answer
        name = c.instruction or "instruction"
        question = _text(row.get(name), where, name)
        extra = row.get(c.input or "input")
        if isinstance(extra, str) and extra.strip():
            question = f"{question.strip()}\n\n{extra.strip()}"
        system = row.get(c.system) if c.system else None
        messages = ([{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []) + \
            [{"role": "user", "content": question}]
    else:
        name = c.messages or ("conversations" if entry.format == "sharegpt" or
                              (entry.format == "auto" and "conversations" in row and "messages" not in row)
                              else "messages")
        turns = _turns(row.get(name), where)
        if not isinstance(turns, list) or not turns:
            raise ConfigError(f"{where}: needs a non-empty `{name}` list of {{role, content}} (or a plain-text "
                              f"question column named with columns.prompt)")
        messages = []
        for turn in turns:
            if not isinstance(turn, dict) or turn.get("role") not in ROLES:
                raise ConfigError(f"{where}: each message needs role in {sorted(ROLES)} and string content")
            messages.append({"role": turn["role"], "content": _text(turn.get("content"), where, f"{name}.content")})
        if messages[-1]["role"] != "user":
            raise ConfigError(f"{where}: the last message is a {messages[-1]['role']} turn; the model answers the "
                              f"last message, which must be a user turn (drop the reference answer from "
                              f"`messages` and put it in `reference`)")
    ident = row.get(c.id or "id")
    item = Item(id=default_id if ident is None or ident == "" else str(ident), lang=lang, category=category,
                level=level, messages=messages, origin=where)
    ref_name = c.reference or ((c.output or "output") if alpaca and (c.output or "output") in row else "reference")
    if row.get(ref_name) is not None:
        item.reference = _text(row[ref_name], where, ref_name)
    elif c.reference:
        raise ConfigError(f"{where}: columns.reference names {c.reference!r}, which this row lacks")
    if isinstance(c.choices, list):
        choices = [row.get(name) for name in c.choices]
    else:
        choices = row.get(c.choices or "choices")
    answer_name = c.answer or "answer"
    answer = row.get(answer_name)
    if choices is not None:
        if not isinstance(choices, list) or len(choices) < 2 or len(choices) > len(LETTERS):
            raise ConfigError(f"{where}: `choices` must be a list of 2-26 options")
        choices = [_text(x, where, "choices") for x in choices]
        if answer is None:
            raise ConfigError(f"{where}: a choices item needs its correct `{answer_name}`")
        item.choices, item.answer_index = choices, _answer_index(answer, choices, where, answer_name)
        item.messages[-1] = {"role": "user", "content": _with_options(item.messages[-1]["content"], choices)}
    elif answer is not None:
        number = _number(answer)
        if number is None:
            raise ConfigError(f"{where}: `{answer_name}` {answer!r} is not a number; a non-numeric answer goes in "
                              f"`reference` (judged) or with `choices`")
        item.numeric = number
    if item.category == TRANSLATION and not item.reference:
        raise ConfigError(f"{where}: a translation item needs its `reference` translation (scored by chrF++)")
    return item


def load_items(entries: list[PromptsEntry]) -> list[Item]:
    """Every item of every `prompts:` entry, in file order; ids unique across the files."""
    items: list[Item] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(entries):
        field = f"prompts[{i}]"
        rows, label = _rows(entry, field)
        stem = Path(entry.repo_id if entry.is_hub else entry.path).name.split(".")[0] or "item"
        count = 0
        for number, row in enumerate(rows, 1):
            if entry.where and number == 1:
                absent = [k for k in entry.where if k not in row]
                if absent:
                    raise ConfigError(f"{field}.where: {label} has no column(s) {absent} (columns: {sorted(row)})")
            if entry.where and not _matches(row, entry.where):
                continue
            item = _item(row, entry, f"{field}: {label} row {number}", f"{stem}-{number}")
            if item.id in seen:
                raise ConfigError(f"{item.origin}: id {item.id!r} also at {seen[item.id]}; ids must be unique "
                                  f"across the prompt files (answers are joined by id)")
            seen[item.id] = item.origin
            items.append(item)
            count += 1
            if entry.limit is not None and count >= entry.limit:
                break
        if not count:
            raise ConfigError(f"{field}: {label} holds no items" + (f" where {entry.where}" if entry.where else ""))
    return items


def check_scorable(items: list[Item], has_judge: bool) -> None:
    """Refuse, before any work, items nothing can score without a judge."""
    if has_judge:
        return
    for item in items:
        if item.level != "language" and item.kind == "judged":
            raise ConfigError(f"{item.origin}: a {item.level} item without choices, a numeric answer or a "
                              f"translation reference is scored by the judge; add `judge:` to the evaluation "
                              f"file, or give the item choices/answer")


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
