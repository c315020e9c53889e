"""Odoo-side benchmark jobs, one per process, run with Odoo's python.

    python bench/odoo_job.py JOB JSON_ARGS

``JSON_ARGS`` holds the database connection (``db``, ``pg_port``,
``addons_path``, ``data_dir``, ``config``) and the job's own arguments.
Prints one ``RESULT {json}`` line. Jobs:

* ``seed``: companies, contacts and open deals for the mail set's contacts,
  the private CA and large sync budgets (ir.config_parameter);
* ``mailboxes``: one team mailbox per account (login checked and folders
  listed on save, Inbox and Sent selected by default, 6-month window);
* ``sync``: the scheduled action end to end (``ir.cron.method_direct_trigger``,
  as *Run manually* does) or ``_cron_sync_mailboxes`` called directly
  (``mode=method``, what each of several cron workers does), repeated until
  every mailbox is caught up; wall time, messages stored, peak RSS, IMAP
  commands per folder, CPU seconds of each process doing the work (:class:`CpuMeter`);
* ``fetchmail``: Odoo's own incoming mail server (``fetchmail.server``,
  IMAP over SSL, creating leads) fetching the unread mail of one account;
* ``check``: duplicates per mailbox (message keys, folder locations).
"""

import collections
import contextlib
import cProfile
import functools
import json
import os
import resource
import sys
import threading
import time

from cron_server import process_cpu, stat, tree_cpu  # noqa: E402  (bench/ is the script's folder)
from procstat import memory  # noqa: E402

import odoo
from odoo import SUPERUSER_ID, api
from odoo.tools import config

EMPTY_PARAMS = {"onpipeline_mail.sync_time_budget": "1000000", "onpipeline_mail.sync_mailbox_budget": "1000000"}


def open_registry(args):
    config.parse_config([
        "-c", args["config"], "-d", args["db"], "--db_host", "127.0.0.1", "--db_port", str(args["pg_port"]),
        "--db_user", "odoo", "--addons-path", args["addons_path"], "--data-dir", args["data_dir"],
        "--max-cron-threads", "0", "--log-level", args.get("log_level", "warn"),
    ])
    return odoo.modules.registry.Registry(args["db"])


@contextlib.contextmanager
def environment(registry):
    with registry.cursor() as cr:
        yield api.Environment(cr, SUPERUSER_ID, {})


def link_fields(env):
    """How synced messages link to contacts and deals, if the linking code (issue 4) is installed:
    the ``onpipeline.mail.link`` model, else relational fields of the message to res.partner/crm.lead."""
    if "onpipeline.mail.link" in env:
        return ["onpipeline.mail.link"]
    Message = env["onpipeline.mail.message"]
    return sorted(name for name, field in Message._fields.items()
                  if field.type in ("many2one", "many2many", "one2many")
                  and field.comodel_name in ("res.partner", "crm.lead") and not field.related)


def count_links(env, links, mailbox_ids):
    """Linked messages, and links to contacts and to deals, of the given mailboxes."""
    if links == ["onpipeline.mail.link"]:
        Link = env["onpipeline.mail.link"].with_context(active_test=False)
        domain = [("message_id.mailbox_id", "in", mailbox_ids)]
        return {"messages linked": len(Link.search(domain).message_id),
                "contact links": Link.search_count(domain + [("partner_id", "!=", False)]),
                "deal links": Link.search_count(domain + [("lead_id", "!=", False), ("is_candidate", "=", False)])}
    Message = env["onpipeline.mail.message"]
    return {name: Message.search_count([("mailbox_id", "in", mailbox_ids), (name, "!=", False)]) for name in links}


