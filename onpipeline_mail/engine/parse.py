"""Parsing fetched messages into plain data, whatever the sender got wrong.

``parse_message(raw)`` never raises on bad input: broken MIME, unknown or
wrong charsets, broken RFC 2047 encoded words, raw 8-bit headers, missing
Date or Message-ID all come out as best-effort text plus a line in
``defects``. Every string it returns is valid Unicode without NUL
characters (PostgreSQL refuses them).

The MIME parser runs with :class:`Compat32DefaultHeaders`: the speed of
``email.policy.compat32``, the header readings of ``email.policy.default``.
Its header block ends at the first line that is not a header (``name:``),
a continuation or an mbox ``From `` line; Dovecot's ENVELOPE and mail
clients read on to the empty line. :func:`repair_header_block` makes the
parser read what they read: such a line is skipped (with its continuation
lines) when headers follow it, and ``Subject :`` (obsolete RFC 5322 syntax)
becomes ``Subject:``; both are recorded in ``defects``.

HTML is decoded to ``str`` but not sanitized: Odoo's ``html_sanitize``
does that where the HTML is stored.

Charsets: a part's declared charset is used when its bytes decode with it;
bytes that are valid UTF-8 win over a Latin-1/ASCII label (the commonest
mislabel); otherwise UTF-8, then Windows-1252, then Latin-1 (which cannot
fail). Unknown names (``x-unknown``) and non-text codecs (``rot13``,
``zlib``) count as undeclared.

Addresses are normalized by :func:`normalize_address`: lower case, display
names and comments dropped, domains in Unicode (``xn--`` labels decoded,
NFC), so ``J@Bücher.DE`` and ``j@xn--bcher-kva.de`` are the same address.
"""

import base64
import binascii
import codecs
import dataclasses
import datetime
import email
import email.policy
import email.utils
import functools
import hashlib
import mimetypes
import re
import unicodedata

#: The RFC 5322 header parser whose readings ``POLICY`` reproduces.
HEADER_POLICY = email.policy.default
#: Attachments above this total are dropped (the message is kept, flagged).
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
#: A References header keeps its first id and the last ones up to this count.
MAX_REFERENCES = 100
MAX_DEFECTS = 50
MAX_DEPTH = 40

ENCODED_WORD_RE = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
MESSAGE_ID_RE = re.compile(r"<([^<>]*)>")
META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
SURROGATE_RE = re.compile("[\ud800-\udfff]")
CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
#: MIME header values simple enough to read without the RFC 5322 parser:
#: printable ASCII tokens (no ``*``, ``'`` or ``%``, which RFC 2231 uses).
TOKEN = r"[A-Za-z0-9!#$&+.^_`|~{}-]+"
PLAIN_TOKEN_RE = re.compile(r"[ \t]*%s[ \t]*" % TOKEN)
PLAIN_CONTENT_TYPE_RE = re.compile(r"[ \t]*%s[ \t]*/[ \t]*%s[ \t]*" % (TOKEN, TOKEN))
#: One ``name=value`` (token or quoted string without escapes) or an empty
#: entry, up to its ``;`` or the end.
PLAIN_PARAMETER_RE = re.compile(
    r'[ \t]*(?:(%s)[ \t]*=[ \t]*(?:(%s)|"([ !#-\[\]-~]+)")[ \t]*)?(?:;|\Z)' % (TOKEN, TOKEN))
#: Longer header values are not cached (hostile mail can have huge ones).
MAX_CACHED_HEADER = 1000

#: Header block lines, up to the first that ``email.feedparser`` takes for the end of the headers
#: (``headerRE``: ``From ``, ``name:``, continuation), except ``From :``, which it skips and
#: Dovecot reads as From.
HEADER_LINES_RE = re.compile(rb"(?:(?:From (?![ \t]*:)|[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n?|\n))*")
#: One line as the parser splits them (universal newlines), the last one possibly unterminated.
LINE_RE = re.compile(rb"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")
#: A header line (``name:``); group 2: obsolete whitespace before the colon (RFC 5322 4.5.3).
HEADER_NAME_RE = re.compile(rb"([\x21-\x39\x3b-\x7e]+)([ \t]*):")
#: Lines the parser reads, apart from headers: continuations, mbox ``From `` lines, ``:value``.
PARSER_LINE_RE = re.compile(rb"[ \t]|From (?![ \t]*:)|:")

