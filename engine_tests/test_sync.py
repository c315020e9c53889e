"""Folder sync on a real Dovecot: windows, new mail, resyncs, deadlines, failures and cut connections."""

import dataclasses
import datetime
import functools
import glob
import os
import threading
import time

import pytest
from conftest import new_account

from onpipeline_mail.engine import errors, parse, parse_worker, sync
from onpipeline_mail.engine.connection import imap_session
from onpipeline_mail.engine.testing import mailgen
from onpipeline_mail.engine.testing.proxy import CuttingProxy

UTC = datetime.timezone.utc
END = datetime.datetime(2026, 3, 1, 12, tzinfo=UTC)
WINDOW = datetime.date(2026, 2, 1)
LONGER = datetime.date(2026, 1, 15)
SHORTER = datetime.date(2026, 2, 20)


@pytest.fixture(autouse=True, params=["parse here", "parse worker"])
def parse_mode(request, monkeypatch):
    """Every test runs twice: parsing in this process, and pipelined through a parse worker process."""
    if request.param == "parse here":
        yield None
        return
    if request.node.get_closest_marker("parse_here_only"):
        pytest.skip("patches the parser of this process")
    with parse_worker.ParseWorker(min_batch=1, local_batches=0) as worker:
        monkeypatch.setattr(sync, "sync_folder", functools.partial(sync.sync_folder, parser=worker))
        yield worker


def sixty_days(count=30, seed=11):
    """``count`` messages from 2025-12-31 to 2026-03-01, oldest first (so UIDs follow dates)."""
    return mailgen.generate_messages(count, seed=seed, start=END - datetime.timedelta(days=60), end=END)


def keys_since(messages, day, before=None):
    return {parse.normalize_message_id(message.message_id) for message in messages
            if message.date.date() >= day and (before is None or message.date.date() < before)}


class Store:
    """The caller's side: each batch's messages, failures and state are kept together, as one transaction."""

    def __init__(self, state=None):
        self.state = state
        self.uids = []
        self.keys = []
        self.failures = {}
        self.gone = []
        self.batches = []

    def commit(self, batch):
        self.batches.append(batch)
        for uid, message, meta in batch.messages:
            assert meta.body is None and meta.uid == uid
            self.uids.append(uid)
            self.keys.append(message.message_id_key)
        self.failures.update(dict(batch.failures))
        self.gone.extend(batch.gone)
        self.state = batch.state


def run_sync(settings, store, window_start, folder="INBOX", **options):
    """One sync run on its own connection; returns the batches and the commands it sent."""
    with imap_session(settings) as client:
        before = sync.command_count(client)
        batches = []
        for batch in sync.sync_folder(client, folder, store.state, window_start, **options):
            store.commit(batch)
            batches.append(batch)
        return batches, sync.command_count(client) - before


def examine_flags(settings, folder="INBOX"):
    with imap_session(settings) as client:
        client.select_folder(folder, readonly=True)
        return client.get_flags(client.search("ALL"))


# -- the normal course --------------------------------------------------------------------------------------------

def test_first_sync_takes_the_window_newest_first(mailbox, parse_mode):
    messages = sixty_days()
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    batches, _commands = run_sync(mailbox, store, WINDOW, batch_size=4)
    assert set(store.keys) == keys_since(messages, WINDOW) and len(store.keys) == len(set(store.keys))
    assert store.uids == sorted(store.uids, reverse=True)  # newest first, across batches
    assert [batch.done for batch in batches] == [False] * (len(batches) - 1) + [True]
    assert all(len(batch.messages) <= 4 for batch in batches)
    assert batches[0].action == "backfill" and batches[-1].total_in_window == len(store.keys)
    final = store.state
    assert (final.last_uid, final.backfill_uid, final.window_start) == (30, None, WINDOW)
    assert final.uidvalidity and final.highestmodseq
    # Every intermediate state is a restart point: the cursor follows the batches down.
    assert [batch.state.backfill_uid for batch in batches[:-1]] == [min(b.messages).uid for b in batches[:-1]]
    if parse_mode:
        assert parse_mode.batches_parsed == sum(1 for batch in batches if batch.messages), "parsed in the worker"