def job_seed(env, args):
    params = env["ir.config_parameter"].sudo()
    with open(args["ca_file"]) as ca_file:
        params.set_param("onpipeline_mail.extra_ca_pem", ca_file.read())
    # ONPIPELINE_BENCH_PARAMS='{"onpipeline_mail.parse_in_worker": "0"}' bench/run ...: compare settings.
    for key, value in dict(EMPTY_PARAMS, **json.loads(os.environ.get("ONPIPELINE_BENCH_PARAMS") or "{}")).items():
        params.set_param(key, value)
    Partner = env["res.partner"]
    companies = {}
    for domain in args["domains"]:
        name = domain.split(".")[0].replace("-", " ").title()
        companies[domain] = Partner.create({"name": name, "is_company": True, "email": "info@%s" % domain,
                                           "website": "https://www.%s" % domain})
    contacts = Partner.create([{"name": name, "email": address, "parent_id": companies[address.split("@")[1]].id}
                               for name, address in args["contacts"]])
    env["crm.lead"].create([{"name": "Deal with %s" % contact.name, "type": "opportunity", "partner_id": contact.id,
                             "email_from": contact.email} for contact in contacts])
    return {"companies": len(companies), "contacts": len(contacts), "deals": len(contacts)}


def job_mailboxes(env, args):
    Mailbox = env["onpipeline.mailbox"]
    created = []
    for index, account in enumerate(args["accounts"]):
        team = env["crm.team"].create({"name": "Bench team %d" % (index + 1)})
        mailbox = Mailbox.create({
            "mailbox_type": "team", "team_id": team.id, "email": account["user"],
            "imap_host": "127.0.0.1", "imap_port": account["port"], "imap_security": "ssl",
            "imap_password_input": account["password"], "smtp_host": "127.0.0.1", "smtp_port": 25,
            "smtp_security": "none", "sync_window": "6m",
        })
        if mailbox.state != "connected":
            raise RuntimeError("mailbox %s did not connect: %s" % (account["user"], mailbox.last_error))
        created.append({"id": mailbox.id, "folders": mailbox.folder_ids.filtered("is_selected").mapped("name")})
    return {"mailboxes": created}


class CommandCounter:
    """IMAP commands (= round trips: imapclient does not pipeline) per folder sync and per session."""

    def __init__(self):
        self.folders = []
        self.sessions = []
        self.stored = 0  # messages handed to _store_batch by this process

    @contextlib.contextmanager
    def install(self):
        from odoo.addons.onpipeline_mail.engine import sync as engine_sync
        from odoo.addons.onpipeline_mail.models import onpipeline_mail_message as message_module
        from odoo.addons.onpipeline_mail.models import onpipeline_mailbox_sync as module

        original_session = module.connection.imap_session
        original_folder = module.OnpipelineMailboxFolder._sync_folder
        original_store = message_module.OnpipelineMailMessage._store_batch
        counter = self

        def _store_batch(model, folder, uidvalidity, fetched):
            counter.stored += len(fetched)
            return original_store(model, folder, uidvalidity, fetched)

        @contextlib.contextmanager
        def imap_session(settings, **kwargs):
            with original_session(settings, **kwargs) as client:
                yield client
                counter.sessions.append(engine_sync.command_count(client) + 1)  # + LOGOUT

        def _sync_folder(folder, client, commit, deadline, **options):
            before = engine_sync.command_count(client)
            try:
                return original_folder(folder, client, commit, deadline, **options)
            finally:
                counter.folders.append((folder.name, engine_sync.command_count(client) - before))

        module.connection.imap_session = imap_session
        module.OnpipelineMailboxFolder._sync_folder = _sync_folder
        message_module.OnpipelineMailMessage._store_batch = _store_batch
        try:
            yield self
        finally:
            module.connection.imap_session = original_session
            module.OnpipelineMailboxFolder._sync_folder = original_folder
            message_module.OnpipelineMailMessage._store_batch = original_store