#: Labels that browsers and mail clients read as Windows-1252, and whose
#: bytes are taken as UTF-8 when they are valid UTF-8.
LATIN_CODECS = ("ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15")
CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode-2-0-utf-7": "utf-7",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "x-sjis": "shift_jis",
    "x-euc-jp": "euc_jp",
}
NOT_CHARSETS = ("idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem")

#: Default names of attachments sent without one.
DEFAULT_NAMES = {"text/calendar": "invite.ics", "application/ms-tnef": "winmail.dat",
                 "message/delivery-status": "delivery-status.txt", "message/disposition-notification": "receipt.txt",
                 "text/rfc822-headers": "headers.txt"}
EXTENSIONS = {"text/plain": ".txt", "text/html": ".html"}
#: Headers that identify a message wherever a copy of it lands; transport
#: headers (Received, Delivered-To, DKIM...) differ per copy and are left out.
HASHED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to")


@dataclasses.dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes = dataclasses.field(repr=False)
    #: Without angle brackets; "" when the part has no Content-ID.
    content_id: str = ""
    #: Shown inside the HTML body (cid: image) rather than listed.
    is_inline: bool = False

    @property
    def size(self):
        return len(self.data)


@dataclasses.dataclass(frozen=True)
class ParsedMessage:
    """A message reduced to what the CRM stores; see :func:`parse_message`."""

    #: Normalized, with angle brackets; "" when the message has none.
    message_id: str
    #: The key a mailbox stores the message under: ``message_id``, or
    #: ``"hash:" + content_hash`` when there is no Message-ID.
    message_id_key: str
    #: SHA-256 (hex) of the stable headers, the bodies and the attachments.
    content_hash: str
    in_reply_to: str
    references: tuple
    subject: str
    #: (display name, normalized address); ("", "") when there is no sender.
    from_address: tuple
    to: tuple
    cc: tuple
    reply_to: tuple
    #: Aware datetime from the Date header; None when missing or unreadable.
    date: datetime.datetime | None
    #: Decoded, NOT sanitized; None when the message has no HTML part.
    body_html: str | None
    body_text: str | None
    attachments: tuple
    #: Size of the whole message on the server (RFC822.SIZE), else of ``raw``.
    size: int
    defects: tuple = ()
    is_truncated: bool = False
    truncation_reason: str = ""
    #: ``body_html`` through the caller's HTML filter (its sanitizer), when a parse
    #: worker given one parsed the message (see :class:`.parse_worker.ParseWorker`);
    #: None otherwise, and the caller filters ``body_html`` itself.
    body_html_filtered: str | None = None


# -- caches -----------------------------------------------------------------

def _cache_by_header_value(function):
    """``function(..., text)`` memoized, for header texts up to ``MAX_CACHED_HEADER`` characters.

    For pure functions of a header value that comes back message after
    message: the mailbox owner's address, the same contacts, the same
    ``text/plain; charset=utf-8``. Results must be immutable.
    """
    cached = functools.lru_cache(maxsize=1024)(function)

    @functools.wraps(function)
    def call(*args):
        text = args[-1]
        if isinstance(text, str) and len(text) <= MAX_CACHED_HEADER:
            return cached(*args)
        return function(*args)

    call.cache_info = cached.cache_info
    call.cache_clear = cached.cache_clear
    return call


# -- text helpers -----------------------------------------------------------

def clean_text(text):
    """Valid Unicode without NUL: lone surrogates become U+FFFD."""
    if text is None:
        return None
    return SURROGATE_RE.sub("\ufffd", text.replace("\x00", ""))


def lookup_charset(name):
    """The Python codec name for a MIME charset label, or None if unknown or not a text encoding."""
    if not name or not isinstance(name, str):
        return None
    label = name.strip().strip("\"'").lower().split("*", 1)[0]
    label = CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_CHARSETS:
        return None
    return info.name


