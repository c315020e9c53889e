"""Syncing one folder: new mail, newest-first backfill, restartable at every batch.

``sync_folder`` is a generator of :class:`SyncBatch`. Each batch carries
its messages, the UIDs that failed (to record and retry with
:func:`retry_uids`), the UIDs that vanished before they could be fetched,
and the :class:`~.state.FolderState` to save *with* them. The caller stores
a batch's messages and state in one transaction and commits; a sync killed
anywhere and started again from the last committed state hands over every
message exactly once, because a state only ever describes UIDs already
handed over in the same or an earlier batch.

Order of work in a run:

1. STATUS (before any SELECT). If UIDVALIDITY, UIDNEXT and the window say
   nothing is to do, the run ends there: one command, no SELECT.
2. EXAMINE (read-only: no flag changes, not even ``\\Recent``).
3. New mail (UID above ``last_uid``, in the window), oldest first, so that
   ``last_uid`` moves up batch by batch.
4. Backfill (UIDs below ``backfill_uid`` in the window), newest first, so
   that recent mail shows up first; then, if the window was made longer,
   a new pass for the older days.

Batches are bounded by count and bytes (sizes are fetched first), so memory
depends on the batch, not on the mailbox. Nothing here sets a flag,
moves or deletes: bodies are read with ``BODY.PEEK[]`` in an EXAMINEd folder.

Given a :class:`Session` (rather than a bare client), a batch whose FETCH
drops the connection is fetched again in halves, each on a new connection,
down to the message that drops it on its own (Dovecot drops the connection
every time it reads a damaged file): that message becomes a failure of the
batch, recorded and retried like any other, and the rest of the batch is
handed over, so one bad message never holds back its folder. A drop
anywhere else ends the folder's run with :class:`~.errors.ConnectError`;
what was handed over stays, and the caller goes on with its other folders
after :meth:`Session.reopen`.
"""

import dataclasses
import time
import typing
import weakref

from imapclient import exceptions as imap_exc

from . import connection, errors, fetch, parse, parse_worker, read_ahead
from .state import RESYNC, FolderState, as_date, examine_folder, plan_sync, read_folder_status

DEFAULT_BATCH_SIZE = 50
DEFAULT_MAX_BATCH_BYTES = 20 * 1024 * 1024

#: New connections a :class:`Session` may open after drops: isolating a message that drops the
#: connection costs about log2(batch size) + 2 of them.
MAX_REOPENS = 40
#: What a dropped or silent connection raises inside imapclient (a read timeout is an OSError).
DROPS = (imap_exc.IMAPClientAbortError, OSError)

# Connections on which CONDSTORE was enabled (or implied by a STATUS HIGHESTMODSEQ).
_condstore_clients = weakref.WeakSet()


class Session:
    """The IMAP connection of one sync, opened again when the server drops it.

    ::

        with sync.Session(settings) as session:
            for batch in sync.sync_folder(session, "INBOX", state, window_start): ...

    ``client`` is the connection in use. :func:`sync_folder` and
    :func:`retry_uids` reopen it to isolate a message whose FETCH drops the
    connection; after a folder ended with :class:`~.errors.ConnectError` the
    caller calls :meth:`reopen` before the next folder (which raises
    :class:`~.errors.ConnectError` when the server cannot be reached). Logging
    in and closing are :func:`.connection.imap_session`'s.
    """

    def __init__(self, settings, login=None, max_reopens=MAX_REOPENS):
        self.settings = settings
        self.login = login
        self.max_reopens = max_reopens
        #: Connections opened again so far.
        self.reopens = 0
        self.client = None
        self._context = None

    @property
    def can_reopen(self):
        return self.reopens < self.max_reopens

    def _open(self):
        context = connection.imap_session(self.settings, **({"login": self.login} if self.login else {}))
        self.client = context.__enter__()
        self._context = context

    def _drop(self, cause):
        """Close the connection in use without a LOGOUT (its state is unknown after a drop)."""
        context, self._context, self.client = self._context, None, None
        if context is None:
            return
        cause = cause or ConnectionAbortedError("closed to open a new connection")
        try:
            context.__exit__(type(cause), cause, cause.__traceback__)
        except (errors.MailSyncError, *DROPS, imap_exc.IMAPClientError):
            pass  # the translated drop: nothing more to do with this connection

    def reopen(self, cause=None):
        """Close the connection in use and log in again; returns the new client."""
        self._drop(cause)
        if not self.can_reopen:
            raise errors.ConnectError(
                "The server dropped the connection %d times during this sync; the next run goes on from "
                "where this one stopped." % self.reopens, reason="dropped_repeatedly")
        self.reopens += 1
        self._open()
        return self.client

    def __enter__(self):
        self._open()
        return self

    def __exit__(self, exc_type, exc, traceback):
        context, self._context, self.client = self._context, None, None
        if context is None:
            return False
        return context.__exit__(exc_type, exc, traceback)


