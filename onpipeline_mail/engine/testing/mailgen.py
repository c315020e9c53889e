"""Realistic, deterministic mail for tests, demos and benchmarks.

``generate_messages(count, seed=...)`` builds the same messages byte for
byte on every run: plain text, HTML only, text+HTML alternatives, mixed with
attachments, HTML with inline images, threads (replies with In-Reply-To and
References, "Re:" subjects, sender and recipient swapped), non-ASCII names
and subjects, and dates spread over a period. ``append_messages`` puts them
in a folder over IMAP with their date as INTERNALDATE, as a delivered mail
would have.
"""

import dataclasses
import datetime
import email.policy
import email.utils
import hashlib
import random
import re
from email.message import EmailMessage

from ..connection import imap_session

POLICY = email.policy.SMTP
KINDS = ("text", "html", "alternative", "attachments", "related")

FIRST_NAMES = ("Alice", "Bruno", "Chloé", "Dmitri", "Elena", "François", "Grace", "Hiroshi", "Inès", "Jürgen",
               "Karin", "Léa", "Miguel", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Søren", "Zoë")
LAST_NAMES = ("Martin", "Müller", "García", "Rossi", "Nowak", "Dubois", "Smith", "Novák", "Ødegaard", "Silva")
COMPANIES = ("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "soylent", "stark")
TOPICS = ("quote", "invoice", "meeting", "proposal", "contract", "delivery", "renewal", "demo", "support ticket",
          "price list", "order", "budget", "kick-off", "follow-up", "devis", "Angebot", "réunion", "Lieferung")
WORDS = ("please", "find", "attached", "the", "updated", "version", "we", "discussed", "yesterday", "could", "you",
         "confirm", "by", "Friday", "thanks", "for", "your", "quick", "reply", "regarding", "our", "next", "steps",
         "best", "regards", "schedule", "call", "team", "review", "numbers", "client", "project", "timeline")
#: A 1x1 PNG, for inline images.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@dataclasses.dataclass(frozen=True)
class GeneratedMessage:
    raw: bytes = dataclasses.field(repr=False)
    date: datetime.datetime
    message_id: str
    subject: str
    sender: str
    recipients: tuple
    kind: str
    in_reply_to: str = ""
    references: tuple = ()


def _sentence(rng, words=12):
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraphs(rng, count):
    return ["%s %s" % (_sentence(rng, rng.randint(6, 14)), _sentence(rng, rng.randint(6, 14))) for _ in range(count)]


def make_contacts(count=12, seed=0, domains=None):
    """``count`` (name, address) pairs, deterministic."""
    rng = random.Random("contacts-%s" % seed)
    domains = domains or ["%s.example" % company for company in COMPANIES]
    contacts = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = re.sub(r"[^a-z]", "", (first + "." + last).lower().encode("ascii", "ignore").decode()) or "contact"
        contacts.append(("%s %s" % (first, last), "%s%d@%s" % (local, index, domains[index % len(domains)])))
    return contacts


def _fix_boundaries(message, tag):
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            part.set_boundary("=_onp_%s_%d" % (tag, index))


def _set_bodies(message, text, html, inline_images):
    if text is not None:
        message.set_content(text)
    if html is None:
        return
    if text is None:
        message.set_content(html, subtype="html")
    else:
        message.add_alternative(html, subtype="html")
    html_part = message if text is None else message.get_payload()[-1]
    for content_id, data in inline_images:
        html_part.add_related(data, "image", "png", cid="<%s>" % content_id)


def build_message(*, sender, to, subject, date, message_id, text=None, html=None, attachments=(), inline_images=(),
                  cc=(), in_reply_to="", references=(), extra_headers=()):
    """An RFC 5322 message as bytes. ``attachments``: (filename, maintype/subtype, bytes);
    ``inline_images``: (content_id, bytes) PNGs referenced from ``html`` as cid:."""
    message = EmailMessage(policy=POLICY)
    message["From"] = email.utils.formataddr(sender)
    message["To"] = ", ".join(email.utils.formataddr(address) for address in to)
    if cc:
        message["Cc"] = ", ".join(email.utils.formataddr(address) for address in cc)
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in extra_headers:
        message[name] = value
    _set_bodies(message, text, html, inline_images)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    _fix_boundaries(message, hashlib.sha1(message_id.encode()).hexdigest()[:12])
    return message.as_bytes()


def generate_messages(count, seed=0, start=None, end=None, mailbox=("Me", "me@example.test"), contacts=None,
                      kinds=KINDS, thread_ratio=0.35, attachment_bytes=6000):
    """``count`` messages dated from ``start`` to ``end`` (aware datetimes), oldest first.

    About half are received by ``mailbox`` and half sent by it; times fall
    between 10:00 and 14:00 UTC so a window boundary (by day) never depends
    on the server's time zone. Same arguments, same bytes.
    """
    rng = random.Random("messages-%s" % seed)
    end = end or datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.timezone.utc)
    start = start or end - datetime.timedelta(days=30)
    contacts = contacts or make_contacts(seed=seed)
    days = max((end.date() - start.date()).days, 0)
    dates = sorted(
        datetime.datetime.combine(start.date() + datetime.timedelta(days=rng.randint(0, days)),
                                  datetime.time(10, tzinfo=datetime.timezone.utc))
        + datetime.timedelta(seconds=rng.randint(0, 4 * 3600 - 1))
        for _ in range(count))
    messages = []
    for index, date in enumerate(dates):
        kind = kinds[index % len(kinds)]
        parent = rng.choice(messages) if messages and rng.random() < thread_ratio else None
        if parent:
            contact = next((c for c in contacts if c[1] in (parent.sender, *parent.recipients)), rng.choice(contacts))
            subject = parent.subject if parent.subject.startswith("Re: ") else "Re: " + parent.subject
            references = parent.references + (parent.message_id,)
            in_reply_to = parent.message_id
            incoming = parent.sender == mailbox[1]
        else:
            contact = rng.choice(contacts)
            subject = "%s %s #%d" % (rng.choice(TOPICS).capitalize(), rng.choice(COMPANIES).capitalize(),
                                     rng.randint(100, 999))
            references, in_reply_to = (), ""
            incoming = rng.random() < 0.5
        sender, recipient = (contact, mailbox) if incoming else (mailbox, contact)
        message_id = "<%s.%d.%d@%s>" % (hashlib.sha1(("%s-%s" % (seed, index)).encode()).hexdigest()[:16], seed,
                                        index, sender[1].split("@")[1])
        paragraphs = _paragraphs(rng, rng.randint(1, 4))
        text = "Hello %s,\n\n%s\n\n-- \n%s\n" % (recipient[0].split()[0], "\n\n".join(paragraphs), sender[0])
        html = "<html><body><p>Hello %s,</p>%s<p>-- <br>%s</p></body></html>" % (
            recipient[0].split()[0], "".join("<p>%s</p>" % p for p in paragraphs), sender[0])
        fields = dict(text=text, html=None, attachments=(), inline_images=())
        if kind == "html":
            fields.update(text=None, html=html)
        elif kind == "alternative":
            fields.update(html=html)
        elif kind == "attachments":
            payload = bytes(rng.getrandbits(8) for _ in range(attachment_bytes))
            fields.update(html=html, attachments=(("%s.pdf" % subject.replace(" ", "_").replace("#", ""),
                                                   "application/pdf", b"%PDF-1.4\n" + payload),))
        elif kind == "related":
            content_id = "logo.%d@%s" % (index, sender[1].split("@")[1])
            fields.update(html=html.replace("</body>", '<img src="cid:%s"></body>' % content_id),
                          inline_images=((content_id, PNG),))
        raw = build_message(sender=sender, to=(recipient,), subject=subject, date=date, message_id=message_id,
                            in_reply_to=in_reply_to, references=references, **fields)
        messages.append(GeneratedMessage(raw=raw, date=date, message_id=message_id, subject=subject,
                                         sender=sender[1], recipients=(recipient[1],), kind=kind,
                                         in_reply_to=in_reply_to, references=references))
    return messages


def big_message(size, date, message_id="<big@example.test>", subject="Large attachment"):
    """A text+HTML message with one attachment making it about ``size`` bytes."""
    rng = random.Random(size)
    payload = bytes(rng.getrandbits(8) for _ in range(max(size * 3 // 4, 1)))
    return build_message(sender=("Big Sender", "big@example.test"), to=(("Me", "me@example.test"),),
                         subject=subject, date=date, message_id=message_id, text="See the attached file.\n",
                         html="<p>See the attached file.</p>", attachments=(("data.bin", "application/octet-stream",
                                                                             payload),))


def append_messages(settings, folder, messages, flags=(), create=False):
    """APPEND ``messages`` (GeneratedMessage, bytes or (bytes, date)) to ``folder``; return their UIDs.

    The date becomes the INTERNALDATE, which SEARCH SINCE reads.
    """
    uids = []
    with imap_session(settings) as client:
        if create and not client.folder_exists(folder):
            client.create_folder(folder)
        for message in messages:
            if isinstance(message, GeneratedMessage):
                raw, date = message.raw, message.date
            elif isinstance(message, tuple):
                raw, date = message
            else:
                raw, date = message, None
            response = client.append(folder, raw, flags=flags, msg_time=date)
            match = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
            uids.append(int(match.group(1)) if match else None)
    return uids


#: Pieces a mutation inserts: MIME syntax that breaks parsers.
MUTATION_PIECES = (b"=?", b"?=", b"\r\n", b"--", b"=?utf-8?q?", b"=?x?b?", b"<", b">", b"\x00", b"\xff", b"\r\n--a\r\n",
                   b'Content-Type: multipart/mixed; boundary="a"\r\n', b'charset="rot13"', b"filename*=")


def mutated(messages, count, seed=2026, pieces=MUTATION_PIECES):
    """``count`` raw messages drawn from ``messages``, each with 1-20 random bytes changed, ``pieces``
    inserted or runs cut: deterministic fuzzing of the parser."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        raw = bytearray(rng.choice(messages))
        for _ in range(rng.randint(1, 20)):
            position = rng.randrange(len(raw) + 1)
            choice = rng.random()
            if choice < 0.4 and raw:
                raw[min(position, len(raw) - 1)] = rng.randrange(256)
            elif choice < 0.7:
                raw[position:position] = rng.choice(pieces)
            else:
                del raw[position:position + rng.randint(1, 50)]
        out.append(bytes(raw))
    return out


#: Lines that are neither a header, a continuation nor empty, as spam and broken mailers put them in a
#: header block; and lines of the same block that parsers read in their own ways.
BROKEN_HEADER_LINES = (b"garbage without a colon", b"X-Mailer version 2.1", b"=?utf-8?q?caf=C3=A9?=", b"   ",
                       b"\t", b": empty name", b"\xff\xfe\xc3\xa9 8-bit garbage", b"Caf\xc3\xa9: 8-bit name",
                       b"From sender@spam.example Mon Feb  2 10:00:00 2026", b"--", b"<html>", b"Name With Spaces: x")


def broken_headers(messages, count, seed=2026, lines=BROKEN_HEADER_LINES):
    """``count`` raw messages drawn from ``messages`` with 1-3 of ``lines`` put in their header block: first,
    between two headers, inside a folded header, or last; some with ``Subject :`` (space before the colon)
    or a bare CR. Deterministic."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        raw = rng.choice(messages)
        newline = b"\r\n" if b"\r\n" in raw else b"\n"
        head, separator, body = raw.partition(newline + newline)
        block = head.split(newline)
        for _ in range(rng.randint(1, 3)):
            where = rng.random()
            folded = [index for index, line in enumerate(block) if line[:1] in (b" ", b"\t")]
            if where < 0.2:
                position = 0
            elif where < 0.4 and folded:
                position = rng.choice(folded)
            elif where < 0.5:
                position = len(block)
            else:
                position = rng.randrange(len(block) + 1)
            block.insert(position, rng.choice(lines))
        choice = rng.random()
        if choice < 0.15:
            block = [re.sub(rb"^Subject:", b"Subject :", line) for line in block]
        elif choice < 0.25:
            index = rng.randrange(len(block))
            block[index] = block[index] + b"\r" + rng.choice(lines)
        out.append(newline.join(block) + separator + body)
    return out
