"""A real Odoo 18 server in prefork mode syncing the mailboxes through its cron workers (part ``cronserver``).

``odoo-bin --workers 2 --max-cron-threads K`` on a database holding the
team mailboxes: K cron worker *processes* (prefork; in threaded mode the cron
threads share one GIL). Every scheduled action is pushed a day ahead before
the server starts, so that nothing else runs; once the server is up (registry
preloaded by the master, every worker alive, each cron worker LISTENing on
``cron_trigger``), the two sync scheduled actions of the addon are made due
(``nextcall`` in the past) and the cron workers woken by ``NOTIFY
cron_trigger``, as ``ir.cron._trigger()`` does. The database is then polled
until every mailbox is caught up and neither sync action is due any more.

How a run continues: a cron worker runs each due action through
``ir.cron._run_job``, which calls it again (up to 10 times in a row) while it
reports remaining work through ``_notify_progress``; an action that reports
nothing left is rescheduled ``interval`` later (``nextcall`` moves into the
future). One cron worker runs both actions one after the other; two run one
each at the same time, each skipping the mailbox the other holds.

Wall time: from the moment the actions were made due to the last change of
the synced data (mailboxes caught up, messages, history entries); the time
until the server is idle again (both actions done, which with one cron worker
includes the second action's no-change pass) is kept as ``wall_idle``.
"""

import datetime
import os
import re
import signal
import socket
import subprocess
import time

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\d+) (\w+) (\S+) ([\w.]+): (.*)$")
JOB_EVENT = re.compile(r"^Job (['\"])(.*)\1 \((\d+)\) (starting|done in [\d.]+s|server action #\d+ failed)$")
ALIVE = re.compile(r"^Worker (WorkerCron|WorkerHTTP) \((\d+)\) alive$")
SYNC_CRONS = ("ir_cron_onpipeline_mail_sync", "ir_cron_onpipeline_mail_sync_2")
#: Prefork limits that would stop a long sync: the watchdog kills a cron worker whose whole
#: round of due jobs lasts longer than --limit-time-real-cron (default: --limit-time-real, 120 s)
#: and SIGXCPU ends it after --limit-time-cpu (60 s) of CPU. Lifted unless limits="odoo".
LIFTED_LIMITS = ("--limit-time-real-cron", "0", "--limit-time-cpu", "86400")
#: Server log lines of a worker stopped by a limit.
LIMIT_HIT = re.compile(r"CPU time limit|timeout after|memory limit|max age")
POLL_SECONDS = 0.25
HTTP_WORKERS = 2


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_time(text):
    """Odoo logs in UTC (odoo-bin sets TZ=UTC)."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def stat(pid):
    """The fields of /proc/PID/stat after the command name (index 0 = state, 1 = ppid, 11 = utime), or None."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu(pid):
    """CPU seconds of a live process and of its children that exited (a cron worker's parse processes)."""
    fields = stat(pid)
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK") if fields else None


def process_nice(pid):
    fields = stat(pid)
    return int(fields[16]) if fields else None


