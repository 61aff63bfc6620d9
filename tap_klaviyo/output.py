"""How the tap's messages reach stdout: a batching msgspec writer, and records encoded a page at a time."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib import Message, RecordMessage


class _RecordMessage(msgspec.Struct, tag_field="type", tag="RECORD", omit_defaults=True, gc=False):
    # The fields and order of the SDK's RECORD message.
    stream: str
    record: Any
    version: int | None = None
    time_extracted: str | None = None


class OutputClosed(BaseException):
    """The target stopped reading (a broken pipe). Not an Exception: nothing on its way out takes it for a
    stream's error, and the command reports it in one line."""


def silence_stdout() -> None:
    """Point stdout at /dev/null once the target has gone, so that nothing written later (Python flushes stdout
    on exit) fails with a broken pipe again: Python's documented idiom for SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@dataclass(frozen=True)
class EncodedRecords:
    """RECORD messages already encoded as JSON lines, written as they are."""

    lines: bytes
    count: int


def encode_records(
    stream: str, records: Sequence[Any], *, version: int | None, time_extracted: datetime.datetime
) -> EncodedRecords:
    """RECORD messages for `records` (dicts or msgspec structs), as the SDK would write them one by one, in a
    single call into msgspec: per record, this is a fraction of the SDK's path through `RecordMessage`."""
    extracted = time_extracted.astimezone(datetime.UTC).isoformat(sep="T")
    messages = [_RecordMessage(stream, record, version, extracted) for record in records]
    return EncodedRecords(encoder.encode_lines(messages), len(messages))


class RecordBufferingWriter(MsgSpecWriter):
    """The SDK's msgspec writer (faster than its default one; see benchmarks/README.md), writing RECORD messages in
    batches: one write and flush per record is a system call per record, and stdout may be unbuffered
    (PYTHONUNBUFFERED). Every other message writes out what is pending first, so everything before a STATE
    reaches the target before that STATE does: a killed run resumes from its last STATE losing nothing."""

    BATCH_BYTES = 256 * 1024

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self._flush_at_exit)

    def write_message(self, message: Message | EncodedRecords) -> None:
        if isinstance(message, EncodedRecords):
            self._pending += message.lines
        else:
            self._pending += self.format_message(message)
        if not isinstance(message, (RecordMessage, EncodedRecords)) or len(self._pending) >= self.BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        try:
            pending = self._pending
            written = sys.stdout.buffer.write(pending) if pending else 0
            # A signal that interrupts a write to a pipe ends it short (the handler only asks the run to stop): the
            # rest is written on, or the target would get half a line and miss the records after it.
            while written < len(pending):
                written += sys.stdout.buffer.write(pending[written:])
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
            raise OutputClosed from None
        finally:
            self._pending.clear()

    def _flush_at_exit(self) -> None:
        # A run that failed may leave records after its last STATE; a target already gone cannot take them.
        with contextlib.suppress(OutputClosed):
            self.flush()
