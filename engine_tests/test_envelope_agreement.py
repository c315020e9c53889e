"""The engine reads a header block as Dovecot does: ENVELOPE of every test message against parse_message.

Each corpus is APPENDed to a fresh Dovecot account; its ENVELOPE (Dovecot's
own reading of the header block) is compared with what ``parse_message``
made of the same bytes: Subject, From (address and display name), To, Cc,
Date and Message-ID.

Dovecot returns raw values; they are read here with the engine's own
decoders (``decode_header_value``, ``normalize_address``,
``normalize_message_id``), which ``test_parse.py`` tests. What this test
checks is that both read the same headers: the same lines of the header
block, the same bytes. So raw encoded words (Dovecot returns them as sent),
groups (Dovecot marks where a group starts and ends; we list its members)
and comments (both take one as the display name when there is no other)
make no difference here. The differences that remain are listed in
``DIFFERENCES``, each with why it is deliberate, and each is recognized
from the message itself, not from the values compared. Any other
difference fails the test. The counts are printed (``pytest -s``).
"""

import collections
import datetime
import email
import email.policy
import glob
import os
import re

import pytest

from onpipeline_mail.engine import parse
from onpipeline_mail.engine.connection import imap_session
from onpipeline_mail.engine.testing import mailgen

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FIELDS = ("subject", "from", "from name", "to", "cc", "date", "message-id")
ADDRESS_FIELDS = {"from": "from", "from name": "from", "to": "to", "cc": "cc"}
#: Dovecot's stand-ins in an address it cannot read (lower case: the addresses are normalized).
PLACEHOLDERS = ("missing_mailbox", "missing_domain", "syntax_error")
REPLACEMENT = "\ufffd"

#: The documented differences: kind -> why we differ from Dovecot on purpose.
DIFFERENCES = {
    "NUL byte": "Dovecot shows a NUL byte as U+FFFD (so a Date with one is unreadable to it); we drop NUL "
                "bytes, which PostgreSQL refuses, and read the rest.",
    "whitespace runs": "Dovecot's ENVELOPE turns every run of spaces and tabs in the Subject into one space; "
                       "we keep the Subject as sent (unfolded).",
    "broken address list": "the header is no valid RFC 5322 address list (email.policy.default finds defects): "
                           "Dovecot puts MISSING_MAILBOX/MISSING_DOMAIN/SYNTAX_ERROR in and stops at the error; "
                           "we keep every address email.utils.getaddresses can salvage, as written.",
    "Sender for From": "no readable From: we take the Sender (who sent it is what the CRM links); Dovecot's "
                       "ENVELOPE from is empty.",
    "repeated header": "the header occurs more than once: Dovecot's ENVELOPE takes the last, we the first "
                       "(as email.message.Message.get does).",
}


def load(path):
    with open(path, "rb") as handle:
        return handle.read()


def data_corpus():
    return [load(path) for path in sorted(glob.glob(os.path.join(DATA, "*.eml")))]


def generated_corpus():
    return [message.raw for message in mailgen.generate_messages(40, seed=11)]


def cpython_corpus():
    try:
        import test.test_email  # CPython's own tests: not every Python installs them
    except ImportError:
        pytest.skip("CPython's email test corpus (test.test_email) is not installed with this Python")
    paths = sorted(glob.glob(os.path.join(os.path.dirname(test.test_email.__file__), "data", "msg_*.txt")))
    if not paths:
        pytest.skip("test.test_email has no data/msg_*.txt files")
    return [load(path) for path in paths]


CORPORA = {
    "generated": generated_corpus,
    "broken headers": lambda: mailgen.broken_headers(generated_corpus() + data_corpus(), 150, seed=2026),
    "engine_tests/data": data_corpus,
    "mutated": lambda: mailgen.mutated(data_corpus(), 300, seed=2026),
    "cpython test_email": cpython_corpus,
}


# -- the two readings ---------------------------------------------------------

def _text(value, nul=None):
    if isinstance(value, bytes):
        return (value.replace(nul, b"\x00") if nul else value).decode("utf-8", "surrogateescape")
    return value or ""


def _addresses(envelope_addresses, nul=None):
    """Normalized addresses of an ENVELOPE address list; group markers skipped, repeats dropped."""
    out = []
    for address in envelope_addresses or ():
        if address.mailbox is None or address.host is None:  # group start/end (RFC 3501 7.4.2)
            continue
        normalized = parse.normalize_address("%s@%s" % (_text(address.mailbox, nul), _text(address.host, nul)))
        if normalized and normalized not in out:
            out.append(normalized)
    return tuple(out)


def _instant(date):
    if date is None:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.timezone.utc)
    return date.astimezone(datetime.timezone.utc)


