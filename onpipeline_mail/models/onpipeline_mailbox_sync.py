"""Syncing a mailbox: the ORM side of the engine's ``sync_folder`` batches.

Each batch is stored together with the folder's new sync position in one
transaction, then committed by the caller: a sync killed at any point
resumes from the last committed batch and, since messages are deduplicated
by key and locations by (folder, UIDVALIDITY, UID), nothing is imported
twice and nothing is lost.
"""

import contextlib
import datetime
import logging
import os
import resource
import threading
import time

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

# connection: bench/odoo_job.py counts the sync's IMAP sessions through this module's import.
from ..engine import connection, errors, parse_worker, sync  # noqa: F401
from ..engine.state import FolderState

_logger = logging.getLogger(__name__)

DEFAULT_TIME_BUDGET = 240  # seconds of syncing per cron run, over all mailboxes
DEFAULT_MAILBOX_BUDGET = 60  # seconds per mailbox and run, so one huge mailbox cannot starve the others
DEFAULT_BATCH_SIZE = 200
DEFAULT_MAX_MESSAGE_MB = 25
#: Messages in a folder from which the parse worker sanitizes bodies too (loading the sanitizer costs ~1 s).
SANITIZE_IN_WORKER_MIN = 2000
#: Waits after the 1st, 2nd... consecutive failed run of a mailbox; the last repeats.
AUTH_BACKOFF = (datetime.timedelta(hours=1), datetime.timedelta(hours=4), datetime.timedelta(hours=12),
                datetime.timedelta(days=1))
CONNECT_BACKOFF = (datetime.timedelta(minutes=5), datetime.timedelta(minutes=15), datetime.timedelta(hours=1))
#: Odoo runs one ir.cron record in one worker at a time; with two records two workers sync at
#: once, each skipping the mailboxes the other holds (advisory lock below).
SYNC_CRONS = ("onpipeline_mail.ir_cron_onpipeline_mail_sync", "onpipeline_mail.ir_cron_onpipeline_mail_sync_2")
#: Namespace of the PostgreSQL advisory locks that keep two workers off one mailbox.
LOCK_NAMESPACE = 0x6F6E70  # "onp"
#: A folder renumbered (UIDVALIDITY) this many times, each within RESYNC_STREAK of the one before,
#: is paused instead of being read again from scratch at every run (Nylas' MAX_UIDINVALID_RESYNCS).
MAX_UIDINVALID_RESYNCS = 5
RESYNC_STREAK = datetime.timedelta(days=1)
#: A prefork cron worker sleeps up to odoo.service.server.SLEEP_INTERVAL (60 s) + 9 s before a round of
#: jobs, and its watchdog (limit_time_real_cron) counts from before that sleep.
PREFORK_SLEEP = 70
#: Two runs of the sync cron closer than this belong to one round of jobs (Odoo runs a job that reports
#: remaining work again at once, up to 10 times, within the same time limit).
ROUND_GAP = 2.0
_prefork_round = {"start": None, "end": None}


