"""Turning a composed message into one sent from a mailbox: sender, Message-ID and threading headers."""

import email.utils

from .parse import normalize_message_id

#: Headers set here; whatever the composer put in them is replaced.
OWN_HEADERS = ("From", "Sender", "Reply-To", "Message-ID", "In-Reply-To", "References", "Return-Path", "Bcc")


def prefixed_subject(prefix, subject):
    """``subject`` with ``prefix`` ("Re:", "Fwd:") in front, once: "Re: Re: x" is not how clients answer."""
    subject = subject or ""
    if subject.lower().startswith(prefix.lower()):
        return subject
    return "%s %s" % (prefix, subject) if subject else prefix


def domain_of(address):
    return email.utils.parseaddr(address or "")[1].rpartition("@")[2].lower()


def make_message_id(address):
    """A new Message-ID on the domain of the mailbox's address."""
    return email.utils.make_msgid("onpipeline", domain=domain_of(address) or None)


def is_own_message_id(message_id, address):
    return bool(message_id) and (message_id.strip().rstrip(">").lower().endswith("@" + domain_of(address)))


def recipients_of(message):
    fields = [str(value) for header in ("To", "Cc", "Bcc") for value in message.get_all(header, [])]
    seen, result = set(), []
    for _name, address in email.utils.getaddresses(fields):
        if address and address.lower() not in seen:
            seen.add(address.lower())
            result.append(address)
    return result


def readdress(message, from_name, from_addr, message_id, in_reply_to="", references=()):
    """Set From, Message-ID, In-Reply-To and References on ``message`` (in place).

    Returns the envelope recipients (To, Cc and Bcc); the Bcc header itself is
    removed so that the recipients do not see it. ``references`` are ids,
    oldest first; ``in_reply_to`` ends them when it is not there yet.
    """
    recipients = recipients_of(message)
    for header in OWN_HEADERS:
        del message[header]
    message["From"] = email.utils.formataddr((from_name, from_addr)) if from_name else from_addr
    message["Message-ID"] = message_id
    chain = []
    for ref in list(references) + ([in_reply_to] if in_reply_to else []):
        ref = normalize_message_id(ref)
        if ref and ref not in chain and ref != normalize_message_id(message_id):
            chain.append(ref)
    if in_reply_to:
        message["In-Reply-To"] = normalize_message_id(in_reply_to) or in_reply_to
    if chain:
        message["References"] = " ".join(chain)
    return recipients
