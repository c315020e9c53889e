"""Sync benchmark: one mailbox, raw IMAP download vs the engine vs the Odoo sync vs Odoo's fetchmail.

Run it through ``bench/run`` (which finds Odoo and starts PostgreSQL);
``bench/run --help`` lists the options. Every measurement runs in its own
process (peak RSS per process), several times; the table shows medians and
the ratios between parts measured in this same run.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import bare_engine  # noqa: E402  (bench/ is the script's folder; before any onpipeline_mail import)
import mailset  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = bare_engine.REPO

from onpipeline_mail.engine.connection import ServerSettings, imap_session  # noqa: E402
from onpipeline_mail.engine.testing.dovecot import Dovecot  # noqa: E402

PARTS = ("raw", "engine", "nochange", "odoo", "new100", "fetchmail", "workers", "cronserver")
MB = 1024 * 1024


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def log(*args):
    print("[%s]" % datetime.datetime.now().strftime("%H:%M:%S"), *args, flush=True)


def run_job(python, script, job, args, env=None, background=False, log_path=None):
    command = [python, os.path.join(BENCH_DIR, script), job, json.dumps(args)]
    stderr = open(log_path, "a") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
    if background:
        return process
    return job_result(process, job)


def job_result(process, job):
    out, _ = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise RuntimeError("job %s failed (exit %s): %s" % (job, process.returncode, out[-2000:]))
    return json.loads(lines[-1][len("RESULT "):])


class Bench:
    def __init__(self, options):
        self.options = options
        self.work = options.work
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o755)
        self.results = {"runs": {}, "skipped": []}
        self.odoo = None
        if os.environ.get("BENCH_PG_PORT") and os.environ.get("ODOO_BIN"):
            self.odoo = {
                "bin": os.environ["ODOO_BIN"], "python": os.environ.get("ODOO_PYTHON", sys.executable),
                "dir": os.path.dirname(os.environ["ODOO_BIN"]), "pg_port": int(os.environ["BENCH_PG_PORT"]),
                "pg_bin": os.environ["BENCH_PG_BIN"],
                "addons_path": "%s,%s" % (os.environ["ODOO_ADDONS"], REPO),
            }
        self.odoo_missing = os.environ.get("BENCH_ODOO_MISSING", "no Odoo 18 found")
        self.template_ready = False
        self.db_counter = 0
        self.profiles = []
        self.worker_accounts_filled = None

    # -- mail server ---------------------------------------------------------------------------

    def start_dovecot(self):
        self.dovecot = Dovecot(root=os.path.join(self.work, "dovecot")).start()

    def account(self, user):
        password = "pw-" + user
        self.dovecot.add_user(user, password)
        return ServerSettings("127.0.0.1", self.dovecot.tls_port, "ssl", user, password,
                              ca_file=self.dovecot.ca_file)

    @staticmethod
    def account_args(settings):
        return {"host": settings.host, "port": settings.port, "security": settings.security,
                "user": settings.username, "password": settings.password, "ca_file": settings.ca_file}

    def fill(self, settings, count, seed, days=mailset.WINDOW_DAYS):
        started = time.perf_counter()
        with imap_session(settings) as client:
            if not client.folder_exists("Sent"):
                client.create_folder("Sent")
            totals = mailset.fill(client, mailset.generate(count, settings.username, seed=seed, days=days))
        log("filled %s with %d messages in %.0f s: %s" % (
            settings.username, count, time.perf_counter() - started,
            ", ".join("%s %d (%.1f MB)" % (folder, n, size / MB) for folder, (n, size) in totals.items())))
        return totals

    # -- engine parts --------------------------------------------------------------------------

    def engine_job(self, job, settings, **extra):
        args = dict(self.account_args(settings), **extra)
        return run_job(sys.executable, "engine_job.py", job, args)

    # -- Odoo ----------------------------------------------------------------------------------

    def odoo_args(self, db, **extra):
        config = os.path.join(self.work, "odoo.conf")
        if not os.path.exists(config):
            with open(config, "w") as handle:
                handle.write("[options]\n")
        return dict(db=db, pg_port=self.odoo["pg_port"], addons_path=self.odoo["addons_path"],
                    data_dir=os.path.join(self.work, "odoo-data"), config=config, **extra)

    def odoo_env(self):
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONPATH"] = self.odoo["dir"]
        return env

    def odoo_job(self, job, db, background=False, **extra):
        return run_job(self.odoo["python"], "odoo_job.py", job, self.odoo_args(db, **extra), env=self.odoo_env(),
                       background=background, log_path=os.path.join(self.work, "odoo-jobs.log"))

    def psql(self, sql, db="postgres"):
        subprocess.run([os.path.join(self.odoo["pg_bin"], "psql"), "-h", "127.0.0.1", "-p", str(self.odoo["pg_port"]),
                        "-U", "odoo", "-d", db, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       check=True, capture_output=True)

    def make_template(self):
        if self.template_ready:
            return
        log("creating the Odoo template database (crm + onpipeline_mail, contacts and deals)")
        started = time.perf_counter()
        odoo_log = os.path.join(self.work, "odoo-install.log")
        with open(odoo_log, "w") as handle:
            subprocess.run([
                self.odoo["python"], self.odoo["bin"], "-c", self.odoo_args("x")["config"], "-d", "bench_template",
                "--db_host", "127.0.0.1", "--db_port", str(self.odoo["pg_port"]), "--db_user", "odoo",
                "--addons-path", self.odoo["addons_path"], "--data-dir", os.path.join(self.work, "odoo-data"),
                "-i", "onpipeline_mail", "--stop-after-init", "--without-demo=all", "--max-cron-threads", "0",
                "--log-level", "warn", "--http-port", "0",
            ], check=True, stdout=handle, stderr=subprocess.STDOUT, env=self.odoo_env())
        seeded = self.odoo_job("seed", "bench_template", ca_file=self.dovecot.ca_file,
                               domains=mailset.company_domains(), contacts=mailset.contacts())
        log("template ready in %.0f s: %s" % (time.perf_counter() - started, seeded))
        self.template_ready = True

    def fresh_db(self, label):
        self.make_template()
        self.db_counter += 1
        db = "bench_%s_%d" % (label, self.db_counter)
        self.psql('CREATE DATABASE "%s" TEMPLATE bench_template' % db)
        return db

    def drop_db(self, db):
        self.psql('DROP DATABASE IF EXISTS "%s"' % db)
        shutil.rmtree(os.path.join(self.work, "odoo-data", "filestore", db), ignore_errors=True)

    # -- the run -------------------------------------------------------------------------------

    def record(self, n, part, value):
        self.results["runs"].setdefault(str(n), {}).setdefault(part, []).append(value)

    def run(self):
        options = self.options
        parts = set(options.parts)
        odoo_parts = parts & {"odoo", "new100", "fetchmail", "workers", "cronserver"}
        if odoo_parts and not self.odoo:
            self.results["skipped"].append("Odoo parts (%s): %s" % (", ".join(sorted(odoo_parts)), self.odoo_missing))
            log("SKIPPED Odoo parts (%s): %s" % (", ".join(sorted(odoo_parts)), self.odoo_missing))
            parts -= odoo_parts
        self.start_dovecot()
        try:
            for n in options.n:
                self.run_n(n, parts)
            if "fetchmail" in parts:
                self.run_fetchmail()
            if "workers" in parts:
                self.run_workers()
            if "cronserver" in parts:
                self.run_cronserver()
        finally:
            self.dovecot.stop()

    def run_n(self, n, parts):
        settings = self.account("bench%d@example.test" % n)
        totals = self.fill(settings, n, seed=n)
        self.results.setdefault("mailboxes", {})[str(n)] = {
            folder: {"messages": count, "bytes": size} for folder, (count, size) in totals.items()}
        if not hasattr(self, "fetchmail_source"):
            self.fetchmail_source = settings
        self.run_engine_parts(n, settings, parts)
        if "odoo" in parts:
            self.run_odoo_parts(n, settings, parts)

    def run_engine_parts(self, n, settings, parts):
        options = self.options
        for repeat in range(options.repeat):
            for part, job, extra in (("raw", "raw", {}), ("engine", "engine", {}),
                                     ("engine_worker", "engine", {"worker": True})):
                if part.split("_")[0] in parts:
                    result = self.engine_job(job, settings, **extra)
                    self.record(n, part, result)
                    log("N=%d %s #%d: %d messages in %.2f s" % (n, part, repeat + 1, result["messages"],
                                                                result["wall"]))
        if "nochange" in parts:
            result = self.engine_job("nochange", settings, repeat=options.repeat)
            for run in result["runs"]:
                self.record(n, "engine_nochange", run)
            log("N=%d engine no-change: %s" % (n, result["runs"]))
        if options.profile and "engine" in parts:
            path = os.path.join(options.results, "profile-engine-n%d.prof" % n)
            result = self.engine_job("engine", settings, profile=path)
            self.profiles.append(("engine fetch + parse, N=%d, %.1f s under cProfile" % (n, result["wall"]), path))

    def run_odoo_parts(self, n, settings, parts):
        options = self.options
        db = None
        for repeat in range(options.odoo_repeat):
            if db:
                self.drop_db(db)
            db = self.fresh_db("n%d" % n)
            self.odoo_job("mailboxes", db, accounts=[self.account_args(settings)])
            result = self.odoo_job("sync", db, mode="cron", dovecot_pid=self.dovecot.process.pid)
            self.record(n, "odoo_first", result)
            log("N=%d odoo first sync #%d: %d messages in %.1f s, peak RSS %.0f MB (before %.0f MB), links %s" % (
                n, repeat + 1, result["messages"], result["wall"], result["peak_rss_mb"], result["rss_before_mb"],
                result["linked"] or "none"))
        if options.profile:
            self.drop_db(db)
            db = self.fresh_db("n%d" % n)
            self.odoo_job("mailboxes", db, accounts=[self.account_args(settings)])
            path = os.path.join(options.results, "profile-odoo-first-n%d.prof" % n)
            result = self.odoo_job("sync", db, mode="cron", profile=path, dovecot_pid=self.dovecot.process.pid)
            self.profiles.append(("Odoo first sync, N=%d, %.1f s under cProfile" % (n, result["wall"]), path))
        if "nochange" in parts:
            for repeat in range(options.repeat):
                result = self.odoo_job("sync", db, mode="cron", dovecot_pid=self.dovecot.process.pid)
                self.record(n, "odoo_nochange", result)
                log("N=%d odoo no-change #%d: %.2f s, commands per folder %s, per session %s" % (
                    n, repeat + 1, result["wall"], result["folder_commands"], result["session_commands"]))
        if "new100" in parts:
            for repeat in range(options.repeat):
                with imap_session(settings) as client:
                    mailset.fill(client, mailset.generate(100, settings.username, seed="new-%d-%d" % (n, repeat),
                                                          days=1))
                result = self.odoo_job("sync", db, mode="cron", dovecot_pid=self.dovecot.process.pid)
                self.record(n, "odoo_new100", result)
                log("N=%d odoo 100 new #%d: %d messages in %.2f s" % (n, repeat + 1, result["messages"],
                                                                      result["wall"]))
        check = self.odoo_job("check", db)
        self.results.setdefault("checks", {})["n%d" % n] = check
        self.drop_db(db)

    def run_fetchmail(self):
        """fetchmail marks what it reads \\Seen: it gets its own account holding a copy of the
        newest unread INBOX messages of the first mailbox."""
        options = self.options
        source = self.fetchmail_source
        target = self.account("fetchmail@example.test")
        with imap_session(source) as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")[-options.fetchmail_n:]
            fetched = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        with imap_session(target) as client:
            for start in range(0, len(uids), 100):
                client.multiappend("INBOX", [{"msg": fetched[uid][b"BODY[]"], "date": fetched[uid][b"INTERNALDATE"]}
                                             for uid in uids[start:start + 100]])
        size = sum(len(fetched[uid][b"BODY[]"]) for uid in uids)
        del fetched
        self.results["fetchmail_mailbox"] = {"messages": len(uids), "bytes": size}
        for repeat in range(options.odoo_repeat):
            with imap_session(target) as client:
                client.select_folder("INBOX")
                all_uids = client.search("ALL")
                client.remove_flags(all_uids, [b"\\Seen"])
            db = self.fresh_db("fetchmail")
            result = self.odoo_job("fetchmail", db, account=self.account_args(target))
            result["bytes"] = size
            self.record("fetchmail", "fetchmail", result)
            log("fetchmail #%d: %d messages (%d leads) in %.1f s" % (repeat + 1, result["messages"], result["leads"],
                                                                     result["wall"]))
            self.drop_db(db)

    def worker_accounts(self):
        """The mailboxes of the workers and cronserver parts (N/20 messages each), filled once."""
        options = self.options
        count = options.workers_mailboxes
        per_mailbox = max(options.workers_n // count, 1)
        if self.worker_accounts_filled is None:
            accounts = []
            for index in range(count):
                settings = self.account("worker%02d@example.test" % (index + 1))
                self.fill(settings, per_mailbox, seed="worker-%d" % index)
                accounts.append(self.account_args(settings))
            self.worker_accounts_filled = accounts
            self.results["workers_mailboxes"] = {"mailboxes": count, "messages_each": per_mailbox}
        return self.worker_accounts_filled, count, per_mailbox

    def run_workers(self):
        """20 mailboxes synced by one process, then by two at once (each calling the cron method)."""
        accounts, count, per_mailbox = self.worker_accounts()
        for workers in (1, 2):
            db = self.fresh_db("workers%d" % workers)
            self.odoo_job("mailboxes", db, accounts=accounts)
            start_at = time.time() + 20  # every process has loaded its registry by then
            processes = [self.odoo_job("sync", db, background=True, mode="method", start_at=start_at, max_calls=200)
                         for _ in range(workers)]
            time.sleep(max(start_at - time.time(), 0))
            busy_before, total_before = cpu_ticks()
            results = [job_result(process, "sync") for process in processes]
            busy_after, total_after = cpu_ticks()
            wall = max(result["t_end"] for result in results) - start_at
            check = self.odoo_job("check", db)
            stored = sum(count for _mailbox, count in check["per_mailbox"])
            summary = {"workers": workers, "wall": wall, "messages": stored,
                       "bytes": check["bytes"],
                       "per_worker": [{"messages": r["handled"], "wall": r["wall"], "cpu_s": r["cpu_s"],
                                       "calls": r["calls"]} for r in results],
                       "machine_cpu_busy": (busy_after - busy_before) / max(total_after - total_before, 1),
                       "duplicate_keys": check["duplicate_keys"], "duplicate_locations": check["duplicate_locations"],
                       "expected": per_mailbox * count}
            self.record("workers", "workers%d" % workers, summary)
            log("%d worker(s), %d mailboxes: %d messages in %.1f s, duplicates %d/%d" % (
                workers, count, stored, wall, check["duplicate_keys"], check["duplicate_locations"]))
            self.drop_db(db)

    def run_cronserver(self):
        """The workers part's mailboxes synced by a real Odoo server (odoo-bin in prefork mode) through the
        addon's two sync scheduled actions, with 1 then 2 cron worker processes, each on a fresh database."""
        import cron_server  # noqa: PLC0415

        accounts, count, per_mailbox = self.worker_accounts()
        expected = per_mailbox * count
        for cron_workers in (1, 2) * self.options.cronserver_repeat:
            db = self.fresh_db("cronserver%d" % cron_workers)
            self.odoo_job("mailboxes", db, accounts=accounts)
            log_path = os.path.join(self.work, "odoo-cronserver-%d.log" % cron_workers)
            conn, notify = cron_server.connect(self.odoo, db), cron_server.connect(self.odoo, "postgres")
            cron_ids = cron_server.prepare(conn)
            server = cron_server.OdooServer(self.odoo, self.odoo_args(db), db, cron_workers, cron_server.HTTP_WORKERS,
                                            log_path, self.odoo_env(), limits=self.options.cronserver_limits)
            try:
                server.start()
                startup = server.wait_ready(notify)
                roots = {"odoo-bin": server.process.pid, "postgresql": cron_server.postmaster_pid(conn),
                         "dovecot": self.dovecot.process.pid}
                cron_pids = server.workers()[0]["WorkerCron"]
                cpu_before = {pid: cron_server.process_cpu(pid) for pid in cron_pids}
                trees_before = {name: cron_server.tree_cpu(pid) for name, pid in roots.items()}
                busy_before, total_before = cpu_ticks()
                t0 = cron_server.make_due(conn, notify, cron_ids, db)
                t_data, t_idle, state = cron_server.wait_synced(conn, cron_ids, timeout=600 + expected / 5)
                busy_after, total_after = cpu_ticks()
                trees = {name: cron_server.tree_cpu(pid) - trees_before[name] for name, pid in roots.items()}
                cron_pids = server.workers()[0]["WorkerCron"]  # with any started again after a limit killed one
                cpu = {pid: cron_server.process_cpu(pid) for pid in cron_pids}  # None: gone (killed)
                cpu = {pid: None if now is None else now - cpu_before.get(pid, 0.0) for pid, now in cpu.items()}
                nice = {pid: cron_server.process_nice(pid) for pid in cron_pids}
                history_duplicates = cron_server.history_duplicates(conn)
            finally:
                exit_code = server.stop()
                conn.close()
                notify.close()
            jobs = [dict(job, start=job["start"] - t0, end=job["end"] and job["end"] - t0)
                    for job in server.jobs() if job["cron_id"] in cron_ids]
            problems, problem_lines = server.problems()
            check = self.odoo_job("check", db)
            stored = sum(number for _mailbox, number in check["per_mailbox"])
            summary = {
                "cron_workers": cron_workers, "wall": t_data - t0, "wall_idle": t_idle - t0, "startup_s": startup,
                "first_job_s": min((job["start"] for job in jobs), default=None),
                "messages": stored, "bytes": check["bytes"], "expected": expected,
                "history_entries": state["history_entries"], "history_duplicates": history_duplicates,
                "failed_jobs": sum(job["status"] == "failed" for job in jobs),
                "duplicate_keys": check["duplicate_keys"], "duplicate_locations": check["duplicate_locations"],
                "jobs": jobs, "overlap_s": cron_server.overlap(jobs, cron_ids),
                "per_worker": [{"pid": pid, "cpu_s": cpu[pid], "nice": nice[pid],
                                "jobs": sum(job["pid"] == pid for job in jobs)} for pid in cron_pids],
                "machine_cpu_busy": (busy_after - busy_before) / max(total_after - total_before, 1),
                "cpu_s": dict(trees, machine=(busy_after - busy_before) / os.sysconf("SC_CLK_TCK")),
                "log_problems": problems, "log_problem_lines": problem_lines, "server_exit": exit_code,
                "limits": self.options.cronserver_limits, "limit_hits": server.limit_hits(),
                "command": " ".join(server.command[1:]),
            }
            self.record("cronserver", "cronserver%d" % cron_workers, summary)
            log("Odoo server, %d cron worker(s), %d mailboxes: %d messages in %.1f s (idle after %.1f s, "
                "start-up %.1f s), duplicates %d/%d, history duplicates %d, sync jobs %s, run at once for %.1f s" % (
                    cron_workers, count, stored, summary["wall"], summary["wall_idle"], startup,
                    check["duplicate_keys"], check["duplicate_locations"], history_duplicates,
                    "; ".join(cron_server.describe(job) for job in jobs), summary["overlap_s"]))
            self.drop_db(db)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="10000",
                        help="mailbox sizes, comma-separated (default 10000; e.g. 10000,50000)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="what to measure, comma-separated among %s (default: all)" % ",".join(PARTS))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each quick part (default 3)")
    parser.add_argument("--odoo-repeat", type=int, default=3,
                        help="first syncs into a fresh database, and fetchmail runs (default 3)")
    parser.add_argument("--fetchmail-n", type=int, default=500, help="messages fetchmail imports (default 500)")
    parser.add_argument("--workers-n", type=int, default=10000,
                        help="messages over all mailboxes of the workers part (default 10000)")
    parser.add_argument("--workers-mailboxes", type=int, default=20)
    parser.add_argument("--cronserver-repeat", type=int, default=1,
                        help="runs of the cronserver part with 1 and with 2 cron workers, alternated (default 1)")
    parser.add_argument("--cronserver-limits", choices=("lifted", "odoo"), default="lifted",
                        help="cronserver: Odoo's prefork time limits for the cron workers lifted (default), or "
                             "left at Odoo's defaults (120 s real per round of jobs, 60 s CPU)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the engine and the Odoo first sync once under cProfile (not timed); "
                             "writes .prof files and their top functions next to the results")
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--results", default=os.path.join(BENCH_DIR, "results"))
    options = parser.parse_args(argv)
    options.n = [int(value) for value in options.n.split(",") if value]
    options.parts = [part for part in options.parts.split(",") if part]
    unknown = set(options.parts) - set(PARTS)
    if unknown:
        parser.error("unknown parts: %s" % ", ".join(sorted(unknown)))
    options.work = options.work or os.environ.get("BENCH_WORK") or "/tmp/onpipeline-bench-%d" % os.getpid()

    import report  # noqa: PLC0415

    os.makedirs(options.results, exist_ok=True)
    bench = Bench(options)
    started = time.time()
    bench.results["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(), "machine": platform.platform(), "python": platform.python_version(),
        "options": {key: value for key, value in vars(options).items() if key not in ("work", "results")},
        "git": os.environ.get("BENCH_GIT_REV") or subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    try:
        bench.run()
    finally:
        bench.results["meta"]["duration_s"] = round(time.time() - started)
        text = report.render(bench.results)
        print(text)
        os.makedirs(options.results, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%MZ")
        name = "%s-n%s-%dcores" % (stamp, "+".join(map(str, options.n)), os.cpu_count())
        with open(os.path.join(options.results, name + ".json"), "w") as handle:
            json.dump(bench.results, handle, indent=1, default=str)
        with open(os.path.join(options.results, name + ".txt"), "w") as handle:
            handle.write(text + "\n")
            for title, path in bench.profiles:
                handle.write("\n" + report.profile_text(title, path))
        log("results written to %s.{json,txt}" % os.path.join(options.results, name))


if __name__ == "__main__":
    main()