def _valid_utf8_with_non_ascii(data):
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_bytes(data, charset=None, defects=None, where="text"):
    """Decode ``data`` with the declared ``charset`` and the fallbacks described in the module docstring."""
    defects = defects if defects is not None else []
    codec = lookup_charset(charset)
    if charset and not codec:
        defects.append("%s: unknown charset %r, guessed" % (where, str(charset)[:40]))
    text = _decode_declared(data, codec, charset, defects, where) if codec else None
    if text is not None:
        return text
    for fallback in ("utf-8", "cp1252"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        if codec:
            defects.append("%s: declared %s but decoded as %s" % (where, charset, fallback))
        return text
    defects.append("%s: undecodable bytes, read as latin-1" % where)
    return data.decode("latin-1")


def _decode_declared(data, codec, charset, defects, where):
    """``data`` decoded with its declared codec, or None to fall back to guessing."""
    if codec in LATIN_CODECS and _valid_utf8_with_non_ascii(data):
        if codec != "ascii":
            defects.append("%s: declared %s but is UTF-8" % (where, charset))
        return data.decode("utf-8")
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        pass
    if codec not in ("utf-8", *LATIN_CODECS):
        # A CJK or other charset with a few bad bytes: keep the charset.
        defects.append("%s: invalid %s bytes replaced" % (where, codec))
        return data.decode(codec, "replace")
    if codec == "utf-8":
        decoded = data.decode("utf-8", "replace")
        if any(char > "\x7f" and char != "\ufffd" for char in decoded):
            # Real UTF-8 with a few broken sequences, not another charset.
            defects.append("%s: invalid UTF-8 bytes replaced" % where)
            return decoded
    return None


def _unfold(value):
    return FOLD_RE.sub("", value or "").replace("\r", "").replace("\n", "")


def _restore_8bit(text, defects=None, where="header"):
    """Header text from the parser carries raw 8-bit bytes as surrogates: decode them properly."""
    if text.isascii() or not SURROGATE_RE.search(text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    return decode_bytes(raw, None, defects, where)


def _decode_word(charset, encoding, payload, defects, where):
    if encoding in "bB":
        compact = re.sub(r"\s+", "", payload)
        compact = compact.rstrip("=")
        if len(compact) % 4 == 1:
            compact = compact[:-1]
        compact += "=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact.encode("ascii", "replace"))
        except (binascii.Error, ValueError):
            defects.append("%s: broken base64 encoded word" % where)
            return None
    data = payload.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda match: bytes([int(match.group(1), 16)]), data)


def decode_header_value(value, defects=None, where="header"):
    """Decode a raw header value: unfold, RFC 2047 encoded words (also broken ones), raw 8-bit bytes."""
    if value is None:
        return ""
    defects = defects if defects is not None else []
    text = _unfold(str(value))
    # Pieces: ("text", str) or ("word", charset, bytes).
    pieces, position = [], 0
    for match in ENCODED_WORD_RE.finditer(text):
        between = text[position:match.start()]
        previous_is_word = pieces and pieces[-1][0] == "word"
        if between and not (previous_is_word and not between.strip()):
            pieces.append(("text", between))
        decoded = _decode_word(match.group(1), match.group(2), match.group(3), defects, where)
        if decoded is None:
            pieces.append(("text", match.group(0)))
        elif previous_is_word and not between.strip() and pieces[-1][1].lower() == match.group(1).lower():
            # Adjacent words of one charset are joined before decoding: senders
            # split multi-byte characters across them.
            pieces[-1] = ("word", pieces[-1][1], pieces[-1][2] + decoded)
        else:
            pieces.append(("word", match.group(1), decoded))
        position = match.end()
    if position < len(text):
        pieces.append(("text", text[position:]))
    out = []
    for piece in pieces:
        if piece[0] == "text":
            out.append(_restore_8bit(piece[1], defects, where))
        else:
            out.append(decode_bytes(piece[2], piece[1], defects, where))
    return clean_text("".join(out)).strip()


# -- identifiers ------------------------------------------------------------

def _idna_to_unicode(domain):
    labels = []
    for label in domain.lower().split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return unicodedata.normalize("NFC", ".".join(labels)).lower()


@_cache_by_header_value
def header_addresses(text):
    """The normalized address of each entry of one address header value ("Name <a@b>, c@d"), in order.

    A tuple, repeats and "" (an entry without an address) kept. Cached: the same
    To and From values come back email after email.
    """
    return tuple(normalize_address(address) for _name, address in email.utils.getaddresses([text]))


def normalize_address(value):
    """The bare address of ``value`` ("Name <a@B.example> (comment)" -> "a@b.example"); "" if none.

    Lower case (local part too: providers treat it case-insensitively in
    practice), domain in Unicode: IDNA ``xn--`` labels decoded and NFC.
    """
    if not value:
        return ""
    text = _restore_8bit(_unfold(str(value)))
    if "<" in text or "(" in text or " " in text.strip():
        try:
            pairs = email.utils.getaddresses([text])
        except (ValueError, TypeError, IndexError):
            pairs = []
        address = next((addr for _name, addr in pairs if addr), "")
        if not address:
            match = re.search(r"<([^<>]*)>", text)
            address = match.group(1) if match else ""
    else:
        address = text
    address = address.strip().strip("<>").strip().rstrip(".")
    if not address:
        return ""
    local, at, domain = address.rpartition("@")
    if not at:
        return clean_text(address.lower())
    return clean_text("%s@%s" % (local.lower(), _idna_to_unicode(domain.strip().rstrip("."))))


def normalize_message_id(value):
    """``"<local@domain>"`` from a Message-ID-like value; "" when there is none.

    Folding, comments and spaces are dropped, the domain part is lower-cased
    (the local part is case-sensitive), angle brackets are added when a
    sender forgot them.
    """
    if not value:
        return ""
    text = _restore_8bit(_unfold(str(value)))
    match = MESSAGE_ID_RE.search(text)
    if match:
        inner = re.sub(r"\s+", "", match.group(1))
    else:
        tokens = [token for token in re.split(r"[\s,]+", re.sub(r"\([^)]*\)", " ", text)) if token]
        inner = next((token for token in tokens if "@" in token), tokens[0] if tokens else "")
        inner = inner.strip("<>")
    if not inner:
        return ""
    local, at, domain = inner.rpartition("@")
    if at:
        inner = "%s@%s" % (local, domain.lower())
    return clean_text("<%s>" % inner)


def parse_references(value):
    """Message ids of a References/In-Reply-To value, normalized, in order, without repeats, capped."""
    if not value:
        return ()
    text = _restore_8bit(_unfold(str(value)))
    found = MESSAGE_ID_RE.findall(text)
    if not found:
        found = [token for token in re.split(r"[\s,]+", text) if "@" in token]
    ids = []
    for item in found:
        normalized = normalize_message_id("<%s>" % item.strip("<>"))
        if normalized and normalized not in ids:
            ids.append(normalized)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1):]
    return tuple(ids)


