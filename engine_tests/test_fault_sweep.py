"""Fault sweep: the first sync of a few hundred messages over several folders, cut at 200+ points.

Through the cutting proxy (:mod:`onpipeline_mail.engine.testing.proxy`), on a Dovecot of its own (it is
restarted), each scenario cuts the first connection once: every k-th byte from the server and from the
client, before every command, before every tagged reply, with a TCP reset, with a stall past the read
timeout, with a server restart. Each is then resumed the way the scheduled action resumes (a run over
every folder on one :class:`~onpipeline_mail.engine.sync.Session`, recorded failures retried) until it is
complete, and must end with exactly what an undisturbed sync stores: no duplicate, nothing lost, no failure
left, the server's flags unchanged.

Bodies are parsed by the real parser once per message (memoized): the sweep is about the protocol.
"""

import dataclasses
import datetime
import functools
import resource
import time

import pytest
from conftest import new_account

from onpipeline_mail.engine import errors, parse, sync
from onpipeline_mail.engine.connection import imap_session
from onpipeline_mail.engine.testing import mailgen
from onpipeline_mail.engine.testing.dovecot import Dovecot
from onpipeline_mail.engine.testing.proxy import CuttingProxy

END = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.timezone.utc)
WINDOW = datetime.date(2026, 1, 10)  # most of the 60 days: some messages stay out
FOLDERS = {"INBOX": (125, 41), "Sent": (70, 42), "Archive": (45, 43)}  # name: (messages, seed)
BATCH = 20
STALL_TIMEOUT = 1.0  # read timeout of the stalled scenarios
MAX_RUNS = 20


@pytest.fixture(scope="module")
def sweep_server():
    """A Dovecot for this module alone: some scenarios restart it."""
    with Dovecot() as server:
        yield server


@pytest.fixture(scope="module")
def account(sweep_server):
    """Plain-IMAP settings of an account with the folders filled and some flags set; and those flags."""
    settings = new_account(sweep_server, prefix="sweep")
    settings = dataclasses.replace(settings, port=sweep_server.port, security="none")
    for folder, (count, seed) in FOLDERS.items():
        messages = mailgen.generate_messages(count, seed=seed, start=END - datetime.timedelta(days=60), end=END,
                                             kinds=("text", "alternative"))
        uids = mailgen.append_messages(settings, folder, messages, create=folder != "INBOX")
        with imap_session(settings) as client:
            client.select_folder(folder)
            client.add_flags(uids[::3], [b"\\Seen"])
            client.add_flags(uids[::7], [b"\\Flagged", b"\\Answered"])
            client.add_flags(uids[::5], [b"$Label1"])
    return settings, server_flags(settings)


def server_flags(settings):
    with imap_session(settings) as client:
        flags = {}
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
            flags[folder] = client.get_flags(client.search("ALL"))
        return flags


@pytest.fixture(scope="module", autouse=True)
def parse_once():
    """The real parser, once per distinct message."""
    real = parse.parse_message
    parse.parse_message = functools.lru_cache(maxsize=None)(real)
    yield
    parse.parse_message = real


class Replica:
    """What the caller keeps per folder: UIDs and keys handed over, failures, the state saved with them."""

    def __init__(self):
        self.states = {folder: None for folder in FOLDERS}
        self.done = dict.fromkeys(FOLDERS, False)
        self.uids = {folder: [] for folder in FOLDERS}
        self.keys = {folder: [] for folder in FOLDERS}
        self.failures = {folder: {} for folder in FOLDERS}
        self.failures_recorded = 0

    def take(self, folder, messages, failures):
        for uid, message, _meta in messages:
            self.uids[folder].append(uid)
            self.keys[folder].append(message.message_id_key)
            self.failures[folder].pop(uid, None)
        self.failures[folder].update(dict(failures))
        self.failures_recorded += len(failures)

    def commit(self, folder, batch):
        self.take(folder, batch.messages, batch.failures)
        self.states[folder] = batch.state
        self.done[folder] = batch.done

    @property
    def complete(self):
        return all(self.done.values()) and not any(self.failures.values())


def run_once(settings, replica):
    """One scheduled run: every folder on one session (a lost connection stops that folder only),
    then the recorded failures retried. Returns the connections opened again."""
    with sync.Session(settings) as session:
        for folder in FOLDERS:
            try:
                for batch in sync.sync_folder(session, folder, replica.states[folder], WINDOW, batch_size=BATCH):
                    replica.commit(folder, batch)
            except errors.ConnectError:
                session.reopen()
        for folder, failures in replica.failures.items():
            if failures:
                try:
                    result = sync.retry_uids(session, folder, replica.states[folder].uidvalidity, sorted(failures))
                except errors.ConnectError:
                    session.reopen()
                    continue
                replica.take(folder, result.messages, result.failures)
        return session.reopens


