"""The parse worker: a child process gives the same results as parsing here, and when it fails, nothing is lost."""

import base64
import dataclasses
import glob
import html
import io
import logging
import os
import pickle
import select
import signal
import threading
import time

import pytest

from onpipeline_mail.engine import parse, parse_worker

DATA = os.path.join(os.path.dirname(__file__), "data")


def corpus_jobs():
    jobs = []
    for path in sorted(glob.glob(os.path.join(DATA, "*.eml"))):
        with open(path, "rb") as handle:
            raw = handle.read()
        jobs.append((raw, parse.MAX_ATTACHMENT_BYTES, "", len(raw)))
    return jobs


def test_the_worker_parses_the_corpus_exactly_as_this_process():
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(local_batches=0) as worker:
        ticket = worker.submit(jobs)
        assert ticket.in_worker and worker.is_running
        results = worker.collect(ticket)
        assert worker.batches_parsed == 1
    assert results == parse_worker.parse_jobs(jobs)
    assert all(isinstance(result, parse.ParsedMessage) for result in results)
    assert any(result.attachments for result in results) and any(result.defects for result in results)
    assert not worker.is_running, "closed with the context"


def test_small_batches_and_the_first_batch_start_no_process():
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(local_batches=0) as worker:
        results = worker.collect(worker.submit(jobs[:3]))
        assert not worker.is_running and worker.batches_parsed == 0
    assert results == parse_worker.parse_jobs(jobs[:3])
    # By default the first batch is parsed here: a one-batch sync has nothing to overlap.
    with parse_worker.ParseWorker() as worker:
        assert worker.collect(worker.submit(jobs)) == parse_worker.parse_jobs(jobs)
        assert not worker.is_running
        second = worker.submit(jobs)
        assert second.in_worker and worker.collect(second) == parse_worker.parse_jobs(jobs)
        assert worker.batches_parsed == 1


@pytest.mark.parametrize("trouble", ["killed", "stopped"])
def test_a_worker_that_dies_or_hangs_costs_speed_not_messages(trouble, caplog):
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(timeout=1, local_batches=0) as worker:
        ticket = worker.submit(jobs)
        os.kill(worker._process.pid, signal.SIGKILL if trouble == "killed" else signal.SIGSTOP)
        with caplog.at_level(logging.WARNING):
            results = worker.collect(ticket)
        assert results == parse_worker.parse_jobs(jobs)
        assert "parsing in the sync process instead" in caplog.text
        assert not worker.is_running
        # Not tried again in this run: every batch would pay for it.
        later = worker.submit(jobs)
        assert not later.in_worker and worker.collect(later) == results