def parse_addresses(values, defects=None):
    """(display name, normalized address) pairs of address header values; groups and empties dropped."""
    out = []
    for value in values:
        pairs, value_defects = _read_address_list(_unfold(value))
        if defects is not None:
            defects.extend(value_defects)
        for pair in pairs:
            if pair not in out:
                out.append(pair)
    return tuple(out)


@_cache_by_header_value
def _read_address_list(text):
    """``((name, address), ...), (defect, ...)`` of one unfolded address header value."""
    defects = []
    try:
        pairs = email.utils.getaddresses([text])
    except (ValueError, TypeError, IndexError):
        defects.append("unreadable address list %r" % text[:80])
        pairs = []
    out = []
    for name, address in pairs:
        address = normalize_address(address) if address else ""
        if not address:
            continue
        pair = (decode_header_value(name, defects, "address"), address)
        if pair not in out:
            out.append(pair)
    return tuple(out), tuple(defects)


def parse_date(value, defects):
    if not value:
        defects.append("missing Date header")
        return None
    text = decode_header_value(value, defects, "Date")
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("unreadable Date header %r" % text[:60])
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.timezone.utc)
    return date


# -- MIME header values -----------------------------------------------------

def _plain_unstructured(text):
    """``text`` unchanged: without encoded words the RFC 5322 parser returns it as it is."""
    return None if "=?" in text else text


def _plain_token(text):
    return text if PLAIN_TOKEN_RE.fullmatch(text) else None


def _plain_parameterized(head_re, text):
    """``text`` as the RFC 5322 parser writes a ``value; name=value`` header, or None if not plain.

    The parser keeps the text before the first ``;`` and rewrites the
    parameters as ``; name="value"``, dropping empty entries. Repeated names,
    empty values, escapes and encoded words are left to the parser.
    """
    head = head_re.match(text)
    if not head:
        return None
    end = head.end()
    if end == len(text):
        return text
    if text[end] != ";":
        return None
    parameters = {}
    position = end + 1
    while position < len(text):
        match = PLAIN_PARAMETER_RE.match(text, position)
        if not match or match.end() == position:
            return None
        name, token, quoted = match.groups()
        if name:
            value = token or quoted
            if name in parameters or "=?" in value:
                return None
            parameters[name] = '%s="%s"' % (name, value)
        position = match.end()
    return text[:end + 1] + (" " + "; ".join(parameters.values()) if parameters else "")