class _FixedLink:
    """A bare client given to :func:`sync_folder`: never reopened (a drop ends the run)."""

    can_reopen = False

    def __init__(self, client):
        self.client = client


def _link(client):
    return client if isinstance(client, Session) else _FixedLink(client)


class SyncedMessage(typing.NamedTuple):
    """One message handed over: its UID, the parsed message and its IMAP metadata (no body)."""

    uid: int
    message: parse.ParsedMessage
    meta: fetch.RawMessage


class FailedMessage(typing.NamedTuple):
    """A UID that could not be fetched or parsed; record it and retry it with :func:`retry_uids`."""

    uid: int
    error: str


@dataclasses.dataclass(frozen=True)
class SyncBatch:
    """What to store in one transaction: messages, failures, and the state to save with them."""

    messages: tuple
    failures: tuple
    state: FolderState
    #: True on the last batch of a run that caught up; False when the run
    #: stopped at its deadline (the next run resumes from ``state``).
    done: bool
    #: Messages this run found to process (new mail plus the backfill still
    #: to do), counted from its searches so far; None when the run did not
    #: need to search (nothing changed).
    total_in_window: int | None
    #: UIDs expunged between the search and the fetch: nothing to store.
    gone: tuple = ()
    #: The plan's action (:data:`.state.ACTIONS`); ``resync``: UIDVALIDITY
    #: changed, match the messages by key instead of importing them again.
    action: str = ""
    folder: str = ""


@dataclasses.dataclass(frozen=True)
class RetryResult:
    messages: tuple
    failures: tuple
    gone: tuple = ()


def command_count(client):
    """IMAP commands sent so far on this connection (imaplib tags each command once).

    Every command is one round trip here: imapclient does not pipeline. ``client`` may be a
    :class:`Session` (its connection in use).
    """
    if isinstance(client, Session):
        client = client.client
    return client._imap.tagnum


def enable_condstore(client):
    """Whether CONDSTORE can be used; ENABLE it once per connection while no folder is selected.

    Once a folder is selected ENABLE is illegal; the STATUS (HIGHESTMODSEQ)
    issued next enables CONDSTORE by itself (RFC 7162, 3.1).
    """
    if not client.has_capability("CONDSTORE"):
        return False
    if client not in _condstore_clients:
        if getattr(client._imap, "state", None) == "AUTH" and client.has_capability("ENABLE"):
            client.enable("CONDSTORE")
        _condstore_clients.add(client)
    return True


@dataclasses.dataclass
class _Run:
    link: typing.Any
    folder: str
    window_start: typing.Any
    status: typing.Any
    batch_size: int
    max_batch_bytes: int
    max_message_bytes: int
    partial_bytes: int
    known_failures: frozenset
    total: int = 0

    @property
    def client(self):
        return self.link.client


def _truncation_reason(raw, max_message_bytes):
    if not raw.is_partial:
        return ""
    return ("The message is %s, over the %s limit: imported with its headers and text only, without attachments."
            % (parse.human_size(raw.size), parse.human_size(max_message_bytes)))


DROPPED_MESSAGE = ("The server dropped the connection each time this message was fetched (%s). It is retried "
                   "later; if it keeps failing, the message is probably damaged on the server.")


def _reopen(run, cause):
    """A new connection with the run's folder EXAMINEd again, on the same UIDVALIDITY."""
    client = run.link.reopen(cause)
    selected = examine_folder(client, run.folder)
    if selected.uidvalidity != run.status.uidvalidity:
        raise errors.ConnectError("The folder %r was renumbered on the server during the sync (UIDVALIDITY %s, was "
                                  "%s); the next run reads it again." % (run.folder, selected.uidvalidity,
                                                                         run.status.uidvalidity),
                                  reason="renumbered_during_sync")


