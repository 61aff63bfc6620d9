"""A normal run's log is quiet and true: no warning when nothing is wrong, and no line per list or segment at INFO."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.kit import DEFAULT_STREAMS, run_tap, select

pytestmark = pytest.mark.e2e

MEMBERS = "lists_and_segments_members"
LOG_LINE = re.compile(r"^\S+ \S+ \| (\w+) +\| (\S+) +\| (.*)$")


def log_lines(stderr: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of each log line."""
    return [match.groups() for line in stderr.splitlines() if (match := LOG_LINE.match(line))]


def test_a_normal_run_logs_no_warning_and_a_line_per_stream_not_per_list(account, config):
    catalog = select(run_tap(config, "--discover"), DEFAULT_STREAMS | {MEMBERS})
    result = run_tap(config, catalog=catalog)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = log_lines(result.stderr)
    assert len(lines) == len(result.stderr.splitlines()), "every line on stderr is a log line"
    loud = [line for line in lines if line[0] not in ("INFO", "DEBUG")]
    assert loud == [], f"warnings in a run where nothing is wrong: {loud}"
    groups = len(account.lists) + len(account.segments)
    assert len(result.records(MEMBERS)) > 0 and groups >= 10
    members = [message for _, logger, message in lines if logger == f"tap-klaviyo.{MEMBERS}"]
    assert len(members) <= 3, f"{len(members)} lines for {MEMBERS} ({groups} lists and segments): {members[:5]}"
    assert any(m.startswith(f"{MEMBERS}: done: {len(result.records(MEMBERS)):,} records") for m in members), members
    per_stream = Counter(logger for _, logger, _ in lines if logger.startswith("tap-klaviyo."))
    assert max(per_stream.values()) <= 4, per_stream


def test_the_lines_per_list_are_there_at_debug(config):
    catalog = select(run_tap(config, "--discover"), {MEMBERS})
    result = run_tap(config, catalog=catalog, env={"TAP_KLAVIYO_LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr[-3000:]
    starts = [
        level
        for level, logger, message in log_lines(result.stderr)
        if logger == f"tap-klaviyo.{MEMBERS}" and message.startswith("Starting incremental sync")
    ]
    assert len(starts) > 1 and set(starts) == {"DEBUG"}