def cpu_seconds_left():
    """CPU seconds this process may still use, or None without a limit.

    Odoo's prefork cron workers get an RLIMIT_CPU of ``--limit-time-cpu`` (60 s by
    default) per round of jobs, and die past it (SIGXCPU), up to 10 runs of a job
    that reports remaining work included. The parse worker's CPU is its own.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_CPU)
    if soft == resource.RLIM_INFINITY:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return soft - (usage.ru_utime + usage.ru_stime)


def cron_time_limit(options=config):
    """Real seconds Odoo lets a round of cron jobs run before it kills it, or None (odoo/service/server.py).

    Prefork cron workers: ``limit_time_real_cron``; -1 (the default) means ``limit_time_real``,
    0 no limit. Threaded server: ``limit_time_real_cron`` when positive, else ``limit_time_real``
    (0 there falls back too). A limit of 0 or less is none.
    """
    cron = options.get("limit_time_real_cron") or 0
    real = options.get("limit_time_real") or 0
    if cron > 0:
        return cron
    if options.get("workers") and cron == 0:
        return None
    return real if real > 0 else None


def real_seconds_left(options=config, thread=None):
    """Real seconds this round of cron jobs may still use before Odoo kills it, or None without a limit.

    Threaded server: the round started at the cron thread's ``start_time``. Prefork: the
    watchdog counted the worker's sleep before the round (assumed at its longest, but never more
    than half the limit) and the runs of this round so far. Elsewhere (tests, shell) the run starts now.
    """
    limit = cron_time_limit(options)
    if limit is None:
        return None
    started = getattr(thread or threading.current_thread(), "start_time", None)
    if started:
        return limit - (time.time() - started)
    if not options.get("workers"):
        return limit
    now = time.monotonic()
    if _prefork_round["start"] is None or _prefork_round["end"] is None or now - _prefork_round["end"] > ROUND_GAP:
        _prefork_round["start"] = now
    return limit - min(PREFORK_SLEEP, limit / 2) - (now - _prefork_round["start"])


def run_budget(budget, cpu_left, real_left=None):
    """Seconds a scheduled run may sync: the configured budget, ending well before a CPU or real-time
    limit (the sync uses about one CPU second per second; a batch in progress is finished)."""
    for left in (cpu_left, real_left):
        if left is not None:
            budget = min(budget, left * 0.7 - 5)
    return max(budget, 0)


class SyncBusy(Exception):
    """Another worker is syncing this mailbox right now."""


class OnpipelineMailbox(models.Model):
    _inherit = "onpipeline.mailbox"

    synced_message_ids = fields.One2many("onpipeline.mail.message", "mailbox_id", "Synced Emails")
    message_count = fields.Integer("Emails", compute="_compute_sync_counts")
    failure_ids = fields.One2many("onpipeline.mail.sync.failure", "mailbox_id", "Sync Failures",
                                  domain=[("state", "=", "pending")])
    failure_count = fields.Integer("Failed Emails", compute="_compute_sync_counts")
    last_sync_date = fields.Datetime("Last Successful Sync", readonly=True, copy=False)
    last_sync_error = fields.Text(readonly=True, copy=False)
    last_sync_error_date = fields.Datetime(readonly=True, copy=False)
    sync_error_count = fields.Integer(readonly=True, copy=False, help="Consecutive failed sync runs.")
    next_sync_date = fields.Datetime(readonly=True, copy=False, help="No sync before this time (after errors).")
    is_sync_complete = fields.Boolean(
        "Caught Up", readonly=True, copy=False,
        help="The last run reached the end of every selected folder within its time budget.")
    sync_progress = fields.Char("First Sync", compute="_compute_sync_counts")

    @api.depends("synced_message_ids", "failure_ids", "folder_ids.window_total", "folder_ids.message_count")
    def _compute_sync_counts(self):
        Message = self.env["onpipeline.mail.message"]
        counts = dict(Message._read_group([("mailbox_id", "in", self.ids)], ["mailbox_id"], ["__count"]))
        for mailbox in self:
            mailbox.message_count = counts.get(mailbox._origin, 0)
            mailbox.failure_count = len(mailbox.failure_ids)
            selected = mailbox.folder_ids.filtered("is_selected")
            total = sum(selected.mapped("window_total"))
            done = sum(min(folder.message_count, folder.window_total) for folder in selected)
            mailbox.sync_progress = _("%(done)s / %(total)s", done=done, total=total) if total else False

    # ------------------------------------------------------------------
    # Entry points
    # ------------------------------------------------------------------

    @api.model
    def _cron_sync_mailboxes(self):
        """Scheduled action: sync every connected mailbox within a time budget, committing per batch."""
        params = self.env["ir.config_parameter"].sudo()
        budget = int(params.get_param("onpipeline_mail.sync_time_budget", DEFAULT_TIME_BUDGET))
        deadline = time.monotonic() + run_budget(budget, cpu_seconds_left(), real_seconds_left())
        mailboxes = self.sudo()._mailboxes_due()
        synced, busy, failed = self.browse(), self.browse(), self.browse()
        try:
            for mailbox in mailboxes:
                if time.monotonic() >= deadline:
                    break
                try:
                    mailbox._sync(commit=self.env.cr.commit, deadline=deadline)
                    synced |= mailbox
                except SyncBusy:
                    # Another worker (the second sync cron) has it: go on with the next one.
                    _logger.info("Mailbox %s is being synced by another worker: skipped", mailbox.id)
                    busy |= mailbox
                except psycopg2.errors.TransactionRollbackError as exc:
                    # A concurrent update or a deadlock with another worker: what was committed stays, the rest
                    # is done at the next run; the other mailboxes of this run go on.
                    _logger.warning("Mailbox %s: sync stopped by a concurrent update (%s); retried next run",
                                    mailbox.id, exc.pgcode)
                    busy |= mailbox
                except Exception as exc:  # one mailbox's problem never stops the others
                    # Settings that cannot be used (an unreadable CA...) or a bug: the mailbox is put in error
                    # with the reason (the sync lock rolled back its unfinished batch) and the loop goes on.
                    _logger.exception("Mailbox %s: sync failed unexpectedly", mailbox.id)
                    mailbox._record_sync_error(exc)
                    failed |= mailbox
                self.env.cr.commit()
        finally:
            _prefork_round["end"] = time.monotonic()
        unvisited = mailboxes - synced - busy - failed
        remaining = len(unvisited) + len(synced.filtered(lambda m: not m.is_sync_complete))
        self.env["ir.cron"]._notify_progress(done=len(synced), remaining=remaining)

    def _sync_crons(self):
        """The scheduled actions that sync mailboxes: several, so that Odoo's cron workers share the work."""
        return self.env["ir.cron"].sudo().browse(
            [cron.id for cron in (self.env.ref(xmlid, raise_if_not_found=False) for xmlid in SYNC_CRONS) if cron])

    def _trigger_sync(self):
        for cron in self._sync_crons():
            cron._trigger()

    def _mailboxes_due(self):
        now = fields.Datetime.now()
        mailboxes = self.search([
            ("active", "=", True), ("state", "in", ("connected", "error")),
            "|", ("next_sync_date", "=", False), ("next_sync_date", "<=", now),
        ])
        mailboxes = mailboxes.filtered(lambda m: m._has_imap_credentials() and (
            m.mailbox_type == "team" or m.user_id.has_group("onpipeline_mail.group_personal_mailbox")))
        # Unfinished first syncs and the longest-waiting mailboxes go first.
        return mailboxes.sorted(lambda m: (m.is_sync_complete, m.last_sync_date or datetime.datetime.min))

    def action_sync_now(self):
        """Sync now (button): a bounded run in this request; the scheduled action continues if needed."""
        self.check_access("read")
        before = sum(self.mapped("message_count"))
        for mailbox in self.sudo():
            if mailbox.state == "not_connected":
                raise UserError(_("%s is not connected: check its settings first.", mailbox.display_name))
            try:
                mailbox._sync(commit=None, deadline=time.monotonic() + DEFAULT_MAILBOX_BUDGET / 2, manual=True)
            except SyncBusy:
                raise UserError(_("%s is already being synced. Try again in a moment.",
                                  mailbox.display_name)) from None
        complete = all(self.sudo().mapped("is_sync_complete"))
        if not complete:
            self._trigger_sync()
        return self._sync_now_feedback(before, complete)

    def _sync_now_feedback(self, before, complete):
        """What Sync now tells the user: new emails, the first sync's progress, or why it stopped."""
        self.invalidate_recordset(["message_count", "sync_progress"])
        errors_seen = self.filtered(lambda m: m.state == "error" or m.sync_error_count)
        if errors_seen:
            message = "\n".join(filter(None, errors_seen.mapped("last_sync_error") + errors_seen.mapped("last_error")))
            return self._notify_and_reload(message or _("The sync failed."), kind="danger")
        new = sum(self.mapped("message_count")) - before
        synced = _("No new email.") if not new else _("1 new email.") if new == 1 else _("%s new emails.", new)
        if complete:
            message = _("%s The mailbox is up to date.", synced)
        else:
            message = _("%(synced)s The sync goes on in the background: %(progress)s synced so far.",
                        synced=synced, progress=", ".join(filter(None, self.mapped("sync_progress"))) or "…")
        return self._notify_and_reload(message)

    def action_reinitialize_sync(self):
        """Forget the sync positions: the next sync reads the window again, without duplicates."""
        self.check_access("write")
        for mailbox in self.sudo():
            mailbox.folder_ids.write({"sync_state": False, "window_total": 0, "pause_reason": False,
                                      "sync_error": False, "uidvalidity_reset_count": 0})
            mailbox.failure_ids.unlink()
            mailbox.write({"is_sync_complete": False, "next_sync_date": False, "sync_error_count": 0})
            mailbox.message_post(body=_("Sync reinitialized: the selected folders will be read again from %s.",
                                        mailbox._sync_window_start()))
        self._trigger_sync()
        return self._notify_and_reload(_(
            "Sync reinitialized: the selected folders are read again in the background. "
            "Emails already imported are kept."))

    # ------------------------------------------------------------------
    # One mailbox
    # ------------------------------------------------------------------

    @contextlib.contextmanager
    def _sync_lock(self):
        """A session advisory lock: held across the batch commits, released on exit or if the worker dies."""
        cr = self.env.cr
        cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.id))
        if not cr.fetchone()[0]:
            raise SyncBusy()
        try:
            yield
        except Exception:
            # A database error leaves the transaction unusable, so the unlock below would fail and the
            # lock would stay with this pooled connection: roll back (the batches committed so far stay;
            # a session lock survives a rollback) and unlock.
            cr.rollback()
            raise
        finally:
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self.id))

    def _sync(self, commit=None, deadline=None, manual=False):
        """Sync the selected folders, then retry due failures. ``commit`` is called after each batch."""
        self.ensure_one()
        # The sync is a system process: it writes messages that no user may create.
        self = self.sudo()  # noqa: PLW0642
        commit = commit or (lambda: None)
        params = self.env["ir.config_parameter"].sudo()
        budget = int(params.get_param("onpipeline_mail.sync_mailbox_budget", DEFAULT_MAILBOX_BUDGET))
        mailbox_deadline = time.monotonic() + budget
        deadline = min(deadline, mailbox_deadline) if deadline else mailbox_deadline
        with self._sync_lock():
            complete = True
            try:
                settings, login = self._imap_settings(), self._imap_login_callable()
                with sync.Session(settings, login=login) as session, self._parse_worker() as parser:
                    for folder in self._folders_to_sync():
                        if time.monotonic() >= deadline:
                            complete = False
                            break
                        try:
                            complete &= folder._sync_folder(session, commit, deadline, parser=parser)
                        except errors.ConnectError:
                            # This folder stops here (its error is on it); the others go on, on a new
                            # connection. A server that cannot be reached any more ends the run below.
                            complete = False
                            session.reopen()
                    if time.monotonic() < deadline:
                        self._retry_failures(session, commit)
            except errors.MailSyncError as exc:
                self._record_sync_error(exc)
                commit()
                return False
            self.write({
                "state": "connected", "last_error": False, "error_reason": False,
                "last_sync_date": fields.Datetime.now(),
                "sync_error_count": 0, "next_sync_date": False, "is_sync_complete": complete,
            })
            commit()
            self._after_sync(commit)
            return True

    def _after_sync(self, commit):
        """Work that follows a sync that reached the server, still under the mailbox's lock: a second
        cron worker that picks the mailbox up meanwhile must not do it again (twice the history
        entries, twice the Sent copies, and a serialization failure that kills its whole run)."""

    def _parse_worker(self):
        """Where the sync parses mail: a second process that parses the next batch while this one
        stores the current one (started only for batches worth it), or here, on one core or when
        the ``onpipeline_mail.parse_in_worker`` parameter is 0."""
        param = self.env["ir.config_parameter"].sudo().get_param("onpipeline_mail.parse_in_worker", "")
        enabled = (os.cpu_count() or 1) > 1 if param.strip() in ("", "auto") else param.strip() not in ("0", "false")
        if not enabled:
            return contextlib.nullcontext()
        # The worker sanitizes bodies too in a folder with enough mail to pay for loading Odoo's sanitizer
        # in it (about a second of CPU): a first sync, not a mailbox of a few hundred emails.
        min_messages = int(self.env["ir.config_parameter"].sudo().get_param(
            "onpipeline_mail.parse_worker_sanitize_min", SANITIZE_IN_WORKER_MIN))
        # Nor does a folder of a few hundred emails pay for the child itself (parse_worker.MIN_WORKER_MESSAGES).
        min_worker_messages = int(self.env["ir.config_parameter"].sudo().get_param(
            "onpipeline_mail.parse_worker_min", parse_worker.MIN_WORKER_MESSAGES))
        return parse_worker.ParseWorker(html_filter=self.env["onpipeline.mail.message"]._body_html_filter(),
                                        html_filter_min_messages=min_messages, min_messages=min_worker_messages)

    def _folders_to_sync(self):
        return self.folder_ids.filtered(lambda f: f.is_selected and f.is_selectable and f.is_present
                                        and not f.pause_reason)

    def _record_sync_error(self, exc):
        """A run that failed: connection errors back off and retry; credentials, settings that cannot work
        and anything unexpected put the mailbox in error, with the reason, and tell the owner once."""
        if isinstance(exc, errors.MailSyncError):
            message, reason = str(exc), exc.reason
        else:
            message = _("The sync failed unexpectedly: %(error)s. Check the mailbox settings; if they are right, "
                        "tell your administrator.", error=str(exc) or type(exc).__name__)
            reason = "unexpected"
        stop = not isinstance(exc, errors.ConnectError)
        count = self.sync_error_count + 1
        backoff = AUTH_BACKOFF if stop else CONNECT_BACKOFF
        now = fields.Datetime.now()
        was_in_error = self.state == "error"
        values = {"last_sync_error": message, "last_sync_error_date": now, "sync_error_count": count,
                  "next_sync_date": now + backoff[min(count, len(backoff)) - 1]}
        if stop:
            values.update(state="error", last_error=message, error_reason=reason)
        self.write(values)
        _logger.info("Mailbox %s: sync failed (%s), next try after %s", self.id, reason, values["next_sync_date"])
        if stop and not was_in_error:
            self._notify_owner_of_error(message)

    def _notify_owner_of_error(self, message):
        """Tell the owner once, with an activity, until the mailbox connects again."""
        owner = self.user_id or self.team_id.user_id or self.create_uid
        self.activity_schedule(
            "mail.mail_activity_data_warning", user_id=owner.id,
            summary=_("Your mailbox %s cannot connect", self.email),
            note=_("%s<br/>Open the mailbox, fix the settings and save: the sync starts again by itself.", message))

    def _retry_failures(self, session, commit):
        Failure = self.env["onpipeline.mail.sync.failure"]
        due = Failure.search([("mailbox_id", "=", self.id), ("state", "=", "pending"),
                              ("next_retry_date", "<=", fields.Datetime.now())])
        syncing = self._folders_to_sync()
        for folder, folder_failures in due.grouped("folder_id").items():
            if folder not in syncing:
                continue
            for uidvalidity, same_uidvalidity in folder_failures.grouped("uidvalidity").items():
                # First retries go together; a message that failed again is retried alone. A message
                # that drops the connection is isolated by the engine and comes back as failed again.
                first = same_uidvalidity.filtered(lambda f: f.attempt_count < 2)
                groups = [first.mapped("uid")] if first else []
                groups += [[failure.uid] for failure in (same_uidvalidity - first).sorted(
                    lambda f: (f.attempt_count, f.last_attempt_date, f.uid))]
                for uids in groups:
                    try:
                        result = sync.retry_uids(session, folder.name, uidvalidity, uids, **folder._fetch_options())
                    except errors.UidValidityError:
                        # The folder was renumbered: its normal resync re-reads these messages.
                        same_uidvalidity.unlink()
                        break
                    except errors.FolderMissingError as exc:
                        folder.write({"pause_reason": str(exc)})
                        break
                    folder._store_sync_batch(uidvalidity, result.messages, result.failures, result.gone)
                    commit()


