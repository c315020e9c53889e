"""Filing a copy of a sent message in the mailbox's Sent folder.

Some servers file what their SMTP server sends in the Sent folder by
themselves (Gmail, Microsoft 365), others do not. :func:`file_sent_copy`
looks for the message in the Sent folder by its Message-ID and APPENDs a
copy (flagged ``\\Seen``) only when it is not there, so a message is never
filed twice, whoever retries. A mailbox without any Sent folder gets a
top-level ``Sent``.

What the caller knows about the server is passed as ``server_files``:

* ``None`` (not known yet): look, waiting up to ``wait`` seconds for the
  server to file the message, then append if it did not. The result's
  ``filed_by_server`` is what to remember for the next sends.
* ``True`` (the server files sent mail): nothing to do, no connection.
* ``False`` (the server does not): look once without waiting (a previous
  attempt may have appended it already), then append.
"""

import dataclasses
import datetime
import email
import email.utils
import re
import time

from imapclient import exceptions as imap_exc

from . import errors, folders
from .connection import imap_session

SEEN = b"\\Seen"
#: Name of the folder created when a mailbox has no Sent folder at all.
DEFAULT_SENT_NAME = "Sent"
#: How long to wait, when it is not known yet, for the server to file a just-sent message.
DEFAULT_WAIT = 5.0
POLL_INTERVAL = 0.5

FILED_BY_SERVER = "filed_by_server"
ALREADY_FILED = "already_filed"
APPENDED = "appended"
SKIPPED = "skipped"

_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.I)


@dataclasses.dataclass(frozen=True)
class SentCopyResult:
    """Where the copy of a sent message is, and what this told about the server."""

    #: FILED_BY_SERVER, ALREADY_FILED (found without waiting), APPENDED or SKIPPED.
    action: str
    folder: str = ""
    uidvalidity: int | None = None
    uid: int | None = None
    #: True: the server filed the message itself; False: it did not; None: not learned by this call.
    filed_by_server: bool | None = None
    #: A Sent folder was created for this copy.
    created_folder: bool = False
    #: The folder list as seen by this call (after the creation, if any), to refresh the caller's.
    folders: tuple = ()
    #: :func:`find_sent` only: the lower-cased To and Cc addresses of the copies found.
    recipients: frozenset = frozenset()


def file_sent_copy(settings, raw, message_id, server_files=None, wait=DEFAULT_WAIT, msg_time=None, login=None):
    """Make sure ``raw`` (the message as sent) is in the Sent folder exactly once.

    Raises :class:`~.errors.MailSyncError` subclasses when the server cannot be
    reached or refuses the APPEND; the caller records it and retries later.
    """
    if server_files:
        return SentCopyResult(SKIPPED, filed_by_server=True)
    kwargs = {"login": login} if login else {}
    with imap_session(settings, **kwargs) as client:
        return file_sent_copy_on(client, raw, message_id, server_files=server_files, wait=wait, msg_time=msg_time)


def file_sent_copy_on(client, raw, message_id, server_files=None, wait=DEFAULT_WAIT, msg_time=None):
    """:func:`file_sent_copy` on an open, logged-in session (no folder selected)."""
    if server_files:
        return SentCopyResult(SKIPPED, filed_by_server=True)
    listed = tuple(folders.list_folders(client))
    sent = folders.find_role(listed, folders.SENT)
    created = False
    if sent is None:
        sent, listed = _create_sent_folder(client, listed)
        created = True
    uidvalidity = _select(client, sent.name)
    if message_id and not created:
        deadline = time.monotonic() + (wait if server_files is None else 0)
        while True:
            uids = find_message(client, message_id)
            if uids:
                learned = True if server_files is None else None
                action = FILED_BY_SERVER if server_files is None else ALREADY_FILED
                return SentCopyResult(action, sent.name, uidvalidity, max(uids), filed_by_server=learned,
                                      folders=listed)
            if time.monotonic() >= deadline:
                break
            time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
            client.noop()
    uid = _append(client, sent.name, raw, message_id, msg_time)
    return SentCopyResult(APPENDED, sent.name, uidvalidity, uid,
                          filed_by_server=False if server_files is None else None,
                          created_folder=created, folders=listed)