class PhaseTimer:
    """Wall seconds spent in each phase of a sync (not nested in one another), without a profiler.

    parse and fetch: the engine (fetch: IMAP as far as the sync waits for it: a batch fetched
    ahead on a thread counts only for the wait); store: messages, locations and attachments
    (``_store_batch`` without linking); link: contacts and deals (``_link``);
    history: chatter entries (``_post_history``, or, when threads write them over
    several connections, the sync's wait for those threads: ``_post_history_chunks``);
    commit: flush of pending writes and computed fields, and the COMMIT.
    """

    def __init__(self):
        self.seconds = collections.Counter()
        #: Peak RSS of the parse worker processes (their own memory, beside the sync process's).
        self.worker_peak_mb = 0.0
        #: True while the sync's thread is in a timed call.
        self.timing = False

    def _wrap(self, phase, function):
        seconds = self.seconds
        sync_thread = threading.current_thread()
        timer = self

        @functools.wraps(function)
        def timed(*args, **kwargs):
            if threading.current_thread() is not sync_thread:
                # The batch fetched ahead on a thread overlaps the sync's own work: what the
                # sync thread waits for it is counted (ReadAhead.__next__), not its fetch.
                return function(*args, **kwargs)
            if timer.timing:
                # Inside another timed call (collect parsing a batch here, _link deferring the
                # history): already counted by the outer one, whose phase it belongs to.
                return function(*args, **kwargs)
            timer.timing = True
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timer.timing = False
                seconds[phase] += time.perf_counter() - started
        return timed

    @contextlib.contextmanager
    def install(self):
        from odoo import sql_db

        from odoo.addons.onpipeline_mail.engine import fetch as engine_fetch
        from odoo.addons.onpipeline_mail.engine import parse as engine_parse
        from odoo.addons.onpipeline_mail.engine import parse_worker, read_ahead
        from odoo.addons.onpipeline_mail.models import onpipeline_mail_message as message_module
        from odoo.addons.onpipeline_mail.models import onpipeline_mail_message_history as history_module
        from odoo.addons.onpipeline_mail.models import onpipeline_mail_message_link as link_module
        from odoo.addons.onpipeline_mail.models import onpipeline_mailbox_history as mailbox_history_module

        targets = [
            # Parsing here, or waiting for the parse worker's results (its parsing overlaps storing).
            (engine_parse, "parse_message", "parse"), (parse_worker.ParseWorker, "collect", "parse"),
            (engine_fetch, "fetch_messages", "fetch"), (read_ahead.ReadAhead, "__next__", "fetch"),
            (message_module.OnpipelineMailMessage, "_store_batch", "store"),
            (link_module.OnpipelineMailMessage, "_link", "link"),
            (history_module.OnpipelineMailMessage, "_post_history", "history"),
            # Its _post_history calls run on its threads, which _wrap does not time.
            (mailbox_history_module.OnpipelineMailbox, "_post_history_chunks", "history"),
            (sql_db.Cursor, "commit", "commit"),
        ]
        originals = [(owner, name, getattr(owner, name)) for owner, name, _phase in targets]
        for owner, name, phase in targets:
            setattr(owner, name, self._wrap(phase, getattr(owner, name)))
        originals.append((parse_worker.ParseWorker, "close", parse_worker.ParseWorker.close))
        timer, close = self, parse_worker.ParseWorker.close

        def close_and_measure(worker):
            if worker.is_running:
                timer.worker_peak_mb = max(timer.worker_peak_mb, memory(worker._process.pid)[0])
            return close(worker)

        parse_worker.ParseWorker.close = close_and_measure
        try:
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)


