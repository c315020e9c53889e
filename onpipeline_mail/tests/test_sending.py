import email
import email.policy
import time
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged
from odoo.tools import mute_logger

from ..engine.connection import imap_session
from ..engine.testing import sent_filing
from ..engine.testing.dovecot import free_port
from .common import OnpipelineMailCase, append, make_message


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


class SendingCase(OnpipelineMailCase):
    """Customers, a deal and helpers to send from the CRM and look at what the servers got."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.customer = cls.env["res.partner"].create({"name": "Carl Customer", "email": "carl@client.example"})
        cls.other_customer = cls.env["res.partner"].create({"name": "Olga Other", "email": "olga@client.example"})
        cls.filing = sent_filing.install(cls.smtp)

    def setUp(self):
        super().setUp()
        # The first send waits this long for a server that files sent mail by itself.
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sent_copy_wait", "0.5")
        self.Message = self.env["onpipeline.mail.message"].sudo()
        self.lead = self.env["crm.lead"].create({
            "name": "Big deal", "type": "opportunity", "partner_id": self.customer.id,
            "user_id": self.user_alice.id, "team_id": self.team_east.id})

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------

    def connect(self, layout="plain", user=None, **overrides):
        account = self.new_account(layout=layout, prefix="send")
        return account, self.create_mailbox(account, user=user, **overrides)

    def compose(self, record, user=None, partners=None, attachments=(), **values):
        user = user or self.user_alice
        attachment_ids = [self.env["ir.attachment"].with_user(user).create({
            "name": name, "raw": data, "res_model": "mail.compose.message", "res_id": 0}).id
            for name, data in attachments]
        composer = self.env["mail.compose.message"].with_user(user).with_context(
            default_model=record._name, default_res_ids=record.ids, default_composition_mode="comment",
            **{"default_%s" % key: value for key, value in values.pop("defaults", {}).items()},
        ).create(dict({
            "subject": "Our offer", "body": "<p>Hello <b>Carl</b>, here is the offer.</p>",
            "partner_ids": [(6, 0, (partners or self.customer).ids)],
            "attachment_ids": [(6, 0, attachment_ids)],
        }, **values))
        return composer

    def received_from(self, account):
        return [message for message in self.smtp.received if message.login == account.username]

    def copies(self, account, folder, message_id):
        with imap_session(account) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["HEADER", "Message-ID", message_id])
            return client.fetch(uids, ["FLAGS"]) if uids else {}

    def folders_of(self, account):
        with imap_session(account) as client:
            return [name for _flags, _delimiter, name in client.list_folders()]

    def stored(self, mailbox):
        return self.Message.search([("mailbox_id", "=", mailbox.id)])



@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSending(SendingCase):

    # ------------------------------------------------------------------
    # Composer on a deal, server that does not file sent mail
    # ------------------------------------------------------------------

    def test_composer_sends_through_the_mailbox_and_files_one_copy(self):
        account, mailbox = self.connect("plain")
        composer = self.compose(self.lead, attachments=[("offer.pdf", b"%PDF-1.4 offer")])
        self.assertEqual(composer.onpipeline_mailbox_id, mailbox, "the personal mailbox is the default")
        composer.action_send_mail()

        [received] = self.received_from(account)
        self.assertEqual(received.mail_from, account.username)
        self.assertEqual(received.rcpt_tos, ["carl@client.example"])
        sent = parse(received.data)
        self.assertEqual(sent["From"].addresses[0].addr_spec, account.username)
        self.assertEqual(sent["From"].addresses[0].display_name, "Alice Seller")
        self.assertTrue(sent["Message-ID"].endswith("@example.test>"), sent["Message-ID"])
        self.assertIsNone(sent["Bcc"])
        self.assertIsNone(sent["Reply-To"], "answers go to the mailbox, not to a catchall")
        self.assertEqual(sent["Subject"], "Our offer")
        html = sent.get_body(("html",)).get_content()
        self.assertIn("<b>Carl</b>", html)
        # What a mail client sends: no record banner, no company footer.
        self.assertNotIn("Powered by", html)
        self.assertNotIn("Big deal", html)
        [attachment] = list(sent.iter_attachments())
        self.assertEqual((attachment.get_filename(), attachment.get_content()), ("offer.pdf", b"%PDF-1.4 offer"))

        # The chatter message carries the same Message-ID: a reply naming it threads on the deal.
        chatter = self.lead.message_ids.filtered(lambda m: m.subject == "Our offer")
        self.assertEqual(chatter.message_id, sent["Message-ID"])
        self.assertEqual(chatter.notification_ids.notification_status, "sent")

        # Exactly one copy, \Seen, in Sent; the server's habit is remembered.
        copies = self.copies(account, "Sent", sent["Message-ID"])
        self.assertEqual(len(copies), 1)
        self.assertIn(b"\\Seen", list(copies.values())[0][b"FLAGS"])
        self.assertEqual(mailbox.server_files_sent, "no")
        self.assertEqual(mailbox.smtp_state, "ok")

        # Stored at once as outgoing, located in Sent; the next sync recognises it.
        message = self.stored(mailbox)
        self.assertEqual(message.direction, "outgoing")
        self.assertEqual(message.message_key, sent["Message-ID"])
        self.assertEqual(message.folder_ids.name, "Sent")
        self.assertEqual(message.attachment_ids.mapped("name"), ["offer.pdf"])
        self.assertTrue(mailbox._sync())
        self.assertEqual(self.stored(mailbox), message, "the copy is not imported again")
        self.assertEqual(len(message.location_ids), 1)

        # A second send does not wait: it appends straight away, once.
        self.compose(self.lead, subject="Follow-up").action_send_mail()
        second = parse(self.received_from(account)[-1].data)
        self.assertEqual(len(self.copies(account, "Sent", second["Message-ID"])), 1)
        self.assertEqual(len(self.stored(mailbox)), 2)

    def test_reply_that_comes_back_threads_on_the_deal(self):
        account, mailbox = self.connect("plain")
        self.compose(self.lead).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        reply = make_message("Re: Our offer", sender="Carl Customer <carl@client.example>", to=account.username,
                             In_Reply_To=sent["Message-ID"], References=sent["Message-ID"])
        # The deal's chatter message carries the Message-ID the reply names...
        owners = self.env["mail.message"].sudo().search([("message_id", "=", sent["Message-ID"])])
        self.assertIn(("crm.lead", self.lead.id), [(owner.model, owner.res_id) for owner in owners])
        if len(owners) == 1:
            # ... so Odoo's own routing finds the deal. (When the linking of synced mail has copied the
            # message into a contact's history too, Odoo routes to the newest copy: the linker's business.)
            with mute_logger("odoo.addons.mail.models.mail_thread"):
                thread_id = self.env["mail.thread"].message_process(False, reply.decode())
            self.assertEqual(thread_id, self.lead.id)
            self.assertIn("Re: Our offer", self.lead.message_ids.mapped("subject"))
        # ... and the synced reply names the message stored at the send.
        append(account, "INBOX", reply)
        mailbox._sync()
        answer = self.stored(mailbox).filtered(lambda m: m.direction == "incoming")
        self.assertEqual(answer.in_reply_to, sent["Message-ID"])
        self.assertEqual(self.stored(mailbox).filtered(lambda m: m.direction == "outgoing").message_key,
                         answer.in_reply_to)

    def test_sent_message_is_on_the_contact_and_the_deal_at_once_and_the_answer_follows(self):
        account, mailbox = self.connect("plain")
        self.compose(self.lead).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        stored = self.stored(mailbox)
        self.assertEqual(stored.lead_ids, self.lead)
        self.assertIn(self.customer, stored.partner_ids)
        history = self.env["mail.message"].sudo().search([("message_id", "=", sent["Message-ID"])])
        self.assertEqual(sorted((entry.model, entry.res_id) for entry in history),
                         sorted([("crm.lead", self.lead.id), ("res.partner", self.customer.id)]),
                         "once on the deal (the chatter message itself), once on the contact")
        reply = make_message("Re: Our offer", sender="Carl Customer <carl@client.example>", to=account.username,
                             In_Reply_To=sent["Message-ID"], References=sent["Message-ID"])
        append(account, "INBOX", reply)
        mailbox._sync()
        answer = self.stored(mailbox).filtered(lambda m: m.direction == "incoming")
        self.assertEqual(answer.lead_ids, self.lead, "the answer comes back to the same deal")

    # ------------------------------------------------------------------
    # Chatter "Send message", server that files sent mail itself
    # ------------------------------------------------------------------

    def test_chatter_message_goes_out_through_the_personal_mailbox_of_a_filing_server(self):
        account, mailbox = self.connect("gmail")
        self.filing.register(account.username, account, "[Gmail]/Sent Mail")
        self.addCleanup(self.filing.unregister, account.username)
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Any news?</p>", subject="News", partner_ids=self.customer.ids,
            message_type="comment", subtype_xmlid="mail.mt_comment")
        [received] = self.received_from(account)
        sent = parse(received.data)
        self.assertEqual(sent["From"].addresses[0].addr_spec, account.username)
        html = sent.get_body(("html",)).get_content()
        self.assertIn("Any news?", html)
        self.assertNotIn("Powered by", html)
        self.assertEqual(len(self.copies(account, "[Gmail]/Sent Mail", sent["Message-ID"])), 1)
        self.assertEqual(mailbox.server_files_sent, "yes")
        message = self.stored(mailbox)
        self.assertEqual((message.direction, message.message_key), ("outgoing", sent["Message-ID"]))

        # Learned: the next send does not look, the server alone files it, once.
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Second</p>", subject="Second", partner_ids=self.customer.ids,
            message_type="comment", subtype_xmlid="mail.mt_comment")
        second = parse(self.received_from(account)[-1].data)
        self.assertEqual(len(self.copies(account, "[Gmail]/Sent Mail", second["Message-ID"])), 1)
        mailbox._sync()
        self.assertEqual(len(self.stored(mailbox)), 2, "the sync matches the server's copies, imports none")
        self.assertTrue(all(m.folder_ids.name == "[Gmail]/Sent Mail" for m in self.stored(mailbox)))

    def test_several_recipients_get_one_mail_filed_once(self):
        account, mailbox = self.connect("plain")
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Update</p>", subject="Update", partner_ids=(self.customer | self.other_customer).ids,
            message_type="comment", subtype_xmlid="mail.mt_comment")
        [received] = self.received_from(account)
        self.assertEqual(sorted(received.rcpt_tos), ["carl@client.example", "olga@client.example"])
        sent = parse(received.data)
        self.assertEqual(sorted(address.addr_spec for address in sent["To"].addresses),
                         ["carl@client.example", "olga@client.example"], "both see each other, as in a mail client")
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 1)
        self.assertEqual(mailbox.server_files_sent, "no", "our own copy is not taken for the server's")
        self.assertEqual(len(self.stored(mailbox)), 1)

    def test_server_that_files_late_is_learned_from_the_double_copy(self):
        account, mailbox = self.connect("plain")
        # A slow provider: its own copy lands after the first check gave up (0.5 s).
        self.filing.register(account.username, account, "Sent", delay=1.0)
        self.addCleanup(self.filing.unregister, account.username)
        self.compose(self.lead).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertEqual(mailbox.server_files_sent, "no")
        deadline = time.monotonic() + 10
        while len(self.copies(account, "Sent", sent["Message-ID"])) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 2)
        mailbox._sync()
        self.assertEqual(mailbox.server_files_sent, "yes", "learned from the double copy")
        self.assertEqual(len(self.stored(mailbox)), 1)
        self.filing.register(account.username, account, "Sent")
        self.compose(self.lead, subject="Next").action_send_mail()
        following = parse(self.received_from(account)[-1].data)
        self.assertEqual(len(self.copies(account, "Sent", following["Message-ID"])), 1, "once learned, filed once")

    def test_forced_modes(self):
        account, mailbox = self.connect("plain", sent_copy_mode="never")
        self.compose(self.lead).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertFalse(self.copies(account, "Sent", sent["Message-ID"]), "never: no copy")
        self.assertEqual(self.stored(mailbox).direction, "outgoing")
        mailbox.sent_copy_mode = "always"
        self.compose(self.lead, subject="Again").action_send_mail()
        again = parse(self.received_from(account)[-1].data)
        self.assertEqual(len(self.copies(account, "Sent", again["Message-ID"])), 1)
        self.assertEqual(mailbox.server_files_sent, "unknown", "forced modes learn nothing")

    def test_mailbox_without_sent_folder_gets_one(self):
        account, mailbox = self.connect(layout=None)
        self.assertEqual(self.folders_of(account), ["INBOX"])
        self.compose(self.customer).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertIn("Sent", self.folders_of(account))
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 1)
        folder = mailbox.folder_ids.filtered(lambda f: f.name == "Sent")
        self.assertEqual((folder.role, folder.is_selected), ("sent", True))
        self.assertEqual(self.stored(mailbox).folder_ids, folder)
        mailbox._sync()
        self.assertEqual(len(self.stored(mailbox)), 1)

    # ------------------------------------------------------------------
    # Failures
    # ------------------------------------------------------------------

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_refused_send_stays_failed_then_retry_sends_once(self):
        account, mailbox = self.connect("plain")
        good_port = mailbox.smtp_port
        mailbox.smtp_port = free_port()
        Users = type(self.env["res.users"])
        with patch.object(Users, "_bus_send", autospec=True) as bus_send:
            self.compose(self.lead).action_send_mail()
        [(user, kind, notice)] = [call.args for call in bus_send.call_args_list]
        self.assertEqual((user, kind, notice["type"]), (self.user_alice, "simple_notification", "danger"))
        self.assertIn("connection refused", notice["message"])
        self.assertFalse(self.received_from(account))
        mail = self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", mailbox.id)])
        self.assertEqual(mail.state, "exception")
        self.assertIn("connection refused", mail.failure_reason)
        chatter = mail.mail_message_id
        self.assertEqual(chatter.notification_ids.notification_status, "exception")
        self.assertEqual(chatter.notification_ids.failure_type, "mail_smtp")
        self.assertFalse(self.stored(mailbox))

        mailbox.smtp_port = good_port
        mail.action_retry()
        self.assertEqual(mail.state, "outgoing")
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received_from(account)), 1)
        sent = parse(self.received_from(account)[0].data)
        self.assertEqual(sent["Message-ID"], chatter.message_id, "the retry keeps the Message-ID")
        self.assertEqual(chatter.notification_ids.notification_status, "sent")
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 1)
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received_from(account)), 1, "nothing is sent twice")

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_resend_from_the_chatter_keeps_the_mailbox_and_sends_once(self):
        team_account = self.new_account(prefix="team")
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(team_account, mailbox_type="team", team_id=self.team_east.id))
        self.connect("plain")  # Alice's personal mailbox: not the one chosen
        good_port = team_mailbox.smtp_port
        team_mailbox.smtp_port = free_port()
        self.compose(self.lead, onpipeline_mailbox_id=team_mailbox.id).action_send_mail()
        failed = self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", team_mailbox.id)])
        self.assertEqual(failed.state, "exception")
        chatter = failed.mail_message_id
        team_mailbox.smtp_port = good_port
        resend = self.env["mail.resend.message"].with_user(self.user_alice).with_context(
            mail_message_to_resend=chatter.id).create({})
        # The wizard names the kind of failure; "See Error Details" shows the mailbox's reason.
        self.assertEqual(resend.partner_ids.message, "Connection failed (outgoing mail server problem)")
        self.assertIn("connection refused", resend.partner_ids.failure_reason)
        resend.resend_mail_action()
        [received] = self.received_from(team_account)
        self.assertEqual(parse(received.data)["Message-ID"], chatter.message_id)
        self.assertEqual(failed.state, "cancel", "the failed mail cannot be retried a second time")
        self.assertEqual(chatter.notification_ids.notification_status, "sent")

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_retry_of_a_send_that_got_through_does_not_send_again(self):
        account, mailbox = self.connect("gmail")
        mailbox.sudo().server_files_sent = "yes"
        sent_folder = "[Gmail]/Sent Mail"

        def file_then_fail(message):
            # The provider accepted and filed the message, but the answer never reached us.
            self.filing(message)
            raise ConnectionResetError("connection lost after DATA")

        self.filing.register(account.username, account, sent_folder)
        self.addCleanup(self.filing.unregister, account.username)
        self.smtp.on_message = file_then_fail
        try:
            self.compose(self.lead).action_send_mail()
        finally:
            self.smtp.on_message = self.filing
        mail = self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", mailbox.id)])
        self.assertEqual((mail.state, mail.onpipeline_attempt_count), ("exception", 1))
        attempts = len(self.received_from(account))
        self.assertEqual(len(self.copies(account, sent_folder, mail.message_id)), 1)

        chatter = mail.mail_message_id
        mail.action_retry()
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received_from(account)), attempts, "not sent a second time")
        self.assertEqual(chatter.notification_ids.notification_status, "sent")
        self.assertEqual(len(self.copies(account, sent_folder, chatter.message_id)), 1)

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_retry_of_one_group_is_sent_when_only_another_group_got_through(self):
        account, mailbox = self.connect("gmail")
        mailbox.sudo().server_files_sent = "yes"
        self.filing.register(account.username, account, "[Gmail]/Sent Mail")
        self.addCleanup(self.filing.unregister, account.username)
        # Odoo makes one mail per batch of recipients (mail.batch_size, 50), all with the message's Message-ID.
        self.env["ir.config_parameter"].sudo().set_param("mail.batch_size", "1")
        self.smtp.refused_recipients.add("olga@client.example")
        try:
            self.lead.with_user(self.user_alice).message_post(
                body="<p>Update</p>", subject="Update", partner_ids=(self.customer | self.other_customer).ids,
                message_type="comment", subtype_xmlid="mail.mt_comment")
        finally:
            self.smtp.refused_recipients.discard("olga@client.example")
        failed = self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", mailbox.id),
                                                      ("state", "=", "exception")])
        self.assertEqual(failed.recipient_ids, self.other_customer)
        chatter = failed.mail_message_id
        # Carl's mail is in Sent under the same Message-ID; Olga's is not: it is sent.
        self.env["mail.resend.message"].with_user(self.user_alice).with_context(
            mail_message_to_resend=chatter.id).create({}).resend_mail_action()
        self.assertEqual(sorted(message.rcpt_tos for message in self.received_from(account)),
                         sorted([["carl@client.example"], ["olga@client.example"]]))
        self.assertEqual(set(chatter.notification_ids.mapped("notification_status")), {"sent"})

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_wrong_smtp_password_and_cancel(self):
        account, mailbox = self.connect("plain")
        mailbox.sudo().smtp_password = "wrong"
        self.compose(self.lead).action_send_mail()
        mail = self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", mailbox.id)])
        self.assertEqual(mail.state, "exception")
        self.assertIn("refused the user name or password", mail.failure_reason)
        self.assertEqual(mailbox.smtp_state, "error")
        self.assertFalse(mailbox.can_send, "a mailbox that cannot log in is no longer offered")
        mail.cancel()
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(mail.state, "cancel")
        self.assertFalse(self.received_from(account))

    @mute_logger("odoo.addons.onpipeline_mail.models.onpipeline_mailbox_send")
    def test_failed_copy_does_not_fail_the_send_and_the_sync_files_it(self):
        account, mailbox = self.connect("plain")
        # The IMAP password changed on the server; the SMTP one still works.
        mailbox.sudo().write({"smtp_password": account.password, "imap_password": "changed"})
        self.compose(self.lead).action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertEqual(self.lead.message_ids.filtered(lambda m: m.subject == "Our offer").notification_ids
                         .notification_status, "sent")
        self.assertFalse(self.copies(account, "Sent", sent["Message-ID"]))
        self.assertEqual(mailbox.sent_copy_count, 1)
        self.assertIn("Wrong user name or password", mailbox.sudo().sent_copy_ids.error)
        # The owner sees it on the mailbox form (the waiting copies themselves are for administrators).
        owner_view = Form(mailbox.with_user(self.user_alice))
        self.assertEqual(owner_view.sent_copy_count, 1)
        self.assertEqual(self.stored(mailbox).direction, "outgoing")
        self.assertFalse(self.stored(mailbox).location_ids)

        mailbox.sudo().imap_password = account.password
        mailbox._sync()
        self.assertEqual(mailbox.sent_copy_count, 0)
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 1)
        message = self.stored(mailbox)
        self.assertEqual(len(message), 1)
        self.assertEqual(message.folder_ids.name, "Sent")
        mailbox._sync()
        self.assertEqual(len(self.copies(account, "Sent", sent["Message-ID"])), 1)
        self.assertEqual(len(self.stored(mailbox)), 1)

    # ------------------------------------------------------------------
    # Which mailbox
    # ------------------------------------------------------------------

    def test_sender_choice_team_default_and_unusable_mailboxes(self):
        team_account = self.new_account(prefix="team")
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(team_account, mailbox_type="team", team_id=self.team_east.id))
        composer = self.compose(self.lead)
        self.assertEqual(composer.onpipeline_mailbox_id, team_mailbox,
                         "no personal mailbox: the team mailbox of the deal's team")
        self.assertFalse(composer.onpipeline_unavailable_note)

        # A personal mailbox without SMTP password cannot be chosen, and the composer says why.
        account = self.new_account(prefix="nosmtp")
        broken = self.create_mailbox(account, smtp_host=False)
        composer = self.compose(self.lead)
        self.assertEqual(composer.onpipeline_mailbox_id, team_mailbox)
        self.assertNotIn(broken, composer.onpipeline_usable_mailbox_ids)
        self.assertIn("no SMTP server is set", composer.onpipeline_unavailable_note)
        composer.onpipeline_mailbox_id = broken
        with self.assertRaisesRegex(UserError, "no SMTP server is set"):
            composer.action_send_mail()

        # Someone else's mailbox is refused.
        bob_account, bob_mailbox = self.connect("plain", user=self.user_bob)
        composer = self.compose(self.lead)
        composer.onpipeline_mailbox_id = bob_mailbox
        with self.assertRaisesRegex(UserError, "cannot send from"):
            composer.action_send_mail()
        self.assertFalse(self.received_from(bob_account))

        composer = self.compose(self.lead)
        composer.action_send_mail()
        [received] = self.received_from(team_account)
        self.assertEqual(parse(received.data)["From"].addresses[0].addr_spec, team_account.username)

    def test_composer_form_offers_the_mailboxes(self):
        account, mailbox = self.connect("plain")
        form = Form(self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            default_model="crm.lead", default_res_ids=self.lead.ids, default_composition_mode="comment",
            default_partner_ids=self.customer.ids))
        self.assertEqual(form.onpipeline_mailbox_id, mailbox)
        form.subject = "From the form"
        form.body = "<p>Typed in the composer</p>"
        form.save().action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertEqual(sent["Subject"], "From the form")
        self.assertIn("Typed in the composer", sent.get_body(("html",)).get_content())

    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_mailbox_in_a_forged_context_is_refused(self):
        _account, bob_mailbox = self.connect("plain", user=self.user_bob)
        with self.assertRaises(AccessError):
            self.lead.with_user(self.user_alice).with_context(onpipeline_mailbox_id=bob_mailbox.id).message_post(
                body="<p>Hi</p>", partner_ids=self.customer.ids, message_type="comment",
                subtype_xmlid="mail.mt_comment")

    def test_chatter_without_personal_mailbox_uses_odoo(self):
        self.lead.with_user(self.user_bob).sudo().message_post(
            body="<p>Hi</p>", partner_ids=self.customer.ids, message_type="comment",
            subtype_xmlid="mail.mt_comment")
        self.assertFalse(self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "!=", False)]))

    # ------------------------------------------------------------------
    # From a synced message
    # ------------------------------------------------------------------

    def test_reply_all_and_forward_a_synced_email(self):
        account, mailbox = self.connect("plain")
        original = make_message(
            "Question", sender="Carl Customer <carl@client.example>",
            to="%s, Olga Other <olga@client.example>" % account.username,
            message_id="<question-1@client.example>", References="<older@client.example>",
            attachments=[("spec.txt", "text/plain", b"the spec")])
        append(account, "INBOX", original)
        mailbox._sync()
        synced = self.stored(mailbox).with_user(self.user_alice)

        action = synced.action_reply_all()
        composer = self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            action["context"]).create({})
        self.assertEqual(composer.subject, "Re: Question")
        # The email is linked to the customer's deal: the answer is written there.
        self.assertEqual((composer.model, composer._onpipeline_res_ids()), ("crm.lead", self.lead.ids))
        self.assertEqual(set(composer.partner_ids.mapped("email")), {"carl@client.example", "olga@client.example"})
        self.assertEqual(composer.onpipeline_mailbox_id, mailbox)
        self.assertEqual(composer.onpipeline_reply_to_id, synced)
        composer.action_send_mail()
        sent = parse(self.received_from(account)[-1].data)
        self.assertEqual(sent["In-Reply-To"], "<question-1@client.example>")
        self.assertEqual(sent["References"].split(), ["<older@client.example>", "<question-1@client.example>"])
        self.assertEqual(sorted(self.received_from(account)[-1].rcpt_tos),
                         ["carl@client.example", "olga@client.example"])

        action = synced.action_forward()
        composer = self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            action["context"]).create({"partner_ids": [(6, 0, self.other_customer.ids)]})
        self.assertEqual(composer.subject, "Fwd: Question")
        composer.action_send_mail()
        forwarded = parse(self.received_from(account)[-1].data)
        self.assertIsNone(forwarded["In-Reply-To"])
        self.assertEqual([part.get_filename() for part in forwarded.iter_attachments()], ["spec.txt"])
