"""The event-stream decoder, fed the ways a network delivers bytes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enphase_battery.http.sse import SseDecoder, SseError, SseEvent

STREAM = (
    b"\xef\xbb\xbfretry: 2500\n"
    b": keep-alive\n"
    b"\n"
    b"event: live\n"
    b"id: 7\n"
    b'data: {"a":\n'
    b"data:  1}\n"
    b"\n"
    b"data: caf\xc3\xa9\r\n"
    b"\r\n"
    b"retry: soon\r"
    b"data\r"
    b"\r"
    b"id: 8\n"
    b"event: error\n"
    b"data: 472\n"
    b"\n"
)
EXPECTED = [
    SseEvent('{"a":\n 1}', "live", "7"),
    SseEvent("café", "message", "7"),
    SseEvent("", "message", "7"),
    SseEvent("472", "error", "8"),
]


def feed_all(decoder: SseDecoder, chunks: list[bytes]) -> list[SseEvent]:
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_every_field_and_line_ending() -> None:
    decoder = SseDecoder()
    assert feed_all(decoder, [STREAM]) == EXPECTED
    # "retry: soon" is not a number: the earlier value stands.
    assert decoder.retry_ms == 2500
    assert decoder.comments == 1
    assert decoder.last_event_id == "8"
    assert decoder.close() is False


def test_byte_by_byte_gives_the_same_events() -> None:
    # Every split point: a CRLF across chunks, a UTF-8 character across chunks...
    decoder = SseDecoder()
    assert feed_all(decoder, [STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_all(SseDecoder(), chunks) == EXPECTED


def test_a_cut_event_is_discarded_and_reported() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"whole": 1}\n\ndata: {"half"') == [SseEvent('{"whole": 1}')]
    assert decoder.pending
    assert decoder.close() is True
    # After close the decoder starts clean: the half event never surfaces.
    assert decoder.feed(b"data: next\n\n") == [SseEvent("next")]


def test_a_cut_after_complete_lines_but_before_the_blank_line_is_discarded() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: x\ndata: 1\n") == []
    assert decoder.close() is True


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Had the LF counted as a second line end, this would dispatch "a" with no "b".
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SseEvent("a\nb")]


def test_oversized_event_is_refused_not_buffered() -> None:
    decoder = SseDecoder(max_event_bytes=100)
    with pytest.raises(SseError):
        decoder.feed(b"data: " + b"x" * 200)
    decoder = SseDecoder(max_event_bytes=100)
    with pytest.raises(SseError):
        decoder.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_unknown_fields_and_nul_ids_are_ignored() -> None:
    decoder = SseDecoder()
    events = decoder.feed(b"id: 1\n\nfoo: bar\nid: a\x00b\ndata: x\n\n")
    assert events == [SseEvent("x", "message", "1")]


def test_the_id_of_a_cut_event_is_not_where_a_reconnect_resumes() -> None:
    decoder = SseDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b")
    assert decoder.close() is True
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"data: c\n\n") == [SseEvent("c", "message", "1")]
