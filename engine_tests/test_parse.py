"""Parsing: a corpus of real-world-shaped and broken messages never raises and reads sensibly."""

import datetime
import os
import re

import pytest

from onpipeline_mail.engine import parse
from onpipeline_mail.engine.testing import mailgen

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CORPUS = sorted(name for name in os.listdir(DATA) if name.endswith(".eml"))


def load(name):
    with open(os.path.join(DATA, name), "rb") as handle:
        return handle.read()


def all_strings(parsed):
    yield parsed.message_id
    yield parsed.message_id_key
    yield parsed.in_reply_to
    yield parsed.subject
    yield parsed.body_html or ""
    yield parsed.body_text or ""
    yield parsed.truncation_reason
    yield from parsed.references
    yield from parsed.defects
    for name, address in (parsed.from_address,) + parsed.to + parsed.cc + parsed.reply_to:
        yield name
        yield address
    for attachment in parsed.attachments:
        yield attachment.filename
        yield attachment.content_type
        yield attachment.content_id


def test_corpus_is_there():
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_parses_into_clean_values(name):
    raw = load(name)
    parsed = parse.parse_message(raw)
    for text in all_strings(parsed):
        assert isinstance(text, str)
        assert "\x00" not in text, name
        assert not re.search("[\ud800-\udfff]", text), name
        text.encode("utf-8")  # PostgreSQL-safe
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert re.fullmatch("[0-9a-f]{64}", parsed.content_hash)
    assert parsed.message_id_key
    assert parsed.size == len(raw)
    assert all(isinstance(attachment.data, bytes) for attachment in parsed.attachments)
    # Same bytes, same result.
    assert parse.parse_message(raw) == parsed


def test_missing_message_id_is_keyed_by_content_hash():
    parsed = parse.parse_message(load("no_message_id.eml"))
    assert parsed.message_id == ""
    assert parsed.message_id_key == "hash:" + parsed.content_hash
    assert "missing Message-ID header" in parsed.defects


def test_missing_or_unreadable_date_is_none_with_a_defect():
    assert parse.parse_message(load("no_date.eml")).date is None
    assert "missing Date header" in parse.parse_message(load("no_date.eml")).defects
    bad = parse.parse_message(load("bad_date.eml"))
    assert bad.date is None and any("unreadable Date" in defect for defect in bad.defects)
    # "-0000" (time zone unknown) is read as UTC.
    assert parse.parse_message(load("idn_and_address_edge_cases.eml")).date == datetime.datetime(
        2026, 2, 24, 10, tzinfo=datetime.timezone.utc)


def test_unknown_charset_is_guessed():
    parsed = parse.parse_message(load("unknown_charset.eml"))
    assert parsed.subject == "Menü des Tages"
    assert parsed.from_address == ("Café Owner", "owner@cafe.example")
    assert parsed.body_text == "Menü: Crème brûlée, Spätzle.\n"
    assert any("unknown charset 'x-unknown'" in defect for defect in parsed.defects)


def test_non_text_codecs_are_not_used_as_charsets():
    parsed = parse.parse_message(load("charset_rot13_and_quotes.eml"))
    assert parsed.body_text == "Not a text charset.\n"
    assert parsed.subject == "Uryyb"  # rot13 is no charset: the bytes are kept as they are


def test_wrong_declared_charsets():
    latin1 = parse.parse_message(load("wrong_charset_latin1_as_utf8.eml"))
    assert latin1.body_text == "Voici le devis, à régler avant vendredi. Merci déjà !\n"
    assert any("declared utf-8 but decoded as cp1252" in defect for defect in latin1.defects)
    utf8 = parse.parse_message(load("utf8_declared_latin1.eml"))
    assert utf8.body_html == "<p>Zoë and Søren say: naïve café — 東京</p>\n"


def test_broken_encoded_words():
    parsed = parse.parse_message(load("broken_encoded_words.eml"))
    assert parsed.subject.startswith("Échéance prefixgluedésuffix € 10broken =ZZ escape")
    assert parsed.from_address == ("Doe, Jörg", "jorg@umbrella.example")
    assert parsed.to == (("Éloïs Dupont", "elois@umbrella.example"), ("X", "x@umbrella.example"))
    assert parsed.cc == (("Renée", "renee@umbrella.example"),)
    assert "Subject: broken base64 encoded word" in parsed.defects
    split = parse.parse_message(load("split_multibyte_encoded_word.eml"))
    assert split.subject == "日本語の件名"