def test_nothing_new_costs_a_status_and_no_select(mailbox):
    mailgen.append_messages(mailbox, "INBOX", sixty_days(10))
    store = Store()
    run_sync(mailbox, store, WINDOW)
    synced = store.state
    batches, commands = run_sync(mailbox, store, WINDOW)
    # ENABLE CONDSTORE (once per connection) and STATUS: no SELECT, no SEARCH, no FETCH.
    assert commands == 2 <= 3
    (batch,) = batches
    assert batch.messages == () and batch.done and batch.action == "nothing" and batch.total_in_window is None
    assert batch.state == synced
    # On a connection already used for another folder, a quiet folder costs one STATUS.
    with imap_session(mailbox) as client:
        list(sync.sync_folder(client, "INBOX", synced, WINDOW))
        before = sync.command_count(client)
        (again,) = sync.sync_folder(client, "INBOX", synced, WINDOW)
        assert sync.command_count(client) - before == 1 and not again.messages


def test_flag_changes_alone_cost_no_select(mailbox):
    mailgen.append_messages(mailbox, "INBOX", sixty_days(6))
    store = Store()
    run_sync(mailbox, store, WINDOW)
    synced = store.state
    with imap_session(mailbox) as client:
        client.select_folder("INBOX")
        client.add_flags([1, 2], [b"\\Flagged"])
    batches, commands = run_sync(mailbox, store, WINDOW)
    assert commands == 2 and batches[0].action == "nothing" and not batches[0].messages
    # HIGHESTMODSEQ moved on; nothing else did.
    assert store.state.highestmodseq > synced.highestmodseq
    assert dataclasses.replace(store.state, highestmodseq=None) == dataclasses.replace(synced, highestmodseq=None)


def test_new_mail_is_picked_up_oldest_first(mailbox):
    messages = sixty_days(12)
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    run_sync(mailbox, store, WINDOW)
    before = len(store.keys)
    later = mailgen.generate_messages(4, seed=12, start=END + datetime.timedelta(days=1),
                                      end=END + datetime.timedelta(days=3))
    old = mailgen.generate_messages(1, seed=13, start=END - datetime.timedelta(days=90),
                                    end=END - datetime.timedelta(days=90))
    uids = mailgen.append_messages(mailbox, "INBOX", later[:2] + old + later[2:])
    batches, _commands = run_sync(mailbox, store, WINDOW, batch_size=3)
    assert batches[0].action == "new"
    # Only the new mail in the window, oldest UID first; the old-dated one is left out.
    assert store.uids[before:] == [uids[0], uids[1], uids[3], uids[4]]
    assert set(store.keys[before:]) == keys_since(later, WINDOW)
    assert store.state.last_uid == uids[-1] and store.state.backfill_uid is None


def test_sync_changes_no_flag(mailbox):
    mailgen.append_messages(mailbox, "INBOX", sixty_days(8))
    with imap_session(mailbox) as client:
        client.select_folder("INBOX")
        client.add_flags([2], [b"\\Flagged", b"\\Answered"])
        client.add_flags([3], [b"\\Seen"])
    before = examine_flags(mailbox)
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=3)
    assert len(store.keys) == 8
    after = examine_flags(mailbox)
    assert after == before
    assert [uid for uid, flags in after.items() if b"\\Seen" in flags] == [3]


# -- the folder changes under us ------------------------------------------------------------------------------------

def test_changed_uidvalidity_resyncs_from_the_window(mailbox):
    messages = sixty_days(8)
    mailgen.append_messages(mailbox, "Clients", messages, create=True)
    store = Store()
    run_sync(mailbox, store, WINDOW, folder="Clients")
    first = store.state
    first_keys = set(store.keys)
    # Rebuild the folder under the same name: Dovecot gives it a new UIDVALIDITY.
    with imap_session(mailbox) as client:
        client.delete_folder("Clients")
    mailgen.append_messages(mailbox, "Clients", messages, create=True)
    resync = Store(first)
    batches, _commands = run_sync(mailbox, resync, WINDOW, folder="Clients")
    assert batches[0].action == "resync"
    assert resync.state.uidvalidity != first.uidvalidity
    assert resync.state == dataclasses.replace(first, uidvalidity=resync.state.uidvalidity,
                                               highestmodseq=resync.state.highestmodseq)
    # The same messages come again; the caller matches them by key.
    assert set(resync.keys) == first_keys
    with imap_session(mailbox) as client, pytest.raises(errors.UidValidityError):
        sync.retry_uids(client, "Clients", first.uidvalidity, [1])


