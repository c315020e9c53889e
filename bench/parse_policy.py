"""parse.py against an earlier version of itself: same results field by field, and how much faster.

    python bench/parse_policy.py [COUNT] [--base REV] [--mutations N] [--rounds R]

Parses four sets of messages with the ``parse.py`` of git revision REV
(default ``HEAD``) and with the one in the work tree, and compares every
``ParsedMessage`` field, attachments included (name, type, bytes,
Content-ID, inline flag):

- the engine test corpus (``engine_tests/data/*.eml``);
- COUNT messages of the bench mail set (``bench/mailset.py``, default 2000);
- ``mailgen.generate_messages`` (every kind of generated mail);
- N mutations of the corpus (random bytes changed, inserted, cut, as in
  ``test_mutated_corpus_never_raises``): broken MIME must give the same
  result too, exceptions included.

Then times both versions on the bench mail set, alternating (the machine is
noisy) and with parse.py's caches emptied before each round, and prints the
best of R rounds of each and their ratio. Exits 1 when a field differs.

Written for the change of ``parse.POLICY`` from ``email.policy.default`` to
compat32 parsing with ``default``'s header readings: ``--base 63e9321`` is
the last parse.py with ``email.policy.default``. (The first version of this
script compared the two stock policies: compat32 was faster but read raw
8-bit attachment names as U+FFFD; that message is now
``engine_tests/data/raw_8bit_attachment_params.eml``.)
"""

import argparse
import dataclasses
import glob
import os
import subprocess
import sys
import time
import types

import bare_engine  # noqa: E402  (bench/ is the script's folder; before any onpipeline_mail import)
import mailset  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = bare_engine.REPO

from onpipeline_mail.engine import parse  # noqa: E402
from onpipeline_mail.engine.testing import mailgen  # noqa: E402

PARSE_PATH = "onpipeline_mail/engine/parse.py"
#: Pieces inserted by the mutations: MIME syntax that breaks parsers.
MUTATION_PIECES = mailgen.MUTATION_PIECES + (b"\xc3\xa9", b'; name="', b"(comment)", b"; boundary=", b"\r\n\r\n")


def load_revision(revision):
    """parse.py as it was at ``revision``, imported as a separate module."""
    source = subprocess.run(["git", "show", "%s:%s" % (revision, PARSE_PATH)], cwd=REPO, check=True,
                            capture_output=True).stdout
    module = types.ModuleType("onpipeline_mail.engine.parse_at_%s" % revision.replace("~", "_").replace("^", "_"))
    module.__file__ = "%s:%s" % (revision, PARSE_PATH)
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own file, from git
    return module


def corpus():
    paths = sorted(glob.glob(os.path.join(REPO, "engine_tests", "data", "**", "*.eml"), recursive=True))
    return [open(path, "rb").read() for path in paths]


def mutations(messages, count, seed=2026):
    return mailgen.mutated(messages, count, seed, MUTATION_PIECES)


def comparable(parsed):
    """A ParsedMessage as a dict of plain values; attachments with their data and flags."""
    fields = {field.name: getattr(parsed, field.name) for field in dataclasses.fields(parsed)}
    fields["attachments"] = tuple(dataclasses.astuple(attachment) for attachment in parsed.attachments)
    return fields


def outcome(module, raw):
    try:
        return comparable(module.parse_message(raw))
    except Exception as exc:  # parse_message must not raise; if the old one did, the new one must do the same
        return {"raised": "%s: %s" % (type(exc).__name__, exc)}


def compare(name, messages, old, new, show=5):
    differing = {}
    examples = []
    for index, raw in enumerate(messages):
        before, after = outcome(old, raw), outcome(new, raw)
        for field in sorted(set(before) | set(after)):
            if before.get(field) != after.get(field):
                differing[field] = differing.get(field, 0) + 1
                if len(examples) < show:
                    examples.append("  #%d %s:\n    old %r\n    new %r" % (
                        index, field, before.get(field), after.get(field)))
    print("%-22s %5d messages, fields that differ: %s" % (name, len(messages), differing or "none"))
    for example in examples:
        print(example[:2000])
    return not differing


def clear_caches(module):
    """Empty the module's memoized functions, so that no round starts with the previous round's values."""
    for value in vars(module).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def best_times(messages, modules, rounds):
    times = {name: [] for name in modules}
    for _round in range(rounds):
        for name, module in modules.items():
            clear_caches(module)
            started = time.perf_counter()
            for raw in messages:
                module.parse_message(raw)
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


def main():
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("count", nargs="?", type=int, default=2000)
    arguments.add_argument("--base", default="HEAD", help="git revision of the old parse.py")
    arguments.add_argument("--mutations", type=int, default=3000)
    arguments.add_argument("--rounds", type=int, default=3)
    options = arguments.parse_args()

    old, new = load_revision(options.base), parse
    test_corpus = corpus()
    bench = [raw for _folder, raw, _date in mailset.generate(options.count, "me@example.test", seed=options.count)]
    generated = [message.raw for message in mailgen.generate_messages(200, seed=7)]
    same = all([
        compare("engine_tests/data", test_corpus, old, new),
        compare("bench mail set", bench, old, new),
        compare("mailgen messages", generated, old, new),
        compare("mutated corpus", mutations(test_corpus, options.mutations), old, new),
    ])

    size = sum(map(len, bench)) / 1024 / 1024
    best = best_times(bench, {"old (%s)" % options.base: old, "new (work tree)": new}, options.rounds)
    for name, seconds in best.items():
        print("parse_message %-16s best of %d: %.2f s = %4.0f msg/s, %.1f MB/s" % (
            name, options.rounds, seconds, len(bench) / seconds, size / seconds))
    old_time, new_time = best.values()
    print("speed-up: %.2fx" % (old_time / new_time))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