def test_raw_8bit_headers():
    utf8 = parse.parse_message(load("raw_8bit_utf8_headers.eml"))
    assert utf8.subject == "Réunion über 東京 プロジェクト"
    assert utf8.from_address == ("Jürgen Müller", "juergen@müller.example")
    # The punycode domain comes out in Unicode too.
    assert utf8.to == (("Søren Ødegaard", "soren@ødegaard.example"),)
    assert utf8.message_id == "<raw8bit-utf8@müller.example>"
    latin1 = parse.parse_message(load("raw_8bit_latin1_headers.eml"))
    assert latin1.subject == "Réponse à la proposition"
    assert latin1.from_address == ("Inès Garçon", "ines@soylent.example")
    assert latin1.body_text == "Très bien, merci.\n"


def test_nested_multipart():
    parsed = parse.parse_message(load("nested_multipart.eml"))
    assert parsed.body_text == "Plain version with a logo and a PDF – see below.\n"
    assert parsed.body_html == '<html><body><p>HTML version – <img src="cid:logo@acme.example"></p></body></html>\n'
    logo, quote, notes = parsed.attachments
    assert (logo.filename, logo.content_type, logo.content_id, logo.is_inline) == (
        "logo.png", "image/png", "logo@acme.example", True)
    assert logo.data == mailgen.PNG
    assert (quote.filename, quote.is_inline, quote.data[:8]) == ("quote.pdf", False, b"%PDF-1.4")
    # A text part sent as an attachment stays an attachment.
    assert notes.filename == "notes.txt" and notes.data == b"Attached notes, not the body.\r\n"


def test_broken_structures_keep_what_can_be_read():
    cut = parse.parse_message(load("missing_boundary_end.eml"))
    assert cut.body_text == "The text part is complete.\n"
    assert cut.attachments[0].data == bytes(range(96))
    assert "CloseBoundaryNotFoundDefect" in cut.defects
    no_boundary = parse.parse_message(load("no_boundary_param.eml"))
    assert "Text that no parser can find parts in." in no_boundary.body_text
    garbage = parse.parse_message(load("base64_garbage.eml"))
    assert garbage.body_text.startswith("Hello world!")
    assert garbage.attachments[0].filename == "photo.jpg"
    assert any("Base64" in defect for defect in garbage.defects)
    deep = parse.parse_message(load("deep_nesting.eml"))
    assert any("nesting deeper" in defect for defect in deep.defects)
    empty = parse.parse_message(load("headers_only.eml"))
    assert empty.subject == "No body" and not empty.attachments


def test_hostile_html_is_decoded_but_left_for_odoo_to_sanitize():
    parsed = parse.parse_message(load("hostile_html.eml"))
    raw_html = load("hostile_html.eml").split(b"\r\n\r\n", 1)[1].decode().replace("\r\n", "\n")
    assert parsed.body_html == raw_html
    assert "<script>" in parsed.body_html and "onerror=" in parsed.body_html
    assert parsed.body_text is None


def test_huge_header_is_capped_where_it_matters():
    parsed = parse.parse_message(load("huge_header.eml"))
    assert len(parsed.subject.split()) == 1500
    assert len(parsed.references) == parse.MAX_REFERENCES
    assert parsed.references[0] == "<ref.0@thread.example>" and parsed.references[-1] == "<ref.1999@thread.example>"
    assert parsed.in_reply_to == "<ref.1999@thread.example>"


