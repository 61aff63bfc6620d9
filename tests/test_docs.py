"""The README and sample config stay true to the tap's settings and streams."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tap_klaviyo.settings import SETTINGS as TAP_SETTINGS
from tap_klaviyo.settings import settings_problems
from tap_klaviyo.streams.table import STREAMS
from tap_klaviyo.tap import known_settings
from tests.kit import tap_argv

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS = TAP_SETTINGS.to_dict()["properties"]


def readme_table(heading: str) -> list[list[str]]:
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.e2e
def test_readme_settings_table_matches_the_tap_and_about():
    rows = {row[0].strip("`"): row[1] for row in readme_table("Settings")}
    assert list(rows) == list(SETTINGS), "the README lists every setting, in the tap's order"
    for name, schema in SETTINGS.items():
        default = schema.get("default")
        if default is not None:
            shown = json.dumps(default) if not isinstance(default, str) else default
            assert f"`{shown}`" in rows[name], f"README default of {name} should be {shown}"
    about = subprocess.run(tap_argv("--about", "--format=markdown"), capture_output=True, text=True, check=True)
    about_rows = re.findall(r"^\| (\w+) \| (True|False) \| ([^|]*) \|", about.stdout, re.MULTILINE)
    assert [name for name, _, _ in about_rows][: len(SETTINGS)] == list(SETTINGS)


def test_readme_streams_table_matches_the_stream_table():
    rows = {row[0].strip("`"): row for row in readme_table("Streams")}
    assert list(rows) == [row.name for row in STREAMS], "the README lists every stream, in the table's order"
    for row in STREAMS:
        _, _, source, keys, cursor = rows[row.name]
        assert [k.strip().strip("`") for k in keys.split(",")] == list(row.primary_keys), row.name
        assert cursor.strip("`") == (row.replication_key or "none"), row.name
        for needed in [source_.endpoint.path for source_ in row.sources] + [
            row.metric or "",
            *(row.derived_from or []),
        ]:
            wanted = needed.rsplit(".", 1)[-1] if row.derived_from and needed == row.derived_from[1] else needed
            assert wanted in source, f"README's source of {row.name} should name {wanted!r}"


def test_sample_config_shows_every_setting_but_end_date_and_is_valid():
    sample = json.loads((ROOT / "sample_config.json").read_text(encoding="utf-8"))
    # `end_date` stops the import at a fixed date: a config copied from the sample would quietly stop importing new
    # events once that date passed. It is for backfills, which the README's settings table describes.
    assert set(sample) == set(SETTINGS) - {"end_date"}
    assert "backfills" in {row[0]: row[2] for row in readme_table("Settings")}["`end_date`"]
    assert settings_problems(sample, known_settings(), {row.name for row in STREAMS}) == []
