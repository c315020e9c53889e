"""Bounded fetches on a real Dovecot: sizes, bodies, partial over-size fetches, no flag changes."""

import datetime

import pytest

from onpipeline_mail.engine import fetch
from onpipeline_mail.engine.connection import imap_session
from onpipeline_mail.engine.testing import mailgen

DAY = datetime.datetime(2026, 2, 10, 11, tzinfo=datetime.timezone.utc)


@pytest.fixture
def filled(mailbox):
    """An account whose INBOX holds 8 generated messages (UIDs 1..8) and one of ~300 KB (UID 9)."""
    messages = mailgen.generate_messages(8, seed=3)
    big = mailgen.big_message(300_000, DAY)
    uids = mailgen.append_messages(mailbox, "INBOX", messages + [(big, DAY)])
    assert uids == list(range(1, 10))
    return mailbox, messages, big


def test_plan_batches_bounds_count_and_bytes():
    sizes = {uid: 100 for uid in range(1, 11)}
    assert list(fetch.plan_batches(range(1, 11), sizes, batch_size=4, max_batch_bytes=10_000)) == [
        ((1, 2, 3, 4), ()), ((5, 6, 7, 8), ()), ((9, 10), ())]
    assert [batch for batch, _gone in fetch.plan_batches(range(1, 11), sizes, 50, max_batch_bytes=250)] == [
        (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]


def test_a_huge_message_is_its_own_batch_and_over_size_counts_as_its_partial():
    sizes = {1: 10, 2: 5_000, 3: 10, 4: 90_000, 5: 10}
    batches = list(fetch.plan_batches([1, 2, 3, 4, 5], sizes, 50, max_batch_bytes=1_000, max_message_bytes=50_000,
                                      partial_bytes=500))
    # 2 is bigger than a batch: alone. 4 is over-size: only its 500-byte partial counts.
    assert [batch for batch, _gone in batches] == [(1,), (2,), (3, 4, 5)]


def test_uids_without_size_are_reported_where_they_fall():
    sizes = {1: 10, 2: 10, 4: 10, 5: 10}
    batches = list(fetch.plan_batches([1, 2, 3, 4, 5, 6], sizes, batch_size=2, max_batch_bytes=1_000))
    # Each batch covers a consecutive stretch: a cursor saved after it passes only UIDs it reported.
    assert batches == [((1, 2), (3,)), ((4, 5), (6,))]
    assert list(fetch.plan_batches([7, 8], {}, batch_size=2, max_batch_bytes=1_000)) == [((), (7, 8))]


def test_bodies_are_byte_exact_and_flags_unchanged(filled):
    settings, messages, _big = filled
    with imap_session(settings) as client:
        # Read-write SELECT on purpose: BODY.PEEK[] alone must keep \Seen off.
        client.select_folder("INBOX")
        sizes = fetch.fetch_sizes(client, range(1, 9))
        result = fetch.fetch_messages(client, list(range(8, 0, -1)), sizes)
        assert [raw.uid for raw in result.messages] == list(range(8, 0, -1))
        assert not result.missing and not result.errors
        for raw in result.messages:
            assert raw.body == messages[raw.uid - 1].raw
            assert raw.size == len(raw.body) == sizes[raw.uid]
            assert raw.internaldate == messages[raw.uid - 1].date
            assert "\\Seen" not in raw.flags and not raw.is_partial
        flags = client.get_flags(list(range(1, 10)))
        assert all(b"\\Seen" not in value for value in flags.values())


def test_over_size_message_is_fetched_partially(filled):
    settings, _messages, big = filled
    with imap_session(settings) as client:
        client.select_folder("INBOX", readonly=True)
        sizes = fetch.fetch_sizes(client, [8, 9])
        assert sizes[9] == len(big)
        result = fetch.fetch_messages(client, [8, 9], sizes, max_message_bytes=100_000, partial_bytes=4096)
        small, partial = result.messages
        assert not small.is_partial and partial.is_partial
        assert partial.body == big[:4096] and partial.size == len(big)


def test_unknown_uids_come_back_missing_not_dropped(filled):
    settings, _messages, _big = filled
    with imap_session(settings) as client:
        client.select_folder("INBOX", readonly=True)
        result = fetch.fetch_messages(client, [2, 77, 3])
        assert [raw.uid for raw in result.messages] == [2, 3]
        assert result.missing == (77,)
        assert fetch.existing_uids(client, [2, 77]) == {2}
        assert fetch.fetch_sizes(client, [2, 77]).keys() == {2}


def test_search_drops_the_last_message_that_uid_star_always_matches(filled):
    settings, messages, _big = filled
    with imap_session(settings) as client:
        client.select_folder("INBOX", readonly=True)
        assert fetch.search_uids(client, 10) == []  # "10:*" matches UID 9 on the server
        assert fetch.search_uids(client, 5, 3) == []
        since = messages[4].date.date()
        in_window = [uid for uid, message in enumerate(messages, 1) if message.date.date() >= since] + [9]
        assert fetch.search_uids(client, 1, since=since) == in_window
        before = [uid for uid, message in enumerate(messages, 1) if message.date.date() < since]
        assert fetch.search_uids(client, 1, 8, before=since) == before


def test_chunks_are_bounded():
    assert [len(part) for part in fetch.chunks(range(1203), fetch.SIZE_CHUNK)] == [500, 500, 203]