class _DroppedInFetch(Exception):
    """A FETCH dropped a connection that may only be opened again on the caller's thread."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


def _fetch_isolating(run, uids, sizes, dropped=False, reopen=True, dropped_by=None):
    """:func:`.fetch.fetch_messages`; when the FETCH drops the connection, each half again on a new
    connection, down to the UID that drops it alone after dropping it in a larger set (or twice when
    alone from the start): that one comes back in ``errors``, the others are fetched.

    ``reopen``: False raises :class:`_DroppedInFetch` instead of opening a connection (the fetch runs
    on a thread, and logging in may call back into the caller). ``dropped_by``: the drop of a first
    FETCH of ``uids`` made elsewhere (then isolating starts at once).
    """
    if dropped_by is None:
        try:
            return fetch.fetch_messages(run.client, uids, sizes, run.max_message_bytes, run.partial_bytes)
        except DROPS as exc:
            dropped_by = exc
    cause = dropped_by
    if not run.link.can_reopen:
        error = errors.ConnectError(
            "The connection dropped while fetching the messages with UIDs %s of the folder %r (%s). Try "
            "again later." % (", ".join(map(str, uids)), run.folder, cause), reason="dropped_during_fetch")
        error.uids = tuple(uids)
        raise error from cause
    if not reopen:
        raise _DroppedInFetch(cause) from cause
    _reopen(run, cause)
    if dropped and len(uids) == 1:
        return fetch.FetchResult(messages=(), errors=((uids[0], DROPPED_MESSAGE % cause),))
    middle = (len(uids) + 1) // 2
    parts = [_fetch_isolating(run, part, sizes, dropped=True) for part in (uids[:middle], uids[middle:]) if part]
    return fetch.FetchResult(messages=sum((part.messages for part in parts), ()),
                             missing=sum((part.missing for part in parts), ()),
                             errors=tuple(sorted(sum((part.errors for part in parts), ()))))


def _fetch_raw(run, uids, sizes, reopen=True, dropped_by=None):
    """Fetch one batch; returns (raw messages, {uid: failure text}, gone UIDs).

    On a :class:`Session`, a message that drops the connection is isolated
    (:func:`_fetch_isolating`, which also says what ``reopen`` and ``dropped_by``
    do) and returned as a failure. On a bare client a drop raises
    :class:`~.errors.ConnectError` with ``uids`` = the batch.
    """
    result = _fetch_isolating(run, list(uids), sizes, reopen=reopen, dropped_by=dropped_by)
    failures = {uid: text for uid, text in result.errors}
    gone = []
    if result.missing:
        still_there = fetch.existing_uids(run.client, result.missing)
        for uid in result.missing:
            if uid in still_there:
                failures[uid] = "The server returned no body for this message."
            else:
                gone.append(uid)
    return result.messages, failures, gone


def _parse_jobs(run, raws):
    return [(raw.body, run.max_message_bytes, _truncation_reason(raw, run.max_message_bytes), raw.size)
            for raw in raws]


def _assemble(uids, raws, parsed, failures, gone):
    """(messages, failures, gone) of a batch from its fetch and its parse results, failures in UID order."""
    messages = []
    for raw, result in zip(raws, parsed, strict=True):
        if isinstance(result, str):  # the parser raised: record, never skip
            failures[raw.uid] = result
        else:
            messages.append(SyncedMessage(raw.uid, result, raw.without_body()))
    order = {uid: index for index, uid in enumerate(uids)}
    failed = tuple(FailedMessage(uid, failures[uid]) for uid in sorted(failures, key=order.get))
    return tuple(messages), failed, tuple(gone)


def _fetch_batch(run, uids, sizes):
    """Fetch and parse one batch here; returns (messages, failures, gone)."""
    raws, failures, gone = _fetch_raw(run, uids, sizes)
    return _assemble(uids, raws, parse_worker.parse_jobs(_parse_jobs(run, raws)), failures, gone)


def _batches(run, uids):
    """(uids, gone, sizes) batches over ``uids`` in the given order, sizes fetched a chunk at a time."""
    for chunk in fetch.chunks([uid for uid in uids if uid not in run.known_failures], fetch.SIZE_CHUNK):
        sizes = fetch.fetch_sizes(run.client, chunk)
        for batch, gone in fetch.plan_batches(chunk, sizes, run.batch_size, run.max_batch_bytes,
                                              run.max_message_bytes, run.partial_bytes):
            yield batch, gone, {uid: sizes[uid] for uid in batch}


def _steps(run, plan):
    """Work units ``(uids, gone, sizes, state)``: ``state`` may be saved once ``uids`` are handed over."""
    state = plan.state
    if plan.fetch_new:
        uids = fetch.search_uids(run.client, state.last_uid + 1, since=state.window_start)
        run.total += len(uids)
        top = max([state.last_uid, (run.status.uidnext or 1) - 1] + uids[-1:])
        for batch, gone, sizes in _batches(run, uids):
            state = dataclasses.replace(state, last_uid=max(batch + gone))
            yield batch, gone, sizes, state
        state = dataclasses.replace(state, last_uid=top)
        yield (), (), {}, state
    while state.is_backfilling:
        uids = fetch.search_uids(run.client, 1, state.backfill_uid - 1, since=state.window_start,
                                 before=state.backfill_before)
        uids.reverse()
        run.total += len(uids)
        for batch, gone, sizes in _batches(run, uids):
            state = dataclasses.replace(state, backfill_uid=min(batch + gone))
            yield batch, gone, sizes, state
        state = dataclasses.replace(state, backfill_uid=None, backfill_before=None)
        # A window made longer while this pass ran gets its own pass now.
        state = plan_sync(state, run.status, run.window_start).state
        yield (), (), {}, state


def sync_folder(client, folder_name, saved_state, window_start, batch_size=DEFAULT_BATCH_SIZE,
                max_batch_bytes=DEFAULT_MAX_BATCH_BYTES, deadline=None, known_failures=(),
                max_message_bytes=fetch.MAX_MESSAGE_BYTES, partial_bytes=fetch.PARTIAL_BYTES, parser=None,
                resync=True):
    """Sync one folder; yield :class:`SyncBatch` es, the last one with ``done=True`` unless stopped.

    ``client``: a :class:`Session` (a message that drops the connection is
    isolated and reported as failed) or a bare logged-in client.

    ``saved_state``: the :class:`FolderState` of the last stored batch (None
    for a first sync). ``window_start``: the first day to sync (SEARCH
    SINCE). ``deadline``: a ``time.monotonic()`` value; after the batch
    during which it passes, the run stops with ``done=False``.
    ``known_failures``: UIDs the caller already recorded as failed; they are
    left to :func:`retry_uids`. Messages over ``max_message_bytes`` are
    imported from their first ``partial_bytes``, without attachments.
    ``parser``: a :class:`~.parse_worker.ParseWorker`; batch k+1 is then
    fetched and handed to it before batch k is yielded, so that it is parsed
    while the caller stores batch k (None: each batch is parsed when built).

    ``resync``: False makes a changed UIDVALIDITY raise
    :class:`~.errors.UidValidityError` before anything is read (a caller
    capping how often a folder is read again from scratch).

    Raises :class:`~.errors.FolderMissingError` if the folder is gone or
    cannot be selected, :class:`~.errors.ConnectError` when the connection
    drops (outside a FETCH that could be isolated) or the server refuses a
    command: the batches handed over so far stand.
    """
    if batch_size < 1 or max_batch_bytes < 1:
        raise ValueError("batch_size and max_batch_bytes must be positive")
    link = _link(client)
    try:
        yield from _sync_folder(link, folder_name, saved_state or FolderState(), as_date(window_start), deadline,
                                parser, resync, dict(
                                    batch_size=batch_size, max_batch_bytes=max_batch_bytes,
                                    max_message_bytes=max_message_bytes, partial_bytes=partial_bytes,
                                    known_failures=frozenset(known_failures)))
    except DROPS as exc:
        raise _dropped(folder_name, exc) from exc
    except imap_exc.IMAPClientError as exc:
        raise errors.ConnectError("The server refused a command while syncing the folder %r: %s. Try again later."
                                  % (folder_name, exc), reason="server_error") from exc


def _dropped(folder_name, exc):
    timeout = isinstance(exc, TimeoutError)
    return errors.ConnectError(
        "The connection to the server was %s while syncing the folder %r (%s). The next run goes on from where "
        "this one stopped." % ("left without an answer" if timeout else "lost", folder_name,
                               str(exc) or type(exc).__name__),
        reason="timeout" if timeout else "dropped")


def _sync_folder(link, folder_name, saved, window_start, deadline, parser, resync, limits):
    condstore = enable_condstore(link.client)
    status = read_folder_status(link.client, folder_name, condstore)
    plan = plan_sync(saved, status, window_start)
    if plan.action == RESYNC and not resync:
        raise _resync_refused(folder_name, plan)
    if not plan.needs_select:
        yield SyncBatch((), (), dataclasses.replace(plan.state, highestmodseq=status.highestmodseq), done=True,
                        total_in_window=None, action=plan.action, folder=folder_name)
        return
    yield from _sync_selected(link, folder_name, saved, window_start, condstore, deadline, parser, resync, limits)


def _resync_refused(folder_name, plan):
    error = errors.UidValidityError("The folder %r was renumbered on the server (%s)." % (folder_name, plan.reason),
                                    reason="resync_refused")
    error.uidvalidity = plan.state.uidvalidity
    return error


def _work(run, plan):
    """``(step, done)`` for each batch to hand over, in order: a state-only step (a phase
    ended) is folded into the batch before it; the last one has ``done=True``."""
    pending = None
    for step in _steps(run, plan):
        if pending is not None and not step[0] and not step[1]:
            pending = pending[:3] + (step[3],)
            continue
        if pending is not None and (pending[0] or pending[1]):
            yield pending, False
        pending = step
    yield pending or ((), (), {}, plan.state), True


def _sync_selected(link, folder_name, saved, window_start, condstore, deadline, parser, resync, limits):
    selected = examine_folder(link.client, folder_name)
    # EXAMINE's counters are the snapshot the run works from.
    plan = plan_sync(saved, selected, window_start)
    if plan.action == RESYNC and not resync:
        raise _resync_refused(folder_name, plan)
    final_modseq = selected.highestmodseq if condstore else None
    run = _Run(link=link, folder=folder_name, window_start=window_start, status=selected, **limits)

    def seal(step, done, contents, total=None):
        """The SyncBatch of a work step, from its (messages, failures, gone); ``total``: the run's total then."""
        _uids, gone, _sizes, state = step
        messages, failures, more_gone = contents
        if done:
            state = dataclasses.replace(state, highestmodseq=final_modseq)
        return SyncBatch(messages, failures, state, done=done, total_in_window=run.total if total is None else total,
                         gone=tuple(gone) + more_gone, action=plan.action, folder=folder_name)

    def past_deadline():
        return deadline is not None and time.monotonic() >= deadline

    if parser is None:
        yield from _hand_over(run, _work(run, plan), seal, past_deadline)
    else:
        yield from _hand_over_pipelined(run, _work(run, plan), seal, past_deadline, parser)


