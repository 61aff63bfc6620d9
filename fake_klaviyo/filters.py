"""Klaviyo's JSON:API ``filter`` grammar: parsing, validation against the spec's
``x-klaviyo-filters`` table, and evaluation.

Grammar (as Klaviyo documents it)::

    filter := expr ("," expr)*                 -- a comma joins with AND
    expr   := "and(" filter ")" | op "(" field ["," value] ")"
    value  := 'str' | "str" | [v, ...] | true | false | null | number | datetime (unquoted)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

UTC = UTC

OPERATORS = frozenset(
    {
        "equals",
        "any",
        "contains",
        "starts-with",
        "ends-with",
        "greater-than",
        "greater-or-equal",
        "less-than",
        "less-or-equal",
        "has",
        # The Reporting API's filters (its rules are checked by report_queries.py).
        "contains-any",
        "contains-all",
    }
)

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # "_kx", Klaviyo's exchange id, is a field too


class FilterError(ValueError):
    """The filter is malformed or not allowed; the server answers 400."""


@dataclass(frozen=True)
class Literal:
    kind: str  # "str" | "bool" | "null" | "number" | "datetime"
    value: Any


@dataclass(frozen=True)
class Condition:
    op: str
    field: str
    value: Literal | tuple[Literal, ...] | None  # tuple for list values, None for has()

    @property
    def value_kind(self) -> str:
        if self.value is None:
            return "none"
        return "list" if isinstance(self.value, tuple) else "single"

    def python_value(self) -> Any:
        if isinstance(self.value, tuple):
            return [v.value for v in self.value]
        return self.value.value if self.value is not None else None


def parse_datetime(text: str) -> datetime | None:
    """ISO-8601 datetime or date to an aware datetime (naive means UTC); None if invalid.

    Written out by hand because ``datetime.fromisoformat`` on Python 3.10 rejects "Z"."""
    m = _DATETIME.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = datetime(
            int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), int((frac or "0")[:6].ljust(6, "0"))
        )
    except ValueError:
        return None
    if tz in (None, "Z"):
        return dt.replace(tzinfo=UTC)
    sign = 1 if tz[0] == "+" else -1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    return dt.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, why: str) -> FilterError:
        return FilterError(f"Invalid filter provided: {why} at position {self.i}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"expected '{ch}'")
        self.i += 1

    def ident(self) -> str:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.fail("expected a name")
        self.i = m.end()
        return m.group(0)

    def parse(self) -> list[Condition]:
        if not self.s.strip():
            raise self.fail("empty filter")
        out = self.expr_list()
        if self.peek():
            raise self.fail("unexpected trailing text")
        return out

    def expr_list(self) -> list[Condition]:
        out = self.expr()
        while self.peek() == ",":
            self.i += 1
            out += self.expr()
        return out

    def expr(self) -> list[Condition]:
        name = self.ident()
        self.expect("(")
        if name == "and":
            inner = self.expr_list()
            self.expect(")")
            return inner
        if name in ("or", "not"):
            raise self.fail(f"'{name}' is not supported")
        if name not in OPERATORS:
            raise self.fail(f"unknown operator '{name}'")
        fld = self.ident()
        if self.peek() == ")":
            self.i += 1
            return [Condition(name, fld, None)]
        self.expect(",")
        value: Literal | tuple[Literal, ...]
        if self.peek() == "[":
            self.i += 1
            items = [self.scalar()]
            while self.peek() == ",":
                self.i += 1
                items.append(self.scalar())
            self.expect("]")
            value = tuple(items)
        else:
            value = self.scalar()
        self.expect(")")
        return [Condition(name, fld, value)]

    def scalar(self) -> Literal:
        ch = self.peek()
        if ch in ("'", '"'):
            return Literal("str", self.quoted(ch))
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in ",)] \t":
            self.i += 1
        tok = self.s[start : self.i]
        if not tok:
            raise self.fail("expected a value")
        if tok in ("true", "false"):
            return Literal("bool", tok == "true")
        if tok == "null":
            return Literal("null", None)
        if _NUMBER.match(tok):
            return Literal("number", float(tok) if any(c in tok for c in ".eE") else int(tok))
        dt = parse_datetime(tok)
        if dt is not None:
            return Literal("datetime", dt)
        self.i = start
        raise self.fail(f"invalid value {tok!r} (strings must be quoted)")

    def quoted(self, q: str) -> str:
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c == q:
                self.i += 1
                return "".join(out)
            out.append(c)
            self.i += 1
        raise self.fail("unterminated string")


def parse(text: str) -> list[Condition]:
    """Parse into a flat list of conditions, all joined by AND."""
    return _Parser(text).parse()


def validate(conds: list[Condition], table: dict[str, Any]) -> None:
    """Check fields, operators, value kinds and value types against ``x-klaviyo-filters``."""
    for c in conds:
        rule = table.get(c.field)
        if rule is None:
            raise FilterError(f"'{c.field}' is not a valid field for this endpoint's filter")
        ops: dict[str, list[str]] = rule["operators"]
        if not any(c.op in v for v in ops.values()):
            raise FilterError(f"operator '{c.op}' is not allowed for field '{c.field}'")
        kind = c.value_kind
        if c.op not in ops.get(kind, []):
            want = " or ".join(k for k, v in ops.items() if c.op in v)
            raise FilterError(f"'{c.op}({c.field},...)' needs a {want} value, not a {kind} value")
        vrule = rule.get("value", {})
        items = c.value if isinstance(c.value, tuple) else (c.value,) if c.value is not None else ()
        if kind == "list" and not items:
            raise FilterError(f"empty list for '{c.field}'")
        for lit in items:
            _check_type(c.field, lit, vrule)


def _check_type(fld: str, lit: Literal, vrule: dict[str, Any]) -> None:
    vtype, fmt = vrule.get("type"), vrule.get("format")
    if vtype == "string" and fmt == "date-time":
        if lit.kind == "str":
            # Klaviyo answers "invalid filter" to quoted datetimes.
            raise FilterError(f"invalid filter: datetime for '{fld}' must not be quoted")
        if lit.kind != "datetime":
            raise FilterError(f"'{fld}' needs a datetime value")
    elif vtype == "string":
        if lit.kind != "str":
            raise FilterError(f"'{fld}' needs a quoted string value")
        if "enum" in vrule and lit.value not in vrule["enum"]:
            raise FilterError(f"'{lit.value}' is not a valid value for '{fld}' (one of {vrule['enum']})")
    elif vtype == "boolean":
        if lit.kind != "bool":
            raise FilterError(f"'{fld}' needs true or false")
    elif vtype in ("number", "integer") and lit.kind != "number":
        raise FilterError(f"'{fld}' needs a number")


def _as_instant(v: Any) -> datetime | None:
    """A resource's time as an instant: the forms Klaviyo writes them in, the space form included (a filter's own
    literal must have the "T")."""
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        return parse_datetime(f"{v[:10]}T{v[11:]}" if v[10:11] == " " else v)
    return None


def compile_condition(c: Condition, getter: Callable[[Any], Any], is_datetime: bool) -> Callable[[Any], bool]:
    """A predicate over records; ``getter`` reads the field from a record."""
    op = c.op
    target = c.python_value()

    def norm(v: Any) -> Any:
        return _as_instant(v) if is_datetime else v

    if op == "has":
        return lambda r: getter(r) is not None
    if op in ("equals", "any"):
        if isinstance(target, list):
            wanted = [norm(t) for t in target]
            return lambda r: (v := norm(getter(r))) is not None and v in wanted
        want = norm(target)
        return lambda r: (v := norm(getter(r))) is not None and v == want
    if op == "contains":
        return lambda r: (v := getter(r)) is not None and target in v
    if op == "starts-with":
        return lambda r: isinstance(v := getter(r), str) and v.startswith(target)
    if op == "ends-with":
        return lambda r: isinstance(v := getter(r), str) and v.endswith(target)
    bound = norm(target)
    cmp: Callable[[Any, Any], bool] = {
        "greater-than": lambda a, b: a > b,
        "greater-or-equal": lambda a, b: a >= b,
        "less-than": lambda a, b: a < b,
        "less-or-equal": lambda a, b: a <= b,
    }[op]
    return lambda r: (v := norm(getter(r))) is not None and cmp(v, bound)