def dovecot_reading(envelope, nul=None):
    """Dovecot's values read with the engine's decoders; ``nul``: bytes taken back to the NUL they stand for."""
    first_from = next((a for a in envelope.from_ or () if a.mailbox is not None and a.host is not None), None)
    return {
        "subject": parse.decode_header_value(_text(envelope.subject, nul)),
        "from": _addresses(envelope.from_, nul)[:1],
        "from name": parse.decode_header_value(_text(first_from.name, nul)) if first_from else "",
        "to": _addresses(envelope.to, nul),
        "cc": _addresses(envelope.cc, nul),
        "date": _instant(envelope.date),
        "message-id": parse.normalize_message_id(_text(envelope.message_id, nul)),
    }


def engine_reading(parsed):
    return {
        "subject": parsed.subject,
        "from": (parsed.from_address[1],) if parsed.from_address[1] else (),
        "from name": parsed.from_address[0],
        "to": tuple(address for _name, address in parsed.to),
        "cc": tuple(address for _name, address in parsed.cc),
        "date": _instant(parsed.date),
        "message-id": parsed.message_id,
    }


# -- documented differences ---------------------------------------------------

def raw_headers(raw):
    """{lower-case name: [raw values]} of the header block as parse_message reads it."""
    message = email.message_from_bytes(parse.repair_header_block(raw, []), policy=parse.POLICY)
    out = {}
    for name, value in message.raw_items():
        out.setdefault(name.lower(), []).append(value)
    return out


def _header_name(field):
    return ADDRESS_FIELDS.get(field, field)


def _is_address_list(value):
    try:
        return not email.policy.default.header_factory("to", value).defects
    except Exception:  # the RFC 5322 parser can fail on garbage: not a valid list either
        return False


def _whitespace_runs(value):
    return re.sub(r"[ \t]+", " ", value).strip()


def explain(field, ours, theirs, headers, envelope):
    """The kind of documented difference ``ours`` != ``theirs`` is, or None."""
    values = headers.get(_header_name(field), [])
    if any("\x00" in value for value in values) and (
            field == "date" or dovecot_reading(envelope, nul=REPLACEMENT.encode())[field] == ours):
        return "NUL byte"
    if field == "subject" and _whitespace_runs(ours) == _whitespace_runs(theirs):
        return "whitespace runs"
    if field in ("from", "from name") and not any(_is_address_list(value) for value in values) \
            and headers.get("sender"):
        return "Sender for From"
    if field in ADDRESS_FIELDS and any(not _is_address_list(value) for value in values):
        return "broken address list"
    if field in ("subject", "date", "message-id") and len(values) > 1:
        return "repeated header"
    return None


# -- the test -----------------------------------------------------------------

def append_all(settings, folder, messages):
    """APPEND every message; UID per message (None where Dovecot refused it)."""
    uids = []
    with imap_session(settings) as client:
        for raw in messages:
            response = client.append(folder, raw)
            match = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
            uids.append(int(match.group(1)) if match else None)
    return uids


def fetch_envelopes(settings, folder, uids):
    with imap_session(settings) as client:
        client.select_folder(folder, readonly=True)
        response = client.fetch([uid for uid in uids if uid], ["ENVELOPE"])
    return {uid: data[b"ENVELOPE"] for uid, data in response.items()}


def compare(messages, envelopes_by_uid, uids):
    """(counts of documented differences, unexplained differences)."""
    documented = collections.Counter()
    unexplained = []
    for index, (raw, uid) in enumerate(zip(messages, uids, strict=True)):
        ours = engine_reading(parse.parse_message(raw))
        envelope = envelopes_by_uid[uid]
        theirs = dovecot_reading(envelope)
        headers = None
        for field in FIELDS:
            if ours[field] == theirs[field]:
                continue
            headers = headers if headers is not None else raw_headers(raw)
            kind = explain(field, ours[field], theirs[field], headers, envelope)
            if kind:
                documented[kind] += 1
            else:
                unexplained.append("#%d %s: engine %r, Dovecot %r\n    %r" % (
                    index, field, ours[field], theirs[field], raw[:300]))
    return documented, unexplained


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_engine_reads_the_headers_dovecot_reads(corpus, mailbox):
    messages = CORPORA[corpus]()
    uids = append_all(mailbox, "INBOX", messages)
    assert all(uids), "Dovecot refused messages %s" % [i for i, uid in enumerate(uids) if not uid]
    documented, unexplained = compare(messages, fetch_envelopes(mailbox, "INBOX", uids), uids)
    print("\n%s: %d messages compared (%s), documented field differences: %s" % (
        corpus, len(messages), ", ".join(FIELDS),
        ", ".join("%s %d" % (kind, documented[kind]) for kind in DIFFERENCES if documented[kind]) or "none"))
    assert not unexplained, "%d unexplained differences:\n%s" % (len(unexplained), "\n".join(unexplained[:20]))
