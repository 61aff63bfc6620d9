"""The `event_metrics` setting: Klaviyo metric names, each read as an event stream of its own."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricStream:
    """An entry of `event_metrics`: the stream it becomes, and the metric it reads."""

    stream: str
    metric: str
    integration: str | None = None


_STREAM_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def stream_name(metric: str) -> str:
    """A metric name in snake_case, in ASCII: "Received Text Message" -> received_text_message."""
    ascii_name = unicodedata.normalize("NFKD", metric).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def event_metrics(value: Any, taken: set[str]) -> tuple[list[MetricStream], list[str]]:
    """The streams `event_metrics` asks for, and every mistake in it (`taken`: stream names already in use)."""
    if not isinstance(value, list):
        return [], [f"Setting `event_metrics` must be a list of metric names, not {str(value)[:40]!r}"]
    streams: list[MetricStream] = []
    problems = []
    seen = set(taken)
    for i, entry in enumerate(value):
        where = f"Setting `event_metrics` entry {i + 1}"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or set(entry) - {"name", "integration", "stream"}:
            problems.append(f"{where} must be a metric name or an object with `name`, `integration`, `stream`")
            continue
        name, integration, stream = entry.get("name"), entry.get("integration"), entry.get("stream")
        if not isinstance(name, str) or not name.strip():
            problems.append(f'{where} has no metric name: give the Klaviyo metric\'s name, e.g. "Placed Order"')
            continue
        if integration is not None and (not isinstance(integration, str) or not integration.strip()):
            problems.append(f'{where}: `integration` must be an integration\'s key or name, e.g. "shopify"')
            continue
        stream = stream if stream is not None else stream_name(name)
        if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
            problems.append(
                f"{where} ({name[:40]!r}) needs a `stream` name of lowercase letters, digits and underscores, "
                f"starting with a letter, not {str(stream)[:40]!r}"
            )
            continue
        if stream in seen:
            clash = "a stream of the tap" if stream in taken else "another entry's stream"
            problems.append(
                f"{where} ({name[:40]!r}) would be stream `{stream}`, {clash}: give it another `stream` name"
            )
            continue
        seen.add(stream)
        streams.append(MetricStream(stream, name.strip(), integration.strip() if integration else None))
    return streams, problems
