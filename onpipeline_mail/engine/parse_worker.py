"""MIME parsing in a second process, so that a sync parses the next batch while the caller stores this one.

Parsing is pure CPU and Python holds one core per process: in one process a
first sync alternates between parsing a batch and storing it (in Odoo, the
larger half). :class:`ParseWorker` hands a batch's raw messages to a child
interpreter that runs :func:`.parse.parse_message` on them, and
:func:`.sync.sync_folder` submits batch k+1 before it hands batch k over.

The child is the engine's command line (``__main__.py parse-worker``) run
with the same Python: it imports the engine alone (never Odoo), reads
requests on stdin and answers on stdout, each a length-prefixed pickle. Answers hold only plain values (str, bytes,
numbers, tuples, lists, dicts, datetimes): the parent unpickles them with a
loader that refuses any other class, then rebuilds the dataclasses.

Whatever goes wrong with the child (it cannot start, dies on a message,
answers garbage, takes longer than ``timeout``) costs only speed: the batch
is parsed again in this process, as it would have been without a worker.

The caller may also hand the child its HTML filter (:class:`HtmlFilter`: the
sanitizer it applies to every HTML body before storing it), so that this CPU
work is done on the second core too; the child names it by module and function
and imports it itself. A message it could not filter comes back unfiltered
(``body_html_filtered`` None) and the caller filters it, as without a worker.
"""

import collections
import dataclasses
import importlib
import io
import json
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time

from . import parse

_logger = logging.getLogger(__name__)

#: The engine's command line, run as a file: it imports the engine alone, never Odoo.
CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")

HEADER = struct.Struct("!Q")
#: Batches smaller than this are parsed here: starting the child costs more.
MIN_WORKER_BATCH = 8
#: Batches parsed here before the child starts: a sync of one batch has nothing
#: to overlap (there is no previous batch to store meanwhile), so it never pays for a process.
LOCAL_BATCHES = 1
#: Messages a folder's run must expect (see :meth:`ParseWorker.expect`) for the child to start:
#: starting one costs about 0.1 s of CPU, what parsing 100 messages costs, and a folder of a few
#: hundred messages gains less than that from the overlap. Twenty mailboxes of 500 emails each
#: started twenty children, and two cron workers, with both cores busy, paid for all of them.
MIN_WORKER_MESSAGES = 1000
#: Seconds a batch may take in the child before it is parsed here instead.
DEFAULT_TIMEOUT = 300
#: Batches submitted and not yet collected, at most: the child parses one while the next waits in
#: its pipe, so it goes on the moment it is done instead of waiting for the caller to collect.
DEPTH = 2
#: Classes an answer may hold besides the builtins.
_ANSWER_CLASSES = {("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta"),
                   ("builtins", "set"), ("builtins", "frozenset")}