class CpuMeter:
    """CPU seconds (user + system) that the processes doing the sync's work spent between
    :meth:`start` and :meth:`stop`, to show the floor of a CPU-bound sync on a small machine.

    * ``sync_process``: this process, every thread (``os.times()``), without Odoo's loading before;
    * ``parse_worker``: its children (the parse worker): ``os.times()`` counts a child once it
      was waited for, which ``ParseWorker.close`` does when the mailbox's sync ends; a child still
      alive at :meth:`stop` is read from /proc instead (``children_alive`` says how many);
    * ``postgresql``: the backends connected to the bench database (``pg_stat_activity`` at start and
      stop; one that appeared in between counts from 0, one that exited in between is lost, and
      ``backends_gone`` says how many);
    * ``postgresql_cluster``: the bench's private cluster as a whole (postmaster, its live and exited
      children): those backends plus the WAL writer, checkpointer, autovacuum and any parallel worker;
    * ``dovecot``: the bench's Dovecot, master and every child (imap, imap-login with the TLS, auth),
      live or exited.
    """

    def __init__(self, registry, dovecot_pid=None):
        self.registry = registry
        self.dovecot_pid = dovecot_pid
        self.before = None

    def _servers(self):
        """CPU seconds so far of the database's backends (by pid), of the cluster and of Dovecot."""
        with environment(self.registry) as env:
            env.cr.execute("SELECT pg_backend_pid(), array_agg(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database()")
            own_backend, pids = env.cr.fetchone()
        postmaster = int(stat(own_backend)[1])
        backends = {pid: process_cpu(pid) for pid in pids}
        return {"backends": {pid: cpu for pid, cpu in backends.items() if cpu is not None},
                "cluster": tree_cpu(postmaster),
                "dovecot": tree_cpu(self.dovecot_pid) if self.dovecot_pid else None}

    @staticmethod
    def _children():
        """CPU seconds so far of this process's live children, by pid."""
        own = str(os.getpid())
        cpu = {}
        for entry in os.listdir("/proc"):
            fields = stat(int(entry)) if entry.isdigit() else None
            if fields and fields[1] == own:
                cpu[int(entry)] = process_cpu(int(entry))
        return {pid: value for pid, value in cpu.items() if value is not None}

    def start(self):
        # The servers are read first and this process last, so that reading /proc and the
        # database costs the sync process nothing it is charged for.
        self.before = (self._servers(), self._children(), os.times())

    def stop(self):
        times = os.times()
        children = self._children()
        servers = self._servers()
        servers_before, children_before, times_before = self.before
        backends_before = servers_before["backends"]
        dovecot = None
        if servers["dovecot"] is not None and servers_before["dovecot"] is not None:
            dovecot = servers["dovecot"] - servers_before["dovecot"]
        return {
            "sync_process": (times.user + times.system) - (times_before.user + times_before.system),
            "parse_worker": (times.children_user + times.children_system
                             - times_before.children_user - times_before.children_system
                             + sum(cpu - children_before.get(pid, 0.0) for pid, cpu in children.items())),
            "children_alive": len(children),
            "postgresql": sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in servers["backends"].items()),
            "backends": len(servers["backends"]),
            "backends_gone": len(set(backends_before) - set(servers["backends"])),
            "postgresql_cluster": servers["cluster"] - servers_before["cluster"],
            "dovecot": dovecot,
        }


def _totals(env, mailbox_ids=None):
    cr = env.cr
    where, params = ("WHERE mailbox_id = ANY(%s)", [mailbox_ids]) if mailbox_ids else ("", [])
    cr.execute("SELECT count(*), coalesce(sum(size), 0) FROM onpipeline_mail_message " + where, params)
    return cr.fetchone()


def job_sync(registry, args):
    with environment(registry) as env:
        mailbox_ids = env["onpipeline.mailbox"].search([]).ids
        count_before, bytes_before = _totals(env, mailbox_ids)
        links = link_fields(env)
    _peak, rss_before = memory()
    if args.get("start_at"):
        # Several workers start together, once each has loaded its registry.
        time.sleep(max(args["start_at"] - time.time(), 0))
    counter = CommandCounter()
    phases = PhaseTimer()
    calls = 0
    cpu_meter = CpuMeter(registry, args.get("dovecot_pid"))
    cpu_meter.start()
    profiler = cProfile.Profile() if args.get("profile") else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    cpu_started = time.process_time()
    with counter.install(), phases.install():
        while True:
            calls += 1
            with environment(registry) as env:
                if args.get("mode", "cron") == "cron":
                    env.ref("onpipeline_mail.ir_cron_onpipeline_mail_sync").method_direct_trigger()
                else:
                    env["onpipeline.mailbox"]._cron_sync_mailboxes()
                env.cr.commit()
                pending = env["onpipeline.mailbox"].search_count([("is_sync_complete", "=", False)])
            if not pending or calls >= args.get("max_calls", 20) or args.get("once"):
                break
            if args.get("mode") == "method":
                time.sleep(0.5)  # the rest is locked by another worker
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    t_end = time.time()
    if profiler:
        profiler.disable()
    cpu_seconds = cpu_meter.stop()
    if profiler:
        profiler.dump_stats(args["profile"])
    peak, rss_after = memory()
    with environment(registry) as env:
        count_after, bytes_after = _totals(env, mailbox_ids)
        linked = count_links(env, links, mailbox_ids) if links else {}
        errors = env["onpipeline.mailbox"].search_read([("last_sync_error", "!=", False)], ["email", "last_sync_error"])
        failures = env["onpipeline.mail.sync.failure"].search_count([])
    folder_commands = {}
    for name, commands in counter.folders:
        folder_commands.setdefault(name, []).append(commands)
    return {
        "wall": wall, "cpu_s": cpu, "handled": counter.stored, "t_end": t_end,
        "messages": count_after - count_before, "bytes": int(bytes_after - bytes_before),
        "stored_total": count_after, "calls": calls, "pending": pending,
        "rss_before_mb": rss_before, "rss_after_mb": rss_after, "peak_rss_mb": peak,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": phases.worker_peak_mb,
        "folder_commands": folder_commands, "session_commands": counter.sessions,
        "link_fields": links, "linked": linked, "errors": errors, "failures": failures,
        "phases": {phase: round(seconds, 3) for phase, seconds in phases.seconds.items()},
        "cpu_seconds": {key: round(value, 3) if isinstance(value, float) else value
                        for key, value in cpu_seconds.items()},
    }


