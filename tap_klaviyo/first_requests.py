"""Every selected stream's first request, answered before the run emits anything: a key without a scope that some
stream needs stops the run at once, with one line naming every missing scope and what needs it, instead of after the
streams before it have written their records (which every scheduled run would load, and then fail).

The first requests go out together at the start: the first pages of the entity streams and of profiles (the window
pool reads them ahead), the lookups (the account's metrics, its lists and segments, its id and timezone, each report
stream's first report page, which waits for the metrics and the account it needs), then, once those are
known, the first page of each event stream and the first page of members of the first list and the first segment.
Waiting for them costs no round trip: the first stream emitted waits for its own first page anyway, and the others
went out with it, and the pool reads on meanwhile. A request answered tells that the key holds its endpoint's
scopes; one refused (403) that it lacks the one scope of them not known to be held. A scope no request tells about
is asked with the cheapest request of an endpoint that needs only it (`Endpoint.cheapest`): beside the lookups when
there is no window pool (`concurrency` 1: nothing is read ahead), and otherwise at the end, where an account with no
list or segment has no member to ask for, or none of the event streams' metrics and so no event to ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, TypeVar

from tap_klaviyo import stopping
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.endpoints import ACCOUNTS, CAMPAIGNS, EVENTS, FLOWS, LISTS, METRICS, PROFILES, SEGMENTS, Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.failures import MissingScope
from tap_klaviyo.settings import ADD_ACCOUNT_ID
from tap_klaviyo.windows import STOP_CHECK_SECONDS

if TYPE_CHECKING:
    from tap_klaviyo.streams.base import KlaviyoStream
    from tap_klaviyo.streams.run import Run

T = TypeVar("T")
# For each scope, an endpoint that needs only it, to ask with its cheapest query.
CHEAPEST = {
    endpoint.scopes[0]: endpoint
    for endpoint in (LISTS, SEGMENTS, CAMPAIGNS, FLOWS, METRICS, EVENTS, PROFILES, ACCOUNTS)
}


def answer_first_requests(streams: Sequence[KlaviyoStream], run: Run) -> None:
    """Send the first request of each of `streams` (the selected ones) and wait for every answer; raise one
    KlaviyoError naming every scope the key lacks, or the first other failure."""
    needs = _needs(streams)
    try:
        if run.window_pool is not None:
            run.window_pool.start()
        failed = _together(_lookups(streams, run, needs))
        _raise_unless_refused(failed.values())
        keys = [key for stream in streams if not stream.lookups().keys() & failed.keys() for key in stream.ready()]
        if run.window_pool is not None and keys:
            _raise_unless_refused(run.window_pool.read_first(dict.fromkeys(keys)))
        _ask_the_rest(run.client, needs)
    except BaseException:
        if run.window_pool is not None:
            run.window_pool.close()
        raise


def _lookups(
    streams: Sequence[KlaviyoStream], run: Run, needs: Mapping[str, list[str]]
) -> dict[Endpoint, Callable[[], object]]:
    """What the streams look up first, by the endpoint each asks; without a window pool, also the cheapest request
    for each scope no lookup asks about (nothing is read ahead)."""
    lookups: dict[Endpoint, Callable[[], object]] = {}
    for stream in streams:
        for endpoint, lookup in stream.lookups().items():
            lookups.setdefault(endpoint, lookup)
    if any(stream.adds_account for stream in streams):
        lookups[ACCOUNTS] = run.account_id
    if run.window_pool is None:
        looked_up = {scope for endpoint in lookups for scope in endpoint.scopes}
        for scope in needs.keys() - looked_up:
            lookups[CHEAPEST[scope]] = _cheapest(run.client, scope, needs[scope][0])
    return lookups


def _needs(streams: Sequence[KlaviyoStream]) -> dict[str, list[str]]:
    """Each scope the streams need, with the names of the streams that need it (and `add_account_id`'s)."""
    needs: dict[str, list[str]] = {}
    for stream in streams:
        for scope in dict.fromkeys(scope for endpoint in stream.endpoints() for scope in endpoint.scopes):
            needs.setdefault(scope, []).append(stream.name)
    if any(stream.adds_account for stream in streams):
        needs.setdefault(ACCOUNTS.scopes[0], []).append(ADD_ACCOUNT_ID)
    return needs


def _together(tasks: Mapping[T, Callable[[], object]]) -> dict[T, BaseException]:
    """Run the tasks at once, each in a thread of its own; the failures, by key."""
    if not tasks:
        return {}
    pool = ThreadPoolExecutor(len(tasks), thread_name_prefix="klaviyo-first")
    futures = {key: pool.submit(task) for key, task in tasks.items()}
    pool.shutdown(wait=False)
    while wait(futures.values(), timeout=STOP_CHECK_SECONDS).not_done:
        # Nothing is written yet: a signal may stop the run here (a request in flight does not hold it).
        stopping.check()
    return {key: error for key, future in futures.items() if (error := future.exception()) is not None}


def _raise_unless_refused(errors: Iterable[BaseException]) -> None:
    """Raise the first failure that is not a missing scope (those are reported together, at the end)."""
    for error in errors:
        if not isinstance(error, MissingScope):
            raise error


def _held(client: KlaviyoClient) -> tuple[set[str], set[str]]:
    """The scopes the key holds, and those it lacks, as far as the requests so far tell."""
    held = {scope for endpoint in client.answered for scope in endpoint.scopes}
    lacked = set()
    for endpoint in client.refused:
        unknown = set(endpoint.scopes) - held
        if len(unknown) == 1:
            lacked |= unknown
    return held, lacked


def _ask_the_rest(client: KlaviyoClient, needs: Mapping[str, list[str]]) -> None:
    """Ask about the scopes no request has told of yet, then report every missing one."""
    held, lacked = _held(client)
    unknown = [scope for scope in needs if scope not in held | lacked]
    _raise_unless_refused(_together({scope: _cheapest(client, scope, needs[scope][0]) for scope in unknown}).values())
    held, _ = _held(client)
    missing = {scope: users for scope, users in sorted(needs.items()) if scope not in held}
    if missing:
        raise KlaviyoError(_message(missing, [refusal.detail for refusal in client.refused.values()]))
    if client.refused:
        # Refused though the key holds every scope the endpoint needs: as Klaviyo said it.
        raise next(iter(client.refused.values()))


def _cheapest(client: KlaviyoClient, scope: str, stream: str) -> Callable[[], object]:
    """The cheapest request that tells whether the key holds `scope` (counted as `stream`'s)."""
    endpoint = CHEAPEST[scope]
    page_size = 1 if endpoint.page_sizes else None
    # Only the answer's status matters: its body is not decoded.
    return lambda: client.first_page(endpoint, dict(endpoint.cheapest), stream=stream, decode=len, page_size=page_size)


def _message(missing: Mapping[str, list[str]], details: list[str]) -> str:
    scopes = [f"'{scope}' (for {_users(names)})" for scope, names in missing.items()]
    them = "it" if len(scopes) == 1 else "them"
    fixes = [f"give the key read access to {them} in Klaviyo (Settings > API keys)"]
    if any(name != ADD_ACCOUNT_ID for names in missing.values() for name in names):
        fixes.append(f"deselect the streams that need {them}")
    if any(ADD_ACCOUNT_ID in names for names in missing.values()):
        fixes.append(f"turn `{ADD_ACCOUNT_ID}` off")
    # Klaviyo's words, where one refusal says it all.
    said = f" Klaviyo said: {details[0]}" if len(set(details)) == 1 else ""
    return (
        f"The API key lacks the scope{'s' if len(scopes) > 1 else ''} {_listed(scopes)}: {', or '.join(fixes)}.{said}"
    )


def _users(names: list[str]) -> str:
    streams = [f"'{name}'" for name in names if name != ADD_ACCOUNT_ID]
    users = [f"stream{'s' if len(streams) > 1 else ''} {_listed(streams)}"] if streams else []
    return _listed(users + ([f"setting `{ADD_ACCOUNT_ID}`"] if ADD_ACCOUNT_ID in names else []))


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
