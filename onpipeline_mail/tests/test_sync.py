import contextlib
import datetime
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..engine import parse_worker
from ..engine.connection import imap_session
from ..models.onpipeline_mailbox_sync import LOCK_NAMESPACE, SyncBusy, cpu_seconds_left, run_budget
from .common import OnpipelineMailCase, append, make_message

UTC = datetime.timezone.utc


def days_ago(days):
    return datetime.datetime.now(UTC) - datetime.timedelta(days=days)


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxSync(OnpipelineMailCase):

    def setUp(self):
        super().setUp()
        self.account = self.new_account(layout="plain")
        self.mailbox = self.create_mailbox(self.account, sync_window="1m")
        self.Message = self.env["onpipeline.mail.message"]

    def folder(self, name):
        return self.mailbox.folder_ids.filtered(lambda folder: folder.name == name)

    def messages(self):
        return self.Message.search([("mailbox_id", "=", self.mailbox.id)])

    def server_flags(self, folder="INBOX"):
        with imap_session(self.account) as client:
            client.select_folder(folder, readonly=True)
            return {uid: set(data[b"FLAGS"]) for uid, data in client.fetch(client.search("ALL"), ["FLAGS"]).items()}

    def test_first_sync_imports_the_window_and_a_second_sync_nothing(self):
        append(self.account, "INBOX", make_message("recent", html="<p>Hi <b>there</b></p>"), date=days_ago(2))
        append(self.account, "INBOX", make_message("three weeks"), date=days_ago(21))
        append(self.account, "INBOX", make_message("too old"), date=days_ago(60))
        append(self.account, "Sent", make_message("my answer", sender=self.account.username,
                                                   to="customer@client.example"), date=days_ago(1))
        flags_before = self.server_flags()
        self.assertTrue(self.mailbox._sync())
        messages = self.messages()
        self.assertEqual(sorted(messages.mapped("subject")), ["my answer", "recent", "three weeks"])
        self.assertEqual(messages.filtered(lambda m: m.subject == "my answer").direction, "outgoing")
        self.assertEqual(messages.filtered(lambda m: m.subject == "recent").direction, "incoming")
        recent = messages.filtered(lambda m: m.subject == "recent")
        self.assertIn("<b>there</b>", recent.body_html)
        self.assertEqual(recent.email_from, "Customer <customer@client.example>")
        self.assertEqual(recent.folder_ids, self.folder("INBOX"))
        self.assertTrue(self.mailbox.last_sync_date)
        self.assertTrue(self.mailbox.is_sync_complete)
        self.assertEqual(self.folder("INBOX").window_total, 2)
        self.assertEqual(self.folder("INBOX").message_count, 2)
        # Reading never changed a flag on the server.
        self.assertEqual(self.server_flags(), flags_before)
        self.assertFalse(any(b"\\Seen" in flags for flags in flags_before.values()))

        self.mailbox._sync()
        self.assertEqual(self.messages(), messages, "a second run imports nothing")
        append(self.account, "INBOX", make_message("new one"))
        self.mailbox._sync()
        self.assertEqual(len(self.messages()), 4)

    @contextlib.contextmanager
    def keeping_parse_workers(self):
        """The parse workers the syncs inside make, in a list (the real ones, kept to be looked at)."""
        workers = []
        real_worker = type(self.mailbox)._parse_worker

        def keep_worker(mailbox):
            worker = real_worker(mailbox)
            workers.append(worker)
            return worker

        with patch.object(type(self.mailbox), "_parse_worker", keep_worker):
            yield workers

    def test_batches_are_parsed_by_the_parse_worker_while_the_previous_one_is_stored(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sync_batch_size", "10")
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.parse_in_worker", "1")  # even on 1 core
        # A folder this small is parsed here by default (the child costs more than it saves): not in this test.
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.parse_worker_min", "20")
        for index in range(24):
            append(self.account, "INBOX", make_message("mail %02d" % index, html="<p>Offer %d</p>" % index,
                                                       attachments=[("offer.pdf", "application/pdf", b"%PDF-1.4")]),
                   date=days_ago(index % 20 + 1))
        with self.keeping_parse_workers() as workers:
            self.assertTrue(self.mailbox._sync())
        messages = self.messages()
        self.assertEqual(sorted(messages.mapped("subject")), ["mail %02d" % index for index in range(24)])
        self.assertEqual(len(messages.attachment_ids), 24)
        self.assertEqual(len(messages.location_ids), 24)
        self.assertIn("<p>Offer 7</p>", messages.filtered(lambda m: m.subject == "mail 07").body_html)
        # Batches of 10, 10 and 4: the first is parsed here (nothing to overlap yet), the second in the
        # worker while the first is stored, the last 4 here (too few to be worth sending).
        self.assertEqual([worker.batches_parsed for worker in workers], [1])
        self.assertFalse(workers[0].is_running, "stopped with the session")

        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.parse_in_worker", "0")
        self.assertFalse(isinstance(self.mailbox._parse_worker(), type(workers[0])), "turned off")

    def test_a_small_folder_starts_no_parse_worker(self):
        # Starting the child costs what parsing about 100 messages costs: a folder of a few hundred is parsed here.
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sync_batch_size", "10")
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.parse_in_worker", "1")
        for index in range(24):
            append(self.account, "INBOX", make_message("mail %02d" % index), date=days_ago(index % 20 + 1))
        with self.keeping_parse_workers() as workers, \
                patch.object(parse_worker.ParseWorker, "_ensure_started",
                             side_effect=AssertionError("a child was started for 24 messages")):
            self.assertTrue(self.mailbox._sync())
        self.assertEqual(len(self.messages()), 24)
        self.assertEqual([worker.batches_parsed for worker in workers], [0])

    def test_same_message_in_two_folders_is_one_record(self):
        raw = make_message("copied", message_id="<same-123@client.example>")
        append(self.account, "INBOX", raw)
        append(self.account, "Archive", raw)
        self.folder("Archive").is_selected = True
        self.mailbox._sync()
        message = self.messages()
        self.assertEqual(len(message), 1)
        self.assertEqual(message.message_key, "<same-123@client.example>")
        self.assertEqual(message.folder_ids, self.folder("INBOX") | self.folder("Archive"))

    def test_missing_and_reused_message_ids(self):
        append(self.account, "INBOX", make_message("no id one", message_id=False))
        append(self.account, "INBOX", make_message("no id two", message_id=False))
        append(self.account, "INBOX", make_message("reused A", message_id="<dup@broken.example>"))
        append(self.account, "INBOX", make_message("reused B", message_id="<dup@broken.example>"))
        self.mailbox._sync()
        messages = self.messages()
        self.assertEqual(sorted(messages.mapped("subject")), ["no id one", "no id two", "reused A", "reused B"])
        self.assertTrue(all(m.message_key.startswith("hash:") for m in messages if m.subject.startswith("no id")))
        self.mailbox.action_reinitialize_sync()
        self.mailbox._sync()
        self.assertEqual(self.messages(), messages, "reinitializing matches every message again")

    def test_hostile_html_is_sanitized_and_attachments_stored(self):
        html = ('<p onclick="steal()" style="color:red;position:fixed;top:0">Offer</p><script>alert(1)</script>'
                '<img src="x" onerror="steal()">')
        append(self.account, "INBOX", make_message(
            "hostile", html=html, attachments=[("quote.pdf", "application/pdf", b"%PDF-1.4 quote")]))
        self.mailbox._sync()
        message = self.messages()
        self.assertIn("Offer", message.body_html)
        for dangerous in ("<script", "onclick", "onerror", "alert(1)", "position:fixed"):
            self.assertNotIn(dangerous, message.body_html)
        self.assertIn('style="color:red"', message.body_html, "harmless styles kept, as in Odoo's incoming mail")
        # The field reuses its last conversion (Odoo converts each value twice on create): never another value's.
        body, incoming = self.Message._fields["body_html"], self.env["mail.message"]._fields["body"]
        for value in (html, "<p>other</p>", html, html + "<p>x</p>", html):
            self.assertEqual(body.convert_to_cache(value, self.Message),
                             incoming.convert_to_cache(value, self.env["mail.message"]))
        self.assertEqual(message.attachment_ids.mapped("name"), ["quote.pdf"])
        self.assertEqual(message.attachment_ids.raw, b"%PDF-1.4 quote")

    def test_large_message_keeps_text_without_attachments(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.max_message_size_mb", "0.05")
        append(self.account, "INBOX", make_message(
            "big", body="Please find the plans attached.",
            attachments=[("plans.bin", "application/octet-stream", b"\x00" * 200_000)]))
        self.mailbox._sync()
        message = self.messages()
        self.assertTrue(message.is_truncated)
        self.assertTrue(message.truncation_reason)
        self.assertIn("plans attached", message.body_text)
        self.assertFalse(message.attachment_ids)

    def test_deselected_folder_stops_and_keeps_its_mail(self):
        append(self.account, "INBOX", make_message("kept"))
        self.mailbox._sync()
        self.folder("INBOX").is_selected = False
        append(self.account, "INBOX", make_message("not synced"))
        self.mailbox._sync()
        self.assertEqual(self.messages().mapped("subject"), ["kept"])

    def test_longer_window_takes_effect_at_next_sync(self):
        append(self.account, "INBOX", make_message("recent"), date=days_ago(3))
        append(self.account, "INBOX", make_message("two months"), date=days_ago(60))
        self.mailbox.sync_window = "1w"
        self.mailbox._sync()
        self.assertEqual(self.messages().mapped("subject"), ["recent"])
        self.mailbox.sync_window = "3m"
        self.mailbox._sync()
        self.assertEqual(sorted(self.messages().mapped("subject")), ["recent", "two months"])

    def test_uidvalidity_change_matches_messages_again(self):
        raws = [make_message("m%d" % n) for n in range(3)]
        for raw in raws:
            append(self.account, "Archive", raw)
        self.folder("Archive").is_selected = True
        self.mailbox._sync()
        before = self.messages()
        old_uidvalidity = self.folder("Archive").sync_state["uidvalidity"]
        with imap_session(self.account) as client:
            client.delete_folder("Archive")
            client.create_folder("Archive")
        for raw in raws:
            append(self.account, "Archive", raw)
        self.mailbox._sync()
        self.assertEqual(self.messages(), before, "nothing imported twice after a UIDVALIDITY change")
        new_uidvalidity = self.folder("Archive").sync_state["uidvalidity"]
        self.assertNotEqual(new_uidvalidity, old_uidvalidity)
        self.assertEqual(set(before.location_ids.mapped("uidvalidity")), {new_uidvalidity})

    def test_vanished_folder_is_paused_and_others_go_on(self):
        self.folder("Archive").is_selected = True
        self.mailbox._sync()
        with imap_session(self.account) as client:
            client.delete_folder("Archive")
        append(self.account, "INBOX", make_message("still arrives"))
        self.mailbox._sync()
        self.assertTrue(self.folder("Archive").pause_reason)
        self.assertEqual(self.messages().mapped("subject"), ["still arrives"])
        self.assertEqual(self.mailbox.state, "connected")

    def test_recorded_failure_is_retried_and_resolved(self):
        append(self.account, "INBOX", make_message("was failing"))
        inbox = self.folder("INBOX")
        with imap_session(self.account) as client:
            uidvalidity = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
            [uid] = client.search("ALL")
        # As a previous run that hit an error on this message would have left it:
        # its position is past the message, the failure is on record.
        Failure = self.env["onpipeline.mail.sync.failure"]
        self.mailbox._sync()
        self.messages().unlink()
        Failure._record(inbox, uidvalidity, [(uid, "Simulated: connection lost while fetching")])
        failure = Failure.search([("folder_id", "=", inbox.id)])
        self.assertEqual((failure.state, failure.attempt_count), ("pending", 1))
        self.assertGreater(failure.next_retry_date, fields.Datetime.now())
        self.assertEqual(self.mailbox.failure_count, 1)
        self.mailbox._sync()
        self.assertFalse(self.messages(), "not retried before its time")
        failure.with_user(self.user_alice).action_retry()
        self.assertEqual(self.messages().mapped("subject"), ["was failing"])
        self.assertEqual(failure.state, "resolved")

    def make_retries_due(self):
        self.env["onpipeline.mail.sync.failure"].search([("mailbox_id", "=", self.mailbox.id)]).write(
            {"next_retry_date": fields.Datetime.now()})

    @mute_logger("odoo.addons.onpipeline_mail.models.onpipeline_mailbox_sync")
    def test_a_message_that_kills_the_connection_does_not_block_the_folder(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sync_batch_size", "2")
        for number in range(5):
            append(self.account, "INBOX", make_message("m%d" % number, message_id="<m%d@client.example>" % number),
                   date=days_ago(5 - number))
        # A maildir file shorter than its recorded size: Dovecot drops the connection on every FETCH of it.
        self.dovecot.damage_message(self.account.username, "<m2@client.example>")
        Failure = self.env["onpipeline.mail.sync.failure"]
        self.assertTrue(self.mailbox._sync(), "the message is isolated within the run")
        self.assertEqual(sorted(self.messages().mapped("subject")), ["m0", "m1", "m3", "m4"])
        self.assertFalse(self.mailbox.last_sync_error)
        self.assertEqual(self.mailbox.state, "connected")
        for _run in range(2):
            self.make_retries_due()
            self.mailbox._sync()
        self.assertEqual(sorted(self.messages().mapped("subject")), ["m0", "m1", "m3", "m4"])
        pending = Failure.search([("mailbox_id", "=", self.mailbox.id), ("state", "=", "pending")])
        self.assertEqual(len(pending), 1, "only the broken message is left, on record")
        self.assertEqual(pending.attempt_count, 3)
        self.assertIn("dropped the connection", pending.error)
        self.assertEqual(self.mailbox.failure_count, 1)

    def test_failure_of_an_expunged_message_is_closed(self):
        append(self.account, "INBOX", make_message("short-lived"))
        self.mailbox._sync()
        inbox = self.folder("INBOX")
        uidvalidity, uid = self.messages().location_ids.uidvalidity, self.messages().location_ids.uid
        self.messages().unlink()
        Failure = self.env["onpipeline.mail.sync.failure"]
        Failure._record(inbox, uidvalidity, [(uid, "Simulated earlier failure")])
        with imap_session(self.account) as client:
            client.select_folder("INBOX")
            client.delete_messages([uid])
            client.expunge()
        self.make_retries_due()
        self.mailbox._sync()
        self.assertEqual(Failure.search([("folder_id", "=", inbox.id)]).state, "gone")
        self.assertEqual(self.mailbox.failure_count, 0)

    @mute_logger("odoo.addons.onpipeline_mail.models.onpipeline_mailbox_sync")
    def test_auth_failure_puts_mailbox_in_error_and_tells_owner_once(self):
        self.mailbox.sudo().imap_password = "changed-on-the-server"
        self.assertFalse(self.mailbox._sync())
        self.assertEqual(self.mailbox.state, "error")
        self.assertIn("Wrong user name or password", self.mailbox.last_error)
        self.assertGreater(self.mailbox.next_sync_date, fields.Datetime.now())
        activities = self.mailbox.activity_ids
        self.assertEqual(len(activities), 1)
        self.assertEqual(activities.user_id, self.user_alice)
        self.mailbox._sync()
        self.assertEqual(len(self.mailbox.activity_ids), 1, "the owner is told once")
        self.assertNotIn(self.mailbox, self.env["onpipeline.mailbox"]._mailboxes_due(), "backing off")
        self.mailbox.with_user(self.user_alice).imap_password_input = self.account.password
        self.assertEqual(self.mailbox.state, "connected")

    def test_two_workers_never_sync_one_mailbox_at_once(self):
        with self.registry.cursor() as other_cr:
            other_cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
            self.assertTrue(other_cr.fetchone()[0])
            with self.assertRaises(SyncBusy):
                self.mailbox._sync()
            other_cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
        self.assertTrue(self.mailbox._sync())

    def test_history_and_sent_copies_follow_the_sync_under_its_lock(self):
        # A second cron worker that picks the mailbox up as soon as its folders are done must not
        # post the same history entries or file the same Sent copies (a serialization failure
        # killed its whole run when it did).
        append(self.account, "INBOX", make_message("hello"))
        free_during = []
        mailbox_class = type(self.mailbox)
        real_post, real_learn = mailbox_class._post_pending_history, mailbox_class._learn_from_double_copies

        def lock_is_free():
            with self.registry.cursor() as other_cr:
                other_cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
                free = other_cr.fetchone()[0]
                if free:
                    other_cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
                return free

        def post(mailbox, commit):
            free_during.append(("history", lock_is_free()))
            return real_post(mailbox, commit)

        def learn(mailbox):
            free_during.append(("sent copies", lock_is_free()))
            return real_learn(mailbox)

        with patch.object(mailbox_class, "_post_pending_history", post), \
                patch.object(mailbox_class, "_learn_from_double_copies", learn):
            self.assertTrue(self.mailbox._sync())
        self.assertEqual(sorted(free_during), [("history", False), ("sent copies", False)])
        self.assertTrue(lock_is_free(), "released after the run")

    def test_cron_syncs_every_connected_mailbox(self):
        other = self.create_mailbox(self.new_account(), user=self.user_bob)
        append(self.account, "INBOX", make_message("for alice"))
        append(other._imap_settings(), "INBOX", make_message("for bob"))
        disconnected = self.create_mailbox(self.new_account(), imap_password_input=False)
        self.assertEqual(disconnected.state, "not_connected")
        cron = self.env.ref("onpipeline_mail.ir_cron_onpipeline_mail_sync")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        # The scheduled action commits after each batch; a test transaction cannot.
        with patch.object(self.env.cr, "commit"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertEqual(self.messages().mapped("subject"), ["for alice"])
        self.assertEqual(self.Message.search([("mailbox_id", "=", other.id)]).mapped("subject"), ["for bob"])

    def test_a_run_ends_well_before_the_cron_workers_cpu_limit(self):
        # Odoo's prefork cron workers die past --limit-time-cpu (60 s by default) per round of jobs.
        self.assertEqual(run_budget(240, None), 240, "no limit (threaded server, tests): the setting")
        self.assertEqual(run_budget(240, 60), 37)
        self.assertEqual(run_budget(20, 60), 20)
        self.assertEqual(run_budget(240, 3), 0, "nothing left: this run syncs nothing, the next round does")
        left = cpu_seconds_left()
        self.assertTrue(left is None or left > 0)

    def test_sync_interval_setting_drives_the_crons(self):
        self.env["res.config.settings"].create({"onpipeline_mail_sync_interval": 15}).execute()
        crons = self.env["onpipeline.mailbox"]._sync_crons()
        self.assertEqual(len(crons), 2, "two scheduled actions, so that two cron workers can sync at once")
        self.assertEqual(crons.mapped("interval_number"), [15, 15])
        self.assertTrue(all(crons.mapped("active")))

    def test_a_worker_skips_the_mailbox_another_worker_holds(self):
        other = self.create_mailbox(self.new_account(), user=self.user_bob)
        append(self.account, "INBOX", make_message("held by the other worker"))
        append(other._imap_settings(), "INBOX", make_message("for this worker"))
        with self.registry.cursor() as other_cr:
            other_cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
            with patch.object(self.env.cr, "commit"):
                self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
            other_cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self.mailbox.id))
        self.assertFalse(self.messages())
        self.assertEqual(self.Message.search([("mailbox_id", "=", other.id)]).mapped("subject"), ["for this worker"])

    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_personal_mail_is_visible_to_its_owner_only(self):
        append(self.account, "INBOX", make_message("private", attachments=[("offer.txt", "text/plain", b"price")]))
        self.mailbox._sync()
        message = self.messages()
        self.assertEqual(message.attachment_ids.with_user(self.user_alice).read(["name"])[0]["name"], "offer.txt")
        self.assertEqual(self.Message.with_user(self.user_alice).search([]), message)
        self.assertFalse(self.Message.with_user(self.user_bob).search([]))
        with self.assertRaises(AccessError):
            message.with_user(self.user_bob).read(["subject"])
        with self.assertRaises(AccessError):
            message.attachment_ids.with_user(self.user_bob).read(["name"])
        self.assertFalse(self.Message.with_user(self.user_sales_admin).search([]))

    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_team_mail_is_visible_to_the_team(self):
        account = self.new_account()
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(account, mailbox_type="team", team_id=self.team_east.id))
        append(account, "INBOX", make_message("team mail"))
        team_mailbox.with_user(self.user_alice).action_sync_now()
        message = self.Message.search([("mailbox_id", "=", team_mailbox.id)])
        self.assertEqual(message.subject, "team mail")
        self.assertEqual(self.Message.with_user(self.user_alice).search([]), message)
        self.assertEqual(self.Message.with_user(self.user_sales_admin).search([]), message)
        self.assertFalse(self.Message.with_user(self.user_bob).search([]))