#: Cheap readings of the headers the MIME parser and :func:`_walk` ask for.
PLAIN_READERS = {
    "content-type": functools.partial(_plain_parameterized, PLAIN_CONTENT_TYPE_RE),
    "content-disposition": functools.partial(_plain_parameterized, PLAIN_TOKEN_RE),
    "content-transfer-encoding": _plain_token,
    "content-id": _plain_unstructured,
    "subject": _plain_unstructured,
}


@_cache_by_header_value
def read_header(name, value):
    """The text ``email.policy.default`` makes of header ``name``'s raw ``value``, as cheaply as possible.

    Plain ASCII MIME headers (nearly all of them) are read by
    ``PLAIN_READERS``, which give the same text as the RFC 5322 parser
    (``engine_tests/test_parse_headers.py`` compares them); the rest goes to
    that parser. The lookups of ``email.message.Message`` use nothing of
    that parser's header object but its text. Cached: the MIME parser alone
    reads a part's Content-Type four times.
    """
    reader = PLAIN_READERS.get(name.lower())
    if reader and isinstance(value, str) and value.isascii():
        text = reader(value.replace("\r", "").replace("\n", ""))
        if text is not None:
            return text
    return str(HEADER_POLICY.header_fetch_parse(name, value))


class Compat32DefaultHeaders(email.policy.Compat32):
    """MIME parsing as ``email.policy.compat32``, header values as ``email.policy.default``.

    Under ``default`` each header lookup (``get``, ``get_content_type``,
    ``get_param``, ``get_filename``..., also the MIME parser's own) runs the
    full RFC 5322 header parser: over half of the parse time. ``compat32``
    returns the raw text: fast, but raw 8-bit bytes become U+FFFD and
    comments, encoded words and RFC 2231 values are not resolved. Returning
    what ``default`` returns (see :func:`read_header`) keeps the MIME tree
    and every lookup exactly as under ``default``, at compat32's speed.
    """

    def header_fetch_parse(self, name, value):
        return read_header(name, value)


POLICY = Compat32DefaultHeaders()


# -- Long base64 bodies, given to the MIME parser as one line -----------------
#
# Python's MIME parser reads line by line, checking each against the open
# boundaries: a 70 KB attachment is 1,000 lines, and such lines took over half
# of the parse time. A line of the base64 alphabet alone is body text wherever
# it stands (no boundary starts without "--", no header without ":", no
# continuation without a space), so a run of them can go through the parser as
# one marker line of the same alphabet and be put back into the parsed payloads:
# the tree, its payloads, preambles, epilogues and defects are the ones the
# whole text gives. The run's last line stays in place, so that the line before a
# boundary, whose line end the parser removes, is never a marker.

#: Runs shorter than this are left to the parser: a marker saves little on them.
BASE64_RUN_MIN_LINES = 16
_BASE64_RUN = re.compile(rb"^(?:[A-Za-z0-9+/=]+\r?\n){%d,}(?=[A-Za-z0-9+/=]+\r?\n)" % BASE64_RUN_MIN_LINES,
                         re.MULTILINE)
_RUN_MARKER = "OnpipelineBase64Run"
_RUN_MARKER_LINE = re.compile(_RUN_MARKER + r"\d+Z\n")


def condense_base64_runs(raw):
    """``(bytes, runs)``: ``raw`` with each long run of base64 lines as one marker line; {marker line: run}.

    Raw bytes that already hold the marker are returned as they are.
    """
    if _RUN_MARKER.encode() in raw:
        return raw, {}
    runs = {}

    def mark(match):
        line = "%s%dZ\n" % (_RUN_MARKER, len(runs))
        runs[line] = match.group().decode("ascii")
        return line.encode("ascii")

    return _BASE64_RUN.sub(mark, raw), runs


def restore_base64_runs(message, runs):
    """Put the runs of :func:`condense_base64_runs` back into the parsed ``message`` (in place)."""
    if not runs:
        return
    for part in message.walk():
        for attribute in ("_payload", "preamble", "epilogue"):
            value = getattr(part, attribute, None)
            if isinstance(value, str) and _RUN_MARKER in value:
                setattr(part, attribute, _RUN_MARKER_LINE.sub(lambda match: runs[match.group()], value))


# -- MIME tree --------------------------------------------------------------