def sync_until_complete(settings, replica):
    """Runs until every folder is caught up with no failure left; returns (runs, reopens)."""
    runs = reopens = 0
    while not replica.complete:
        runs += 1
        assert runs <= MAX_RUNS, "never completed"
        try:
            reopens += run_once(settings, replica)
        except errors.ConnectError:
            time.sleep(0.05)  # the server is restarting: the next run tries again
    return runs, reopens


def spaced(total, count):
    """``count`` offsets spread over ``total`` bytes, mid-interval."""
    return [int(total * (index + 0.5) / count) for index in range(count)]


def differences(replica, reference):
    """What makes ``replica`` differ from the undisturbed ``reference`` (empty: the same)."""
    found = []
    for folder in FOLDERS:
        keys = replica.keys[folder]
        if len(keys) != len(set(keys)) or len(replica.uids[folder]) != len(set(replica.uids[folder])):
            found.append("%s: %d duplicates" % (folder, len(keys) - len(set(keys))))
        if sorted(replica.uids[folder]) != sorted(reference.uids[folder]):
            lost = set(reference.uids[folder]) - set(replica.uids[folder])
            found.append("%s: lost UIDs %s" % (folder, sorted(lost)))
        if sorted(keys) != sorted(reference.keys[folder]):
            found.append("%s: keys differ" % folder)
        if replica.failures[folder]:
            found.append("%s: failures left %s" % (folder, replica.failures[folder]))
        if replica.states[folder] != reference.states[folder]:
            found.append("%s: state %s" % (folder, replica.states[folder]))
    return found


def test_a_first_sync_cut_anywhere_resumes_to_the_undisturbed_result(account, sweep_server, capsys):
    settings, flags_before = account
    started, cpu_started = time.monotonic(), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    with CuttingProxy("127.0.0.1", sweep_server.port) as proxy:
        proxied = dataclasses.replace(settings, port=proxy.port)
        reference = Replica()
        assert sync_until_complete(proxied, reference) == (1, 0)
        (clean,) = proxy.connections
        assert sum(map(len, reference.uids.values())) > 150 and reference.failures_recorded == 0
        down, up = clean.bytes_down, clean.bytes_up

        points = [("server to client", offset, dict(down=offset))
                  for offset in range(down // 220, down - 100, down // 110)]
        points += [("client to server", offset, dict(up=offset)) for offset in spaced(up, 20)]
        points += [("before command", number, dict(commands=number)) for number in range(1, clean.commands + 1)]
        points += [("before reply", number, dict(replies=number)) for number in range(1, clean.replies + 1)]
        points += [("reset", offset, dict(down=offset, how="reset")) for offset in spaced(down, 12)]
        points += [("stall", offset, dict(down=offset, how="stall")) for offset in spaced(down, 4)]
        points += [("server restart", offset, dict(down=offset, on_cut=sweep_server.restart))
                   for offset in spaced(down, 3)]

        problems, runs, reopens, recorded, kinds = [], 0, 0, 0, {}
        for kind, where, cut in points:
            label = "%s at %s" % (kind, where)
            kinds[kind] = kinds.get(kind, 0) + 1
            scenario = dataclasses.replace(proxied, read_timeout=STALL_TIMEOUT) if cut.get("how") == "stall" \
                else proxied
            proxy.clear_cuts()
            proxy.cut_next(**cut)
            first = len(proxy.connections)
            replica = Replica()
            try:
                scenario_runs, scenario_reopens = sync_until_complete(scenario, replica)
            except AssertionError as exc:
                problems.append("%s: %s" % (label, exc))
                continue
            if "on_cut" in cut:
                assert proxy.connections[first].cut_done.wait(60), "the server did not restart"
            runs += scenario_runs
            reopens += scenario_reopens
            recorded += replica.failures_recorded
            if not proxy.connections[first].was_cut:
                problems.append("%s: the connection was not cut" % label)
            problems += ["%s: %s" % (label, difference) for difference in differences(replica, reference)]
        proxy.clear_cuts()

    flags_after = server_flags(settings)
    with capsys.disabled():
        print("\nfault sweep: %d cut points (%s) over a first sync of %d messages in %d folders; "
              "%d runs, %d reconnections, %d failures recorded on the way; %s; flags %s; %.0f s (%.0f s CPU here)"
              % (len(points), ", ".join("%s %d" % item for item in kinds.items()),
                 sum(map(len, reference.uids.values())), len(FOLDERS), runs, reopens, recorded,
                 "%d problems" % len(problems) if problems
                 else "every scenario ended as the undisturbed sync: 0 duplicates, 0 lost, 0 failures left",
                 "unchanged" if flags_after == flags_before else "CHANGED", time.monotonic() - started,
                 sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu_started))
    assert len(points) >= 200
    assert problems == []
    assert flags_after == flags_before