def test_deleted_folder_is_folder_missing(mailbox):
    mailgen.append_messages(mailbox, "Clients", sixty_days(3), create=True)
    store = Store()
    run_sync(mailbox, store, WINDOW, folder="Clients")
    with imap_session(mailbox) as client:
        client.delete_folder("Clients")
        client.create_folder("Clients/Sub")  # "Clients" comes back as a \Noselect container
    for name in ("Clients", "Gone"):
        with pytest.raises(errors.FolderMissingError):
            run_sync(mailbox, Store(store.state), WINDOW, folder=name)


def test_window_made_longer_then_shorter(mailbox):
    messages = sixty_days()
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    run_sync(mailbox, store, WINDOW, batch_size=4)
    first = set(store.keys)
    # Longer: only the older days are fetched, newest first, nothing twice.
    batches, _commands = run_sync(mailbox, store, LONGER, batch_size=4)
    older = store.keys[len(first):]
    assert set(older) == keys_since(messages, LONGER, before=WINDOW) and older
    assert len(store.keys) == len(set(store.keys))
    assert store.uids[len(first):] == sorted(store.uids[len(first):], reverse=True)
    assert store.state.window_start == LONGER and store.state.backfill_before is None
    # Shorter: nothing is fetched, and new mail below the new start is left out.
    batches, commands = run_sync(mailbox, store, SHORTER)
    assert not batches[0].messages and store.state.window_start == SHORTER and commands == 2
    mixed = [(message.raw, datetime.datetime(2026, 2, 10, 12, tzinfo=UTC)) for message in sixty_days(1, seed=14)]
    recent = mailgen.generate_messages(1, seed=15, start=END, end=END)
    mailgen.append_messages(mailbox, "INBOX", mixed + recent)
    count = len(store.keys)
    run_sync(mailbox, store, SHORTER)
    assert store.keys[count:] == [parse.normalize_message_id(recent[0].message_id)]


def test_window_made_longer_during_a_backfill_finishes_it_then_extends(mailbox):
    messages = sixty_days()
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    run_sync(mailbox, store, WINDOW, batch_size=3, deadline=0)
    assert store.state.backfill_uid is not None
    run_sync(mailbox, store, LONGER, batch_size=3)
    assert set(store.keys) == keys_since(messages, LONGER) and len(store.keys) == len(set(store.keys))
    assert store.state.window_start == LONGER and store.state.backfill_uid is None


def test_deadline_stops_after_a_batch_and_the_next_run_resumes(mailbox):
    messages = sixty_days()
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    runs = 0
    while not (store.batches and store.batches[-1].done):
        batches, _commands = run_sync(mailbox, store, WINDOW, batch_size=3, deadline=time.monotonic())
        runs += 1
        assert len(batches) == 1  # the deadline had passed: one batch per run
        assert runs < 20
    assert runs > 3
    assert set(store.keys) == keys_since(messages, WINDOW) and len(store.keys) == len(set(store.keys))


def test_a_caller_that_stops_reading_has_its_connection_back_at_once(mailbox, parse_mode):
    """With a parse worker the next batch is fetched on a thread: closing the sync stops it first."""
    messages = sixty_days()
    mailgen.append_messages(mailbox, "INBOX", messages)
    with imap_session(mailbox) as client:
        batches = sync.sync_folder(client, "INBOX", None, WINDOW, batch_size=3)
        assert next(batches).messages
        batches.close()
        assert not [thread for thread in threading.enumerate() if thread.name == "onpipeline-fetch-ahead"]
        client.noop()  # no answer of a FETCH still coming gets in the way
        store = Store()
        for batch in sync.sync_folder(client, "INBOX", None, WINDOW, batch_size=3):
            store.commit(batch)
    assert set(store.keys) == keys_since(messages, WINDOW) and len(store.keys) == len(set(store.keys))


# -- size limits, failures -----------------------------------------------------------------------------------------

