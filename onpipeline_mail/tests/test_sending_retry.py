"""A send whose outcome is unknown (the SMTP server took the message, never answered) on a mailbox whose Sent
folder cannot prove delivery: the user is told, and sending it again is their explicit choice (issue 12)."""

import dataclasses
import time
from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .test_sending import SendingCase, parse


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSendingUnknownOutcome(SendingCase):
    """The server took the message and never answered; Sent cannot tell: a retry asks first (issue 12)."""

    def send_without_answer(self, account, mailbox):
        Mailbox = type(mailbox)
        settings = Mailbox._smtp_settings

        def quick(record):
            return dataclasses.replace(settings(record), read_timeout=0.5)

        hook = self.smtp.on_message  # the test provider's own filing in Sent, when it does

        def late_answer(message):
            hook(message)
            time.sleep(1.5)  # answers after we gave up

        self.smtp.on_message = late_answer
        try:
            with patch.object(Mailbox, "_smtp_settings", quick):
                self.compose(self.lead).action_send_mail()
        finally:
            self.smtp.on_message = hook
        return self.env["mail.mail"].sudo().search([("onpipeline_mailbox_id", "=", mailbox.id)])

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_retry_needs_confirmation(self):
        account, mailbox = self.connect("plain")
        mail = self.send_without_answer(account, mailbox)
        self.assertEqual(len(self.received_from(account)), 1, "the server did get it")
        self.assertEqual(mail.state, "exception")
        self.assertTrue(mail.onpipeline_may_be_delivered)
        self.assertIn("may already have been delivered", mail.failure_reason)

        for retry in (mail.action_retry, mail.mark_outgoing):
            with self.subTest(retry=retry.__name__), self.assertRaisesRegex(UserError, "Send Again Anyway"):
                retry()
        self.env["mail.mail"].process_email_queue()
        self.assertEqual((mail.state, len(self.received_from(account))), ("exception", 1), "not sent again")

        message_id, chatter = mail.message_id, mail.mail_message_id
        mail.with_context(onpipeline_confirm_resend=True).mark_outgoing()
        self.assertFalse(mail.onpipeline_may_be_delivered)
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received_from(account)), 2, "sent again once the user confirmed")
        self.assertEqual(parse(self.received_from(account)[-1].data)["Message-ID"], message_id)
        self.assertEqual(chatter.notification_ids.notification_status, "sent")

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_chatter_resend_is_unticked_and_says_why(self):
        account, mailbox = self.connect("plain")
        mail = self.send_without_answer(account, mailbox)
        chatter = mail.mail_message_id
        Resend = self.env["mail.resend.message"].with_user(self.user_alice).with_context(
            mail_message_to_resend=chatter.id)
        wizard = Resend.create({})
        [line] = wizard.partner_ids
        self.assertFalse(line.resend, "sending again is the user's explicit choice")
        self.assertIn("may already have been delivered", line.message)
        wizard.resend_mail_action()
        self.assertEqual(len(self.received_from(account)), 1, "left unticked: not sent again")

        # Another time the user ticks it: it goes out again.
        mail.sudo().write({"state": "exception"})
        chatter.notification_ids.sudo().write({"notification_status": "exception"})
        wizard = Resend.create({})
        wizard.partner_ids.resend = True
        wizard.resend_mail_action()
        self.assertEqual(len(self.received_from(account)), 2)

    @mute_logger("odoo.addons.onpipeline_mail.models.mail_mail")
    def test_filing_server_retry_needs_no_confirmation(self):
        account, mailbox = self.connect("gmail")
        mailbox.sudo().server_files_sent = "yes"
        self.filing.register(account.username, account, "[Gmail]/Sent Mail")
        self.addCleanup(self.filing.unregister, account.username)
        mail = self.send_without_answer(account, mailbox)
        self.assertFalse(mail.onpipeline_may_be_delivered, "its Sent folder proves it: the retry looks there")
        chatter = mail.mail_message_id
        mail.action_retry()
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received_from(account)), 1, "found in Sent, not sent again")
        self.assertEqual(chatter.notification_ids.notification_status, "sent")
