"""parse.POLICY parses MIME as compat32 does but must read every header as email.policy.default does."""

import datetime
import email
import email.policy
import os
import random

import pytest

from onpipeline_mail.engine import parse

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CORPUS = sorted(name for name in os.listdir(DATA) if name.endswith(".eml"))

#: What parse.py and the MIME parser ask a part.
LOOKUPS = {
    "content type": lambda part: part.get_content_type(),
    "disposition": lambda part: part.get_content_disposition(),
    "filename": lambda part: part.get_filename(),
    "name": lambda part: part.get_param("name"),
    "charset": lambda part: part.get_content_charset(),
    "boundary": lambda part: part.get_boundary(),
    "content-id": lambda part: str(part.get("content-id", "")),
    "transfer encoding": lambda part: str(part.get("content-transfer-encoding", "")),
    "payload": lambda part: None if part.is_multipart() else part.get_payload(decode=True),
    "defects": lambda part: [type(defect).__name__ for defect in part.defects],
}
TOKEN_CHARS = "ABCxyz0189!#$&+.^_`|~{}-"
QUOTED_CHARS = " !#()<>@,;:/[]?=.'*%{}~abcXYZ09"
#: Characters that make a header value anything but plain.
JUNK = list("\t;=\"/\\()<>@,:?*'%\r\n\x0b") + ["=?utf-8?q?x?=", "é", "\udcc3", "; ", '="']


def load(name):
    with open(os.path.join(DATA, name), "rb") as handle:
        return handle.read()


def readings(raw, policy):
    try:
        message = email.message_from_bytes(raw, policy=policy)
    except Exception as exc:  # parse_message falls back then; both policies must fail alike
        return type(exc).__name__
    out = []
    for part in message.walk():
        row = {}
        for name, lookup in LOOKUPS.items():
            try:
                row[name] = lookup(part)
            except Exception as exc:  # the same lookups must fail under both policies
                row[name] = type(exc).__name__
        out.append(row)
    return out


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_reads_as_under_the_default_policy(name):
    raw = load(name)
    assert readings(raw, parse.POLICY) == readings(raw, email.policy.default)


def _whitespace(rng):
    return rng.choice(["", "", " ", "\t", "  ", "\r\n ", "\r\n\t"])


def _token(rng):
    return "".join(rng.choice(TOKEN_CHARS) for _ in range(rng.randint(1, 6)))


def _parameterized_value(rng, head):
    value = _whitespace(rng) + head + _whitespace(rng)
    for _ in range(rng.randint(0, 4)):
        value += ";" + _whitespace(rng)
        if rng.random() < 0.85:
            quoted = '"%s"' % "".join(rng.choice(QUOTED_CHARS) for _ in range(rng.randint(1, 8)))
            value += "%s%s=%s%s%s" % (_token(rng), _whitespace(rng), _whitespace(rng),
                                      rng.choice([_token(rng), quoted]), _whitespace(rng))
    return value + rng.choice(["", "", ";", "; "])


def plain_headers(rng, count):
    """``count`` (name, value) pairs of the shapes PLAIN_READERS are meant to read."""
    for _ in range(count):
        name = rng.choice(["Content-Type", "content-disposition", "Content-Transfer-Encoding", "Content-ID",
                           "Subject"])
        if name == "Content-Type":
            value = _parameterized_value(rng, "%s%s/%s%s" % (_token(rng), _whitespace(rng), _whitespace(rng),
                                                             _token(rng)))
        elif name == "content-disposition":
            value = _parameterized_value(rng, _token(rng))
        elif name == "Content-Transfer-Encoding":
            value = _whitespace(rng) + _token(rng) + _whitespace(rng)
        elif name == "Content-ID":
            value = _whitespace(rng) + "<%s@%s>" % (_token(rng), _token(rng)) + _whitespace(rng)
        else:
            value = _whitespace(rng).join(rng.choice(["Re:", "Fwd:", _token(rng), "(x)", '"q"']) for _ in range(5))
        yield name, value


def plain_reading(name, value):
    return parse.PLAIN_READERS[name.lower()](value.replace("\r", "").replace("\n", ""))


def test_plain_readings_are_what_the_rfc5322_parser_returns():
    rng = random.Random(2026)
    read = 0
    for name, value in plain_headers(rng, 20000):
        reading = plain_reading(name, value)
        if reading is not None:
            read += 1
            assert reading == str(email.policy.default.header_fetch_parse(name, value)), (name, value)
    # Repeated names and tabs inside quotes are left to the parser; the rest is read.
    assert read > 17000


def test_values_that_are_not_plain_are_left_to_the_rfc5322_parser():
    rng = random.Random(7)
    for name, value in plain_headers(rng, 20000):
        characters = list(value)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(characters) + 1)
            if rng.random() < 0.5 and characters:
                del characters[min(position, len(characters) - 1)]
            else:
                characters.insert(position, rng.choice(JUNK))
        value = "".join(characters)
        expected = email.policy.default.header_fetch_parse(name, value)
        assert str(parse.read_header(name, value)) == str(expected), (name, value)


