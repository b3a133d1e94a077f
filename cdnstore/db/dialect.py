"""SQL written once, in SQLite's spelling plus row locks, translated for each engine: the one place where the
engines' SQL differs. Statements are translated once per text (cached), so the hot paths pay a dict lookup.

Row locks are written where the statement is: `FOR UPDATE` on a SELECT whose rows the transaction will
change, `FOR UPDATE SKIP LOCKED` on a job claim's subquery. PostgreSQL takes them as written (transactions run
side by side there); SQLite has no such clause and needs none (one writer: BEGIN IMMEDIATE already excludes
every other transaction), so `for_sqlite` drops them. Nothing else changes on SQLite's side.

For PostgreSQL (`translate`):
- placeholders: `?` (positional) and `:name` (named, from a dict) become `$1`, `$2` ...;
- `group_concat(x)` becomes `string_agg(CAST(x AS TEXT), ',')`;
- `x [NOT] LIKE y` becomes `x COLLATE "C" [NOT] ILIKE y`: SQLite's LIKE ignores the case of ASCII letters (only),
  PostgreSQL's LIKE ignores none; ILIKE under the "C" collation folds ASCII letters only, whatever the
  cluster's locale, so a search finds the same names on both engines.

Everything else is written portably where it is used (`ON CONFLICT DO NOTHING` rather than `INSERT OR
IGNORE`, `CASE` rather than two-argument `max`, `CAST(? AS INTEGER)` where PostgreSQL cannot infer a
parameter's type). Quoted strings, quoted names and `--` comments are left alone; `::` casts too."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .base import Params

_ROW_LOCK = re.compile(r"\s+FOR\s+UPDATE(?:\s+SKIP\s+LOCKED)?\b", re.IGNORECASE)
_GROUP_CONCAT = re.compile(r"\bgroup_concat\(([^()]*)\)", re.IGNORECASE)
_LIKE = re.compile(r"(?<![\w.])(?!NOT\b)([\w.]+)( NOT)? LIKE ", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _translate(sql: str) -> tuple[str, tuple[str, ...] | int]:
    """(PostgreSQL text, the parameter names in $n order, or the number of `?` placeholders)."""
    out: list[str] = []
    names: list[str] = []
    positional = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = sql.find(c, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == c:  # '' inside a string
                end = sql.find(c, end + 2)
            end = n - 1 if end == -1 else end
            out.append(sql[i : end + 1])
            i = end + 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end])
            i = end
        elif c == "?":
            positional += 1
            out.append(f"${positional}")
            i += 1
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_") and (i == 0 or sql[i - 1] != ":"):
            match = re.match(r"\w+", sql[i + 1 :])
            assert match is not None
            name = match.group(0)
            if name not in names:
                names.append(name)
            out.append(f"${names.index(name) + 1}")
            i += 1 + len(name)
        else:
            out.append(c)
            i += 1
    if names and positional:
        raise ValueError(f"both ? and :name placeholders in {sql[:80]!r}")
    text = _GROUP_CONCAT.sub(r"string_agg(CAST(\1 AS TEXT), ',')", "".join(out))
    text = _LIKE.sub(r'\1 COLLATE "C"\2 ILIKE ', text)
    return text, tuple(names) if names else positional


def translate(sql: str, params: Params = ()) -> tuple[str, list[Any]]:
    """(PostgreSQL statement, its arguments in order)."""
    text, shape = _translate(sql)
    if isinstance(shape, tuple):
        assert isinstance(params, dict), f"named placeholders need a dict: {sql[:80]!r}"
        return text, [params[name] for name in shape]
    args = list(params.values()) if isinstance(params, dict) else list(params)
    if len(args) != shape:
        raise ValueError(f"{shape} placeholders, {len(args)} arguments: {sql[:80]!r}")
    return text, args


def translate_text(sql: str) -> str:
    """The PostgreSQL text of a statement with `?` placeholders (for executemany)."""
    return _translate(sql)[0]


@lru_cache(maxsize=4096)
def for_sqlite(sql: str) -> str:
    """SQLite's text of a statement: its row locks dropped (outside quoted strings and comments); the text
    itself when it has none."""
    if not _ROW_LOCK.search(sql):
        return sql
    return "".join(_ROW_LOCK.sub("", part) if code else part for code, part in _parts(sql))


def _parts(sql: str) -> list[tuple[bool, str]]:
    """`sql` cut into (is code, text): quoted strings, quoted names and `--` comments are not code."""
    parts: list[tuple[bool, str]] = []
    start = i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"" or sql.startswith("--", i):
            parts.append((True, sql[start:i]))
            if c == "-":
                end = sql.find("\n", i)
                end = n if end == -1 else end
            else:
                end = sql.find(c, i + 1)
                while end != -1 and end + 1 < n and sql[end + 1] == c:  # '' inside a string
                    end = sql.find(c, end + 2)
                end = n if end == -1 else end + 1
            parts.append((False, sql[i:end]))
            start = i = end
        else:
            i += 1
    parts.append((True, sql[start:]))
    return parts
