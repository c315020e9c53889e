"""Tours in Chromium: what a salesperson and a CRM admin click through, against the real test servers.

Each tour logs in as the least-privileged user who does it. What changes per run (the
account, the servers' ports) reaches the tour's steps in the ``onpipeline_tour`` cookie.
ONPIPELINE_TOUR_SCREENSHOTS=<folder> saves a PNG at each ``screenshot(...)`` step.
"""

import base64
import email
import email.policy
import json
import os
import urllib.parse
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, tagged
from odoo.tests.common import ChromeBrowser

from ..engine.connection import imap_session
from .common import OnpipelineMailCase, append, make_message

SCREENSHOT_SIGNAL = "onpipeline-screenshot "


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestUiTours(HttpCase, OnpipelineMailCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.customer = cls.env["res.partner"].create({"name": "Carl Customer", "email": "carl@client.example"})
        cls.other_customer = cls.env["res.partner"].create({"name": "Olga Other", "email": "olga@other.example"})

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------

    def tour_config(self, account=None, **values):
        config = {"screenshots": bool(os.environ.get("ONPIPELINE_TOUR_SCREENSHOTS"))}
        if account:
            config.update(email=account.username, password=account.password,
                          imap_port=self.dovecot.tls_port, smtp_port=self.smtp.tls_port)
        config.update(values)
        return config

    def run_tour(self, tour, login, config):
        """start_tour with ``config`` in the cookie the steps read, screenshots on request."""
        cookies = {"onpipeline_tour": urllib.parse.quote(json.dumps(config))}
        folder = os.environ.get("ONPIPELINE_TOUR_SCREENSHOTS")
        if not folder:
            return self.start_tour("/odoo", tour, login=login, cookies=cookies)
        os.makedirs(folder, exist_ok=True)
        handle_console = ChromeBrowser._handle_console

        def screenshot_on_signal(browser, type, args=None, **kw):  # noqa: A002 (CDP's name)
            if type == "log" and args:
                text = str(browser._from_remoteobject(args[0]))
                if text.startswith(SCREENSHOT_SIGNAL):
                    path = os.path.join(folder, "%s-%s.png" % (tour, text[len(SCREENSHOT_SIGNAL):]))
                    future = browser._websocket_send("Page.captureScreenshot", with_future=True)

                    def save(done, path=path):
                        with open(path, "wb") as file:
                            file.write(base64.b64decode(done.result()["data"]))

                    future.add_done_callback(save)
                    return None
            return handle_console(browser, type, args=args, **kw)

        with patch.object(ChromeBrowser, "_handle_console", screenshot_on_signal):
            return self.start_tour("/odoo", tour, login=login, cookies=cookies)

    def personal_mailbox(self, user):
        return self.env["onpipeline.mailbox"].search(
            [("mailbox_type", "=", "personal"), ("user_id", "=", user.id)])

    # ------------------------------------------------------------------
    # Flow 1: My Mailbox
    # ------------------------------------------------------------------

    def test_salesperson_connects_my_mailbox_syncs_and_finds_the_email(self):
        account = self.new_account(layout="plain", prefix="tour")
        subject = "Question about the tour offer"
        append(account, "INBOX", make_message(subject, sender="Carl Customer <carl@client.example>",
                                              to=account.username))
        self.run_tour("onpipeline_mail_my_mailbox", "alice", self.tour_config(account, subject=subject))

        self.env.invalidate_all()
        mailbox = self.personal_mailbox(self.user_alice)
        self.assertEqual(mailbox.email, account.username)
        self.assertEqual(mailbox.state, "connected")
        self.assertEqual(sorted(mailbox.folder_ids.filtered("is_selected").mapped("role")), ["inbox", "sent"])
        message = self.env["onpipeline.mail.message"].search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(message.mapped("subject"), [subject])

    # ------------------------------------------------------------------
    # Flow 2: the team mailbox, from the Sales Team form
    # ------------------------------------------------------------------

    def test_crm_admin_connects_the_team_mailbox_from_the_sales_team_form(self):
        self.assertFalse(self.user_sales_admin.has_group("base.group_system"), "a CRM admin, not a system admin")
        account = self.new_account(layout="plain", prefix="tourteam")
        self.run_tour("onpipeline_mail_team_mailbox", "crm_admin", self.tour_config(account, team=self.team_east.name))

        self.env.invalidate_all()
        mailbox = self.team_east.onpipeline_mailbox_id
        self.assertEqual(mailbox.email, account.username)
        self.assertEqual(mailbox.mailbox_type, "team")
        self.assertFalse(mailbox.user_id)
        self.assertEqual(mailbox.state, "connected")

    # ------------------------------------------------------------------
    # Flow 3: the synced email on the deal, a reply from the deal's chatter
    # ------------------------------------------------------------------

    def connected_mailbox(self, user, prefix):
        account = self.new_account(layout="plain", prefix=prefix)
        return account, self.create_mailbox(account, user=user)

    def test_salesperson_sees_the_email_on_the_deal_and_replies_from_its_chatter(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sent_copy_wait", "0.5")
        account, mailbox = self.connected_mailbox(self.user_alice, "tourdeal")
        deal = self.env["crm.lead"].create({
            "name": "Tour deal: 40 seats", "type": "opportunity", "partner_id": self.customer.id,
            "user_id": self.user_alice.id, "team_id": self.team_east.id})
        subject = "Seats for next quarter"
        append(account, "INBOX", make_message(
            subject, sender="Carl Customer <carl@client.example>", to=account.username,
            body="Could you send us a quote for 40 seats?"))
        mailbox._sync()
        self.assertTrue(deal.message_ids.filtered(lambda m: m.subject == subject), "history copy on the deal")

        reply = "Here is the quote for the 40 seats."
        reply2 = "The quote is valid until the end of the month."
        self.run_tour("onpipeline_mail_deal_reply", "alice", self.tour_config(
            deal=deal.name, subject=subject, body="Could you send us a quote for 40 seats?", reply=reply,
            reply2=reply2, email=account.username))

        self.env.invalidate_all()
        # The browser's requests share the test cursor, whose commit drops post-commit hooks: the
        # mails are sent by the queue's scheduled action, as when the post-commit send did not run.
        self.env["mail.mail"].sudo().process_email_queue()
        received = [message for message in self.smtp.received if message.login == account.username]
        self.assertEqual(len(received), 2, "the chatter message and the reply")
        original = self.env["onpipeline.mail.message"].sudo().search(
            [("mailbox_id", "=", mailbox.id), ("subject", "=", subject)])
        for message, text in zip(received, (reply, reply2), strict=True):
            with self.subTest(text=text):
                self.assertEqual(message.rcpt_tos, ["carl@client.example"])
                sent = email.message_from_bytes(message.data, policy=email.policy.default)
                self.assertEqual([address.addr_spec for address in sent["To"].addresses], ["carl@client.example"])
                self.assertEqual(sent["From"].addresses[0].addr_spec, account.username)
                self.assertIsNone(sent["Bcc"])
                html = sent.get_body(("html",)).get_content()
                self.assertIn(text, html)
                body = message.data.decode(errors="replace").split("\r\n\r\n", 1)[1]
                self.assertNotIn("Powered by", body)
                self.assertNotIn("Odoo", body, "nothing of Odoo in the body")
                self.assertNotIn(deal.name, body, "no deal banner")
                with imap_session(account) as client:
                    client.select_folder("Sent", readonly=True)
                    self.assertEqual(len(client.search(["HEADER", "Message-ID", sent["Message-ID"]])), 1,
                                     "one copy in IMAP Sent")
        answer = email.message_from_bytes(received[1].data, policy=email.policy.default)
        self.assertEqual(answer["Subject"], "Re: %s" % subject)
        self.assertEqual(answer["In-Reply-To"], original.message_id)
        self.assertIn(original.message_id, answer["References"])

    # ------------------------------------------------------------------
    # Flow 4: own documents only, one email linked to a colleague's deal
    # ------------------------------------------------------------------

    def test_salesperson_with_own_documents_opens_emails_conversations_and_mailbox(self):
        account, mailbox = self.connected_mailbox(self.user_alice, "touraccess")
        bob_deal = self.env["crm.lead"].create({
            "name": "Bob's renewal", "type": "opportunity", "partner_id": self.other_customer.id,
            "user_id": self.user_bob.id, "team_id": self.team_west.id})
        subject = "Renewal terms"
        append(account, "INBOX", make_message(subject, sender="Olga Other <olga@other.example>", to=account.username))
        append(account, "INBOX", make_message("Lunch on Friday?", sender="Carl Customer <carl@client.example>",
                                              to=account.username))
        mailbox._sync()
        links = self.env["onpipeline.mail.link"].sudo().search([("lead_id", "=", bob_deal.id)])
        self.assertTrue(links, "the email is linked to Bob's deal")
        with self.assertRaises(AccessError):
            bob_deal.with_user(self.user_alice).check_access("read")

        self.run_tour("onpipeline_mail_own_documents", "alice", self.tour_config(
            subject=subject, other_subject="Lunch on Friday?", email=account.username))