def test_special_attachments():
    tnef = parse.parse_message(load("tnef_attachment.eml"))
    assert [(a.filename, a.content_type) for a in tnef.attachments] == [("winmail.dat", "application/ms-tnef")]
    assert tnef.attachments[0].data.startswith(bytes.fromhex("789f3e22"))
    forwarded = parse.parse_message(load("forwarded_rfc822.eml"))
    (original,) = forwarded.attachments
    assert (original.filename, original.content_type) == ("Original offer.eml", "message/rfc822")
    inner = parse.parse_message(original.data)
    assert inner.message_id == "<original@acme.example>" and inner.body_text == "The original offer text.\n"
    assert forwarded.body_text == "Forwarding the original below.\n"
    invite = parse.parse_message(load("calendar_invite.eml"))
    assert invite.body_text == "You have been invited to Kick-off.\n"
    assert invite.body_html == "<p>You have been invited to <b>Kick-off</b>.</p>\n"
    assert [a.filename for a in invite.attachments] == ["invite.ics", "invite.ics"]
    assert b"METHOD:REQUEST" in invite.attachments[0].data
    report = parse.parse_message(load("delivery_report.eml"))
    assert [a.filename for a in report.attachments] == ["delivery-status.txt", "headers.txt"]


def test_real_world_shapes():
    outlook = parse.parse_message(load("outlook_windows1252.eml"))
    assert outlook.subject == "Réunion – ordre du jour"
    assert outlook.from_address == ("François Dubois", "francois@exchange.example")
    assert "Voici l’ordre du jour – réunion de lundi." in outlook.body_text
    assert "cid:image001.png@01DA0000.00000000" in outlook.body_html
    assert outlook.attachments[0].is_inline
    gmail = parse.parse_message(load("gmail_reply.eml"))
    assert gmail.in_reply_to == "<proposal.123@example.test>"
    assert gmail.references == ("<first.123@example.test>", "<proposal.123@example.test>")
    assert gmail.cc == (("Team", "team@acme.example"), ("", "boss@acme.example"))
    assert gmail.reply_to == (("Elena", "elena.work@acme.example"),)
    japanese = parse.parse_message(load("iso2022jp.eml"))
    assert japanese.subject == "ありがとう" and japanese.body_text == "よろしくお願いします。\n"
    assert japanese.from_address == ("山田", "yamada@example.jp")


def test_address_edge_cases():
    parsed = parse.parse_message(load("idn_and_address_edge_cases.eml"))
    assert parsed.from_address == ("Support (Team)", "support@bücher.example")
    assert parsed.to == ()
    assert parsed.cc == (("", "a@one.example"), ("Two, Person", "two@two.example"), ("", "bare@three.example"),
                         ("", "plain@four.example"))
    assert parsed.reply_to == ()
    assert parsed.message_id == "<Not-In-Brackets@host.example>"
    assert parsed.in_reply_to == "<parent@host.example>"


def test_filenames():
    parsed = parse.parse_message(load("rfc2231_filenames.eml"))
    assert [a.filename for a in parsed.attachments] == ["naïve résumé.txt", "日本.bin", "passwd"]


def test_nul_bytes_and_bare_lf():
    nul = parse.parse_message(load("nul_bytes.eml"))
    assert nul.subject == "NULinside" and nul.body_text == "Text with a NUL byte.\n"
    assert parse.parse_message(load("bare_lf.eml")).body_text == "Line one.\nLine two.\n"


@pytest.mark.parametrize("value, expected", [
    ("<abc@Example.COM>", "<abc@example.com>"),
    ("  <ABC@example.com> (comment)", "<ABC@example.com>"),
    ("<abc\r\n @example.com>", "<abc@example.com>"),
    ("abc@example.com", "<abc@example.com>"),
    ("", ""),
    (None, ""),
    ("<>", ""),
])
def test_normalize_message_id(value, expected):
    assert parse.normalize_message_id(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("John Doe <John.Doe@Example.COM>", "john.doe@example.com"),
    ("john@example.com (John)", "john@example.com"),
    ("<j@xn--bcher-kva.example>", "j@bücher.example"),
    ("J@Bücher.Example", "j@bücher.example"),
    ('"Doe, John" <j@d.example>', "j@d.example"),
    ("MAILER-DAEMON", "mailer-daemon"),
    ("", ""),
])
def test_normalize_address(value, expected):
    assert parse.normalize_address(value) == expected