def _hand_over(run, work, seal, past_deadline):
    """Each batch fetched, parsed and handed over in turn; stops after the batch during which the deadline passed."""
    for step, done in work:
        yield seal(step, done, _fetch_batch(run, step[0], step[2]) if step[0] else ((), (), ()))
        if not done and past_deadline():
            return


def _hand_over_pipelined(run, work, seal, past_deadline, parser):
    """As :func:`_hand_over`, but batch k+1 is fetched (on a thread, while the caller stores batch k-1)
    and given to ``parser`` before batch k is handed over."""

    def finish(started, done, total):
        fetched, ticket = started
        raws, failures, gone = fetched.contents
        return seal(fetched.step, done, _assemble(fetched.step[0], raws, parser.collect(ticket), failures, gone),
                    total)

    # Take k+1, give it to the worker, collect k, hand k over. k+1 is given before k is collected:
    # it waits in the worker's pipe, and the worker goes on to it the moment k is parsed, instead of
    # idling until the caller has collected k (up to a tenth of a first sync was spent waiting so).
    steps = _fetched_ahead(run, work)
    started = following = None
    try:
        while True:
            try:
                fetched = next(steps, None)
            except (errors.ConnectError, *DROPS):
                if started is not None:
                    ready, started = finish(started, False, run.total), None
                    yield ready  # what was fetched is handed over before the error surfaces
                raise
            if fetched is None:
                break
            parser.expect(fetched.total)
            following = (fetched, parser.submit(_parse_jobs(run, fetched.contents[0])))
            ready = finish(started, False, fetched.total) if started is not None else None
            started, following = following, None
            if ready is not None:
                yield ready
                if past_deadline():
                    return
        last, started = started, None
        yield finish(last, True, run.total)  # only the last step is done
    finally:
        # Stopped early (deadline, error, or the caller stopped reading): the fetching thread ends
        # before anyone else uses the connection, and the batches in the worker are dropped.
        steps.close()
        for item in (started, following):
            if item is not None:
                parser.abandon(item[1])


