"""parse.POLICY parses MIME as compat32 does but must read every header as email.policy.default does."""

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