@pytest.mark.parametrize("data, charset, expected", [
    ("café".encode(), "utf-8", "café"),
    ("café".encode("latin-1"), "utf-8", "café"),
    ("café".encode(), "iso-8859-1", "café"),
    ("café".encode("latin-1"), "iso-8859-1", "café"),
    ("€".encode("cp1252"), None, "€"),
    ("日本".encode("shift_jis"), "x-sjis", "日本"),
    ("Grüße ok".encode()[:-1] + b"\xff", "utf-8", "Grüße o\ufffd"),
    (b"\x81\x8d", "x-unknown", "\x81\x8d"),
])
def test_decode_bytes_fallbacks(data, charset, expected):
    assert parse.decode_bytes(data, charset) == expected


def test_attachments_over_the_limit_are_dropped_and_the_message_flagged():
    raw = mailgen.big_message(200_000, datetime.datetime(2026, 2, 1, 12, tzinfo=datetime.timezone.utc))
    full = parse.parse_message(raw)
    assert len(full.attachments) == 1 and not full.is_truncated
    limited = parse.parse_message(raw, max_attachment_bytes=100_000)
    assert limited.attachments == () and limited.is_truncated
    assert "over the 97 KB limit" in limited.truncation_reason
    assert limited.body_text == full.body_text and limited.body_html == full.body_html


def test_a_partial_message_keeps_headers_and_text():
    raw = mailgen.big_message(200_000, datetime.datetime(2026, 2, 1, 12, tzinfo=datetime.timezone.utc))
    parsed = parse.parse_message(raw[:3000], truncation_reason="too big", size=len(raw))
    assert parsed.is_truncated and parsed.truncation_reason == "too big"
    assert parsed.attachments == () and parsed.size == len(raw)
    assert parsed.subject == "Large attachment" and parsed.body_text == "See the attached file.\n"


def test_content_hash_ignores_transport_and_sees_content():
    raw = load("gmail_reply.eml")
    relayed = b"Received: from relay.example by mx.example; Mon, 23 Feb 2026 09:13:00 +0100\r\n" \
              b"Delivered-To: other@example.test\r\n" + raw
    assert parse.parse_message(relayed).content_hash == parse.parse_message(raw).content_hash
    lf_only = raw.replace(b"\r\n", b"\n")
    assert parse.parse_message(lf_only).content_hash == parse.parse_message(raw).content_hash
    changed = raw.replace(b"looks good", b"looks bad")
    assert parse.parse_message(changed).content_hash != parse.parse_message(raw).content_hash


def test_generated_mail_parses_back():
    messages = mailgen.generate_messages(25, seed=5)
    assert mailgen.generate_messages(25, seed=5) == messages  # deterministic to the byte
    kinds = set()
    for message in messages:
        parsed = parse.parse_message(message.raw)
        kinds.add(message.kind)
        assert parsed.message_id == parse.normalize_message_id(message.message_id)
        assert parsed.date == message.date
        assert parsed.subject == message.subject
        assert parsed.from_address[1] == message.sender
        assert parsed.in_reply_to == message.in_reply_to
        assert parsed.references == message.references
        assert parsed.body_text or parsed.body_html
        if message.kind == "attachments":
            assert parsed.attachments[0].content_type == "application/pdf"
        if message.kind == "related":
            assert parsed.attachments[0].is_inline and parsed.attachments[0].data == mailgen.PNG
        assert not parsed.defects
    assert kinds == set(mailgen.KINDS)
    assert any(message.in_reply_to for message in messages)


def test_mutated_corpus_never_raises():
    """Deterministic fuzzing: corpus messages with random bytes changed, inserted and cut."""
    for raw in mailgen.mutated([load(name) for name in CORPUS], 400, seed=2026):
        parsed = parse.parse_message(raw)
        for text in all_strings(parsed):
            assert "\x00" not in text and not re.search("[\ud800-\udfff]", text)


def test_non_ascii_inside_an_encoded_word():
    # An RFC 2231 filename whose bad byte the email package already turned into U+FFFD, wrapped in an encoded word.
    raw = (b"From: a@b.example\r\nSubject: =?utf-8?q?caf\xc3\xa9_\xff?=\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''%3D%3Futf-8%3Fq%3Fr%FF%3F%3D\r\n\r\nx\r\n--b--\r\n")
    parsed = parse.parse_message(raw)
    assert parsed.subject.startswith("café")
    assert parsed.attachments[0].filename == "r\ufffd"