def test_over_size_message_is_kept_without_attachments(mailbox):
    day = datetime.datetime(2026, 2, 15, 12, tzinfo=UTC)
    big = mailgen.big_message(300_000, day)
    mailgen.append_messages(mailbox, "INBOX", sixty_days(4) + [(big, day)])
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), max_message_bytes=100_000, partial_bytes=8192)
    (truncated,) = [m for batch in store.batches for m in batch.messages if m.message.is_truncated]
    assert truncated.meta.is_partial and truncated.meta.size == len(big) == truncated.message.size
    assert truncated.message.attachments == ()
    assert "over the 97 KB limit" in truncated.message.truncation_reason
    assert truncated.message.body_text == "See the attached file.\n"
    assert truncated.message.subject == "Large attachment"


def test_batches_are_bounded_by_bytes(mailbox):
    messages = sixty_days(12)
    mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=50, max_batch_bytes=12_000)
    assert len(store.keys) == 12
    for batch in store.batches:
        sizes = [meta.size for _uid, _message, meta in batch.messages]
        assert sum(sizes) <= 12_000 or len(sizes) == 1


@pytest.mark.parse_here_only
def test_a_message_that_fails_to_parse_is_reported_and_retried(mailbox, monkeypatch):
    messages = sixty_days(6)
    uids = mailgen.append_messages(mailbox, "INBOX", messages)
    victim = messages[3].raw
    real_parse = parse.parse_message

    def flaky_parse(raw, **options):
        if raw == victim:
            raise RuntimeError("parser bug")
        return real_parse(raw, **options)

    monkeypatch.setattr(parse, "parse_message", flaky_parse)
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=2)
    assert store.failures == {uids[3]: "Parsing failed: RuntimeError: parser bug"}
    assert sorted(store.uids + list(store.failures)) == uids  # nothing skipped
    assert store.state.backfill_uid is None and store.batches[-1].done

    monkeypatch.setattr(parse, "parse_message", real_parse)
    with imap_session(mailbox) as client:
        result = sync.retry_uids(client, "INBOX", store.state.uidvalidity, [uids[3], 999])
    assert [(uid, message.message_id) for uid, message, _meta in result.messages] == [
        (uids[3], parse.normalize_message_id(messages[3].message_id))]
    assert result.failures == () and result.gone == (999,)


def test_known_failures_are_left_to_retry(mailbox):
    uids = mailgen.append_messages(mailbox, "INBOX", sixty_days(6))
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), known_failures=[uids[0], uids[4]])
    assert sorted(store.uids) == [uids[1], uids[2], uids[3], uids[5]]
    assert store.state.backfill_uid is None


def test_message_expunged_during_the_sync_is_reported_gone(mailbox):
    uids = mailgen.append_messages(mailbox, "INBOX", sixty_days(8))
    store = Store()
    with imap_session(mailbox) as client:
        for batch in sync.sync_folder(client, "INBOX", None, datetime.date(2025, 12, 1), batch_size=2):
            store.commit(batch)
            if len(store.batches) == 1:
                with imap_session(mailbox) as other:
                    other.select_folder("INBOX")
                    other.delete_messages([uids[1]])
                    other.expunge()
    assert store.gone == [uids[1]]
    assert sorted(store.uids + store.gone) == uids


def _maildir_file(dovecot, settings, message_id):
    pattern = os.path.join(dovecot.root, "home", settings.username, "Maildir", "*", "*")
    for path in glob.glob(pattern):
        with open(path, "rb") as handle:
            if message_id.encode() in handle.read():
                return path
    raise AssertionError("message not found on disk")


def test_a_message_that_kills_the_connection_can_be_isolated(mailbox, dovecot):
    messages = sixty_days(6)
    uids = mailgen.append_messages(mailbox, "INBOX", messages)
    store = Store()
    run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=2, deadline=0)  # UIDs 6 and 5
    # A file shorter than its recorded size: Dovecot drops the connection on every FETCH of it.
    with open(_maildir_file(dovecot, mailbox, messages[2].message_id), "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(errors.ConnectError) as caught:
        run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=2)
    assert caught.value.reason == "dropped_during_fetch" and uids[2] in caught.value.uids
    with pytest.raises(errors.ConnectError) as caught:
        run_sync(mailbox, store, datetime.date(2025, 12, 1), batch_size=1)
    assert caught.value.uids == (uids[2],)
    # Recorded as failed by the caller, it no longer blocks the folder.
    run_sync(mailbox, store, datetime.date(2025, 12, 1), known_failures=[uids[2]])
    assert sorted(store.uids) == [uids[0], uids[1], uids[3], uids[4], uids[5]]
    assert store.batches[-1].done