@dataclasses.dataclass(frozen=True)
class HtmlFilter:
    """A function ``module.function(html, **kwargs) -> html`` the child applies to each HTML body.

    ``path``: folders the child puts in front of ``sys.path`` to import ``module``
    (the caller's framework, which this package never imports itself).
    """

    module: str
    function: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    path: tuple = ()

    def to_json(self):
        return json.dumps({"module": self.module, "function": self.function, "kwargs": self.kwargs,
                           "path": list(self.path)})

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        return cls(values["module"], values["function"], values.get("kwargs") or {}, tuple(values.get("path") or ()))

    def load(self):
        """The function itself (in the child)."""
        for folder in reversed(self.path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        function = getattr(importlib.import_module(self.module), self.function)
        kwargs = dict(self.kwargs)
        return lambda html: str(function(html, **kwargs))


def parse_jobs(jobs):
    """[ParsedMessage, or the error text of a parser that raised] for ``jobs``, in this process.

    A job is a plain tuple (raw bytes, max_attachment_bytes, truncation_reason,
    size): it crosses to the child, which knows the engine under another name.
    """
    results = []
    for raw, max_attachment_bytes, truncation_reason, size in jobs:
        try:
            results.append(parse.parse_message(raw, max_attachment_bytes=max_attachment_bytes,
                                               truncation_reason=truncation_reason, size=size))
        except Exception as exc:  # parse_message is not meant to raise; the caller records it, never skips
            results.append("Parsing failed: %s: %s" % (type(exc).__name__, exc))
    return results


def to_plain(parsed):
    """A ParsedMessage as builtins only (attachments as dicts), to cross the process boundary."""
    values = {field.name: getattr(parsed, field.name) for field in dataclasses.fields(parsed)}
    values["attachments"] = [{field.name: getattr(attachment, field.name)
                              for field in dataclasses.fields(attachment)} for attachment in parsed.attachments]
    return values


def from_plain(values):
    values = dict(values)
    values["attachments"] = tuple(parse.Attachment(**attachment) for attachment in values["attachments"])
    return parse.ParsedMessage(**values)


class _AnswerLoader(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ANSWER_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError("unexpected class %s.%s in a parse worker answer" % (module, name))


def _frame(value):
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _write(stream, value):
    stream.write(_frame(value))
    stream.flush()


#: Linux's fcntl command to resize a pipe (F_SETPIPE_SZ), and the size asked for: a batch of 200
#: messages is about 6 MB, which a 64 KB pipe passes in a hundred wake-ups of each side.
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20


def _enlarge_pipe(stream):
    try:
        import fcntl  # noqa: PLC0415 (POSIX only)

        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works, more slowly


class _Sender(threading.Thread):
    """Writes one framed batch to the child's stdin while the caller goes on (the write waits on the child).

    Writing 6 MB into the pipe took as long as the child took to read it, with the
    sync process blocked meanwhile (0.75 s per 4,000 messages). ``os.write``
    releases the GIL, so the caller stores the previous batch during the transfer.
    """

    def __init__(self, fd, frame, after=None):
        super().__init__(name="onpipeline-parse-worker-sender", daemon=True)
        self.fd = fd
        self.frame = frame
        #: The sender of the batch before, which must be written whole first.
        self.after = after
        self.error = None

    def run(self):
        after, self.after = self.after, None
        if after is not None:
            after.join()
            if after.error is not None:
                self.error, self.frame = after.error, None
                return
        view = memoryview(self.frame)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self.error = exc
        finally:
            self.frame = None


def _read_exactly(stream, size):
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the parse worker closed its output")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Ticket:
    """A submitted batch: its jobs, whether the child has them, and the thread sending them."""

    def __init__(self, jobs, in_worker, sender=None):
        self.jobs = jobs
        self.in_worker = in_worker
        self.sender = sender


class ParseWorker:
    """A child process that parses batches, one after the other; use as a context manager.

    ``submit(jobs)`` gives the child a batch and returns at once; ``collect(ticket)``
    waits for its results (ParsedMessage or error text per job, in order). At most
    ``depth`` batches are submitted and not collected (see :data:`DEPTH`), and they
    are collected in the order submitted. Started at the second batch worth it
    (``local_batches``), so a sync with nothing new, or with one batch of new mail,
    starts no process.
    """

    def __init__(self, timeout=DEFAULT_TIMEOUT, min_batch=MIN_WORKER_BATCH, local_batches=LOCAL_BATCHES,
                 html_filter=None, html_filter_min_messages=0, depth=DEPTH, min_messages=0):
        self.timeout = timeout
        self.depth = depth
        #: The child starts only for a run expecting at least this many messages (see :meth:`expect`);
        #: once started, it parses every batch worth it.
        self.min_messages = min_messages
        #: :class:`HtmlFilter` the child applies to HTML bodies, or None.
        self.html_filter = html_filter
        #: The child takes the filter only if the caller expects at least this many messages when it
        #: starts (see :meth:`expect`): loading the filter's module can cost more than it saves.
        self.html_filter_min_messages = html_filter_min_messages
        self._expected = 0
        self.min_batch = min_batch
        self.local_batches = local_batches
        self._process = None
        self._last_sender = None  # the _Sender of the last batch given to the child
        self._uncollected = collections.deque()  # tickets submitted and not collected, oldest first
        self._broken = False
        #: Batches the child parsed (the others were parsed here).
        self.batches_parsed = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def expect(self, count):
        """About ``count`` messages are coming (a folder's window); see ``html_filter_min_messages``."""
        self._expected = count

    def submit(self, jobs):
        if len(self._uncollected) >= self.depth:
            raise RuntimeError("collect a batch from the parse worker before submitting more than %d" % self.depth)
        ticket = self._give(list(jobs))
        self._uncollected.append(ticket)
        return ticket

    def _give(self, jobs):
        if len(jobs) < self.min_batch:
            return _Ticket(jobs, in_worker=False)
        if self.local_batches > 0:
            self.local_batches -= 1
            return _Ticket(jobs, in_worker=False)
        if not self.is_running and self._expected < self.min_messages:
            return _Ticket(jobs, in_worker=False)
        if not self._ensure_started():
            return _Ticket(jobs, in_worker=False)
        try:
            sender = _Sender(self._process.stdin.fileno(), _frame(jobs), after=self._last_sender)
            sender.start()
        except (OSError, ValueError, RuntimeError, pickle.PicklingError) as exc:
            self._fail("could not send a batch", exc)
            return _Ticket(jobs, in_worker=False)
        self._last_sender = sender
        return _Ticket(jobs, in_worker=True, sender=sender)

    def collect(self, ticket):
        if not self._uncollected or self._uncollected[0] is not ticket:
            raise RuntimeError("collect the batches of the parse worker in the order they were submitted")
        self._uncollected.popleft()
        if ticket.in_worker:
            try:
                deadline = time.monotonic() + self.timeout
                self._wait_sent(ticket.sender, deadline)
                answers = self._read_answer(deadline)
                if len(answers) != len(ticket.jobs):
                    raise ValueError("%d answers for %d messages" % (len(answers), len(ticket.jobs)))
                results = [from_plain(answer) if isinstance(answer, dict) else str(answer) for answer in answers]
                self.batches_parsed += 1
                return results
            except Exception as exc:  # any failure of the child: parse here, lose nothing
                self._fail("failed on a batch of %d messages" % len(ticket.jobs), exc)
        return parse_jobs(ticket.jobs)

    def abandon(self, ticket):
        """Drop a submitted batch whose results are no longer wanted (the run stopped); a collected one is ignored."""
        if ticket not in self._uncollected:
            return
        self._uncollected.remove(ticket)
        if ticket.in_worker:
            self.close()  # the child is busy with it; a new one starts if needed

    def close(self):
        process, self._process = self._process, None
        for ticket in self._uncollected:
            ticket.in_worker = False  # their answers go with the child: parsed here when collected
        if process is None:
            return
        sender, self._last_sender = self._last_sender, None
        if sender is not None and sender.is_alive():
            # A batch still going in: its write ends only when the child reads or dies. The pipe's fd
            # stays open until then, or a file opened meanwhile could take its number and get the rest.
            process.kill()
            sender.join()
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    @property
    def is_running(self):
        return self._process is not None and self._process.poll() is None

    def _ensure_started(self):
        if self._broken:
            return False
        if self.is_running:
            return True
        try:
            command = [sys.executable, CHILD_SCRIPT, "parse-worker"]
            if self.html_filter and self._expected >= self.html_filter_min_messages:
                command += ["--html-filter", self.html_filter.to_json()]
            # Unbuffered (bufsize=0): the answers are read after select() on the pipe, and a buffered
            # reader could hold the start of the next batch's answer, read ahead with this one's, where
            # select() does not see it (two batches are in flight: the next answer may follow at once).
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                close_fds=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
            _enlarge_pipe(self._process.stdin)
            _enlarge_pipe(self._process.stdout)
        except OSError as exc:
            self._fail("could not start", exc)
            return False
        return True

    def _wait_sent(self, sender, deadline):
        sender.join(max(0.0, deadline - time.monotonic()))
        if sender.is_alive():  # close() ends it
            raise TimeoutError("the batch was not read within %s s" % self.timeout)
        if sender.error is not None:
            raise sender.error

    def _read_answer(self, deadline):
        stdout = self._process.stdout
        ready, _write_ready, _errors = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError("no answer within %s s" % self.timeout)
        size, = HEADER.unpack(_read_exactly(stdout, HEADER.size))
        return _AnswerLoader(io.BytesIO(_read_exactly(stdout, size))).load()

    def _fail(self, what, exc):
        # One failure and the worker is not used again in this run: each batch would pay for it.
        _logger.warning("Parse worker %s (%s: %s); parsing in the sync process instead.", what,
                        type(exc).__name__, exc)
        self._broken = True
        if self._process is not None:
            self._process.kill()
        self.close()


def _filter_bodies(results, html_filter):
    filtered = []
    for result in results:
        if isinstance(result, parse.ParsedMessage) and result.body_html:
            try:
                result = dataclasses.replace(result, body_html_filtered=html_filter(result.body_html))
            except Exception as exc:  # the caller filters this one itself
                _logger.warning("HTML filter failed on a message (%s: %s)", type(exc).__name__, exc)
        filtered.append(result)
    return filtered


def serve(stdin=None, stdout=None, html_filter=None):
    """The child's loop: a batch of jobs in, a list of plain answers out, until stdin closes.

    ``html_filter``: an :class:`HtmlFilter`; if it cannot be imported, bodies go back unfiltered.
    """
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    function = None
    if html_filter:
        try:
            function = html_filter.load()
        except Exception as exc:
            _logger.warning("HTML filter %s.%s could not be loaded (%s: %s); bodies go back unfiltered.",
                            html_filter.module, html_filter.function, type(exc).__name__, exc)
    while True:
        header = stdin.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        size, = HEADER.unpack(header)
        jobs = pickle.loads(_read_exactly(stdin, size))
        results = parse_jobs(jobs)
        if function:
            results = _filter_bodies(results, function)
        answers = [to_plain(result) if isinstance(result, parse.ParsedMessage) else result for result in results]
        _write(stdout, answers)


def serve_stdio(html_filter=None):
    """The child's entry point (``python engine/__main__.py parse-worker``), on the process's stdin and stdout."""
    # Answers go to the real stdout only: anything printed by mistake would break the protocol.
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, answers, html_filter=html_filter)
