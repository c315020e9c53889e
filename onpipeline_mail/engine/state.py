"""Per-folder sync state, the folder's status on the server, and the plan between them.

The caller stores one :class:`FolderState` per folder (``to_dict()`` is JSON
safe) and gives it back at the next sync. :func:`plan_sync` compares it with
the folder's STATUS, without touching the network, and says what to do:
nothing, fetch new mail, continue a backfill, or start over because the
folder's UIDVALIDITY changed. STATUS is read before SELECT so that a folder
where nothing happened costs a single command.

What a state promises (W = ``window_start``, B = ``backfill_uid``,
BB = ``backfill_before``): every message whose UID is at most ``last_uid``
and whose INTERNALDATE is on or after W has been handed to the caller,
except, while a backfill pass runs (B is not None), the messages with a UID
below B dated on or after W and before BB (or of any date on or after W
when BB is None). A state saved with the messages of a batch never claims
a message that was not handed over in that batch or an earlier one, so it is
a safe restart point wherever a sync is killed.
"""

import dataclasses
import datetime

from imapclient import exceptions as imap_exc

from . import errors

NOTHING = "nothing"
NEW = "new"
BACKFILL = "backfill"
RESYNC = "resync"
ACTIONS = (NOTHING, NEW, BACKFILL, RESYNC)

#: NO responses that say "try again later" rather than "this folder is gone".
TRANSIENT_CODES = ("UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT", "CORRUPTION", "EXPUNGEISSUED")
#: NO responses that say the folder exists but cannot be opened.
UNSELECTABLE_CODES = ("CANNOT", "NOPERM", "NOTALLOWED")

STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")


