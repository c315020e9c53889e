"""Tours in Chromium: what a salesperson and a CRM admin click through, against the real test servers.

Each tour logs in as the least-privileged user who does it. What changes per run (the
account, the servers' ports) reaches the tour's steps in the ``onpipeline_tour`` cookie.
ONPIPELINE_TOUR_SCREENSHOTS=<folder> saves a PNG at each ``screenshot(...)`` step.
"""

import base64
import json
import os
import urllib.parse
from unittest.mock import patch

from odoo.tests import HttpCase, tagged
from odoo.tests.common import ChromeBrowser

from .common import OnpipelineMailCase, append, make_message

SCREENSHOT_SIGNAL = "onpipeline-screenshot "


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestUiTours(HttpCase, OnpipelineMailCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.customer = cls.env["res.partner"].create({"name": "Carl Customer", "email": "carl@client.example"})

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