def job_fetchmail(env, args):
    account = args["account"]
    model = env["ir.model"]._get("crm.lead")
    server = env["fetchmail.server"].create({
        "name": "Bench fetchmail", "server_type": "imap", "server": "127.0.0.1", "port": account["port"],
        "is_ssl": True, "user": account["user"], "password": account["password"], "object_id": model.id,
    })
    server.write({"state": "done"})
    env.cr.execute("SELECT count(*) FROM crm_lead")
    leads_before = env.cr.fetchone()[0]
    env.cr.execute("SELECT count(*) FROM mail_message WHERE model = 'crm.lead' AND message_type = 'email'")
    messages_before = env.cr.fetchone()[0]
    env.cr.commit()
    started = time.perf_counter()
    server.fetch_mail()
    wall = time.perf_counter() - started
    env.cr.execute("SELECT count(*) FROM crm_lead")
    leads = env.cr.fetchone()[0] - leads_before
    env.cr.execute("SELECT count(*) FROM mail_message WHERE model = 'crm.lead' AND message_type = 'email'")
    messages = env.cr.fetchone()[0] - messages_before
    peak, _rss = memory()
    return {"wall": wall, "messages": messages, "leads": leads, "peak_rss_mb": peak}


def job_check(env, args):
    cr = env.cr
    cr.execute("""SELECT count(*) FROM (SELECT mailbox_id, message_key FROM onpipeline_mail_message
                  GROUP BY mailbox_id, message_key HAVING count(*) > 1) d""")
    duplicate_keys = cr.fetchone()[0]
    cr.execute("""SELECT count(*) FROM (SELECT folder_id, uidvalidity, uid FROM onpipeline_mail_message_location
                  GROUP BY folder_id, uidvalidity, uid HAVING count(*) > 1) d""")
    duplicate_locations = cr.fetchone()[0]
    cr.execute("SELECT mailbox_id, count(*) FROM onpipeline_mail_message GROUP BY mailbox_id ORDER BY mailbox_id")
    per_mailbox = cr.fetchall()
    cr.execute("SELECT coalesce(sum(size), 0) FROM onpipeline_mail_message")
    total_bytes = int(cr.fetchone()[0])
    return {"duplicate_keys": duplicate_keys, "duplicate_locations": duplicate_locations,
            "per_mailbox": per_mailbox, "bytes": total_bytes}


ENV_JOBS = {"seed": job_seed, "mailboxes": job_mailboxes, "fetchmail": job_fetchmail, "check": job_check}

if __name__ == "__main__":
    name, job_args = sys.argv[1], json.loads(sys.argv[2])
    registry = open_registry(job_args)
    if name == "sync":
        result = job_sync(registry, job_args)
    else:
        with environment(registry) as job_env:
            result = ENV_JOBS[name](job_env, job_args)
            job_env.cr.commit()
    print("RESULT " + json.dumps(result, default=str))
