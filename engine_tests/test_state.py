"""Folder state, STATUS and the pure sync planner; folder errors on a real Dovecot."""

import datetime
import json

import pytest

from onpipeline_mail.engine import errors, state
from onpipeline_mail.engine.connection import imap_session
from onpipeline_mail.engine.state import FolderState, FolderStatus, plan_sync

JAN = datetime.date(2026, 1, 1)
FEB = datetime.date(2026, 2, 1)
MAR = datetime.date(2026, 3, 1)


def synced(**changes):
    """A folder fully synced down to FEB, up to UID 100."""
    values = dict(uidvalidity=7, last_uid=100, highestmodseq=500, window_start=FEB)
    values.update(changes)
    return FolderState(**values)


def test_state_round_trips_through_json():
    saved = FolderState(uidvalidity=7, last_uid=100, highestmodseq=None, backfill_uid=42, window_start=JAN,
                        backfill_before=FEB)
    stored = json.loads(json.dumps(saved.to_dict()))
    assert stored["window_start"] == "2026-01-01"
    assert FolderState.from_dict(stored) == saved
    assert FolderState.from_dict(None) == FolderState() == FolderState.from_dict({})
    with pytest.raises(ValueError):
        FolderState.from_dict({"uidvalidity": 1, "bogus": 2})


def test_status_from_status_and_select_responses():
    assert FolderStatus.from_response({b"MESSAGES": 3, b"UIDNEXT": 4, b"UIDVALIDITY": 9, b"HIGHESTMODSEQ": 12}) \
        == FolderStatus(uidvalidity=9, uidnext=4, messages=3, highestmodseq=12)
    assert FolderStatus.from_response({b"EXISTS": 3, b"UIDNEXT": 4, b"UIDVALIDITY": 9, b"FLAGS": ()}) \
        == FolderStatus(uidvalidity=9, uidnext=4, messages=3)
    with pytest.raises(errors.MailSyncError):
        FolderStatus.from_response({b"MESSAGES": 3})


def test_first_sync_backfills_from_the_top():
    plan = plan_sync(FolderState(), FolderStatus(uidvalidity=7, uidnext=51), FEB)
    assert plan.action == state.BACKFILL and plan.backfill and not plan.fetch_new
    assert plan.state == FolderState(uidvalidity=7, last_uid=50, backfill_uid=51, window_start=FEB)


def test_a_datetime_window_start_counts_for_its_day():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=101), datetime.datetime(2026, 2, 1, 15, 30))
    assert plan.action == state.NOTHING and plan.state.window_start == FEB


def test_first_sync_of_an_empty_folder_needs_no_select():
    plan = plan_sync(None, FolderStatus(uidvalidity=7, uidnext=1), FEB)
    assert not plan.needs_select
    assert plan.state == FolderState(uidvalidity=7, last_uid=0, window_start=FEB)


def test_nothing_changed():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=101, messages=80, highestmodseq=500), FEB)
    assert plan.action == state.NOTHING and not plan.needs_select
    assert plan.state == synced()


def test_flag_changes_alone_need_no_select():
    # HIGHESTMODSEQ moved (flags changed, messages expunged) but no UID was added.
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=101, messages=75, highestmodseq=900), FEB)
    assert plan.action == state.NOTHING and not plan.needs_select


def test_new_mail():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=104), FEB)
    assert plan.action == state.NEW and plan.fetch_new and not plan.backfill


def test_server_without_uidnext_always_looks_for_new_mail():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7), FEB)
    assert plan.fetch_new
    first = plan_sync(None, FolderStatus(uidvalidity=7), FEB)
    assert first.fetch_new and first.state.last_uid == 0 and not first.backfill


def test_changed_uidvalidity_starts_over_from_the_window():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=8, uidnext=31), FEB)
    assert plan.action == state.RESYNC and plan.backfill
    assert plan.state == FolderState(uidvalidity=8, last_uid=30, backfill_uid=31, window_start=FEB)
    assert "UIDVALIDITY" in plan.reason


def test_unfinished_backfill_continues():
    plan = plan_sync(synced(backfill_uid=60), FolderStatus(uidvalidity=7, uidnext=101), FEB)
    assert plan.action == state.BACKFILL and plan.backfill and not plan.fetch_new
    assert plan.state.backfill_uid == 60


def test_longer_window_starts_a_pass_for_the_older_days():
    plan = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=101), JAN)
    assert plan.action == state.BACKFILL
    assert plan.state == synced(window_start=JAN, backfill_uid=101, backfill_before=FEB)


def test_longer_window_waits_for_the_running_pass():
    running = synced(backfill_uid=60)
    plan = plan_sync(running, FolderStatus(uidvalidity=7, uidnext=101), JAN)
    assert plan.extension_pending and plan.state == running
    # Once the pass is done, the next plan extends.
    done = plan_sync(synced(), FolderStatus(uidvalidity=7, uidnext=101), JAN)
    assert done.state.backfill_before == FEB


def test_shorter_window_fetches_nothing_below_the_new_start():
    plan = plan_sync(synced(window_start=JAN), FolderStatus(uidvalidity=7, uidnext=101), FEB)
    assert plan.action == state.NOTHING
    assert plan.state.window_start == FEB
    # A running initial pass keeps going, but only down to the new start.
    running = plan_sync(synced(window_start=JAN, backfill_uid=60), FolderStatus(uidvalidity=7, uidnext=101), FEB)
    assert running.backfill and running.state.window_start == FEB


def test_shorter_window_ends_an_extension_it_no_longer_needs():
    extending = synced(window_start=JAN, backfill_uid=60, backfill_before=FEB)
    plan = plan_sync(extending, FolderStatus(uidvalidity=7, uidnext=101), MAR)
    assert plan.action == state.NOTHING
    assert plan.state == synced(window_start=MAR)
    partly = plan_sync(extending, FolderStatus(uidvalidity=7, uidnext=101), datetime.date(2026, 1, 15))
    assert partly.backfill and partly.state.backfill_before == FEB


@pytest.mark.parametrize("raw, error, reason", [
    (b"status failed: [NONEXISTENT] Unknown Mailbox: Clients", errors.FolderMissingError, "folder_missing"),
    (b"select failed: Mailbox doesn't exist: Clients", errors.FolderMissingError, "folder_missing"),
    (b"select failed: [CANNOT] Mailbox is a container", errors.FolderMissingError, "folder_unselectable"),
    (b"select failed: [NOPERM] Permission denied", errors.FolderMissingError, "folder_unselectable"),
    (b"status failed: [UNAVAILABLE] Backend down", errors.ConnectError, "folder_busy"),
    (b"select failed: [SERVERBUG] Internal error", errors.ConnectError, "folder_busy"),
])
def test_folder_errors_are_mapped_by_response_code(raw, error, reason):
    mapped = state.folder_error(Exception(raw), "Clients")
    assert type(mapped) is error and mapped.reason == reason
    assert "Clients" in str(mapped)


def test_status_of_a_missing_or_container_folder_is_folder_missing(mailbox):
    with imap_session(mailbox) as client:
        client.create_folder("Parent/Child")  # "Parent" is a \Noselect container on maildir
        with pytest.raises(errors.FolderMissingError) as caught:
            state.read_folder_status(client, "Nope")
        assert caught.value.reason == "folder_missing"
        with pytest.raises(errors.FolderMissingError):
            state.read_folder_status(client, "Parent")
        with pytest.raises(errors.FolderMissingError):
            state.examine_folder(client, "Nope")
        status = state.read_folder_status(client, "Parent/Child")
        assert status.uidnext == 1 and status.messages == 0 and status.highestmodseq is not None