def test_raw_8bit_parameters_and_comments_read_as_before():
    # compat32 alone reads "Müller" as "M\ufffd\ufffdller", keeps '"utf-8" (HTML)' as the charset and,
    # with a comment after the boundary, finds no parts at all.
    parsed = parse.parse_message(load("raw_8bit_attachment_params.eml"))
    assert parsed.body_html == '<p>Grüße, <img src="cid:logo-ü@acme.example"></p>'
    assert [(a.filename, a.content_type, a.content_id, a.is_inline) for a in parsed.attachments] == [
        ("Logo Müller.png", "image/png", "logo-ü@acme.example", True),
        ("Angebot_Müller.pdf", "application/pdf", "", False),
        ("Notiz für Sie.txt", "text/plain", "", False),
    ]
    assert parsed.defects == ()


def test_cached_address_lists_report_their_defects_on_every_parse():
    raw = b"From: =?x-unknown?q?Caf=E9?= <owner@cafe.example>\r\nSubject: cached\r\n\r\nBody.\r\n"
    first, second = parse.parse_message(raw), parse.parse_message(raw)
    assert first.from_address == ("Café", "owner@cafe.example")
    assert "address: unknown charset 'x-unknown', guessed" in first.defects
    assert second.defects == first.defects


def test_long_header_values_are_not_cached():
    before = parse.read_header.cache_info().currsize
    value = "text/plain; name=%s" % ("x" * parse.MAX_CACHED_HEADER)
    assert parse.read_header("Content-Type", value) == 'text/plain; name="%s"' % ("x" * parse.MAX_CACHED_HEADER)
    assert parse.read_header.cache_info().currsize == before


# -- a header block with lines that are no headers ----------------------------------------------------------
# email.feedparser ends the headers at such a line; Dovecot (test_envelope_agreement.py) and mail clients read
# on to the empty line. parse_message reads what they read and records the skipped line as a defect.

HEADERS = [b"From: Alice <alice@acme.example>", b"To: me@example.test", b"Subject: Quote",
           b"Date: Tue, 24 Feb 2026 10:00:00 +0100", b"Message-ID: <quote.1@acme.example>"]


def with_line(line, position, newline=b"\r\n"):
    lines = HEADERS[:position] + [line] + HEADERS[position:]
    return newline.join(lines) + newline + newline + b"Body.\r\n"


def assert_headers_read(parsed):
    assert parsed.subject == "Quote"
    assert parsed.from_address == ("Alice", "alice@acme.example")
    assert parsed.to == (("", "me@example.test"),)
    assert parsed.message_id == "<quote.1@acme.example>"
    assert parsed.message_id_key == "<quote.1@acme.example>"
    assert parsed.date == datetime.datetime(2026, 2, 24, 9, tzinfo=datetime.timezone.utc)
    assert parsed.body_text == "Body.\n"
    assert "MissingHeaderBodySeparatorDefect" not in parsed.defects


@pytest.mark.parametrize("line, position", [
    (b"garbage without a colon", 0),  # first line
    (b"garbage without a colon", 1),  # between From and Subject
    (b"garbage without a colon", 4),  # before the last header
    (b"\xff\xfe\xc3\xa9 8-bit garbage", 2),
    (b"Caf\xc3\xa9: a name with 8-bit bytes", 1),
    (b"Name With Spaces: x", 1),
    (b"\x00\x01", 1),
    (b"<html>", 3),
], ids=["first", "between-from-and-subject", "before-last", "8-bit", "8-bit-name", "spaces-in-name", "control",
        "markup"])
def test_a_line_that_is_no_header_is_skipped_and_the_headers_after_it_read(line, position):
    parsed = parse.parse_message(with_line(line, position))
    assert_headers_read(parsed)
    shown = repr(line)[2:-1]
    assert "line in the header block that is no header skipped: '%s'" % shown in parsed.defects


def test_a_line_that_is_no_header_is_skipped_with_lf_line_ends_too():
    parsed = parse.parse_message(with_line(b"garbage", 1, newline=b"\n").replace(b"Body.\r\n", b"Body.\n"))
    assert_headers_read(parsed)


def test_inside_a_folded_header_the_line_ends_the_header_and_takes_its_continuations():
    # Dovecot reads "Quote, part two" as the Subject; " part three" continues the line without a colon.
    raw = with_line(b"garbage\r\n part three\r\n\tpart four", 3).replace(
        b"Subject: Quote", b"Subject: Quote,\r\n part two")
    parsed = parse.parse_message(raw)
    assert parsed.subject == "Quote, part two"
    assert parsed.message_id == "<quote.1@acme.example>" and parsed.date is not None
    assert "line in the header block that is no header skipped (with 2 continuation line(s)): 'garbage'" \
        in parsed.defects