class OnpipelineMailboxFolder(models.Model):
    _inherit = "onpipeline.mailbox.folder"

    sync_state = fields.Json(copy=False, readonly=True, help="The engine's FolderState: where the sync stands.")
    window_total = fields.Integer("In Period", readonly=True, copy=False,
                                  help="Emails of this folder within the mailbox's sync period.")
    message_count = fields.Integer("Synced", compute="_compute_message_count")
    last_sync_date = fields.Datetime(readonly=True, copy=False)
    pause_reason = fields.Char(readonly=True, copy=False,
                               help="Why the sync of this folder stopped; Resume starts it again.")
    sync_error = fields.Char("Last Error", readonly=True, copy=False,
                             help="Why the last run stopped in this folder; the next run goes on from there.")
    sync_status = fields.Selection(
        [("waiting", "Waiting"), ("ok", "Synced"), ("interrupted", "Interrupted"), ("paused", "Paused")],
        "Sync Status", compute="_compute_sync_status")
    sync_note = fields.Char("Note", compute="_compute_sync_status",
                            help="Why the folder cannot be synced, is paused, or where its last run stopped.")
    uidvalidity_reset_count = fields.Integer(
        "Renumberings", readonly=True, copy=False,
        help="Times in a row the server renumbered this folder (UIDVALIDITY), each within a day of the one "
             "before; at %d the folder is paused instead of being read again." % MAX_UIDINVALID_RESYNCS)
    last_uidvalidity_reset_date = fields.Datetime(readonly=True, copy=False)

    @api.depends("pause_reason", "sync_error", "last_sync_date", "skip_reason")
    def _compute_sync_status(self):
        for folder in self:
            folder.sync_status = ("paused" if folder.pause_reason else "interrupted" if folder.sync_error
                                  else "ok" if folder.last_sync_date else "waiting")
            folder.sync_note = folder.skip_reason or folder.pause_reason or folder.sync_error or False

    def action_resume_sync(self):
        """Resume (button): a paused folder is synced again from where it stood."""
        self.mailbox_id.check_access("write")
        self.sudo().write({"pause_reason": False, "sync_error": False, "uidvalidity_reset_count": 0})
        self.mailbox_id._trigger_sync()
        return True

    def _resync_capped(self):
        """The server renumbered this folder too often lately: do not read it again from scratch."""
        return (self.uidvalidity_reset_count >= MAX_UIDINVALID_RESYNCS and self.last_uidvalidity_reset_date
                and self.last_uidvalidity_reset_date > fields.Datetime.now() - RESYNC_STREAK)

    def _uidvalidity_reset_values(self):
        now = fields.Datetime.now()
        recent = self.last_uidvalidity_reset_date and self.last_uidvalidity_reset_date > now - RESYNC_STREAK
        return {"uidvalidity_reset_count": self.uidvalidity_reset_count + 1 if recent else 1,
                "last_uidvalidity_reset_date": now}

    def _compute_message_count(self):
        Location = self.env["onpipeline.mail.message.location"]
        counts = dict(Location._read_group([("folder_id", "in", self.ids)], ["folder_id"], ["__count"]))
        for folder in self:
            folder.message_count = counts.get(folder._origin, 0)

    def _fetch_options(self):
        params = self.env["ir.config_parameter"].sudo()
        max_mb = float(params.get_param("onpipeline_mail.max_message_size_mb", DEFAULT_MAX_MESSAGE_MB))
        return {"max_message_bytes": int(max_mb * 1024 * 1024)}

    def _sync_folder(self, session, commit, deadline, parser=None):
        """Sync one folder batch by batch; returns True when it reached the end (or was paused).

        ``session``: the run's :class:`~..engine.sync.Session`; ``parser``: its
        :class:`~..engine.parse_worker.ParseWorker`, or None to parse here. A lost connection
        is noted on the folder and raised (:class:`~..engine.errors.ConnectError`).
        """
        self.ensure_one()
        params = self.env["ir.config_parameter"].sudo()
        batch_size = int(params.get_param("onpipeline_mail.sync_batch_size", DEFAULT_BATCH_SIZE))
        saved = FolderState.from_dict(self.sync_state or {})
        # Recorded failures are retried on their own schedule, not on every run.
        known_failures = self.env["onpipeline.mail.sync.failure"].search([
            ("folder_id", "=", self.id), ("uidvalidity", "=", saved.uidvalidity or 0), ("state", "=", "pending"),
        ]).mapped("uid")
        batches = sync.sync_folder(session, self.name, saved, self.mailbox_id._sync_window_start(),
                                   batch_size=batch_size, deadline=deadline, known_failures=known_failures,
                                   parser=parser, resync=not self._resync_capped(), **self._fetch_options())
        try:
            for batch in batches:
                values = {"sync_state": batch.state.to_dict(), "last_sync_date": fields.Datetime.now(),
                          "sync_error": False}
                if batch.state.uidvalidity != saved.uidvalidity and saved.uidvalidity:
                    # Renumbered folder: old positions mean nothing any more;
                    # messages themselves are matched again by key.
                    self._forget_uidvalidity(saved.uidvalidity)
                    values.update(self._uidvalidity_reset_values())
                    saved = batch.state
                self._store_sync_batch(batch.state.uidvalidity, batch.messages, batch.failures, batch.gone)
                if batch.total_in_window is not None:
                    values["window_total"] = batch.total_in_window
                self.write(values)
                commit()
                if batch.done:
                    return True
        except errors.UidValidityError:
            # Only raised when a resync was refused: renumbered too often lately.
            self.write({"pause_reason": _(
                "The server renumbered this folder (UIDVALIDITY) %(count)s times in a row: its sync is paused so "
                "that its mail is not read again at every run. Resume it once the server keeps its numbering.",
                count=self.uidvalidity_reset_count + 1)})
            commit()
            return True
        except errors.FolderMissingError as exc:
            self.write({"pause_reason": str(exc)})
            commit()
            return True
        except errors.ConnectError as exc:
            self.write({"sync_error": str(exc)})
            commit()
            raise
        finally:
            # The next batch may be being fetched on a thread: it stops here, whatever happened,
            # before the caller uses the connection again (next folder, reopen, logout).
            batches.close()
        return False

    def _store_sync_batch(self, uidvalidity, fetched, failures, gone=()):
        self.env["onpipeline.mail.message"]._store_batch(self, uidvalidity, fetched)
        Failure = self.env["onpipeline.mail.sync.failure"]
        Failure._resolve(self, uidvalidity, [uid for uid, _parsed, _meta in fetched])
        Failure._resolve(self, uidvalidity, gone, state="gone")
        Failure._record(self, uidvalidity, failures)

    def _forget_uidvalidity(self, uidvalidity):
        self.env["onpipeline.mail.message.location"].search(
            [("folder_id", "=", self.id), ("uidvalidity", "=", uidvalidity)]).unlink()
        self.env["onpipeline.mail.sync.failure"].search(
            [("folder_id", "=", self.id), ("uidvalidity", "=", uidvalidity)]).unlink()
