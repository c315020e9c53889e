"""The benchmark's mailbox: a realistic, deterministic mix of mail over the last six months.

~200 contacts across ~40 company domains (the same list is created in Odoo
as companies, contacts and open deals), about half received (INBOX) and
half sent (Sent), a third of them replies in threads, the five kinds of
``mailgen`` (text, HTML, text+HTML, attachments, inline images), attachment
sizes drawn from a log-normal law so that the mailbox averages a few tens of
KB per message, like a sales mailbox. Bodies are built with
``mailgen.build_message``; attachment bytes come from ``random.randbytes``
(``mailgen.generate_messages`` draws them byte by byte: too slow for 50,000).

Same arguments, same bytes: every run measures the same mailbox.
"""

import datetime
import hashlib
import math
import random

from onpipeline_mail.engine.testing import mailgen

COMPANY_WORDS = ("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "soylent", "stark", "wayne",
                 "wonka", "tyrell", "cyberdyne", "oscorp", "gringotts", "monarch", "duff", "nakatomi", "massive",
                 "aperture", "blackmesa")
COMPANY_SUFFIXES = ("", "-group")
DOMAIN_COUNT = 40
CONTACT_COUNT = 200
WINDOW_DAYS = 175  # inside a "6 months" sync window whatever the day of the month
#: Attachment sizes: log-normal around this median (bytes), capped.
ATTACHMENT_MEDIAN = 70_000
ATTACHMENT_SIGMA = 1.0
ATTACHMENT_MAX = 3_000_000


def company_domains(count=DOMAIN_COUNT):
    domains = []
    for suffix in COMPANY_SUFFIXES:
        for word in COMPANY_WORDS:
            domains.append("%s%s.example" % (word, suffix))
    return domains[:count]


def contacts(count=CONTACT_COUNT):
    """(name, address) pairs, five per company domain."""
    return mailgen.make_contacts(count, seed="bench", domains=company_domains())


def generate(count, mailbox_address, seed=0, end=None, days=WINDOW_DAYS, thread_ratio=0.35):
    """Yield ``(folder, raw_bytes, date)`` for ``count`` messages, oldest first.

    Received mail goes to INBOX, mail sent by ``mailbox_address`` to Sent.
    """
    rng = random.Random("bench-%s" % seed)
    end = end or datetime.datetime.now(datetime.timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    start = end - datetime.timedelta(days=days)
    people = contacts()
    me = ("Sales Rep", mailbox_address)
    offsets = sorted(rng.randint(0, days * 86400 - 1) for _ in range(count))
    recent = []  # (message_id, subject, contact, references, incoming) of recent mail, for threads
    for index, offset in enumerate(offsets):
        date = start + datetime.timedelta(seconds=offset)
        if date > end:
            date = end
        kind = mailgen.KINDS[index % len(mailgen.KINDS)]
        if recent and rng.random() < thread_ratio:
            parent_id, parent_subject, contact, parent_refs, parent_incoming = rng.choice(recent)
            subject = parent_subject if parent_subject.startswith("Re: ") else "Re: " + parent_subject
            references = (parent_refs + (parent_id,))[-20:]
            in_reply_to = parent_id
            incoming = not parent_incoming
        else:
            contact = rng.choice(people)
            subject = "%s %s #%d" % (rng.choice(mailgen.TOPICS).capitalize(),
                                     contact[1].split("@")[1].split(".")[0].capitalize(), rng.randint(100, 9999))
            references, in_reply_to = (), ""
            incoming = rng.random() < 0.5
        sender, recipient = (contact, me) if incoming else (me, contact)
        cc = ()
        if rng.random() < 0.2:
            domain = contact[1].split("@")[1]
            cc = tuple(c for c in people if c[1].endswith("@" + domain) and c != contact)[:2]
        message_id = "<%s.%d@%s>" % (hashlib.sha1(("%s-%s" % (seed, index)).encode()).hexdigest()[:20], index,
                                     sender[1].split("@")[1])
        paragraphs = mailgen._paragraphs(rng, rng.randint(2, 8))
        text = "Hello %s,\n\n%s\n\n-- \n%s\n" % (recipient[0].split()[0], "\n\n".join(paragraphs), sender[0])
        html = "<html><body><p>Hello %s,</p>%s<p>-- <br>%s</p></body></html>" % (
            recipient[0].split()[0], "".join("<p>%s</p>" % p for p in paragraphs), sender[0])
        fields = dict(text=text, html=None, attachments=(), inline_images=())
        if kind == "html":
            fields.update(text=None, html=html)
        elif kind == "alternative":
            fields.update(html=html)
        elif kind == "attachments":
            size = min(int(rng.lognormvariate(math.log(ATTACHMENT_MEDIAN), ATTACHMENT_SIGMA)), ATTACHMENT_MAX)
            name = "%s.pdf" % subject.replace(" ", "_").replace("#", "").replace(":", "")
            fields.update(html=html, attachments=((name, "application/pdf", b"%PDF-1.4\n" + rng.randbytes(size)),))
        elif kind == "related":
            content_id = "logo.%d@%s" % (index, sender[1].split("@")[1])
            fields.update(html=html.replace("</body>", '<img src="cid:%s"></body>' % content_id),
                          inline_images=((content_id, mailgen.PNG),))
        raw = mailgen.build_message(sender=sender, to=(recipient,), cc=cc, subject=subject, date=date,
                                    message_id=message_id, in_reply_to=in_reply_to, references=references, **fields)
        recent.append((message_id, subject, contact, references, incoming))
        if len(recent) > 300:
            recent.pop(0)
        yield ("INBOX" if incoming else "Sent"), raw, date


def fill(client, messages, chunk=100, flags=()):
    """APPEND ``messages`` ((folder, raw, date)...) with MULTIAPPEND, ``chunk`` per command.

    Returns {folder: (count, bytes)}.
    """
    totals = {}
    pending = {}

    def flush(folder):
        batch = pending.pop(folder, [])
        if batch:
            client.multiappend(folder, [{"msg": raw, "flags": flags, "date": date} for raw, date in batch])

    for folder, raw, date in messages:
        count, size = totals.get(folder, (0, 0))
        totals[folder] = (count + 1, size + len(raw))
        pending.setdefault(folder, []).append((raw, date))
        if len(pending[folder]) >= chunk:
            flush(folder)
    for folder in list(pending):
        flush(folder)
    return totals