class Folders:
    """The caller's side for several folders: a Store each, failures retried as the caller would."""

    def __init__(self, names):
        self.stores = {name: Store() for name in names}

    def run(self, settings, window_start, **options):
        """One run over every folder on one :class:`~sync.Session`: a folder that loses the connection
        does not stop the others; then the recorded failures are retried. Returns the session."""
        with sync.Session(settings) as session:
            for name, store in self.stores.items():
                try:
                    for batch in sync.sync_folder(session, name, store.state, window_start, **options):
                        store.commit(batch)
                except errors.ConnectError:
                    session.reopen()
            for name, store in self.stores.items():
                if store.failures:
                    result = sync.retry_uids(session, name, store.state.uidvalidity, sorted(store.failures))
                    for uid, message, _meta in result.messages:
                        store.uids.append(uid)
                        store.keys.append(message.message_id_key)
                        del store.failures[uid]
                    store.failures.update(dict(result.failures))
            return session


def test_a_message_that_drops_the_connection_is_isolated_in_the_first_batch_of_a_first_sync(mailbox, dovecot):
    messages = sixty_days(12)
    uids = mailgen.append_messages(mailbox, "INBOX", messages)
    sent = sixty_days(5, seed=17)
    mailgen.append_messages(mailbox, "Sent", sent, create=True)
    dovecot.damage_message(mailbox.username, messages[-2].message_id)  # among the newest: in the first batch
    folders = Folders(["INBOX", "Sent"])
    session = folders.run(mailbox, datetime.date(2025, 12, 1), batch_size=8)
    inbox = folders.stores["INBOX"]
    # Isolated in the same run: halves of the batch on new connections, down to the message.
    assert list(inbox.failures) == [uids[-2]] and "dropped the connection" in inbox.failures[uids[-2]]
    assert 2 <= session.reopens <= 6
    assert sorted(inbox.uids) == uids[:-2] + uids[-1:]
    assert inbox.batches[-1].done and inbox.state.uidvalidity and inbox.state.backfill_uid is None
    assert inbox.batches[0].failures == ((uids[-2], inbox.failures[uids[-2]]),), "reported with its batch"
    assert set(folders.stores["Sent"].keys) == keys_since(sent, datetime.date(2025, 12, 1)), "other folders go on"
    # Later runs: nothing twice, the message stays on record (retried), nothing blocks.
    for _run in range(10):
        folders.run(mailbox, datetime.date(2025, 12, 1), batch_size=8)
    assert sorted(inbox.uids) == uids[:-2] + uids[-1:] and list(inbox.failures) == [uids[-2]]
    assert len(folders.stores["Sent"].uids) == len(sent)


def test_a_message_that_drops_the_connection_after_a_uidvalidity_change(mailbox, dovecot):
    messages = sixty_days(10)
    mailgen.append_messages(mailbox, "Clients", messages, create=True)
    folders = Folders(["Clients"])
    folders.run(mailbox, datetime.date(2025, 12, 1), batch_size=4)
    before = folders.stores["Clients"].state
    with imap_session(mailbox) as client:
        client.delete_folder("Clients")
    uids = mailgen.append_messages(mailbox, "Clients", messages, create=True)
    dovecot.damage_message(mailbox.username, messages[-1].message_id, folder="Clients")
    store = folders.stores["Clients"] = Store(before)
    folders.run(mailbox, datetime.date(2025, 12, 1), batch_size=4)
    assert store.batches[0].action == "resync" and store.state.uidvalidity != before.uidvalidity
    assert list(store.failures) == [uids[-1]] and sorted(store.uids) == uids[:-1]
    assert store.batches[-1].done


# Before the first body FETCH is sent; before its completion (CAPABILITY, LOGIN, ENABLE, STATUS, EXAMINE, SEARCH,
# sizes, then the bodies: the 8th reply); with a TCP reset.
@pytest.mark.parametrize("cut", [dict(match=b"BODY.PEEK[]"), dict(replies=8), dict(match=b"BODY.PEEK[]", how="reset")])
def test_a_transient_cut_in_the_first_batch_records_no_failure(plain_mailbox, proxy, cut):
    messages = sixty_days(12)
    uids = mailgen.append_messages(plain_mailbox, "INBOX", messages)
    folders = Folders(["INBOX"])
    proxy.clear_cuts()
    proxy.cut_next(**cut)
    first = len(proxy.connections)
    session = folders.run(dataclasses.replace(plain_mailbox, port=proxy.port), datetime.date(2025, 12, 1))
    assert proxy.connections[first].was_cut and session.reopens == 1
    store = folders.stores["INBOX"]
    assert store.failures == {} and sorted(store.uids) == uids and store.batches[-1].done


