"""Fetching messages in bounded UID sets, without changing any flag.

imapclient sends whatever UID set it is given in one command; this module
keeps every command bounded (``SIZE_CHUNK`` UIDs for sizes, one planned
batch for bodies) and reads with ``BODY.PEEK[]``, never ``RFC822`` (which
sets ``\\Seen``).

Messages larger than ``max_message_bytes`` are fetched partially: only their
first ``partial_bytes`` (``BODY.PEEK[]<0.N>``), which holds the headers and,
in practice, the text parts that come before the attachments. The parser is
then told the body is cut, keeps the headers and text and drops the
attachments (:func:`.parse.parse_message` ``truncation_reason``). One
command, no BODYSTRUCTURE walk, and the size of what travels is bounded.

Entries the server sends unasked (flag updates of other messages) are
dropped; a requested UID that comes back without a body is reported as
missing, never dropped silently, so the caller can record and retry it.
"""

import dataclasses
import datetime

from imapclient import exceptions as imap_exc

#: UIDs per RFC822.SIZE request and per UID SEARCH range check.
SIZE_CHUNK = 500
#: Messages over this size are fetched partially and imported without attachments.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: How much of an over-size message is fetched: headers and the leading text parts.
PARTIAL_BYTES = 512 * 1024

BODY_ITEMS = ("BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE", "FLAGS")
BODY_KEY = b"BODY[]"
PARTIAL_KEY = b"BODY[]<0>"


