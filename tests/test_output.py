"""What the tap writes reaches stdout whole: a write a signal cut short is written on."""

from __future__ import annotations

import io
import sys

import pytest

from tap_klaviyo.output import EncodedRecords, RecordBufferingWriter


class ShortWrites(io.BytesIO):
    """A pipe whose writes a signal interrupts: each takes at most `most` bytes, and says so."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most = most
        self.calls = 0

    def write(self, data) -> int:  # type: ignore[override]
        self.calls += 1
        return super().write(bytes(data[: self.most]))


@pytest.mark.parametrize("most", [1, 1000, 64 * 1024])
def test_every_byte_of_a_flush_is_written_even_when_writes_end_short(monkeypatch, most):
    pipe = ShortWrites(most)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(pipe, write_through=True))
    writer = RecordBufferingWriter()
    lines = b"".join(b'{"type":"RECORD","stream":"s","record":{"n":%d}}\n' % n for n in range(5000))
    writer.write_message(EncodedRecords(lines, 5000))
    writer.flush()
    assert pipe.getvalue() == lines
    assert pipe.calls > 1 or most >= len(lines)
