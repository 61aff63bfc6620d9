"""The README, docs/, meltano.yml and the sample config stay true to the tap's settings and streams.

Settings are described once, in `tap_klaviyo/settings.py` (and `report_settings.py`): the README's settings table
and `meltano.yml` say the same, and these tests fail when they differ.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_klaviyo.settings import SETTINGS as TAP_SETTINGS
from tap_klaviyo.settings import settings_problems
from tap_klaviyo.streams.table import STREAMS
from tap_klaviyo.tap import TapKlaviyo, known_settings
from tests import meltano_select
from tests.kit import API_KEY, tap_argv

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCHEMA = TAP_SETTINGS.to_dict()
SETTINGS = SCHEMA["properties"]
# The documents whose links must lead somewhere.
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
# The README is the first page a newcomer reads: what it does, how to run it, settings, streams. The rest is in docs/.
README_MAX_BYTES = 12_000
# A README settings cell may end by pointing to the docs; the rest of it is the setting's description.
SEE_ALSO = re.compile(r" See \[[^\]]+\]\([^)]+\)\.$")


def table(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table under `heading` (of any level), header excluded, as stripped cells."""
    section = re.split(rf"^#+ {re.escape(heading)}\n", text, maxsplit=1, flags=re.MULTILINE)[1]
    section = re.split(r"^#+ ", section, maxsplit=1, flags=re.MULTILINE)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def readme_table(heading: str) -> list[list[str]]:
    return table(README, heading)


def default_shown(name: str) -> str:
    """How the README's settings table shows a setting's default."""
    if name in SCHEMA.get("required", []):
        return "required"
    default = SETTINGS[name].get("default")
    if default is None:
        return "none"
    return f"`{default if isinstance(default, str) else json.dumps(default)}`"


def test_readme_settings_table_says_what_settings_py_says():
    rows = {row[0].strip("`"): row for row in readme_table("Settings")}
    assert list(rows) == list(SETTINGS), "the README lists every setting, in the tap's order"
    for name, schema in SETTINGS.items():
        _, default, description = rows[name]
        assert default == default_shown(name), f"README default of {name} should be {default_shown(name)}"
        assert SEE_ALSO.sub("", description) == schema["description"], (
            f"README's description of {name} differs from settings.py's: copy settings.py's description"
        )


def test_meltano_yml_describes_each_setting_as_settings_py_does():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-klaviyo")
    declared = {s["name"]: s for s in tap["settings"]}
    assert [name for name in declared if name in SETTINGS] == list(SETTINGS), "meltano.yml: every setting, in order"
    for name, schema in SETTINGS.items():
        assert declared[name]["description"] == schema["description"], (
            f"meltano.yml's description of {name} differs from settings.py's: copy settings.py's description"
        )
        assert declared[name]["label"] == schema["title"], f"meltano.yml's label of {name} is settings.py's title"


@pytest.mark.e2e
def test_about_lists_the_settings_in_the_tap_order():
    about = subprocess.run(tap_argv("--about", "--format=markdown"), capture_output=True, text=True, check=True)
    about_rows = re.findall(r"^\| (\w+) \| (True|False) \| ([^|]*) \|", about.stdout, re.MULTILINE)
    assert [name for name, _, _ in about_rows][: len(SETTINGS)] == list(SETTINGS)


def stream_scopes() -> dict[str, set[str]]:
    """The scopes each stream needs, as the run checks them (from the endpoints each stream reads)."""
    tap = TapKlaviyo(config={"api_key": API_KEY}, parse_env_config=False)
    return {name: {scope for e in stream.endpoints() for scope in e.scopes} for name, stream in tap.streams.items()}


def test_readme_streams_table_matches_the_stream_table():
    rows = {row[0].split("`")[1]: row for row in readme_table("Streams")}
    assert list(rows) == [row.name for row in STREAMS], "the README lists every stream, in the table's order"
    scopes = stream_scopes()
    for row in STREAMS:
        name, source, keys, cursor, scope = rows[row.name]
        assert name.endswith("(opt-in)") == (not row.selected_by_default), f"{row.name}: (opt-in) iff not by default"
        assert [k.strip().strip("`") for k in keys.split(",")] == list(row.primary_keys), row.name
        assert cursor.strip("`") == (row.replication_key or "none"), row.name
        assert {s.strip().strip("`") for s in scope.split(",")} == scopes[row.name], f"README's scopes of {row.name}"
        for needed in [source_.endpoint.path for source_ in row.sources] + [
            row.metric or "",
            *(row.derived_from or []),
        ]:
            wanted = needed.rsplit(".", 1)[-1] if row.derived_from and needed == row.derived_from[1] else needed
            assert wanted in source, f"README's source of {row.name} should name {wanted!r}"


def test_meltano_yml_leaves_out_exactly_the_opt_in_streams():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-klaviyo")
    assert tap["select"] == meltano_select.wanted(), "meltano.yml's select is stale: run scripts/meltano-select"
    opt_in = {row.name for row in STREAMS if not row.selected_by_default}
    assert {pattern[1:-2] for pattern in tap["select"] if pattern.startswith("!")} == opt_in


def test_meltano_select_rewrites_only_the_select_list():
    text = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    stale = text.replace("    - '!profiles.*'\n", "")
    assert stale != text
    assert meltano_select.rewritten(stale) == text


def test_deletions_names_every_stream_that_is_not_mirrored():
    deletions = (ROOT / "docs" / "deletions.md").read_text(encoding="utf-8")
    kept = [row.name for row in STREAMS if not row.family.READ_WHOLE_TO_MIRROR and not row.metric]
    assert [name for name in kept if f"`{name}`" not in deletions] == [], "docs/deletions.md: streams not mirrored"


def test_the_readme_stays_short():
    size = len(README.encode("utf-8"))
    assert size < README_MAX_BYTES, f"README.md is {size} bytes: move detail into docs/ (under {README_MAX_BYTES})"


def test_migration_maps_the_old_tabs_to_streams_of_the_tap():
    migration = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    rows = [[cell.strip("`") for cell in row] for row in table(migration, "Migration from the connector we replace")]
    streams = [stream for _, stream in rows]
    assert rows and set(streams) <= {row.name for row in STREAMS}, "docs/migration.md maps tabs to the tap's streams"
    assert len(set(streams)) == len(streams), "one tab per stream"


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+)$", strip_fences(path.read_text(encoding="utf-8")), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def strip_fences(text: str) -> str:
    """Text without fenced code blocks (whose `# ...` lines are no headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def strip_code(text: str) -> str:
    """Text without fenced code blocks and inline code (neither holds links)."""
    return re.sub(r"`[^`\n]*`", "", strip_fences(text))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_to_files_and_headings_that_exist(document: Path):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", strip_code(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked}")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)} links nowhere: " + "; ".join(broken)


def test_sample_config_shows_every_setting_but_end_date_and_is_valid():
    sample: dict[str, Any] = json.loads((ROOT / "sample_config.json").read_text(encoding="utf-8"))
    # `end_date` stops the import at a fixed date: a config copied from the sample would quietly stop importing new
    # events once that date passed. It is for backfills, as its description says.
    assert set(sample) == set(SETTINGS) - {"end_date"}
    assert "backfills" in SETTINGS["end_date"]["description"]
    assert settings_problems(sample, known_settings(), {row.name for row in STREAMS}) == []
