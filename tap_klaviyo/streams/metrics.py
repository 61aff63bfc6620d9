"""The account's metrics: a stream of their own, and the directory event streams find their metric in by name."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tap_klaviyo import endpoints
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.records import Resource, flatten
from tap_klaviyo.streams.base import KlaviyoStream, StreamRow

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run

KLAVIYO_INTEGRATION = "klaviyo"


class MetricDirectory:
    """The account's metrics, fetched once per run for the metrics stream and the event streams alike."""

    def __init__(self, client: KlaviyoClient) -> None:
        self.client = client
        self._metrics: list[Resource] | None = None
        # The first requests go out together, each in a thread: the metrics are listed once.
        self._lock = threading.Lock()

    def all(self, stream: str) -> list[Resource]:
        with self._lock:
            if self._metrics is None:
                self._metrics = [
                    resource
                    for document in self.client.documents(endpoints.METRICS, {}, stream=stream)
                    for resource in document["data"]
                ]
            return self._metrics

    def find(self, name: str, stream: str, integration: str | None = None) -> list[Resource]:
        """Metrics of that name (any case), of that integration if one is given (its key or name, any case),
        Klaviyo's own first, then oldest first."""
        wanted = name.casefold()
        matches = [m for m in self.all(stream) if str(m["attributes"].get("name") or "").casefold() == wanted]
        if integration is not None:
            matches = [m for m in matches if integration.casefold() in _integration_names(m)]
        return sorted(matches, key=lambda m: (not _is_klaviyo_metric(m), m["attributes"].get("created") or "", m["id"]))


def _integration_names(metric: Resource) -> tuple[str, str]:
    integration = metric["attributes"].get("integration") or {}
    return str(integration.get("key", "")).casefold(), str(integration.get("name", "")).casefold()


def _is_klaviyo_metric(metric: Resource) -> bool:
    return KLAVIYO_INTEGRATION in _integration_names(metric)


class MetricsStream(KlaviyoStream):
    """Every metric of the account, from the run's directory."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.directory = run.directory

    def lookups(self) -> dict[Endpoint, Callable[[], object]]:
        return {endpoints.METRICS: lambda: self.directory.all(self.name)}

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for metric in self.directory.all(self.name):
            yield flatten(metric)
