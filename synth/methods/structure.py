"""Keep code, links, placeholders, numbers and markdown intact through machine translation.

A message is cut into literal parts, which never reach the model (fenced and indented code blocks,
list markers, heading marks, table pipes and rules, blank lines), and prose units, which do. Inside a
unit, inline spans that must not change (inline code, URLs, e-mails, {placeholders}, %s, <tags>,
link targets) become sentinels such as ⟦0⟧ that the model copies; restoring them is a
single pass over the model's output, so a lost, duplicated or invented sentinel is detected, never
silently mended. Digits are not hidden (grammar agrees with them) but must come back unchanged.

Plain paragraphs are grouped into units under a character budget (more context per request, fewer
requests) and a paragraph longer than the budget is cut at sentence ends; units are rejoined in order.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from synth.text import BREAKS, EMAIL, INLINE_CODE, LIST_ITEM as _ITEM, URL, cut_points, numbers

SENTINEL = "⟦{}⟧"
_SENTINEL_OUT = re.compile(r"⟦\s*(\d+)\s*⟧")

# inline spans, leftmost match wins; order breaks ties at one position
_INLINE = re.compile(
    rf"(?P<code>{INLINE_CODE})"  # `code`, ``co`de``
    r"|(?P<sentinel>⟦\s*\d+\s*⟧)"  # a source that already holds sentinel-like text
    r"|(?P<link_open>!?\[)(?=[^\]\n]*\]\([^)\s]+(?:\s+\"[^\"]*\")?\))"  # [text](url): the text is prose
    r"|(?P<link_close>\]\([^)\s]+(?:\s+\"[^\"]*\")?\))"
    r"|(?P<autolink><(?:https?|ftp|mailto):[^>\s]+>)"
    rf"|(?P<url>{URL})"
    rf"|(?P<email>{EMAIL})"
    r"|(?P<jinja>\{\{.*?\}\}|\{%.*?%\}|\$\{[^}\s]+\}|\{[A-Za-z_0-9][\w.:\[\]]*\})"  # {{var}}, {name}, {0}, ${x}
    r"|(?P<printf>(?<![\w%])%(?:\([\w]+\))?[-+#0]*\d*(?:\.\d+)?[sdifgxXeEcr](?![A-Za-z]))"  # %s, %(name)d
    r"|(?P<tag></?[A-Za-z][\w:-]*(?:\s[^<>\n]*)?/?>)"  # <br>, <b>, </div>
    r"|(?P<path>(?<![\w/])(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)+/?)",  # /etc/hosts, ./run.sh
    re.DOTALL,
)
_URL_TRAIL = ".,;:!?)]}'\""

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_HEADING = re.compile(r"^( {0,3}#{1,6}[ \t]+)(.*?)([ \t]+#+[ \t]*)?$")
_QUOTE = re.compile(r"^([ \t]*(?:>[ \t]?)+)(.*)$")
TABLE_RULE = _TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_INDENTED = re.compile(r"^(?: {4}|\t)")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass
class Unit:
    """Prose sent to the model: `text` holds sentinel i where `spans[i]` stood."""

    text: str
    spans: list[str] = field(default_factory=list)
    one_line: bool = False  # a heading, list item or table cell: its translation must stay on one line

    @property
    def prose(self) -> str:
        """The words of the unit without its protected spans (what language checks should read)."""
        return strip_sentinels(self.text)


@dataclass
class Layout:
    """A message as literal parts (str, kept byte for byte) and prose units (int, index into `units`)."""

    parts: list[str | int]
    units: list[Unit]

    def numbers(self) -> Counter[str]:
        return Counter(n for u in self.units for n in numbers(u.prose))

    def prose(self) -> str:
        return "\n\n".join(u.prose.strip() for u in self.units)


def inline_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each inline span that must not change (inline code, URLs, e-mails, link targets,
    {placeholders}, %s, <tags>, paths, sentinels), left to right: what `protect` hides from the model
    and what standardisation leaves alone."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in _INLINE.finditer(text):
        span, end = match.group(0), match.end()
        if match.lastgroup in ("url", "path"):  # a sentence's full stop or closing bracket is not part of it
            end -= len(span) - len(span.rstrip(_URL_TRAIL))
        if match.start() < position:  # inside a span shortened above
            continue
        spans.append((match.start(), end))
        position = end
    return spans


def protect(text: str) -> tuple[str, list[str]]:
    """Replace inline spans that must survive translation by sentinels ⟦0⟧, ⟦1⟧, ..."""
    spans: list[str] = []
    out: list[str] = []
    position = 0
    for start, end in inline_spans(text):
        out.append(text[position:start])
        out.append(SENTINEL.format(len(spans)))
        spans.append(text[start:end])
        position = end
    out.append(text[position:])
    return "".join(out), spans


def restore_spans(text: str, spans: list[str]) -> tuple[str, str | None]:
    """Put the spans back in one pass; (text, problem) where problem names lost or extra sentinels."""
    found = Counter(int(m) for m in _SENTINEL_OUT.findall(text))
    lost = [spans[i] for i in range(len(spans)) if found[i] == 0]
    doubled = [spans[i] for i in range(len(spans)) if found[i] > 1]
    invented = sorted(i for i in found if i >= len(spans))
    problems = []
    if lost:
        problems.append("lost " + ", ".join(_show(s) for s in lost))
    if doubled:
        problems.append("duplicated " + ", ".join(_show(s) for s in doubled))
    if invented:
        problems.append("invented markers " + ", ".join(SENTINEL.format(i) for i in invented))
    where = {}
    for m in _SENTINEL_OUT.finditer(text):
        where.setdefault(int(m[1]), m.start())
    swapped = [(a, b) for a, b in _pairs(spans) if a in where and b in where and where[a] > where[b]]
    if swapped:
        problems.append("reordered " + ", ".join(f"{_show(spans[a])} after {_show(spans[b])}" for a, b in swapped))
    restored = _SENTINEL_OUT.sub(lambda m: spans[int(m[1])] if int(m[1]) < len(spans) else "", text)
    return restored, ("; ".join(problems) or None)


def _pairs(spans: list[str]) -> list[tuple[int, int]]:
    """(open, close) spans whose order carries meaning: `[` before `](url)`, `<b>` before `</b>`."""
    pairs = []
    for i, span in enumerate(spans):
        if span in ("[", "!["):
            close = next((j for j in range(i + 1, len(spans)) if spans[j].startswith("](")), None)
        elif (tag := re.match(r"<([A-Za-z][\w:-]*)[^>]*(?<!/)>$", span)) is not None:
            close = next((j for j in range(i + 1, len(spans)) if spans[j] == f"</{tag[1]}>"), None)
        else:
            continue
        if close is not None:
            pairs.append((i, close))
    return pairs


def _show(span: str, width: int = 40) -> str:
    span = span.replace("\n", "⏎")
    return repr(span if len(span) <= width else span[: width - 1] + "…")


class _Builder:
    def __init__(self, budget: int):
        self.budget = budget
        self.parts: list[str | int] = []
        self.units: list[Unit] = []

    def literal(self, text: str) -> None:
        if not text:
            return
        if self.parts and isinstance(self.parts[-1], str):
            self.parts[-1] += text
        else:
            self.parts.append(text)

    def prose(self, text: str, one_line: bool = False) -> None:
        """Text that may hold inline spans; leading/trailing blanks and unit-less text stay literal."""
        core = text.strip()
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()):] if core else ""
        self.literal(lead)
        if core:
            protected, spans = protect(core)
            if _LETTER.search(_SENTINEL_OUT.sub("", protected)):
                self.parts.append(len(self.units))
                self.units.append(Unit(protected, spans, one_line))
            else:  # nothing to translate: a bare URL, `code`, a number
                self.literal(core)
        self.literal(trail)

    def paragraphs(self, paragraphs: list[str]) -> None:
        """Plain paragraphs, grouped under the budget; a longer paragraph is cut at sentence ends."""
        group: list[str] = []

        def flush() -> None:
            if group:
                self.prose("\n\n".join(group))
                group.clear()

        for i, paragraph in enumerate(paragraphs):
            if i:
                if group and len("\n\n".join(group + [paragraph])) > self.budget:
                    flush()
                if not group:
                    self.literal("\n\n")
            if len(paragraph) <= self.budget:
                group.append(paragraph)
                continue
            flush()
            for j, piece in enumerate(_pieces(paragraph, self.budget)):
                self.literal(piece[0] if j else "")
                self.prose(piece[1])
        flush()


def _pieces(paragraph: str, budget: int, level: int = 0) -> list[tuple[str, str]]:
    """(separator, text) pieces of a long paragraph, each under the budget: cut at sentence ends
    (synth.text, every script's marks); a sentence still too long at clause marks, then at spaces.
    A run with none of them (a 2,000-character token) stays whole."""
    sentences: list[tuple[str, str]] = []
    start, sep = 0, ""
    for a, b in cut_points(paragraph, BREAKS[level]) + [(len(paragraph), len(paragraph))]:
        sentences.append((sep, paragraph[start:a]))
        start, sep = b, paragraph[a:b]
    if level + 1 < len(BREAKS):
        finer: list[tuple[str, str]] = []
        for sep, sentence in sentences:
            if len(sentence) > budget:
                parts = _pieces(sentence, budget, level + 1)
                finer += [(sep, parts[0][1])] + parts[1:]
            else:
                finer.append((sep, sentence))
        sentences = finer
    pieces: list[tuple[str, str]] = []
    current_sep, current = sentences[0]
    for sep, sentence in sentences[1:]:
        if len(current) + len(sep) + len(sentence) > budget:
            pieces.append((current_sep, current))
            current_sep, current = sep, sentence
        else:
            current += sep + sentence
    pieces.append((current_sep, current))
    return pieces


def split_message(text: str, budget: int = 1500) -> Layout:
    """Cut a message into literal parts and prose units (see the module docstring).

    Invariant: the parts, with each unit's source in place, give back `text` byte for byte.
    """
    builder = _Builder(budget)
    lines = text.split("\n")

    def plain(i: int, in_paragraph: bool) -> bool:
        line = lines[i]
        if _FENCE.match(line) or _HR.match(line) or _HEADING.match(line) or _ITEM.match(line):
            return False
        if _QUOTE.match(line) or _is_table(lines, i):
            return False
        return in_paragraph or not _INDENTED.match(line) or _after_item(lines, i)

    def next_content(j: int) -> int:
        while j < len(lines) and not lines[j].strip():
            j += 1
        return j

    i = next_content(0)
    builder.literal("".join(line + "\n" for line in lines[:i]) if i < len(lines) else text)
    run: list[str] = []  # plain paragraphs separated by exactly one blank line, not yet emitted
    while i < len(lines):
        if plain(i, in_paragraph=False):
            j = i + 1
            while j < len(lines) and lines[j].strip() and plain(j, in_paragraph=True):
                j += 1
            run.append("\n".join(lines[i:j]))
        else:
            j = _structural(builder, lines, i)
        k = next_content(j)
        if k == len(lines):
            if run:
                builder.paragraphs(run)
            builder.literal("".join("\n" + line for line in lines[j:]))
            break
        separator = "\n" + "".join(line + "\n" for line in lines[j:k])
        if run and not (separator == "\n\n" and plain(k, in_paragraph=False)):
            builder.paragraphs(run)
            run = []
        if not run:
            builder.literal(separator)
        i = k
    return Layout(builder.parts, builder.units)


def _is_table(lines: list[str], i: int) -> bool:
    line = lines[i]
    if "|" not in line:
        return False
    if line.lstrip().startswith("|") or _TABLE_RULE.match(line):
        return True
    return i + 1 < len(lines) and bool(_TABLE_RULE.match(lines[i + 1])) and "|" in lines[i + 1]


def _after_item(lines: list[str], i: int) -> bool:
    """An indented line right after a list item (maybe past blank lines and other indented lines) continues
    the item. A loop, not recursion: a model's answer can hold thousands of indented lines."""
    j = i - 1
    while True:
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j < 0 or _ITEM.match(lines[j]):
            return j >= 0
        if not _INDENTED.match(lines[j]):
            return False
        j -= 1


def _structural(builder: _Builder, lines: list[str], i: int) -> int:
    """Emit the structural element starting at line i; return the index of the line after it."""
    line = lines[i]
    if fence := _FENCE.match(line):
        mark = fence.group(2)
        j = i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$", lines[j]):
            j += 1
        end = min(j + 1, len(lines))  # an unclosed fence runs to the end of the message
        builder.literal("\n".join(lines[i:end]))
        return end
    if _HR.match(line):
        builder.literal(line)
        return i + 1
    if heading := _HEADING.match(line):
        builder.literal(heading.group(1))
        builder.prose(heading.group(2), one_line=True)
        builder.literal(heading.group(3) or "")
        return i + 1
    if item := _ITEM.match(line):
        builder.literal(item.group(1))
        builder.prose(item.group(2), one_line=True)
        return i + 1
    if quote := _QUOTE.match(line):
        builder.literal(quote.group(1))
        builder.prose(quote.group(2), one_line=True)
        return i + 1
    if _is_table(lines, i):
        if _TABLE_RULE.match(line):
            builder.literal(line)
            return i + 1
        for k, cell in enumerate(re.split(r"(?<!\\)\|", line)):
            builder.literal("|" if k else "")
            builder.prose(cell, one_line=True)
        return i + 1
    # indented code: this line and the following indented or blank lines (blank tail excluded)
    j = i
    while j < len(lines) and (_INDENTED.match(lines[j]) or not lines[j].strip()):
        j += 1
    while j > i + 1 and not lines[j - 1].strip():
        j -= 1
    builder.literal("\n".join(lines[i:j]))
    return j


def join_translation(layout: Layout, translations: list[str]) -> tuple[str, list[str]]:
    """The translated message and the problems (lost/duplicated sentinels) that make it unusable."""
    problems: list[str] = []
    pieces: list[str] = []
    for part in layout.parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        unit, text = layout.units[part], translations[part].strip()
        if unit.one_line:
            text = re.sub(r"\s*\n\s*", " ", text)
        restored, problem = restore_spans(text, unit.spans)
        if problem:
            problems.append(problem)
        pieces.append(restored)
    return "".join(pieces), problems


def number_problem(layout: Layout, translations: list[str]) -> str | None:
    """'numbers changed: ...' when a number of the source is missing from the translation.

    Only missing numbers count (a changed number is one missing and one added); an added number
    alone can be a fair rendering ("a dozen" -> 12) and is only mentioned alongside.
    """
    source = layout.numbers()
    target = Counter(n for t in translations for n in numbers(strip_sentinels(t)))
    missing, added = source - target, target - source
    if not missing:
        return None
    said = "numbers changed: missing " + ", ".join(sorted(missing.elements()))
    return said + ("; added " + ", ".join(sorted(added.elements())) if added else "")


def strip_sentinels(text: str) -> str:
    """A model's output without the sentinels it copied: the words language checks should read."""
    return re.sub(r"[ \t]{2,}", " ", _SENTINEL_OUT.sub(" ", text)).strip()
