"""meltano.yml's `select` of the tap, from the stream table: every stream but the opt-in ones, which Meltano would
otherwise select (it does not read the catalog's `selected-by-default`). `scripts/meltano-select` writes it;
`tests/test_docs.py` fails until it has."""

from __future__ import annotations

import re
from pathlib import Path

from tap_klaviyo.streams.table import STREAMS

MELTANO_YML = Path(__file__).resolve().parents[1] / "meltano.yml"
# The tap's `select:` list in meltano.yml: the key, then its items, each "- '...'" at the same indent.
SELECT = re.compile(r"^(?P<indent> +)select:\n(?:(?P=indent)- .*\n)+", re.MULTILINE)


def wanted() -> list[str]:
    return ["*.*", *(f"!{row.name}.*" for row in STREAMS if not row.selected_by_default)]


def rewritten(text: str) -> str:
    """meltano.yml's text with its (first: the tap's) `select` list made `wanted()`."""
    found = SELECT.search(text)
    if found is None:
        raise SystemExit("meltano.yml has no `select:` list to rewrite")
    indent = found["indent"]
    items = "".join(f"{indent}- '{pattern}'\n" for pattern in wanted())
    return text[: found.start()] + f"{indent}select:\n{items}" + text[found.end() :]


if __name__ == "__main__":
    MELTANO_YML.write_text(rewritten(MELTANO_YML.read_text(encoding="utf-8")), encoding="utf-8")