def big_jobs(megabytes=8):
    """Jobs holding more bytes than the pipe to the child: sending them waits on the child reading."""
    attachment = base64.encodebytes(os.urandom(megabytes * 1024 * 1024 // 4))
    raw = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + attachment + b"\r\n--b--\r\n")
    return [(raw, parse.MAX_ATTACHMENT_BYTES, "", len(raw))] * 4


def test_submit_returns_while_the_child_is_still_reading():
    # The batch goes in on a thread: the caller stores the previous batch meanwhile.
    jobs = big_jobs()
    with parse_worker.ParseWorker(timeout=5, local_batches=0, min_batch=1) as worker:
        warm = worker.submit(jobs[:1])
        assert warm.in_worker and worker.collect(warm) == parse_worker.parse_jobs(jobs[:1])
        os.kill(worker._process.pid, signal.SIGSTOP)
        # Woken in 3 s whatever happens, so that a submit that waits fails rather than hangs.
        waking = threading.Timer(3, os.kill, (worker._process.pid, signal.SIGCONT))
        waking.start()
        started = time.monotonic()
        ticket = worker.submit(jobs)
        assert time.monotonic() - started < 2, "submit waited for the child to read 32 MB"
        assert ticket.in_worker and ticket.sender.is_alive()
        os.kill(worker._process.pid, signal.SIGCONT)
        assert worker.collect(ticket) == parse_worker.parse_jobs(jobs)
        assert not ticket.sender.is_alive() and worker.is_running
        waking.cancel()


def test_a_child_that_stops_reading_costs_speed_not_messages(caplog):
    jobs = big_jobs()
    with parse_worker.ParseWorker(timeout=1, local_batches=0, min_batch=1) as worker:
        warm = worker.submit(jobs[:1])
        worker.collect(warm)
        os.kill(worker._process.pid, signal.SIGSTOP)
        ticket = worker.submit(jobs)
        sender = ticket.sender
        with caplog.at_level(logging.WARNING):
            results = worker.collect(ticket)
        assert results == parse_worker.parse_jobs(jobs)
        assert "parsing in the sync process instead" in caplog.text
        assert not sender.is_alive() and isinstance(sender.error, OSError), "the sending thread ended"
        assert not worker.is_running


def test_submitting_more_than_depth_without_collecting_is_refused():
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(local_batches=0) as worker:
        first, second = worker.submit(jobs), worker.submit(jobs)
        with pytest.raises(RuntimeError):
            worker.submit(jobs)
        with pytest.raises(RuntimeError):
            worker.collect(second)  # in the order submitted
        assert worker.collect(first) == worker.collect(second) == parse_worker.parse_jobs(jobs)


def test_the_next_batch_waits_in_the_pipe_and_is_parsed_without_a_collect():
    # Two batches in: the child goes from the first to the second by itself, so while the caller
    # stores the first, the second is being parsed.
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(local_batches=0, min_batch=1) as worker:
        first, second = worker.submit(jobs), worker.submit(jobs[:2])
        assert first.in_worker and second.in_worker
        assert worker.collect(first) == parse_worker.parse_jobs(jobs)
        # The answer to the second batch is already on its way, with nothing more asked of the child.
        ready, _w, _x = select.select([worker._process.stdout], [], [], 30)
        assert ready, "the child did not go on to the second batch by itself"
        assert worker.collect(second) == parse_worker.parse_jobs(jobs[:2])


def test_two_answers_waiting_are_both_read_from_the_worker(caplog):
    # Both answers are in the pipe before the first is read: reading the first must not swallow the
    # second where select() cannot see it (a buffered reader did: the second batch then waited for
    # the timeout and was parsed again here).
    raw = b"From: a@example.test\r\nSubject: small\r\n\r\nhello\r\n"
    jobs = [(raw, parse.MAX_ATTACHMENT_BYTES, "", len(raw))]
    with parse_worker.ParseWorker(timeout=3, local_batches=0, min_batch=1) as worker:
        first, second = worker.submit(jobs), worker.submit(jobs)
        time.sleep(1)  # the child has parsed both and written both answers
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            assert worker.collect(first) == worker.collect(second) == parse_worker.parse_jobs(jobs)
        assert time.monotonic() - started < 2 and "instead" not in caplog.text
        assert worker.batches_parsed == 2, "both batches parsed in the child"


def test_a_child_that_dies_with_two_batches_in_loses_neither(caplog):
    jobs = big_jobs()
    with parse_worker.ParseWorker(timeout=5, local_batches=0, min_batch=1) as worker:
        first, second = worker.submit(jobs[:2]), worker.submit(jobs)
        os.kill(worker._process.pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING):
            assert worker.collect(first) == parse_worker.parse_jobs(jobs[:2])
            assert worker.collect(second) == parse_worker.parse_jobs(jobs)
        assert "parsing in the sync process instead" in caplog.text
        assert not first.sender.is_alive() and not second.sender.is_alive()


def test_an_abandoned_batch_leaves_the_worker_usable():
    jobs = corpus_jobs()
    with parse_worker.ParseWorker(local_batches=0) as worker:
        worker.abandon(worker.submit(jobs))
        ticket = worker.submit(jobs)
        assert ticket.in_worker
        assert worker.collect(ticket) == parse_worker.parse_jobs(jobs)


class Smuggled:
    def __reduce__(self):
        return (os.system, ("true",))


def test_answers_may_hold_plain_values_only():
    plain = parse_worker.to_plain(parse_worker.parse_jobs(corpus_jobs()[:1])[0])
    assert parse_worker._AnswerLoader(io.BytesIO(pickle.dumps([plain]))).load() == [plain]
    with pytest.raises(pickle.UnpicklingError):
        parse_worker._AnswerLoader(io.BytesIO(pickle.dumps([Smuggled()]))).load()


def test_the_worker_applies_the_callers_html_filter_and_nothing_else():
    jobs = corpus_jobs()
    html_filter = parse_worker.HtmlFilter("html", "escape", {"quote": True})
    with parse_worker.ParseWorker(local_batches=0, html_filter=html_filter) as worker:
        results = worker.collect(worker.submit(jobs))
        assert worker.batches_parsed == 1
    here = parse_worker.parse_jobs(jobs)
    with_html = [result for result in results if result.body_html]
    assert with_html, "the corpus has HTML bodies"
    for result, local in zip(results, here, strict=True):
        assert result.body_html_filtered == (html.escape(result.body_html, quote=True) if result.body_html else None)
        assert dataclasses_without_filtered(result) == dataclasses_without_filtered(local), "parsing unchanged"


def test_a_filter_the_child_cannot_load_leaves_bodies_to_the_caller(capfd):
    jobs = corpus_jobs()
    html_filter = parse_worker.HtmlFilter("no_such_module_here", "clean", path=("/nonexistent",))
    with parse_worker.ParseWorker(local_batches=0, html_filter=html_filter) as worker:
        results = worker.collect(worker.submit(jobs))
        assert worker.batches_parsed == 1, "parsed in the child all the same"
    assert results == parse_worker.parse_jobs(jobs)
    assert all(result.body_html_filtered is None for result in results)
    assert "no_such_module_here" in capfd.readouterr().err


def dataclasses_without_filtered(result):
    return dataclasses.replace(result, body_html_filtered=None)


def test_the_filter_is_loaded_only_for_enough_messages():
    jobs = corpus_jobs()
    html_filter = parse_worker.HtmlFilter("html", "escape")
    for expected, filtered in ((10, False), (1000, True)):
        with parse_worker.ParseWorker(local_batches=0, html_filter=html_filter,
                                      html_filter_min_messages=100) as worker:
            worker.expect(expected)
            results = worker.collect(worker.submit(jobs))
            assert worker.batches_parsed == 1
        assert any(result.body_html_filtered for result in results) is filtered