class _Fetched(typing.NamedTuple):
    step: tuple
    #: (raw messages, {uid: failure text}, gone UIDs), or None when the FETCH dropped the connection
    contents: tuple | None
    #: ``run.total`` once this step was made (a later step may have searched more)
    total: int
    #: what dropped the connection, when ``contents`` is None
    dropped_by: BaseException | None = None


def _fetched_ahead(run, work):
    """A :class:`_Fetched` per work step, fetched on a thread one batch ahead of the caller.

    The thread has the connection to itself until it ends, so a FETCH that drops
    it is isolated here, on the caller's thread (opening a connection logs in, and
    a login may call back into the caller: an OAuth token read from its database,
    say); the steps after it are fetched on a new thread.
    """
    while True:
        dropped = None
        with read_ahead.ReadAhead(_fetch_steps(run, work), depth=1, name="onpipeline-fetch-ahead") as steps:
            for fetched in steps:
                if fetched.contents is None:
                    dropped = fetched
                    break
                yield fetched
        if dropped is None:
            return
        # The thread ended with its block, after the drop: the connection is ours.
        contents = _fetch_raw(run, dropped.step[0], dropped.step[2], dropped_by=dropped.dropped_by)
        yield dropped._replace(contents=contents, total=run.total, dropped_by=None)