def find_sent(settings, message_id, login=None):
    """Where ``message_id`` is in the Sent folder, or None: was a send whose outcome is unknown delivered?

    Only meaningful for a server that files what it sends: its copy in Sent
    proves that the SMTP server accepted the message.
    """
    kwargs = {"login": login} if login else {}
    with imap_session(settings, **kwargs) as client:
        listed = tuple(folders.list_folders(client))
        sent = folders.find_role(listed, folders.SENT)
        if sent is None or not message_id:
            return None
        uidvalidity = _select(client, sent.name)
        uids = find_message(client, message_id)
        if not uids:
            return None
        # One Message-ID may have gone out in several mails (Odoo sends one per group of recipients):
        # the caller checks that its own recipients were among those of a copy.
        recipients = set()
        for data in client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (TO CC)]"]).values():
            headers = email.message_from_bytes(data.get(b"BODY[HEADER.FIELDS (TO CC)]") or b"")
            values = [str(value) for name in ("To", "Cc") for value in headers.get_all(name, [])]
            recipients.update(address.lower() for _name, address in email.utils.getaddresses(values) if address)
        return SentCopyResult(ALREADY_FILED, sent.name, uidvalidity, max(uids), filed_by_server=True, folders=listed,
                              recipients=frozenset(recipients))


def find_message(client, message_id):
    """UIDs of the selected folder's messages whose Message-ID header is ``message_id``."""
    try:
        return sorted(client.search(["HEADER", "Message-ID", message_id]))
    except imap_exc.IMAPClientError as exc:
        if isinstance(exc, imap_exc.IMAPClientAbortError):
            raise
        raise errors.MessageError("The server refused to search the Sent folder: %s" % exc,
                                  reason="sent_search_failed") from exc


def _select(client, name):
    try:
        return int(client.select_folder(name, readonly=True)[b"UIDVALIDITY"])
    except imap_exc.IMAPClientAbortError:
        raise
    except imap_exc.IMAPClientError as exc:
        raise errors.FolderMissingError("The Sent folder %r cannot be opened: %s" % (name, exc),
                                        reason="sent_folder_missing") from exc


def sent_folder_name(client):
    """Where a new Sent folder goes: top level of the personal namespace ("INBOX.Sent" on cPanel, Courier)."""
    prefix = ""
    if client.has_capability("NAMESPACE"):
        try:
            personal = client.namespace().personal
        except imap_exc.IMAPClientAbortError:
            raise
        except imap_exc.IMAPClientError:
            personal = None
        if personal:
            prefix = personal[0][0] or ""
            prefix = prefix.decode("utf-8", "replace") if isinstance(prefix, bytes) else prefix
    return prefix + DEFAULT_SENT_NAME


def _create_sent_folder(client, listed):
    name = sent_folder_name(client)
    existing = {folder.name.lower(): folder for folder in listed}
    if name.lower() not in existing:
        try:
            client.create_folder(name)
        except imap_exc.IMAPClientAbortError:
            raise
        except imap_exc.IMAPClientError as exc:
            raise errors.FolderMissingError(
                "The mailbox has no Sent folder and the server refused to create one: %s" % exc,
                reason="sent_folder_create_failed") from exc
        try:
            client.subscribe_folder(name)
        except imap_exc.IMAPClientAbortError:
            raise
        except imap_exc.IMAPClientError:
            pass  # an unsubscribed folder still works; mail clients just hide it
    listed = tuple(folders.list_folders(client))
    by_name = {folder.name.lower(): folder for folder in listed}
    sent = by_name.get(name.lower())
    if sent is None or not sent.is_selectable:
        raise errors.FolderMissingError("The mailbox has no usable Sent folder, and %r cannot be used."
                                        % name, reason="sent_folder_missing")
    if sent.role != folders.SENT:
        sent = dataclasses.replace(sent, role=folders.SENT)
        listed = tuple(sent if folder.name == sent.name else folder for folder in listed)
    return sent, listed


def _append(client, folder, raw, message_id, msg_time):
    try:
        response = client.append(folder, raw, flags=[SEEN],
                                 msg_time=msg_time or datetime.datetime.now(datetime.timezone.utc))
    except imap_exc.IMAPClientAbortError:
        raise
    except imap_exc.IMAPClientError as exc:
        raise errors.MessageError("The server refused the copy in %r: %s" % (folder, exc),
                                  reason="sent_append_failed") from exc
    match = _APPENDUID_RE.search(response or b"")
    if match:
        return int(match.group(2))
    # Without UIDPLUS: find the copy we just added.
    if message_id:
        client.noop()
        uids = find_message(client, message_id)
        if uids:
            return max(uids)
    return None
