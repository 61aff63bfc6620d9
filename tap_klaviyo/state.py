"""The state a run starts from, understood before the first request: Singer's STATE value, or one wrapped by
Meltano (`singer_state`) or in a whole STATE message. A bookmark the tap can use is used (and where it had to be
read kindly, that is said); one it cannot use is refused in one line; one in the future is ignored with a warning.
Never is a state the tap does not understand quietly taken as none, which would import everything again."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tap_klaviyo import report_days
from tap_klaviyo.times import parse_datetime

# The top-level keys of a Singer state: the SDK reads `bookmarks`; `currently_syncing` is older Singer taps' and
# harmless to drop.
SINGER_KEYS = frozenset({"bookmarks", "currently_syncing"})
# What the SDK and this tap keep in a stream's or a partition's state, besides the bookmark itself.
BOOKMARK_KEYS = frozenset(
    {
        "replication_key",
        "replication_key_value",
        "replication_key_signpost",
        "starting_replication_value",
        "progress_markers",
        "partitions",
        "context",
        "metric_id",
    }
)
# singer-io taps' bookmark: a date-time to read from, on the stream's own replication key.
SINCE = "since"
# Klaviyo holds nothing older; an earlier bookmark is a mistake (and minus a lookback, out of datetime's range).
EARLIEST = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
# Klaviyo stamps some records a little in the future; a bookmark further ahead cannot have come from a sync.
FUTURE_SLACK = datetime.timedelta(days=1)
# At most this many problems are spelled out in the one line.
SHOWN = 3

FIX = "fix it or remove that bookmark to import the stream again"


def unwrap(document: Any) -> tuple[Any, list[str]]:
    """The Singer state inside `document`, and what it was found in (outermost first)."""
    wrappers: list[str] = []
    while isinstance(document, dict) and "bookmarks" not in document:
        if set(document) == {"singer_state"}:
            wrappers.append("Meltano's `singer_state`")
            document = document["singer_state"]
        elif document.get("type") == "STATE" and "value" in document:
            wrappers.append("a STATE message's `value`")
            document = document["value"]
        else:
            break
    return document, wrappers


def shape_problem(document: Any) -> str | None:
    """What makes `document` (unwrapped) no state at all, as the end of a sentence about it; None if it is one."""
    state, wrappers = unwrap(document)
    problem = _shape(state)
    if problem and wrappers:
        problem += f" (in {', in '.join(reversed(wrappers))})"
    return problem


def _shape(state: Any) -> str | None:
    if not isinstance(state, dict):
        return "must hold a JSON object (a Singer STATE value, with `bookmarks`)"
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict) or not all(isinstance(v, dict) for v in bookmarks.values()):
        return "must map each stream name to an object under `bookmarks`"
    for name, stream_state in bookmarks.items():
        partitions = stream_state.get("partitions", [])
        if not isinstance(partitions, list) or not all(
            isinstance(p, dict) and isinstance(p.get("context"), dict) for p in partitions
        ):
            return f"must list stream '{name}'s `partitions` as objects, each with a `context` object"
        contexts = [p["context"] for p in partitions]
        twice = next((c for i, c in enumerate(contexts) if c in contexts[:i]), None)
        if twice is not None:
            return f"lists the partition {describe(twice)} of stream '{name}' twice: keep one of the two"
    return None


@dataclass(frozen=True)
class Keeps:
    """How a stream of the tap keeps its bookmark: on which replication key (None: it is always read whole), and
    whether one per partition (under `partitions`) rather than one for the stream; or, for a report stream
    (`days`), the days it has read (see report_days.py)."""

    replication_key: str | None
    partitioned: bool = False
    days: bool = False


@dataclass
class Review:
    """What a state's bookmarks come to: problems that stop the run, warnings, and notes of how a bookmark was
    read."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self) -> str | None:
        """The problems as one line, None if there are none."""
        if not self.problems:
            return None
        more = len(self.problems) - SHOWN
        return "; ".join(self.problems[:SHOWN]) + (f"; and {more} more like these" if more > 0 else "") + "."