@dataclasses.dataclass(frozen=True)
class FolderState:
    """Where the sync of one folder stands; see the module docstring for the promise it makes.

    * ``uidvalidity``: the folder's UIDVALIDITY the UIDs below belong to;
      None = never synced.
    * ``last_uid``: the highest UID the sync has gone through (new mail is
      whatever has a higher UID).
    * ``highestmodseq``: HIGHESTMODSEQ when the folder was last fully caught
      up; None without CONDSTORE. Informational: flags are not synced.
    * ``backfill_uid``: None = no backfill pending (it is done, or there was
      nothing to backfill, or the folder was never synced). Otherwise a
      newest-first backfill pass is under way and has handled every UID from
      ``backfill_uid`` up to ``last_uid``; it still has to handle the UIDs
      below ``backfill_uid``. A pass that has handled nothing yet has
      ``backfill_uid == last_uid + 1``.
    * ``window_start``: the first day covered (SEARCH SINCE, by INTERNALDATE);
      while a pass runs, the first day the pass goes down to.
    * ``backfill_before``: None, or, for a pass that extends a window made
      longer, the start of the earlier window: mail from that day on was
      handled already, so the pass only looks at mail dated before it.
    """

    uidvalidity: int | None = None
    last_uid: int = 0
    highestmodseq: int | None = None
    backfill_uid: int | None = None
    window_start: datetime.date | None = None
    backfill_before: datetime.date | None = None

    @property
    def is_backfilling(self):
        return self.backfill_uid is not None

    def to_dict(self):
        """A JSON-safe dict (dates as ISO strings) for an Odoo Json or Char field."""
        out = dataclasses.asdict(self)
        for key in ("window_start", "backfill_before"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    @classmethod
    def from_dict(cls, data):
        """Rebuild a state from :meth:`to_dict` output; None or {} is a never-synced folder."""
        if not data:
            return cls()
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError("Unknown folder state keys: %s" % ", ".join(sorted(unknown)))
        values = dict(data)
        for key in ("window_start", "backfill_before"):
            if values.get(key):
                values[key] = datetime.date.fromisoformat(values[key])
        for key in ("uidvalidity", "highestmodseq", "backfill_uid"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        values["last_uid"] = int(values.get("last_uid") or 0)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class FolderStatus:
    """A folder's counters as STATUS or SELECT/EXAMINE report them."""

    uidvalidity: int
    uidnext: int | None = None
    messages: int | None = None
    highestmodseq: int | None = None

    @classmethod
    def from_response(cls, response):
        """Build from imapclient's bytes-keyed STATUS or SELECT dict."""
        def number(*keys):
            for key in keys:
                value = response.get(key)
                if value is not None:
                    return int(value)
            return None

        uidvalidity = number(b"UIDVALIDITY")
        if uidvalidity is None:
            raise errors.MailSyncError("The server did not report the folder's UIDVALIDITY.", reason="no_uidvalidity")
        return cls(uidvalidity=uidvalidity, uidnext=number(b"UIDNEXT"), messages=number(b"MESSAGES", b"EXISTS"),
                   highestmodseq=number(b"HIGHESTMODSEQ"))


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    """What a sync of one folder has to do, and the state to start it from.

    ``action`` sums it up for logs and callers (``resync`` tells the caller
    that UIDs changed meaning: it must match messages by key);
    ``fetch_new`` and ``backfill`` are what :mod:`.sync` acts on.
    """

    action: str
    state: FolderState
    fetch_new: bool = False
    backfill: bool = False
    #: The requested window is longer than the state covers, but a running
    #: pass must finish first; a later plan starts the extension.
    extension_pending: bool = False
    reason: str = ""

    @property
    def needs_select(self):
        return self.fetch_new or self.backfill


def as_date(value):
    """The day of ``value`` (a datetime counts for its date: SEARCH SINCE works by day)."""
    return value.date() if isinstance(value, datetime.datetime) else value


def plan_sync(saved, status, window_start):
    """Compare the saved state with the folder's status; pure, no I/O.

    ``window_start`` is the first day of the window requested now. A longer
    window starts a backfill pass for the older days; a shorter one only
    moves the state's start forward, so nothing below it is fetched again.
    """
    saved = saved or FolderState()
    window_start = as_date(window_start)
    if saved.uidvalidity is None or saved.uidvalidity != status.uidvalidity:
        action = BACKFILL if saved.uidvalidity is None else RESYNC
        reason = ("first sync" if action == BACKFILL
                  else "UIDVALIDITY changed from %s to %s" % (saved.uidvalidity, status.uidvalidity))
        if status.uidnext is None:
            # Without UIDNEXT the top is unknown: take every UID as new mail.
            state = FolderState(uidvalidity=status.uidvalidity, window_start=window_start)
            return SyncPlan(action, state, fetch_new=True, reason=reason)
        last_uid = max(status.uidnext - 1, 0)
        state = FolderState(uidvalidity=status.uidvalidity, last_uid=last_uid,
                            backfill_uid=last_uid + 1 if last_uid else None, window_start=window_start)
        return SyncPlan(action, state, fetch_new=False, backfill=state.is_backfilling, reason=reason)

    state, extension_pending = _apply_window(saved, window_start)
    fetch_new = status.uidnext is None or status.uidnext - 1 > state.last_uid
    backfill = state.is_backfilling
    if fetch_new:
        action, reason = NEW, "UIDNEXT %s, last UID %s" % (status.uidnext, state.last_uid)
    elif backfill:
        action = BACKFILL
        reason = ("backfill down to %s below UID %s" % (state.window_start, state.backfill_uid))
    else:
        action, reason = NOTHING, "nothing new"
    return SyncPlan(action, state, fetch_new=fetch_new, backfill=backfill, extension_pending=extension_pending,
                    reason=reason)


def _apply_window(state, window_start):
    """The state adjusted to the requested window, and whether a longer window must wait for a running pass."""
    if state.window_start is None:
        return dataclasses.replace(state, window_start=window_start), False
    if window_start > state.window_start:
        # Shorter window: the state now only vouches for the new start.
        if state.is_backfilling and state.backfill_before and window_start >= state.backfill_before:
            state = dataclasses.replace(state, backfill_uid=None, backfill_before=None)
        return dataclasses.replace(state, window_start=window_start), False
    if window_start < state.window_start:
        if state.is_backfilling:
            return state, True
        if state.last_uid:
            # Longer window: a new pass goes down the UIDs for the older days.
            return dataclasses.replace(state, window_start=window_start, backfill_uid=state.last_uid + 1,
                                       backfill_before=state.window_start), False
        return dataclasses.replace(state, window_start=window_start), False
    return state, False


def folder_error(exc, folder_name):
    """Map a refused STATUS/SELECT/EXAMINE to an engine error, by response code.

    A tagged NO on a folder command means the folder cannot be opened: gone
    or never there (``[NONEXISTENT]``, or no code at all as Dovecot 2.3
    answers), or not selectable (``[CANNOT]``, ``[NOPERM]``), except for the
    RFC 5530 codes that say "try later". A dropped connection is not a NO and
    never reaches here (it stays a connection error).
    """
    code, text = errors.response_code(exc)
    if code in TRANSIENT_CODES:
        return errors.ConnectError("The server could not open the folder %r right now (%s: %s). Try again later."
                                   % (folder_name, code, text), reason="folder_busy")
    if code in UNSELECTABLE_CODES:
        return errors.FolderMissingError("The folder %r cannot be opened any more (%s: %s)."
                                         % (folder_name, code, text), reason="folder_unselectable")
    return errors.FolderMissingError("The folder %r does not exist any more on the server (%s). It was probably "
                                     "renamed or deleted." % (folder_name, text), reason="folder_missing")


def has_condstore(client):
    return client.has_capability("CONDSTORE")


def read_folder_status(client, folder_name, condstore=None):
    """STATUS the folder (one command) and return a :class:`FolderStatus`."""
    if condstore is None:
        condstore = has_condstore(client)
    items = STATUS_ITEMS + (("HIGHESTMODSEQ",) if condstore else ())
    try:
        response = client.folder_status(folder_name, items)
    except imap_exc.IMAPClientAbortError:
        raise
    except imap_exc.IMAPClientError as exc:
        raise folder_error(exc, folder_name) from exc
    return FolderStatus.from_response(response)


def examine_folder(client, folder_name):
    """Open the folder read-only (EXAMINE: no flag, not even \\Recent, changes) and return its status."""
    try:
        response = client.select_folder(folder_name, readonly=True)
    except imap_exc.IMAPClientAbortError:
        raise
    except imap_exc.IMAPClientError as exc:
        raise folder_error(exc, folder_name) from exc
    return FolderStatus.from_response(response)