class _Collector:
    """Attachments and defects of the whole message; bodies go to a :class:`_Bodies`."""

    def __init__(self, max_attachment_bytes, keep_attachments):
        self.attachments = []
        self.attachment_bytes = 0
        self.max_attachment_bytes = max_attachment_bytes
        self.keep_attachments = keep_attachments
        self.dropped = 0
        self.dropped_bytes = 0
        self.defects = []

    def add(self, attachment):
        if self.keep_attachments and self.attachment_bytes + attachment.size > self.max_attachment_bytes:
            # Over the limit: the message keeps its text, none of its attachments.
            self.dropped += len(self.attachments)
            self.dropped_bytes += self.attachment_bytes
            self.attachments.clear()
            self.keep_attachments = False
        if not self.keep_attachments:
            self.dropped += 1
            self.dropped_bytes += attachment.size
            return
        self.attachment_bytes += attachment.size
        self.attachments.append(attachment)


class _Bodies:
    def __init__(self):
        self.texts = []
        self.htmls = []


def _safe(function, default=None):
    try:
        return function()
    except Exception:  # malformed values can break any accessor of the email package: fall back
        return default


def _content_type(part):
    content_type = (_safe(part.get_content_type) or "text/plain").lower()
    return content_type if CONTENT_TYPE_RE.match(content_type) else "application/octet-stream"


def _disposition(part):
    return (_safe(part.get_content_disposition) or "").lower()


def _filename(part, defects):
    name = _safe(part.get_filename)
    if not name:
        name = _safe(lambda: part.get_param("name"))
    if not name:
        return ""
    if isinstance(name, tuple):  # an RFC 2231 value left undecoded
        name = _safe(lambda: email.utils.collapse_rfc2231_value(name), "") or ""
    name = decode_header_value(str(name), defects, "filename")
    name = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/")).rsplit("/", 1)[-1].strip()
    return name[:255]


def _payload_bytes(part):
    data = _safe(lambda: part.get_payload(decode=True))
    if isinstance(data, bytes):
        return data
    raw = _safe(part.get_payload)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _decode_text_part(part, collector, content_type):
    data = _payload_bytes(part)
    charset = _safe(part.get_content_charset)
    if not charset and content_type == "text/html":
        match = META_CHARSET_RE.search(data[:4096])
        if match:
            charset = match.group(1).decode("ascii")
    text = decode_bytes(data, charset, collector.defects, "%s body" % content_type)
    return clean_text(text.replace("\r\n", "\n").replace("\r", "\n"))


def _message_bytes(part, collector):
    payload = _safe(part.get_payload)
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            data = _safe(lambda sub=sub: sub.as_bytes(policy=email.policy.SMTP))
            if data is None:
                data = _safe(lambda sub=sub: sub.as_bytes(policy=email.policy.compat32))
            if data is None:
                collector.defects.append("attached message could not be re-serialized")
                data = b""
            chunks.append(data)
        return b"\r\n".join(chunks)
    return _payload_bytes(part)