@dataclasses.dataclass(frozen=True)
class RawMessage:
    """One message as fetched: ``body`` is the RFC 5322 source (a prefix when ``is_partial``)."""

    uid: int
    size: int
    internaldate: datetime.datetime | None
    flags: tuple
    body: bytes | None = dataclasses.field(default=None, repr=False)
    #: The message was over the size limit and ``body`` holds only its first bytes.
    is_partial: bool = False

    def without_body(self):
        """The same metadata without the body, to keep after parsing."""
        return dataclasses.replace(self, body=None)


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What one batch fetch returned.

    ``messages`` in the order asked; ``missing``: UIDs the server answered
    without a body (expunged meanwhile, or not delivered); ``errors``: UID ->
    text for UIDs whose FETCH the server refused.
    """

    messages: tuple
    missing: tuple = ()
    errors: tuple = ()


def chunks(uids, size):
    uids = list(uids)
    for start in range(0, len(uids), size):
        yield uids[start:start + size]


def fetch_sizes(client, uids, chunk=SIZE_CHUNK):
    """RFC822.SIZE of each UID that still exists, as {uid: size}; one command per ``chunk`` UIDs."""
    sizes = {}
    for part in chunks(uids, chunk):
        response = client.fetch(part, ["RFC822.SIZE"])
        for uid, data in response.items():
            size = data.get(b"RFC822.SIZE")
            if size is not None:
                sizes[uid] = int(size)
    return sizes


def plan_batches(uids, sizes, batch_size, max_batch_bytes, max_message_bytes=MAX_MESSAGE_BYTES,
                 partial_bytes=PARTIAL_BYTES):
    """Cut ``uids`` (in the order to process) into batches bounded by count and by bytes.

    Yields ``(uids, gone)`` pairs covering consecutive stretches of ``uids``:
    ``gone`` are the UIDs of the stretch without a size (expunged since the
    search), reported with the batch they fall in so that a cursor saved
    after the batch never passes over a UID still to fetch. An over-size
    message counts for the ``partial_bytes`` actually fetched; a message
    bigger than ``max_batch_bytes`` on its own makes its own batch.
    """
    batch, gone, batch_bytes = [], [], 0
    for uid in uids:
        if uid not in sizes:
            gone.append(uid)
            continue
        size = min(sizes[uid], partial_bytes) if sizes[uid] > max_message_bytes else sizes[uid]
        if batch and (len(batch) >= batch_size or batch_bytes + size > max_batch_bytes):
            yield tuple(batch), tuple(gone)
            batch, gone, batch_bytes = [], [], 0
        batch.append(uid)
        batch_bytes += size
    if batch or gone:
        yield tuple(batch), tuple(gone)


def _raw_message(uid, data, partial):
    body = data.get(PARTIAL_KEY if partial else BODY_KEY)
    if body is None and partial:
        body = data.get(BODY_KEY)
    if body is None:
        return None
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    flags = tuple(flag.decode("utf-8", "replace") if isinstance(flag, bytes) else str(flag)
                  for flag in data.get(b"FLAGS", ()))
    size = data.get(b"RFC822.SIZE")
    return RawMessage(uid=uid, size=int(size) if size is not None else len(body),
                      internaldate=data.get(b"INTERNALDATE"), flags=flags, body=bytes(body), is_partial=partial)


def _fetch_group(client, uids, partial, partial_bytes):
    if not uids:
        return {}
    items = list(BODY_ITEMS)
    if partial:
        items[0] = "BODY.PEEK[]<0.%d>" % partial_bytes
    return client.fetch(list(uids), items)


def fetch_messages(client, uids, sizes=None, max_message_bytes=MAX_MESSAGE_BYTES, partial_bytes=PARTIAL_BYTES):
    """Fetch one batch of UIDs from the selected folder; never changes flags.

    ``sizes`` (from :func:`fetch_sizes`) decides which UIDs are over the size
    limit and fetched partially. One FETCH for the full messages and one for
    the over-size ones; if the server refuses a FETCH (NO), each of its UIDs
    is fetched alone so one bad message does not block the others.
    """
    sizes = sizes or {}
    uids = list(uids)
    partial = {uid for uid in uids if sizes.get(uid, 0) > max_message_bytes}
    found, errors = {}, {}
    for group, is_partial in (([uid for uid in uids if uid not in partial], False),
                              ([uid for uid in uids if uid in partial], True)):
        response = _fetch_or_split(client, group, is_partial, partial_bytes, errors)
        for uid in group:
            message = _raw_message(uid, response[uid], is_partial) if uid in response else None
            if message is not None:
                found[uid] = message
    messages = tuple(found[uid] for uid in uids if uid in found)
    missing = tuple(uid for uid in uids if uid not in found and uid not in errors)
    return FetchResult(messages=messages, missing=missing, errors=tuple(sorted(errors.items())))


def _fetch_or_split(client, uids, partial, partial_bytes, errors):
    """One FETCH for ``uids``; if the server refuses it, one per UID, refusals into ``errors``."""
    try:
        return _fetch_group(client, uids, partial, partial_bytes)
    except imap_exc.IMAPClientAbortError:
        raise
    except imap_exc.IMAPClientError as exc:
        if len(uids) == 1:
            errors[uids[0]] = "FETCH refused: %s" % exc
            return {}
    response = {}
    for uid in uids:
        response.update(_fetch_or_split(client, [uid], partial, partial_bytes, errors))
    return response


def existing_uids(client, uids, chunk=SIZE_CHUNK):
    """Which of ``uids`` still exist in the selected folder (UID SEARCH, one command per chunk)."""
    present = set()
    for part in chunks(sorted(uids), chunk):
        present.update(client.search(["UID", ",".join(str(uid) for uid in part)]))
    return present


def search_uids(client, low, high=None, since=None, before=None):
    """UIDs from ``low`` to ``high`` (None = ``*``) dated on/after ``since`` and before ``before``, ascending.

    ``N:*`` always matches the last message even below N: such UIDs are dropped.
    """
    if high is not None and high < low:
        return []
    criteria = ["UID", "%d:%s" % (low, "*" if high is None else high)]
    if since:
        criteria += ["SINCE", since]
    if before:
        criteria += ["BEFORE", before]
    found = client.search(criteria)
    return sorted(uid for uid in found if uid >= low and (high is None or uid <= high))
