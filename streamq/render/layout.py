"""Column layout for the tables people read at a terminal, 80 columns included.

No rich here: plain widths and strings, so the rules are easy to test. The renderers in
this package style the cells (colour) after the layout is decided.

``list`` (see :func:`record_columns`): KEY keeps its natural width up to
:data:`KEY_CAP` characters (a longer key is shortened in the middle, ``head…tail``);
it never wraps. When the row does not fit, columns give way in a fixed order:

0. a column with nothing in it (REFIRES before any refire) is left out when that lets
   LAST ERROR show whole;
1. LAST ERROR is truncated, with an ellipsis, down to :data:`ERROR_MIN` characters;
2. REFIRES is dropped;
3. ATTEMPTS is dropped;
4. DUE is dropped;
5. LAST ERROR is dropped.

KEY, AGE and STATUS always stay, and a header is never cut (a column is never narrower
than its header). DUE is shown only when a retry policy gives some record a due time.
The summary line names the columns left out; ``-o jsonl`` or ``-o csv`` show everything.

Settings views (``config-trigger``, ``sandbox status``) never break a value inside a
word: an ARN or URL that does not fit beside its name goes on its own line below it
(see :func:`fold_rows`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

GAP = 2
KEY_CAP = 64
ERROR_MIN = 16
#: What is dropped when a list row is too wide (after LAST ERROR is truncated), in order.
DROP_ORDER = ("REFIRES", "ATTEMPTS", "DUE", "LAST ERROR")


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: its head and tail around an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def end_ellipsis(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


@dataclass(frozen=True)
class Column:
    header: str
    width: int
    right: bool = False


def record_columns(total: int, natural: dict[str, int]) -> tuple[list[Column], list[str]]:
    """Columns for ``list``'s table within ``total`` characters.

    ``natural`` maps each header to the widest cell under it. Returns the columns kept
    (with their widths) and the headers dropped, in the order they were dropped."""
    key = max(len("KEY"), min(natural.get("KEY", 0), KEY_CAP))
    cols = [Column("KEY", key), Column("AGE", max(3, natural.get("AGE", 0)), True),
            Column("STATUS", max(6, natural.get("STATUS", 0)))]
    if natural.get("DUE"):
        cols.append(Column("DUE", max(3, natural["DUE"]), True))
    cols += [Column("ATTEMPTS", max(8, natural.get("ATTEMPTS", 0)), True),
             Column("REFIRES", max(7, natural.get("REFIRES", 0)), True)]
    error = max(len("LAST ERROR"), natural.get("LAST ERROR", 0))
    dropped: list[str] = []
    optional = [h for h in DROP_ORDER[:-1] if any(c.header == h for c in cols)]
    if total - (sum(c.width for c in cols) + GAP * len(cols)) < error:
        # A column with nothing in it (no record refired yet) gives way before the
        # error text is shortened.
        for header in [h for h in optional if not natural.get(h)]:
            cols = [c for c in cols if c.header != header]
            optional.remove(header)
            dropped.append(header)
            if total - (sum(c.width for c in cols) + GAP * len(cols)) >= error:
                break
    while True:
        room = total - (sum(c.width for c in cols) + GAP * len(cols))
        if room >= min(error, ERROR_MIN):
            cols.append(Column("LAST ERROR", min(error, room)))
            return cols, dropped
        if not optional:
            dropped.append("LAST ERROR")
            return cols, dropped
        header = optional.pop(0)
        cols = [c for c in cols if c.header != header]
        dropped.append(header)


def fit_cell(text: str, column: Column) -> str:
    if column.header == "KEY":
        text = middle_ellipsis(text, column.width)
    else:
        text = end_ellipsis(text, column.width)
    pad = column.width - len(text)
    return " " * pad + text if column.right else text + " " * pad


def wrap_words(text: str, width: int) -> list[str]:
    """Wrap at spaces only: a word (an ARN, a URL) is never broken, even when longer."""
    return textwrap.wrap(text, max(width, 1), break_long_words=False,
                         break_on_hyphens=False) or [""]


@dataclass(frozen=True)
class Folded:
    name_width: int
    value_width: int
    #: (name, value lines, note, folded) per row
    rows: list[tuple[str, list[str], str, bool]]


def fold_rows(rows: Sequence[tuple[str, str, str]], total: int, indent: int = 4) -> Folded:
    """Rows of (name, value, note) laid out within ``total`` characters.

    A row whose value fits beside the name column (wrapped at spaces, no word broken)
    stays aligned; otherwise it folds: the name alone, the value on the lines below,
    indented (a word longer than the line still stays whole). Notes line up in a column
    after the widest noted value; a row without a note may use that space too."""
    name_w = max((len(n) for n, _, _ in rows), default=0)
    note_w = max((len(m) for _, _, m in rows), default=0)
    full = total - name_w - GAP
    noted = max((len(v) for _, v, m in rows if m), default=0)
    value_w = max(min(noted, full - note_w - GAP), 0) if note_w else 0
    out: list[tuple[str, list[str], str, bool]] = []
    for name, value, note in rows:
        room = value_w if note else full
        longest = max((len(w) for w in value.split()), default=0)
        if longest <= room or (not value.strip()):
            out.append((name, wrap_words(value, room), note, False))
        else:
            out.append((name, wrap_words(value, total - indent), note, True))
    return Folded(name_w, value_w, out)


def diff_widths(rows: Sequence[tuple[str, str, str]], total: int
                ) -> tuple[int, int, int] | None:
    """(FIELD, CURRENT, NEW) widths for a diff within ``total`` characters, each value
    column at least as wide as its longest word; None when that cannot fit (the caller
    folds each field into lines)."""
    def longest_word(values: list[str], header: str) -> int:
        return max([len(header), *(len(w) for v in values for w in v.split())])

    fields = [f for f, _, _ in rows]
    cur, new = [c for _, c, _ in rows], [n for _, _, n in rows]
    fw = max([len("FIELD"), *map(len, fields)])
    space = total - fw - 2 * GAP
    cur_nat = max([len("CURRENT"), *map(len, cur)])
    new_nat = max([len("NEW"), *map(len, new)])
    if cur_nat + new_nat <= space:
        return fw, cur_nat, new_nat
    cur_word, new_word = longest_word(cur, "CURRENT"), longest_word(new, "NEW")
    half = max(cur_word, space // 2)
    # NEW at its natural width, else CURRENT at its own, else halves; each column at
    # least its longest word.
    for cw, nw in ((space - new_nat, new_nat), (cur_nat, space - cur_nat),
                   (half, space - half)):
        if cw >= cur_word and nw >= new_word:
            return fw, cw, nw
    return None
