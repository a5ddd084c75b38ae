"""A streaming parser of server-sent events (the WHATWG ``text/event-stream`` format).

It reads the body chunk by chunk (``aiohttp``'s ``StreamReader.iter_any()``), never the
whole body, and handles everything the format allows: ``data:`` over several lines,
``event:``, ``id:``, ``retry:``, comments (``: keep-alive``), CRLF / LF / CR line ends
(even a CRLF split across two chunks), a byte-order mark, and a stream that ends in the
middle of an event (that event is discarded, as the format says, and counted).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import attrs

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SseDecoder", "SseError", "SseEvent", "aiter_sse"]

#: An event (or a line) larger than this is refused rather than buffered without end.
DEFAULT_MAX_EVENT_BYTES = 1 << 20
_BOM = "\ufeff"


class SseError(ValueError):
    """The stream breaks the event-stream format beyond repair (an oversized event)."""


@attrs.frozen
class SseEvent:
    """One dispatched event: its type (``"message"`` unless named), data and last id."""

    data: str
    event: str = "message"
    id: str | None = None


class SseDecoder:
    """Incremental decoder: :meth:`feed` bytes, get the events they complete.

    ``retry_ms`` is the last ``retry:`` value the server sent (the reconnection delay it
    asks for), ``last_event_id`` the last ``id:`` of a completed event; both outlive the
    events that set them, as the format says. ``comments`` counts comment lines (keep-alives).
    """

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self.retry_ms: int | None = None
        self.last_event_id: str | None = None
        self.comments = 0
        self.events = 0
        self._tail = b""
        self._skip_lf = False
        self._started = False
        self._id_buffer: str | None = None
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""

    @property
    def pending(self) -> bool:
        """Whether part of an event has arrived but not its blank line."""
        return bool(self._tail or self._data or self._event)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events completed by ``chunk`` (often none, sometimes several)."""
        if not chunk:
            return []
        if self._skip_lf:
            # The previous chunk ended in CR: a LF starting this one belongs to it.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._tail + chunk if self._tail else chunk
        if b"\r" in buffer:
            if buffer[-1:] == b"\r":
                self._skip_lf = True
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self.max_event_bytes:
            raise SseError(f"an event-stream line exceeds {self.max_event_bytes} bytes")
        events: list[SseEvent] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> bool:
        """End of stream: drop any unfinished event; returns whether there was one."""
        cut = self.pending
        self._id_buffer = self.last_event_id
        self._tail = b""
        self._skip_lf = False
        self._reset()
        return cut

    def _reset(self) -> None:
        self._data = []
        self._data_size = 0
        self._event = ""

    def _line(self, line: str) -> SseEvent | None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_bytes:
                raise SseError(f"an event exceeds {self.max_event_bytes} bytes")
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        # Any other field name is ignored, as the format says.
        return None

    def _dispatch(self) -> SseEvent | None:
        # The id takes effect at the blank line: an event cut off before it never
        # becomes the id a reconnect resumes from.
        self.last_event_id = self._id_buffer
        if not self._data:
            # A blank line with no data (a bare keep-alive, or event: alone) sends nothing.
            self._reset()
            return None
        event = SseEvent("\n".join(self._data), self._event or "message", self.last_event_id)
        self.events += 1
        self._reset()
        return event


async def aiter_sse(
    chunks: AsyncIterable[bytes], decoder: SseDecoder | None = None
) -> AsyncIterator[SseEvent]:
    """The events of a byte stream, as they complete.

    Pass ``response.content.iter_any()`` of an ``aiohttp`` response. Give your own
    ``decoder`` to read ``retry_ms``, ``last_event_id`` and whether the stream was cut
    (``decoder.close()`` after the loop).
    """
    decoder = decoder or SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
