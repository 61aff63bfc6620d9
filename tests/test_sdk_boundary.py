"""singer-sdk internals are touched in one module only (`tap_klaviyo/sdk.py`), and what it relies on still exists
in the installed SDK with the signatures it calls."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from singer_sdk import Stream, Tap
from singer_sdk.streams._state import StreamStateManager

from tap_klaviyo.sdk import RELIED_ON, PageSyncStream, SdkStream, SdkTap
from tap_klaviyo.tap import TapKlaviyo

PACKAGE = Path(__file__).resolve().parents[1] / "tap_klaviyo"
BOUNDARY = PACKAGE / "sdk.py"
OWNERS = {"Tap": Tap, "Stream": Stream, "StreamStateManager": StreamStateManager}

# The parameters each method is called or overridden with in sdk.py.
SIGNATURES = {
    "Tap._validate_config": ["self", "raise_errors"],
    "Tap._handle_termination": ["self", "signum", "frame"],
    "Tap.sync_all": ["self"],
    "Stream._increment_stream_state": ["self", "latest_record", "context"],
    "Stream._sync_records": ["self", "context", "write_messages"],
    "Stream._write_starting_replication_value": ["self", "context"],
    "Stream._write_state_message": ["self"],
    "Stream._finalize_state": ["self", "state"],
    "Stream._write_activate_version_message": ["self", "full_table_version"],
    "Stream.finalize_state_progress_markers": ["self", "state"],
    "Stream._write_schema_message": ["self"],
    "Stream._write_record_message": ["self", "record"],
}
# Members that are attributes of an instance, not of the class.
INSTANCE_ATTRIBUTES = {"Stream._stream_version", "Stream._tap", "StreamStateManager.is_flushed"}


class _PlainStream(Stream):
    name = "plain"
    schema = {"type": "object", "properties": {"id": {"type": "string"}}}  # noqa: RUF012

    def get_records(self, context):
        return iter(())


class _PlainTap(Tap):
    name = "plain"
    config_jsonschema = {"type": "object", "properties": {}}  # noqa: RUF012

    def discover_streams(self):
        return [_PlainStream(self)]


def plain_stream() -> Stream:
    return _PlainTap(config={}, validate_config=False).streams["plain"]


def test_every_member_the_boundary_relies_on_exists_with_the_signature_it_uses():
    assert set(RELIED_ON) == set(SIGNATURES) | INSTANCE_ATTRIBUTES, "each member used has its reason and its check"
    for member, parameters in SIGNATURES.items():
        owner, name = member.split(".")
        method = getattr(OWNERS[owner], name, None)
        assert callable(method), f"singer-sdk no longer has {member}"
        assert list(inspect.signature(method).parameters) == parameters, f"{member} changed its signature"
    stream = plain_stream()
    instances = {"Stream": stream, "StreamStateManager": stream.state_manager}
    for member in INSTANCE_ATTRIBUTES:
        owner, name = member.split(".")
        assert hasattr(instances[owner], name), f"singer-sdk no longer sets {member}"


def sdk_private_names() -> set[str]:
    """Private members of the SDK's tap, stream and state manager classes and instances."""
    stream = plain_stream()
    found = [*dir(Tap), *dir(Stream), *dir(StreamStateManager), *vars(stream), *vars(stream.state_manager)]
    found += vars(stream._tap)
    return {name for name in found if name.startswith("_") and not name.startswith("__")}


def private_uses(path: Path, private: set[str]) -> list[str]:
    """Where a module reads, sets or overrides a private SDK member, or imports from a private SDK module."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in private:
            uses.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in private:
            uses.append(f"{path.name}:{node.lineno} def {node.name}")
        elif isinstance(node, ast.ImportFrom) and _private_sdk_module(node.module or ""):
            uses.append(f"{path.name}:{node.lineno} from {node.module}")
    return uses


def _private_sdk_module(module: str) -> bool:
    return module.startswith("singer_sdk") and any(part.startswith("_") for part in module.split("."))


def test_no_module_but_the_boundary_touches_sdk_internals():
    private = sdk_private_names() | {member.split(".")[1] for member in RELIED_ON}
    assert {"_tap", "_increment_stream_state", "_sync_records", "is_flushed"} <= private
    outside = [use for path in sorted(PACKAGE.rglob("*.py")) if path != BOUNDARY for use in private_uses(path, private)]
    assert outside == []
    inside = private_uses(BOUNDARY, private)
    assert {use.split(" ", 1)[1].lstrip(".").removeprefix("def ") for use in inside} == {
        member.split(".")[1] for member in RELIED_ON
    }


def test_the_tap_is_built_on_the_boundary():
    tap = TapKlaviyo(config={"api_key": "pk_test"}, validate_config=False)
    assert isinstance(tap, SdkTap)
    assert all(isinstance(stream, SdkStream) for stream in tap.streams.values())
    assert any(isinstance(stream, PageSyncStream) for stream in tap.streams.values())
