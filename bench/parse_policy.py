"""Evidence for a parse.py speed-up: ``email.policy.compat32`` instead of ``email.policy.default``.

    python bench/parse_policy.py [COUNT]

Parses the bench mail set (COUNT messages, default 2000) and the engine
test corpus (``engine_tests/data``) with both policies (by switching
``parse.POLICY``, which ``parse_message`` hands to the MIME parser), reports
fields that differ and the time of each, alternating runs. Also parses one
message whose attachment name and Content-ID are raw 8-bit UTF-8, which
compat32 turns into U+FFFD: the reason the switch is not a one-line change.
"""

import dataclasses
import email.policy
import glob
import os
import sys
import time
import types

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
if "onpipeline_mail" not in sys.modules:
    _package = types.ModuleType("onpipeline_mail")
    _package.__path__ = [os.path.join(REPO, "onpipeline_mail")]
    sys.modules["onpipeline_mail"] = _package
sys.path.insert(0, BENCH_DIR)

import mailset  # noqa: E402

from onpipeline_mail.engine import parse  # noqa: E402

POLICIES = (("default", email.policy.default), ("compat32", email.policy.compat32))
RAW_8BIT = (
    "From: a@b.example\r\nTo: c@d.example\r\nSubject: Grüße\r\nMessage-ID: <x@y>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "Hallo\r\n--XX\r\nContent-Type: application/pdf; name=\"Angebot_Müller.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"Angebot_Müller.pdf\"\r\nContent-ID: <bild-ü@x>\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX--\r\n"
).encode()


def parse_all(messages, policy):
    parse.POLICY = policy
    return [parse.parse_message(raw) for raw in messages]


def main(count):
    corpus = [open(path, "rb").read() for path in sorted(glob.glob(os.path.join(REPO, "engine_tests", "data",
                                                                                "**", "*.eml"), recursive=True))]
    bench = [raw for _folder, raw, _date in mailset.generate(count, "me@example.test", seed=count)]
    for name, messages in (("engine_tests/data", corpus), ("bench mail set", bench)):
        before, after = (parse_all(messages, policy) for _name, policy in POLICIES)
        diffs = {}
        for old, new in zip(before, after, strict=True):
            for field in dataclasses.fields(old):
                if getattr(old, field.name) != getattr(new, field.name):
                    diffs[field.name] = diffs.get(field.name, 0) + 1
        print("%s: %d messages, fields that differ: %s" % (name, len(messages), diffs or "none"))
    for name, policy in POLICIES:
        parsed = parse_all([RAW_8BIT], policy)[0]
        names = [(attachment.filename, attachment.content_id) for attachment in parsed.attachments]
        print("raw 8-bit attachment name with %s: %r" % (name, names))
    size = sum(map(len, bench)) / 1024 / 1024
    times = {name: [] for name, _policy in POLICIES}
    for _round in range(3):
        for name, policy in POLICIES:
            started = time.perf_counter()
            parse_all(bench, policy)
            times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        best = min(values)
        print("parse_message with %-8s: best of 3 %.2f s = %.0f msg/s, %.1f MB/s" % (
            name, best, len(bench) / best, size / best))
    parse.POLICY = email.policy.default


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