def review(
    state: Mapping[str, Any], other_keys: Sequence[str], streams: Mapping[str, Keeps], now: datetime.datetime
) -> Review:
    """Check every bookmark of the tap's `streams` in `state` (unwrapped, shaped), making those it can use the
    stream's own form in place: a missing replication key or singer-io's `since` is taken as the stream's
    replication key, a future bookmark is dropped. `other_keys`: the state's top-level keys that are not Singer's."""
    result = Review()
    bookmarks: dict[str, dict[str, Any]] = state.get("bookmarks") or {}
    ours = [name for name in bookmarks if name in streams]
    if not ours and (bookmarks or other_keys):
        found = [f"bookmarks for {_names(list(bookmarks))}"] if bookmarks else []
        found += [f"the key(s) {_names(other_keys)}"] if other_keys else []
        result.problems.append(
            f"The state holds {' and '.join(found)} but none for tap-klaviyo's streams: it is not this tap's state "
            "(another tap's?); pass the state tap-klaviyo wrote, or no state to import everything"
        )
        return result
    if other_keys:
        result.warnings.append(f"The state's key(s) {_names(other_keys)} are not Singer's: ignored.")
    late = now + FUTURE_SLACK
    for name in ours:
        keeps, stream_state = streams[name], bookmarks[name]
        if keeps.days and (problem := report_days.state_problem(stream_state)):
            result.problems.append(
                f"The state of report stream '{name}' {problem}: fix it or remove it to read the stream's days again"
            )
        if keeps.replication_key is None:
            continue
        if not keeps.partitioned:
            _check(stream_state, f"stream '{name}'", keeps.replication_key, late, result)
            continue
        whole = stream_state.get("replication_key_value", stream_state.get(SINCE))
        if whole is not None:
            result.problems.append(
                f"The state's bookmark for stream '{name}' is one for the whole stream ({_show(whole)}), but the "
                "stream keeps one per list and segment under `partitions`: remove it (lists and segments without "
                "a bookmark of their own are imported whole)"
            )
        for partition in stream_state.get("partitions", []):
            where = f"stream '{name}' ({describe(partition['context'])})"
            _check(partition, where, keeps.replication_key, late, result)
    return result


def _check(bookmark: dict[str, Any], where: str, key: str, late: datetime.datetime, result: Review) -> None:
    """Check one bookmark (a stream's or a partition's), and put a usable one in the stream's own form."""
    value, named, read_from = bookmark.get("replication_key_value"), bookmark.get("replication_key"), None
    if value is None:
        if SINCE not in bookmark:
            unknown = sorted(set(bookmark) - BOOKMARK_KEYS)
            if unknown:
                result.problems.append(
                    f"The state's bookmark for {where} holds {_names(unknown)} but no `replication_key_value`: it "
                    f"is not a bookmark tap-klaviyo can read; {FIX}"
                )
            return
        value, read_from = bookmark[SINCE], f"singer-io's `{SINCE}`"
    if named is not None and named != key:
        result.problems.append(
            f"The state's bookmark for {where} is on `{str(named)[:40]}` ({_show(value)}), but the stream's "
            f"replication key is `{key}`: set its replication_key to `{key}` if the value is one, or remove the "
            "bookmark to import the stream again"
        )
        return
    moment = _moment(value)
    if moment is None:
        result.problems.append(f"The state's bookmark for {where} is not a date-time: {_show(value)}: {FIX}")
        return
    if moment < EARLIEST:
        result.problems.append(
            f"The state's bookmark for {where} is {_show(value)}, before {EARLIEST.date()} (Klaviyo holds nothing "
            f"that old): {FIX}"
        )
        return
    bookmark.pop(SINCE, None)
    bookmark["replication_key"] = key
    if moment > late:
        result.warnings.append(
            f"The state's bookmark for {where} is {_show(value)}, in the future: it cannot be right, so it is "
            "ignored and the stream is read as if it had none (from `start_date`, or all history)."
        )
        bookmark.pop("replication_key_value", None)
        return
    if read_from or named is None:
        result.notes.append(
            f"The state's bookmark for {where} is {read_from or 'a value without a replication_key'} "
            f"({_show(value)}): read as its `{key}`."
        )
    bookmark["replication_key_value"] = value


def _moment(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def describe(context: Mapping[str, Any]) -> str:
    """A partition, for a message: its context's keys and values ("list_id XyZ12a, type list")."""
    return ", ".join(f"{k} {str(v)[:40]}" for k, v in context.items())


def _show(value: Any) -> str:
    return repr(value)[:40]


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(str(n)[:40] for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")
