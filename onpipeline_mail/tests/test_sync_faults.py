"""Sync faults over scheduled runs: a message that drops the connection, cut connections, renumbered folders."""

import datetime
import time
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine.connection import imap_session
from ..engine.testing.proxy import CuttingProxy
from ..models.onpipeline_mailbox_sync import (
    MAX_UIDINVALID_RESYNCS,
    PREFORK_SLEEP,
    _prefork_round,
    cron_time_limit,
    real_seconds_left,
    run_budget,
)
from .common import OnpipelineMailCase, append, make_message

UTC = datetime.timezone.utc
SYNC_LOGGER = "odoo.addons.onpipeline_mail.models.onpipeline_mailbox_sync"


def days_ago(days):
    return datetime.datetime.now(UTC) - datetime.timedelta(days=days)


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSyncFaults(OnpipelineMailCase):

    def setUp(self):
        super().setUp()
        self.account = self.new_account(layout="plain")
        self.mailbox = self.create_mailbox(self.account, sync_window="1m")
        self.Message = self.env["onpipeline.mail.message"]
        self.Failure = self.env["onpipeline.mail.sync.failure"]

    def folder(self, name):
        return self.mailbox.folder_ids.filtered(lambda folder: folder.name == name)

    def subjects(self):
        return sorted(self.Message.search([("mailbox_id", "=", self.mailbox.id)]).mapped("subject"))

    def damage(self, message_id, folder="INBOX"):
        """Truncate the maildir file of ``message_id``: Dovecot drops the connection on every FETCH of it."""
        self.dovecot.damage_message(self.account.username, message_id, folder=folder)

    def cron_runs(self, count, minutes=5):
        """``count`` scheduled runs ``minutes`` apart: what waits (a backoff, a retry) comes due as time passes."""
        for _run in range(count):
            with patch.object(self.env.cr, "commit"):
                self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
            self.env.invalidate_all()
            step = datetime.timedelta(minutes=minutes)
            for mailbox in self.mailbox.sudo().search([("next_sync_date", "!=", False)]):
                mailbox.next_sync_date -= step
            for failure in self.Failure.search([("next_retry_date", "!=", False)]):
                failure.next_retry_date -= step

    @mute_logger(SYNC_LOGGER)
    def test_a_message_that_drops_the_connection_never_blocks_a_new_mailbox(self):
        # Among the newest mail of a new mailbox, so in the very first batch of its first sync.
        for number in range(6):
            append(self.account, "INBOX", make_message("in %d" % number, message_id="<in%d@client.example>" % number),
                   date=days_ago(6 - number))
        for number in range(2):
            append(self.account, "Sent", make_message("sent %d" % number, sender=self.account.username,
                                                      to="customer@client.example"), date=days_ago(2))
        self.damage("<in4@client.example>")
        self.cron_runs(10)
        self.assertEqual(self.subjects(), ["in 0", "in 1", "in 2", "in 3", "in 5", "sent 0", "sent 1"])
        failure = self.Failure.search([("mailbox_id", "=", self.mailbox.id)])
        self.assertEqual(len(failure), 1)
        self.assertEqual(failure.state, "pending")
        self.assertIn("dropped the connection", failure.error)
        self.assertEqual(failure.uidvalidity, self.folder("INBOX").sync_state["uidvalidity"])
        # Retried on its schedule (5 then 30 minutes after the first attempt), not on every run.
        self.assertEqual(failure.attempt_count, 3)
        self.assertEqual(self.mailbox.failure_ids, failure, "its reason is shown on the mailbox")
        self.assertEqual(self.mailbox.state, "connected")
        self.assertTrue(self.mailbox.is_sync_complete)
        self.assertFalse(self.mailbox.last_sync_error)

    @mute_logger(SYNC_LOGGER)
    def test_a_message_that_drops_the_connection_after_a_uidvalidity_change(self):
        raws = [make_message("a%d" % number, message_id="<a%d@client.example>" % number) for number in range(4)]
        for raw in raws:
            append(self.account, "Archive", raw)
        self.folder("Archive").is_selected = True
        self.cron_runs(1)
        old_uidvalidity = self.folder("Archive").sync_state["uidvalidity"]
        with imap_session(self.account) as client:
            client.delete_folder("Archive")
            client.create_folder("Archive")
        for raw in raws + [make_message("a4", message_id="<a4@client.example>")]:
            append(self.account, "Archive", raw)
        self.damage("<a2@client.example>", folder="Archive")
        self.cron_runs(3)
        archive = self.folder("Archive")
        self.assertNotEqual(archive.sync_state["uidvalidity"], old_uidvalidity)
        self.assertEqual(self.subjects(), ["a0", "a1", "a2", "a3", "a4"], "a2 was synced before the change")
        failure = self.Failure.search([("folder_id", "=", archive.id)])
        self.assertEqual((failure.uidvalidity, failure.uid), (archive.sync_state["uidvalidity"], 3))
        self.assertIn("dropped the connection", failure.error)
        self.assertTrue(self.mailbox.is_sync_complete)

    @mute_logger(SYNC_LOGGER)
    def test_a_folder_that_loses_the_connection_does_not_stop_the_others(self):
        append(self.account, "INBOX", make_message("inbox mail"))
        append(self.account, "Sent", make_message("sent mail", sender=self.account.username))
        with CuttingProxy("127.0.0.1", self.dovecot.port) as proxy:
            mailbox = self.create_mailbox(self.account, imap_port=proxy.port,
                                          imap_security="none", user=self.user_bob)
            self.assertEqual(mailbox.state, "connected")
            proxy.cut_next(match=b'EXAMINE "INBOX"')
            self.assertTrue(mailbox._sync())
            messages = self.Message.search([("mailbox_id", "=", mailbox.id)])
            self.assertEqual(messages.mapped("subject"), ["sent mail"], "Sent went on, on a new connection")
            inbox = mailbox.folder_ids.filtered(lambda folder: folder.name == "INBOX")
            self.assertEqual(inbox.sync_status, "interrupted")
            self.assertIn("connection to the server was lost", inbox.sync_error)
            self.assertEqual(mailbox.state, "connected")
            self.assertFalse(mailbox.is_sync_complete)
            self.assertTrue(mailbox._sync())
            self.assertEqual(sorted(self.Message.search([("mailbox_id", "=", mailbox.id)]).mapped("subject")),
                             ["inbox mail", "sent mail"])
            self.assertEqual((inbox.sync_status, inbox.sync_error), ("ok", False))
            self.assertTrue(mailbox.is_sync_complete)

    @mute_logger(SYNC_LOGGER)
    def test_a_mailbox_whose_settings_fail_unexpectedly_is_in_error_and_the_others_go_on(self):
        other = self.create_mailbox(self.new_account(), user=self.user_bob)
        append(self.account, "INBOX", make_message("for alice"))
        append(other._imap_settings(), "INBOX", make_message("for bob"))
        mailbox_class = type(self.mailbox)
        real_settings = mailbox_class._imap_settings
        broken = self.mailbox

        def imap_settings(mailbox):
            if mailbox == broken:
                raise OSError(2, "No such file or directory: '/etc/ssl/private-ca.pem'")
            return real_settings(mailbox)

        with patch.object(mailbox_class, "_imap_settings", imap_settings), \
                patch.object(self.env.cr, "commit"), patch.object(self.env.cr, "rollback"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertEqual(self.Message.search([("mailbox_id", "=", other.id)]).mapped("subject"), ["for bob"])
        self.assertEqual(self.mailbox.state, "error")
        self.assertEqual(self.mailbox.error_reason, "unexpected")
        self.assertIn("private-ca.pem", self.mailbox.last_error)
        self.assertEqual(len(self.mailbox.activity_ids), 1, "the owner is told")
        self.assertNotIn(self.mailbox, self.env["onpipeline.mailbox"]._mailboxes_due(), "backing off")

    def renumber_archive(self, subject):
        with imap_session(self.account) as client:
            client.delete_folder("Archive")
            client.create_folder("Archive")
        append(self.account, "Archive", make_message(subject))

    @mute_logger(SYNC_LOGGER)
    def test_a_folder_renumbered_again_and_again_is_paused(self):
        append(self.account, "Archive", make_message("first"))
        archive = self.folder("Archive")
        archive.is_selected = True
        self.mailbox._sync()
        for number in range(MAX_UIDINVALID_RESYNCS):
            self.renumber_archive("renumbered %d" % number)
            self.mailbox._sync()
            self.assertEqual(archive.uidvalidity_reset_count, number + 1)
            self.assertEqual(archive.sync_status, "ok")
        read = archive.sync_state
        self.renumber_archive("once too often")
        self.mailbox._sync()
        self.assertEqual(archive.sync_status, "paused")
        self.assertIn("renumbered this folder", archive.pause_reason)
        self.assertEqual(archive.sync_state, read, "not read again")
        self.assertNotIn("once too often", self.subjects())
        self.assertTrue(self.mailbox.is_sync_complete)
        # Shown in the mailbox's folder list, with a way out.
        view = self.env.ref("onpipeline_mail.onpipeline_mailbox_folder_view_list_embedded")
        arch = self.env["onpipeline.mailbox.folder"].get_views([(view.id, "list")])["views"]["list"]["arch"]
        for needle in ('name="sync_status"', 'name="pause_reason"', 'name="action_resume_sync"'):
            self.assertIn(needle, arch)
        archive.with_user(self.user_alice).action_resume_sync()
        self.mailbox._sync()
        self.assertIn("once too often", self.subjects())
        self.assertEqual((archive.sync_status, archive.uidvalidity_reset_count), ("ok", 1))

    def test_the_run_budget_respects_the_real_time_limit_of_cron_jobs(self):
        # odoo/service/server.py: prefork cron workers use limit_time_real_cron (-1: limit_time_real, 0: none);
        # the threaded server uses it when positive, limit_time_real otherwise.
        prefork, threaded = {"workers": 2}, {"workers": 0}
        self.assertEqual(cron_time_limit(dict(prefork, limit_time_real_cron=-1, limit_time_real=120)), 120)
        self.assertEqual(cron_time_limit(dict(prefork, limit_time_real_cron=0, limit_time_real=120)), None)
        self.assertEqual(cron_time_limit(dict(prefork, limit_time_real_cron=600, limit_time_real=120)), 600)
        self.assertEqual(cron_time_limit(dict(threaded, limit_time_real_cron=0, limit_time_real=120)), 120)
        self.assertEqual(cron_time_limit(dict(threaded, limit_time_real_cron=-1, limit_time_real=0)), None)
        self.assertEqual(cron_time_limit(dict(threaded, limit_time_real_cron=300, limit_time_real=120)), 300)

        class Thread:
            start_time = None

        thread = Thread()
        thread.start_time = time.time() - 30  # the threaded server's round began 30 s ago
        self.assertAlmostEqual(real_seconds_left(dict(threaded, limit_time_real_cron=300), thread), 270, delta=2)
        # Prefork: the watchdog also counted the worker's sleep before the round, and a run that reports
        # remaining work is run again at once within the same limit.
        with patch.dict(_prefork_round, {"start": None, "end": None}):
            self.assertAlmostEqual(real_seconds_left(dict(prefork, limit_time_real_cron=300), Thread()),
                                   300 - PREFORK_SLEEP, delta=2)
            _prefork_round.update(start=time.monotonic() - 100, end=time.monotonic())
            self.assertAlmostEqual(real_seconds_left(dict(prefork, limit_time_real_cron=300), Thread()),
                                   300 - PREFORK_SLEEP - 100, delta=2)
        self.assertEqual(run_budget(240, None, 100), 65)
        self.assertEqual(run_budget(240, 60, 300), 37)
        self.assertEqual(run_budget(240, None, 3), 0)
        # A run with too little real time left syncs nothing (the next round does).
        append(self.account, "INBOX", make_message("later"))
        with patch.dict(config.options, {"limit_time_real_cron": 5}), patch.object(self.env.cr, "commit"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertEqual(self.subjects(), [])
        with patch.dict(config.options, {"limit_time_real_cron": 0, "limit_time_real": 0}), \
                patch.object(self.env.cr, "commit"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertEqual(self.subjects(), ["later"])
