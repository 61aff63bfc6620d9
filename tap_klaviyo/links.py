"""Pages read by their `links.next`: a link that would loop is an error, not a run that never ends."""

from __future__ import annotations

from tap_klaviyo import failures
from tap_klaviyo.codec import RawPage
from tap_klaviyo.endpoints import Endpoint


def next_link(result: object) -> str | None:
    """A decoded page's `links.next`."""
    if isinstance(result, RawPage):
        return result.next_url
    links = result.get("links") if isinstance(result, dict) else None
    return links.get("next") if isinstance(links, dict) else None


class FollowedLinks:
    """The pages a run read by their links, per stream (and POST body), kept as hashes: Klaviyo's cursors name
    each page once, so a link back to one of them (or a page naming itself) would be followed forever."""

    def __init__(self) -> None:
        self._read: set[int] = set()

    def check(
        self,
        url: str,
        served: str,
        next_url: str | None,
        body: bytes | None,
        endpoint: Endpoint,
        stream: str,
        method: str,
    ) -> None:
        """A page read by its link (`url`; `served`, the URL that answered) whose own link is `next_url`."""
        if next_url in (url, served):
            raise failures.looping_link(url, endpoint, stream, method, itself=True)
        self._read.add(hash((stream, url, body)))
        if next_url is not None and hash((stream, next_url, body)) in self._read:
            raise failures.looping_link(next_url, endpoint, stream, method, itself=False)