def test_a_lost_connection_stops_one_folder_not_the_others(plain_mailbox, proxy):
    mailgen.append_messages(plain_mailbox, "INBOX", sixty_days(4))
    mailgen.append_messages(plain_mailbox, "Sent", sixty_days(3, seed=18), create=True)
    folders = Folders(["INBOX", "Sent"])
    proxy.clear_cuts()
    proxy.cut_next(match=b'EXAMINE "INBOX"')
    folders.run(dataclasses.replace(plain_mailbox, port=proxy.port), datetime.date(2025, 12, 1))
    assert folders.stores["INBOX"].uids == [] and len(folders.stores["Sent"].uids) == 3
    folders.run(dataclasses.replace(plain_mailbox, port=proxy.port), datetime.date(2025, 12, 1))
    assert len(folders.stores["INBOX"].uids) == 4


def test_a_refused_resync_reads_nothing(mailbox):
    mailgen.append_messages(mailbox, "Clients", sixty_days(4), create=True)
    store = Store()
    run_sync(mailbox, store, WINDOW, folder="Clients")
    with imap_session(mailbox) as client:
        client.delete_folder("Clients")
    mailgen.append_messages(mailbox, "Clients", sixty_days(4), create=True)
    with imap_session(mailbox) as client:
        before = sync.command_count(client)
        with pytest.raises(errors.UidValidityError) as caught:
            list(sync.sync_folder(client, "Clients", store.state, WINDOW, resync=False))
        assert sync.command_count(client) - before == 2, "ENABLE and STATUS: no EXAMINE, no FETCH"
    assert caught.value.uidvalidity != store.state.uidvalidity


def test_a_session_gives_up_after_its_reopens(mailbox, dovecot):
    messages = sixty_days(6)
    mailgen.append_messages(mailbox, "INBOX", messages)
    dovecot.damage_message(mailbox.username, messages[-1].message_id)
    with sync.Session(mailbox, max_reopens=1) as session:
        with pytest.raises(errors.ConnectError) as caught:
            list(sync.sync_folder(session, "INBOX", None, datetime.date(2025, 12, 1)))
        # One new connection, then the half with the message dropped it again: the run stops there.
        assert session.reopens == 1 and caught.value.reason == "dropped_during_fetch"
        with pytest.raises(errors.ConnectError) as caught:
            session.reopen()
        assert caught.value.reason == "dropped_repeatedly"


# -- servers without CONDSTORE -------------------------------------------------------------------------------------

def test_sync_without_condstore(mailbox_without_condstore):
    settings = mailbox_without_condstore
    messages = sixty_days(10)
    mailgen.append_messages(settings, "INBOX", messages)
    with imap_session(settings) as client:
        assert not client.has_capability("CONDSTORE")
    store = Store()
    run_sync(settings, store, WINDOW, batch_size=3)
    assert set(store.keys) == keys_since(messages, WINDOW)
    assert store.state.highestmodseq is None
    batches, commands = run_sync(settings, store, WINDOW)
    assert commands == 1 and batches[0].action == "nothing"  # STATUS alone: no ENABLE, no SELECT
    later = mailgen.generate_messages(2, seed=16, start=END, end=END)
    mailgen.append_messages(settings, "INBOX", later)
    run_sync(settings, store, WINDOW)
    assert set(store.keys) == keys_since(messages + later, WINDOW) and len(store.keys) == len(set(store.keys))


# -- cut connections -----------------------------------------------------------------------------------------------

FAULT_MESSAGES = mailgen.generate_messages(24, seed=21, start=END - datetime.timedelta(days=60), end=END)
FAULT_LATE = mailgen.generate_messages(6, seed=22, start=END + datetime.timedelta(days=1),
                                       end=END + datetime.timedelta(days=4))
FAULT_BATCH = 3


