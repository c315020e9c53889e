"""Long base64 runs go through the MIME parser as one line and come back: the same tree as the whole text gives.

``parse.condense_base64_runs`` / ``restore_base64_runs`` (engine/parse.py) must be
invisible: every part's headers, payload, preamble, epilogue and defects equal
those of parsing the raw bytes as they are, hostile shapes included.
"""

import base64
import email
import pathlib
import random

import pytest

from onpipeline_mail.engine import parse

DATA = pathlib.Path(__file__).parent / "data"


def tree(message):
    """Everything the parser made of a message, part by part, as comparable values."""
    return [(list(part.raw_items()), part._payload if isinstance(part._payload, str) else None,
             getattr(part, "preamble", None), getattr(part, "epilogue", None),
             [type(defect).__name__ for defect in part.defects], part.get_content_type())
            for part in message.walk()]


def parsed_both_ways(raw):
    whole = email.message_from_bytes(raw, policy=parse.POLICY)
    condensed, runs = parse.condense_base64_runs(raw)
    message = email.message_from_bytes(condensed, policy=parse.POLICY)
    parse.restore_base64_runs(message, runs)
    return tree(whole), tree(message), runs


def base64_lines(size, eol=b"\r\n", seed=0):
    data = random.Random(seed).randbytes(size)
    return eol.join(base64.encodebytes(data).splitlines()) + eol


HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: runs\r\nMessage-ID: <runs@example.com>\r\n"
MULTI = HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
PART = b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"

SHAPES = {
    # the common case: the run ends right before a boundary, whose line end the parser strips
    "run before a boundary": MULTI + b"preamble\r\n" + PART + base64_lines(5000) + b"--XX--\r\n",
    "run before the closing boundary with no line end": MULTI + PART + base64_lines(3000).rstrip() + b"\r\n--XX--",
    "run as the preamble": MULTI + base64_lines(4000) + PART + b"QUJD\r\n--XX--\r\n",
    "run as the epilogue": MULTI + PART + b"QUJD\r\n--XX--\r\n" + base64_lines(4000),
    "run right after the headers, no empty line": HEAD + base64_lines(4000),
    "run in a header block of a part": MULTI + b"--XX\r\nContent-Type: text/plain\r\n" + base64_lines(4000)
    + b"--XX--\r\n",
    "bare LF line ends": (MULTI + PART + base64_lines(4000, eol=b"\n") + b"--XX--\r\n"),
    "mixed line ends": MULTI + PART + base64_lines(2000) + base64_lines(2000, eol=b"\n", seed=1) + b"--XX--\r\n",
    "lone CR inside a run": MULTI + PART + base64_lines(2000) + b"QUJD\rREVG\r\n" + base64_lines(2000, seed=2)
    + b"--XX--\r\n",
    "missing closing boundary": MULTI + PART + base64_lines(5000),
    "cut in the middle of a line": (MULTI + PART + base64_lines(5000))[:-37],
    "plain text part made of base64 lines": MULTI + b"--XX\r\nContent-Type: text/plain\r\n\r\n"
    + base64_lines(3000) + b"--XX--\r\n",
    "nested message/rfc822": MULTI + b"--XX\r\nContent-Type: message/rfc822\r\n\r\n" + HEAD
    + b'Content-Type: multipart/mixed; boundary="YY"\r\n\r\n--YY\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    + base64_lines(4000) + b"--YY--\r\n--XX--\r\n",
    "delivery status blocks": HEAD + b'Content-Type: multipart/report; boundary="XX"\r\n\r\n'
    + b"--XX\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n" + base64_lines(3000)
    + b"\r\nAction: failed\r\n--XX--\r\n",
    "a boundary made of base64 letters": HEAD + b'Content-Type: multipart/mixed; boundary="QUJD"\r\n\r\n'
    + b"--QUJD\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64_lines(4000) + b"--QUJD--\r\n",
    "the marker already in the mail": MULTI + PART + b"OnpipelineBase64Run0Z\r\n" + base64_lines(4000)
    + b"--XX--\r\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_hostile_shapes_parse_as_the_whole_text(name):
    whole, condensed, _runs = parsed_both_ways(SHAPES[name])
    assert condensed == whole


def test_the_runs_are_really_condensed():
    """Else the tests above compare the whole text with itself."""
    _whole, _condensed, runs = parsed_both_ways(SHAPES["run before a boundary"])
    assert len(runs) == 1
    (run,) = runs.values()
    assert run.count("\n") > 50
    assert parse.condense_base64_runs(SHAPES["the marker already in the mail"])[1] == {}


@pytest.mark.parametrize("name", sorted(path.name for path in DATA.glob("*.eml")))
def test_corpus_parses_as_the_whole_text(name):
    whole, condensed, _runs = parsed_both_ways((DATA / name).read_bytes())
    assert condensed == whole


def test_random_cuts_and_splices_parse_as_the_whole_text():
    """Pieces of the shapes above cut and joined at random places, hundreds of times."""
    rng = random.Random(14)
    pieces = list(SHAPES.values())
    for _round in range(300):
        raw = b""
        for _piece in range(rng.randint(1, 3)):
            piece = rng.choice(pieces)
            start = rng.randrange(len(piece))
            raw += piece[start:start + rng.randint(1, len(piece))]
        whole, condensed, _runs = parsed_both_ways(raw)
        assert condensed == whole, raw[:200]