def _fetch_steps(run, work):
    """Each work step with its fetched contents (see :class:`_Fetched`); stops after a dropped FETCH."""
    for step, _done in work:
        try:
            contents = _fetch_raw(run, step[0], step[2], reopen=False) if step[0] else ((), {}, [])
        except _DroppedInFetch as drop:
            yield _Fetched(step, None, run.total, drop.cause)
            return
        yield _Fetched(step, contents, run.total)


def retry_uids(client, folder_name, uidvalidity, uids, max_message_bytes=fetch.MAX_MESSAGE_BYTES,
               partial_bytes=fetch.PARTIAL_BYTES, batch_size=DEFAULT_BATCH_SIZE,
               max_batch_bytes=DEFAULT_MAX_BATCH_BYTES):
    """Fetch again UIDs recorded as failed; returns a :class:`RetryResult`.

    ``client``: a :class:`Session` (a message that drops the connection comes
    back in ``failures``) or a bare client. Raises
    :class:`~.errors.UidValidityError` if the folder's UIDVALIDITY is no
    longer ``uidvalidity`` (the recorded UIDs mean nothing any more),
    :class:`~.errors.FolderMissingError` if the folder is gone and
    :class:`~.errors.ConnectError` if the connection is lost. UIDs no longer
    in the folder come back in ``gone``.
    """
    try:
        return _retry_uids(_link(client), folder_name, uidvalidity, uids, max_message_bytes, partial_bytes,
                           batch_size, max_batch_bytes)
    except DROPS as exc:
        raise _dropped(folder_name, exc) from exc


def _retry_uids(link, folder_name, uidvalidity, uids, max_message_bytes, partial_bytes, batch_size,
                max_batch_bytes):
    selected = examine_folder(link.client, folder_name)
    if selected.uidvalidity != uidvalidity:
        raise errors.UidValidityError(
            "The folder %r was rebuilt on the server (UIDVALIDITY %s, was %s): its messages are matched again "
            "at the next sync." % (folder_name, selected.uidvalidity, uidvalidity))
    run = _Run(link=link, folder=folder_name, window_start=None, status=selected, batch_size=batch_size,
               max_batch_bytes=max_batch_bytes, max_message_bytes=max_message_bytes, partial_bytes=partial_bytes,
               known_failures=frozenset())
    messages, failures, gone = [], [], []
    for batch, batch_gone, sizes in _batches(run, sorted(set(uids))):
        fetched, failed, more_gone = _fetch_batch(run, batch, sizes) if batch else ((), (), ())
        messages.extend(fetched)
        failures.extend(failed)
        gone.extend(batch_gone + more_gone)
    return RetryResult(tuple(messages), tuple(failures), tuple(gone))