@pytest.fixture(scope="module")
def proxy(dovecot):
    with CuttingProxy("127.0.0.1", dovecot.port) as running:
        yield running


def sync_until_done(settings, store, window_start, attempts=60):
    """Run syncs from the last stored state until one finishes, as the cron would; returns the runs."""
    for attempt in range(1, attempts + 1):
        try:
            with imap_session(settings) as client:
                for batch in sync.sync_folder(client, "INBOX", store.state, window_start, batch_size=FAULT_BATCH):
                    store.commit(batch)
                    if batch.done:
                        return attempt
        except errors.ConnectError:
            continue
    raise AssertionError("the sync never finished")


def fault_scenario(direct, proxy, cuts=None):
    """First sync of a 1-month window, new mail arrives, then the window is made 6 weeks long.

    Both syncs go through the proxy; ``cuts`` = {phase: (down, up)} cuts the first connection of a phase.
    Returns the store and the proxied connections of each phase.
    """
    cuts = cuts or {}
    proxied = dataclasses.replace(direct, port=proxy.port)
    mailgen.append_messages(direct, "INBOX", FAULT_MESSAGES)
    store = Store()
    phases = []
    for phase, window in enumerate((WINDOW, LONGER)):
        if phase == 1:
            mailgen.append_messages(direct, "INBOX", FAULT_LATE)
        proxy.clear_cuts()
        if phase in cuts:
            proxy.cut_next(*cuts[phase])
        first = len(proxy.connections)
        sync_until_done(proxied, store, window)
        phases.append(proxy.connections[first:])
    return store, phases


@pytest.fixture(scope="module")
def undisturbed(dovecot, proxy):
    settings = new_account(dovecot, prefix="reference")
    direct = dataclasses.replace(settings, port=dovecot.port, security="none")
    store, phases = fault_scenario(direct, proxy)
    assert [len(connections) for connections in phases] == [1, 1]
    expected = keys_since(FAULT_MESSAGES + FAULT_LATE, LONGER)
    assert sorted(store.keys) == sorted(expected)
    return store, [connections[0] for connections in phases]


def assert_same_as_undisturbed(store, reference):
    assert len(store.keys) == len(set(store.keys)), "a message was handed over twice"
    assert sorted(store.keys) == sorted(reference.keys)
    assert sorted(store.uids) == sorted(reference.uids)
    assert store.failures == {} and store.gone == []
    assert dataclasses.replace(store.state, uidvalidity=None, highestmodseq=None) == dataclasses.replace(
        reference.state, uidvalidity=None, highestmodseq=None)


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("position", range(12))
def test_cut_server_to_client_at_any_byte(plain_mailbox, proxy, undisturbed, phase, position):
    reference, connections = undisturbed
    offset = int(connections[phase].bytes_down * (position + 0.5) / 12)
    store, phases = fault_scenario(plain_mailbox, proxy, cuts={phase: (offset, None)})
    assert phases[phase][0].was_cut and phases[phase][0].bytes_down == offset
    assert_same_as_undisturbed(store, reference)


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("position", range(3))
def test_cut_client_to_server_at_any_byte(plain_mailbox, proxy, undisturbed, phase, position):
    reference, connections = undisturbed
    offset = int(connections[phase].bytes_up * (position + 0.5) / 3)
    store, phases = fault_scenario(plain_mailbox, proxy, cuts={phase: (None, offset)})
    assert phases[phase][0].was_cut
    assert_same_as_undisturbed(store, reference)


def test_every_connection_cut_still_converges(plain_mailbox, proxy, undisturbed):
    reference, connections = undisturbed
    proxied = dataclasses.replace(plain_mailbox, port=proxy.port)
    mailgen.append_messages(plain_mailbox, "INBOX", FAULT_MESSAGES + FAULT_LATE)
    # Each connection lives long enough for the login, the searches and a batch or so, then dies.
    largest_batch = max(sum(meta.size for _uid, _message, meta in batch.messages) for batch in reference.batches)
    limit = largest_batch + 6000
    proxy.clear_cuts()
    for _ in range(60):
        proxy.cut_next(down=limit)
    store = Store()
    runs = sync_until_done(proxied, store, WINDOW) + sync_until_done(proxied, store, LONGER)
    proxy.clear_cuts()
    assert runs > 4
    assert_same_as_undisturbed(store, reference)