@pytest.mark.parametrize("line", [b"   ", b"\t", b" \t "], ids=["spaces", "tab", "mixed"])
def test_a_line_of_only_spaces_or_tabs_continues_the_header_before_it(line):
    # As Dovecot and the MIME parser read it (obsolete folding): no defect, the next headers are read.
    parsed = parse.parse_message(with_line(line, 1))
    assert_headers_read(parsed)
    assert not any("skipped" in defect for defect in parsed.defects)


def test_a_line_starting_with_a_colon_is_skipped():
    parsed = parse.parse_message(with_line(b": no name", 2))
    assert_headers_read(parsed)
    assert "InvalidHeaderDefect: Missing header name." in parsed.defects


@pytest.mark.parametrize("name", [b"Subject :", b"Subject\t:", b"Subject  \t :"])
def test_space_before_the_colon_is_obsolete_syntax_still_read(name):
    parsed = parse.parse_message(with_line(b"X-Spam: yes", 0).replace(b"Subject:", name))
    assert_headers_read(parsed)
    assert "space before the colon of header 'Subject' removed" in parsed.defects


def test_from_with_space_before_the_colon_is_the_sender_not_an_mbox_line():
    parsed = parse.parse_message(with_line(b"X-Spam: yes", 0).replace(b"From:", b"From :"))
    assert_headers_read(parsed)


def test_a_bare_cr_ends_the_line_as_for_dovecot():
    # "Quote\rgarbage": Dovecot and the parser both break the line at the CR; the rest is a line without colon.
    parsed = parse.parse_message(with_line(b"X-Spam: yes", 0).replace(b"Subject: Quote", b"Subject: Quote\rgarbage"))
    assert_headers_read(parsed)


def test_headers_without_an_empty_line_or_body_are_read_to_the_end():
    parsed = parse.parse_message(b"\r\n".join(HEADERS[:1] + [b"garbage"] + HEADERS[1:]) + b"\r\n")
    assert (parsed.subject, parsed.message_id, parsed.body_text) == ("Quote", "<quote.1@acme.example>", "")


def test_with_no_header_after_it_the_line_starts_the_body_as_before():
    # A body sent without the empty line: nothing to read after it, so nothing is dropped.
    raw = b"\r\n".join(HEADERS) + b"\r\nHello Alice,\r\nhere is the quote.\r\n\r\nRegards\r\n"
    parsed = parse.parse_message(raw)
    assert parsed.subject == "Quote" and parsed.message_id == "<quote.1@acme.example>"
    assert parsed.body_text == "Hello Alice,\nhere is the quote.\n\nRegards\n"
    assert "MissingHeaderBodySeparatorDefect" in parsed.defects


def test_the_body_and_mbox_from_lines_are_left_alone():
    body = b"Body.\r\nFrom the desk of Alice\r\nno colon here\r\nKey: value\r\n\r\nmore\r\n"
    raw = b"From alice@acme.example Tue Feb 24 09:00:00 2026\r\n" + with_line(b"X-Spam: yes", 0).replace(
        b"Body.\r\n", body)
    assert parse.repair_header_block(raw, []) is raw
    parsed = parse.parse_message(raw)
    assert parsed.subject == "Quote" and parsed.body_text == body.decode().replace("\r\n", "\n")
    assert parsed.defects == ()


def test_a_readable_header_block_is_not_copied():
    for name in ("gmail_reply.eml", "huge_header.eml", "headers_only.eml", "bare_lf.eml", "nul_bytes.eml"):
        raw = load(name)
        defects = []
        assert parse.repair_header_block(raw, defects) is raw and defects == [], name


def test_spam_sample_reads_as_dovecot_reads_it():
    parsed = parse.parse_message(load("header_line_without_colon.eml"))
    assert parsed.subject == "Angebot für Sie"
    assert parsed.from_address == ("Promo Müller", "deals@promo.example")
    assert parsed.message_id == "<offer.77@promo.example>"
    assert parsed.date == datetime.datetime(2026, 2, 24, 8, 11, 58, tzinfo=datetime.timezone.utc)
    assert parsed.body_text == "Nur heute: 20 % Rabatt.\nFrom the team at promo.example"
    assert parsed.body_html == "<p>Nur heute: 20 % Rabatt.</p>"
    assert parsed.defects == (
        "line in the header block that is no header skipped: 'This is a multi-part message in MIME format.'",
        "line in the header block that is no header skipped (with 1 continuation line(s)): 'X-Mailer Bulk Sender 4.2'",
        "line in the header block that is no header skipped: '\\xa0\\xa0'",
        "space before the colon of header 'Subject' removed",
    )