def tree_cpu(pid):
    """CPU seconds of a process, of its live children and of its children that exited (reaped): the
    PostgreSQL postmaster and its backends, Dovecot's master and its imap processes, odoo-bin's workers."""
    fields = stat(pid)
    if not fields:
        return None
    ticks = sum(int(value) for value in fields[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            child = stat(int(entry))
            if child and int(child[1]) == pid:
                ticks += sum(int(value) for value in child[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def postmaster_pid(conn):
    with conn.cursor() as cr:
        cr.execute("SELECT pg_backend_pid()")
        return int(stat(cr.fetchone()[0])[1])


class OdooServer:
    """``odoo-bin`` in prefork mode on one database, its log parsed for workers and cron jobs."""

    def __init__(self, odoo, args, db, cron_workers, http_workers, log_path, env, limits="lifted"):
        self.odoo = odoo
        self.db = db
        self.cron_workers = cron_workers
        self.http_workers = http_workers
        self.log_path = log_path
        self.http_port, self.gevent_port = free_port(), free_port()
        self.command = [
            odoo["python"], odoo["bin"], "-c", args["config"], "-d", db, "--db-filter", "^%s$" % db,
            "--db_host", "127.0.0.1", "--db_port", str(odoo["pg_port"]), "--db_user", "odoo",
            "--addons-path", odoo["addons_path"], "--data-dir", args["data_dir"],
            "--workers", str(http_workers), "--max-cron-threads", str(cron_workers),
            "--http-interface", "127.0.0.1", "--http-port", str(self.http_port),
            "--gevent-port", str(self.gevent_port), *(LIFTED_LIMITS if limits == "lifted" else ()),
            "--logfile", log_path, "--log-level", "info",
        ]
        self.env = env
        self.process = None

    def start(self):
        open(self.log_path, "w").close()
        self.started = time.time()
        # Its own process group: the master, its workers and the gevent process go together.
        with open(self.log_path + ".stderr", "w") as stderr:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr,
                                            start_new_session=True)
        return self

    def lines(self, tails=False):
        """(time, pid, level, logger, message) of every log line; with ``tails``, also the last line of what
        follows it (a traceback's exception)."""
        entries = []
        with open(self.log_path, errors="replace") as handle:
            for line in handle:
                match = LOG_LINE.match(line.rstrip("\n"))
                if match:
                    stamp, pid, level, _db, logger, message = match.groups()
                    entries.append([log_time(stamp), int(pid), level, logger, message.strip(), ""])
                elif entries and line.strip():
                    entries[-1][5] = line.strip()
        return [tuple(entry) if tails else tuple(entry[:5]) for entry in entries]

    def workers(self):
        found = {"WorkerCron": [], "WorkerHTTP": []}
        evented = False
        for _moment, _pid, _level, _logger, message in self.lines():
            match = ALIVE.match(message)
            if match:
                found[match.group(1)].append(int(match.group(2)))
            evented |= message.startswith("Evented Service (longpolling) running")
        return found, evented

    def wait_ready(self, conn, timeout=None):
        """Every worker alive, the gevent process up, each cron worker LISTENing (its connection to
        ``postgres`` idle after the LISTEN's COMMIT); returns seconds since start."""
        timeout = timeout or int(os.environ.get("BENCH_SERVER_TIMEOUT", 180))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("odoo-bin exited with %s; see %s" % (self.process.returncode, self.log_path))
            found, evented = self.workers()
            crons = found["WorkerCron"]
            if len(crons) >= self.cron_workers and len(found["WorkerHTTP"]) >= self.http_workers and evented:
                with conn.cursor() as cr:
                    cr.execute("""SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres'
                                  AND application_name = ANY(%s) AND state = 'idle' AND query = 'COMMIT'""",
                               (["odoo-%d" % pid for pid in crons],))
                    if cr.fetchone()[0] >= self.cron_workers:
                        return time.time() - self.started
            time.sleep(0.2)
        with conn.cursor() as cr:
            cr.execute("SELECT datname, application_name, state, query FROM pg_stat_activity WHERE backend_type = "
                       "'client backend'")
            activity = cr.fetchall()
        raise RuntimeError("odoo-bin not ready after %d s (workers %s, connections %s); see %s" % (
            timeout, self.workers(), activity, self.log_path))

    def jobs(self):
        """Runs of scheduled actions from the log (one per call of the action, ``_run_job`` may call it
        again): [{cron_id, name, pid, start, end, status: done|failed|None, error}]."""
        runs, open_runs = [], {}
        for moment, pid, _level, _logger, message, tail in self.lines(tails=True):
            match = JOB_EVENT.match(message)
            if not match:
                continue
            _quote, name, cron_id, event = match.groups()
            key = (pid, int(cron_id))
            if event == "starting":
                open_runs[key] = {"cron_id": int(cron_id), "name": name, "pid": pid, "start": moment,
                                  "end": None, "status": None, "error": None}
                runs.append(open_runs[key])
            elif key in open_runs:
                failed = event.endswith("failed")
                open_runs.pop(key).update(end=moment, status="failed" if failed else "done",
                                          error=tail if failed else None)
        return runs

    def limit_hits(self):
        """Workers stopped by a prefork limit: [(pid, message)]."""
        return [(pid, message) for _m, pid, _level, _logger, message in self.lines() if LIMIT_HIT.search(message)]

    def problems(self, limit=5):
        """Server log lines at WARNING or worse (and worker kills), the first few."""
        found = [message for _m, _pid, level, logger, message in self.lines()
                 if level in ("WARNING", "ERROR", "CRITICAL")]
        return len(found), found[:limit]

    def stop(self, timeout=90):
        """SIGTERM to the master (graceful: it stops its workers), SIGKILL to its group after ``timeout``."""
        if not self.process or self.process.poll() is not None:
            return self.process and self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


def overlap(runs, cron_ids):
    """Seconds during which the sync actions ran in two different processes at once."""
    spans = [run for run in runs if run["cron_id"] in cron_ids and run["end"]]
    best = 0.0
    for index, first in enumerate(spans):
        for second in spans[index + 1:]:
            if first["pid"] != second["pid"] and first["cron_id"] != second["cron_id"]:
                best += max(0.0, min(first["end"], second["end"]) - max(first["start"], second["start"]))
    return best


HISTORY_DUPLICATES_SQL = """
SELECT count(*) FROM (SELECT model, res_id, message_id FROM mail_message
                      WHERE message_type = 'email' AND message_id IS NOT NULL AND model IN ('crm.lead', 'res.partner')
                      GROUP BY model, res_id, message_id HAVING count(*) > 1) d
"""


def history_duplicates(conn):
    """History entries (chatter copies of synced mail) twice on the same contact or deal."""
    with conn.cursor() as cr:
        cr.execute(HISTORY_DUPLICATES_SQL)
        return cr.fetchone()[0]


def connect(odoo, db):
    import psycopg2  # noqa: PLC0415  (Odoo's python has it; the engine-only bench never gets here)

    conn = psycopg2.connect(host="127.0.0.1", port=odoo["pg_port"], user="odoo", dbname=db)
    conn.autocommit = True
    return conn


def prepare(conn):
    """Nothing due at start-up; the shipped sync budgets (the bench template sets huge ones). Returns the
    ids of the two sync scheduled actions."""
    with conn.cursor() as cr:
        cr.execute("""DELETE FROM ir_config_parameter
                      WHERE key IN ('onpipeline_mail.sync_time_budget', 'onpipeline_mail.sync_mailbox_budget')""")
        cr.execute("UPDATE ir_cron SET nextcall = (now() at time zone 'UTC') + interval '1 day'")
        cr.execute("DELETE FROM ir_cron_trigger")
        cr.execute("""SELECT res_id FROM ir_model_data WHERE module = 'onpipeline_mail' AND model = 'ir.cron'
                      AND name = ANY(%s) ORDER BY name""", (list(SYNC_CRONS),))
        return [row[0] for row in cr.fetchall()]


def make_due(conn, notify_conn, cron_ids, db):
    with conn.cursor() as cr:
        cr.execute("UPDATE ir_cron SET nextcall = (now() at time zone 'UTC') - interval '1 minute' WHERE id = ANY(%s)",
                   (cron_ids,))
    with notify_conn.cursor() as cr:  # the cron workers LISTEN on the postgres database, as _notifydb notifies
        cr.execute("SELECT pg_notify('cron_trigger', %s)", (db,))
    return time.time()


STATE_SQL = """
SELECT (SELECT count(*) FROM onpipeline_mailbox WHERE active AND NOT coalesce(is_sync_complete, false)),
       (SELECT count(*) FROM onpipeline_mail_message),
       (SELECT count(*) FROM mail_message WHERE message_type = 'email'),
       (SELECT count(*) FROM ir_cron WHERE id = ANY(%(crons)s) AND (nextcall <= (now() at time zone 'UTC')
            OR id IN (SELECT cron_id FROM ir_cron_trigger WHERE call_at <= (now() at time zone 'UTC'))))
"""


def wait_synced(conn, cron_ids, timeout):
    """Poll until every mailbox is caught up and no sync action is due. Returns (t_data, t_idle, state):
    the first poll that saw the final data (caught up, messages, history entries), and the idle moment."""
    deadline = time.time() + timeout
    last_data, t_data = None, None
    while time.time() < deadline:
        with conn.cursor() as cr:
            cr.execute(STATE_SQL, {"crons": cron_ids})
            pending, messages, history, due = cr.fetchone()
        now = time.time()
        data = (pending, messages, history)
        if data != last_data:
            last_data, t_data = data, now
        if not pending and not due:
            return t_data, now, {"messages": messages, "history_entries": history}
        if not due and pending:
            raise RuntimeError("the sync actions are done but %d mailboxes are not caught up" % pending)
        time.sleep(POLL_SECONDS)
    raise RuntimeError("mailboxes not caught up after %d s" % timeout)


def describe(job):
    """One run of a sync action, times in seconds from the moment the actions were made due."""
    end = "%.1f" % job["end"] if job["end"] is not None else "?"
    text = "%d in pid %d at %.1f-%s s" % (job["cron_id"], job["pid"], job["start"], end)
    if job["status"] == "failed":
        text += " FAILED (%s)" % job["error"]
    return text