def _add_attachment(part, collector, content_type, in_related):
    filename = _filename(part, collector.defects)
    if content_type.startswith("message/"):
        data = _message_bytes(part, collector)
        if not filename and content_type in ("message/rfc822", "message/global"):
            inner = _safe(lambda: part.get_payload(0))
            subject = decode_header_value(_safe(lambda: inner.get("subject", "")) or "") if inner is not None else ""
            filename = (re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", subject)[:100] or "message") + ".eml"
    else:
        data = _payload_bytes(part)
    if not filename:
        index = len(collector.attachments) + collector.dropped + 1
        extension = EXTENSIONS.get(content_type) or _safe(lambda: mimetypes.guess_extension(content_type)) or ".bin"
        filename = DEFAULT_NAMES.get(content_type) or "attachment-%d%s" % (index, extension)
    content_id = clean_text(_unfold(str(_safe(lambda: part.get("content-id", "")) or ""))).strip().strip("<>")
    is_inline = _disposition(part) == "inline" and bool(content_id) or (in_related and bool(content_id))
    collector.add(Attachment(filename=filename, content_type=content_type, data=data, content_id=content_id,
                             is_inline=is_inline))


def _walk(part, collector, bodies, depth=0, in_related=False):
    if depth > MAX_DEPTH:
        collector.defects.append("MIME nesting deeper than %d levels ignored" % MAX_DEPTH)
        return
    content_type = _content_type(part)
    if content_type.startswith("message/") and content_type != "message/partial":
        _add_attachment(part, collector, content_type, in_related)
        return
    if _safe(part.is_multipart, False):
        subparts = _safe(part.get_payload, []) or []
        subparts = subparts if isinstance(subparts, list) else []
        if content_type != "multipart/alternative":
            for sub in subparts:
                _walk(sub, collector, bodies, depth + 1, content_type == "multipart/related")
            return
        branches = []
        for sub in subparts:
            branches.append(_Bodies())
            _walk(sub, collector, branches[-1], depth + 1, in_related)
        # Alternatives come in increasing preference: the last HTML, the first plain text.
        bodies.texts.extend(next((branch.texts for branch in branches if branch.texts), []))
        bodies.htmls.extend(next((branch.htmls for branch in reversed(branches) if branch.htmls), []))
        return
    if content_type.startswith("multipart/"):
        # A multipart without a usable boundary: its raw text is all there is.
        bodies.texts.append(_decode_text_part(part, collector, "text/plain"))
        return
    if content_type in ("text/plain", "text/html") and _disposition(part) != "attachment" \
            and not _filename(part, []):
        text = _decode_text_part(part, collector, content_type)
        (bodies.texts if content_type == "text/plain" else bodies.htmls).append(text)
        return
    _add_attachment(part, collector, content_type, in_related)


# -- the message ------------------------------------------------------------

def _normalized_for_hash(text):
    if not text:
        return ""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


def content_hash(headers, body_text, body_html, attachments):
    """SHA-256 hex of stable headers (see ``HASHED_HEADERS``), bodies and attachments."""
    digest = hashlib.sha256()
    for name in HASHED_HEADERS:
        digest.update(("%s:%s\n" % (name, headers.get(name, ""))).encode("utf-8", "replace"))
    digest.update(b"text:" + _normalized_for_hash(body_text).encode("utf-8", "replace") + b"\n")
    digest.update(b"html:" + _normalized_for_hash(body_html).encode("utf-8", "replace") + b"\n")
    for attachment in attachments:
        digest.update(("attachment:%s:%s:" % (attachment.filename, attachment.content_type)).encode("utf-8", "replace"))
        digest.update(hashlib.sha256(attachment.data).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()


def _message_defects(message):
    out = []
    for part in _safe(lambda: list(message.walk()), [message]) or [message]:
        for defect in getattr(part, "defects", ()) or ():
            text = str(defect)
            out.append(type(defect).__name__ + (": %s" % text if text and text != type(defect).__name__ else ""))
    return out


def repair_header_block(raw, defects):
    """``raw`` with its header block readable by the MIME parser to its end, as Dovecot reads it.

    ``email.feedparser`` ends the headers at the first line that is neither
    a header nor a continuation (spam, broken mailers): Subject, From and
    Message-ID after it are lost. Dovecot and mail clients read on to the
    empty line, a line without a colon being a header of no use. Such a
    line is dropped here, with its continuation lines (Dovecot folds them
    into it), when a header follows it before the empty line (or the end);
    otherwise it is left as the first line of the body, as the parser takes
    it. ``Name :`` becomes ``Name:``. Returns ``raw`` itself when nothing is
    to be done (nearly always: one regex match over the header block).
    """
    end = HEADER_LINES_RE.match(raw).end()
    if end == len(raw) or raw[end] in b"\r\n":
        return raw
    lines = []
    for match in LINE_RE.finditer(raw, end):
        line = match.group()
        if line[:1] in (b"\r", b"\n"):
            break
        lines.append(line)
    headers = [index for index, line in enumerate(lines) if HEADER_NAME_RE.match(line)]
    out = [raw[:end]]
    position = end
    index = 0
    while index < len(lines):
        line = lines[index]
        name = HEADER_NAME_RE.match(line)
        if name and name.group(2):
            defects.append("space before the colon of header '%s' removed" % _show_line(name.group(1)))
            out.append(name.group(1) + line[name.end() - 1:])
        elif name or PARSER_LINE_RE.match(line):
            out.append(line)
        elif headers and headers[-1] > index:
            skipped = 1
            while index + skipped < len(lines) and lines[index + skipped][:1] in (b" ", b"\t"):
                skipped += 1
            defects.append("line in the header block that is no header skipped%s: '%s'" % (
                " (with %d continuation line(s))" % (skipped - 1) if skipped > 1 else "", _show_line(line)))
            position += sum(map(len, lines[index:index + skipped]))
            index += skipped
            continue
        else:
            break  # no header after it: the body starts here, as the parser reads it
        position += len(line)
        index += 1
    repaired = b"".join(out) + raw[position:]
    return raw if repaired == raw else repaired


def _show_line(line):
    """The start of a raw line, non-ASCII and control bytes escaped."""
    return repr(line.rstrip(b"\r\n")[:60])[2:-1]


def human_size(size):
    return "%.1f MB" % (size / 1024 / 1024) if size >= 1024 * 1024 else "%d KB" % max(1, size // 1024)


def parse_message(raw, max_attachment_bytes=MAX_ATTACHMENT_BYTES, truncation_reason="", size=None):
    """Parse RFC 5322 bytes into a :class:`ParsedMessage`; never raises on bad input.

    ``truncation_reason``: ``raw`` is only the beginning of the message (an
    over-size message fetched partially): attachments are dropped and the
    message is flagged with this reason. ``size`` is the real size on the
    server when known. Attachments totalling more than
    ``max_attachment_bytes`` are dropped the same way.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw or b"")
    size = size if size is not None else len(raw)
    defects = []
    raw = repair_header_block(raw, defects)
    try:
        condensed, runs = condense_base64_runs(raw)
        message = email.message_from_bytes(condensed, policy=POLICY)
        restore_base64_runs(message, runs)
    except Exception as exc:  # the parser is meant not to raise; make sure
        defects.append("MIME parser failed (%s): headers only" % exc)
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        message = email.message_from_bytes(head + b"\r\n\r\n", policy=POLICY)

    raw_headers = {}
    for name, value in _safe(lambda: list(message.raw_items()), []) or []:
        raw_headers.setdefault(str(name).lower(), []).append(str(value))

    def first(name):
        values = raw_headers.get(name)
        return values[0] if values else None

    subject = decode_header_value(first("subject"), defects, "Subject")
    from_pairs = parse_addresses(raw_headers.get("from", []), defects) \
        or parse_addresses(raw_headers.get("sender", []), defects)
    if not from_pairs:
        defects.append("missing From header")
    message_id = normalize_message_id(first("message-id"))
    if not message_id:
        defects.append("missing Message-ID header")
    in_reply_to = parse_references(first("in-reply-to"))
    references = parse_references(" ".join(raw_headers.get("references", [])))
    date = parse_date(first("date"), defects)

    collector = _Collector(max_attachment_bytes, keep_attachments=not truncation_reason)
    bodies = _Bodies()
    _walk(message, collector, bodies)
    defects = _message_defects(message) + defects + collector.defects

    body_text = "\n".join(bodies.texts) if bodies.texts else None
    body_html = "\n".join(bodies.htmls) if bodies.htmls else None
    attachments = tuple(collector.attachments)
    is_truncated = bool(truncation_reason)
    reason = truncation_reason or ""
    if not truncation_reason and collector.dropped:
        is_truncated = True
        reason = "Attachments not imported: %d attachment(s), %s in total, over the %s limit." % (
            collector.dropped, human_size(collector.dropped_bytes), human_size(max_attachment_bytes))

    to = parse_addresses(raw_headers.get("to", []), defects)
    cc = parse_addresses(raw_headers.get("cc", []), defects)
    hashed = {
        "from": ",".join(address for _name, address in from_pairs),
        "to": ",".join(sorted(address for _name, address in to)),
        "cc": ",".join(sorted(address for _name, address in cc)),
        "subject": subject,
        "date": date.astimezone(datetime.timezone.utc).isoformat() if date else _unfold(first("date") or ""),
        "message-id": message_id,
        "in-reply-to": in_reply_to[0] if in_reply_to else "",
    }
    digest = content_hash(hashed, body_text, body_html, attachments)
    unique_defects = []
    for defect in defects:
        defect = clean_text(defect)
        if defect not in unique_defects:
            unique_defects.append(defect)
    return ParsedMessage(
        message_id=message_id,
        message_id_key=message_id or "hash:" + digest,
        content_hash=digest,
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=references,
        subject=subject,
        from_address=from_pairs[0] if from_pairs else ("", ""),
        to=to,
        cc=cc,
        reply_to=parse_addresses(raw_headers.get("reply-to", []), defects),
        date=date,
        body_html=body_html,
        body_text=body_text,
        attachments=attachments,
        size=size,
        defects=tuple(unique_defects[:MAX_DEFECTS]),
        is_truncated=is_truncated,
        truncation_reason=reason,
    )
