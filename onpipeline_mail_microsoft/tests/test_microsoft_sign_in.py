"""Sign in with Microsoft, end to end with real components.

The provider is a local OAuth server (consent page, token endpoint that
rotates refresh tokens as Microsoft does, introspection); microsoft_outlook
reaches it through its own setting, the ``microsoft_outlook.endpoint``
parameter (authorize and token URLs are built from it). Dovecot checks the
bearer tokens with it (oauth2 passdb, XOAUTH2), the SMTP test server too.
The sign-in goes through the real ``/microsoft_outlook/confirm`` route with
the state microsoft_outlook's mixin made.
"""

import os
import time
import urllib.parse

import requests

from odoo.exceptions import AccessError
from odoo.tests import Form, HttpCase, tagged

from odoo.addons.onpipeline_mail.engine.connection import ServerSettings
from odoo.addons.onpipeline_mail.engine.testing.oauth_server import oauth_mail_servers
from odoo.addons.onpipeline_mail.tests.common import OnpipelineMailCase, append, make_message

SCOPE = "offline_access https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"


@tagged("post_install", "-at_install", "onpipeline_mail_microsoft")
class TestMicrosoftSignIn(HttpCase, OnpipelineMailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider, cls.oauth_dovecot = oauth_mail_servers(cert_dir=os.path.join(cls.dovecot.root, "certs"))
        cls.smtp.oauth_verifier = cls.provider.token_owner
        cls.addClassCleanup(setattr, cls.smtp, "oauth_verifier", None)
        cls.provider.rotate_refresh_tokens = True
        cls.addClassCleanup(setattr, cls.provider, "rotate_refresh_tokens", False)
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("microsoft_outlook_client_id", cls.provider.client_id)
        params.set_param("microsoft_outlook_client_secret", cls.provider.client_secret)
        params.set_param("microsoft_outlook.endpoint", cls.provider.base_url + "/microsoft/")

    # -- helpers ---------------------------------------------------------------------------

    def new_microsoft_account(self):
        """An account on the OAuth Dovecot; its password serves only the test's own APPENDs."""
        account = self.new_account(prefix="microsoft")
        self.oauth_dovecot.add_user(account.username, account.password)
        return ServerSettings("127.0.0.1", self.oauth_dovecot.tls_port, "ssl", account.username, account.password,
                              ca_file=self.oauth_dovecot.ca_file)

    def create_microsoft_mailbox(self, account, user=None, **values):
        values = dict({
            "email": account.username,
            "imap_host": "127.0.0.1", "imap_port": self.oauth_dovecot.tls_port, "imap_security": "ssl",
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "smtp_security": "starttls",
        }, **values)
        return self.env["onpipeline.mailbox"].with_user(user or self.user_alice).create(values)

    def sign_in(self, mailbox, user):
        """Click Sign in with Microsoft, consent at the provider, come back through /microsoft_outlook/confirm."""
        self.authenticate(user.login, user.login)
        action = mailbox.with_user(user).action_microsoft_sign_in()
        self.assertTrue(action["url"].startswith(self.provider.base_url + "/microsoft/authorize?"))
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(action["url"]).query))
        self.assertEqual(query["redirect_uri"], mailbox.get_base_url() + "/microsoft_outlook/confirm")
        self.assertEqual(query["scope"], SCOPE)
        self.assertEqual(query["login_hint"], mailbox.email)
        self.provider.consenting_email = mailbox.email
        consent = requests.get(action["url"], allow_redirects=False, timeout=10)
        self.assertEqual(consent.status_code, 302)
        return self.url_open(consent.headers["Location"], allow_redirects=False)

    def synced_subjects(self, mailbox):
        return set(mailbox.sudo().synced_message_ids.mapped("subject"))

    # -- tests -----------------------------------------------------------------------------

    def test_sign_in_round_trip_sync_and_send(self):
        account = self.new_microsoft_account()
        append(account, "INBOX", make_message("Before sign-in", to=account.username))
        mailbox = self.create_microsoft_mailbox(account)
        self.assertEqual(mailbox.state, "not_connected")

        response = self.sign_in(mailbox, self.user_alice)
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response.headers["Location"].endswith("/odoo/onpipeline.mailbox/%s" % mailbox.id))
        mailbox.invalidate_recordset()
        self.assertTrue(mailbox.microsoft_signed_in)
        self.assertEqual(mailbox.state, "connected", mailbox.last_error)
        self.assertIn("INBOX", mailbox.folder_ids.mapped("name"))
        [exchange] = self.provider.requests_for("authorization_code")[-1:]
        self.assertEqual(exchange.scope, SCOPE)
        self.assertEqual(exchange.path, "/microsoft/token")
        for field in ("microsoft_outlook_refresh_token", "microsoft_outlook_access_token"):
            with self.assertRaises(AccessError):
                mailbox.with_user(self.user_alice).read([field])

        self.assertTrue(mailbox._sync())
        self.assertEqual(self.synced_subjects(mailbox), {"Before sign-in"})
        ok, text = mailbox.with_user(self.user_alice)._send_test_email("microsoft-dest@example.test")
        self.assertTrue(ok, text)
        [received] = self.smtp.messages_to("microsoft-dest@example.test")
        self.assertEqual(received.login, account.username)

    def test_tour_sign_in(self):
        """In Chromium, as the salesperson: Sign in with Microsoft, consent, back connected."""
        account = self.new_microsoft_account()
        outlook = self.env.ref("onpipeline_mail.provider_outlook_com")
        mailbox = self.create_microsoft_mailbox(account, provider_id=outlook.id)
        self.assertEqual((mailbox.imap_host, mailbox.state), ("127.0.0.1", "not_connected"))
        self.assertTrue(mailbox.is_microsoft_mailbox)
        self.provider.consenting_email = account.username
        self.start_tour("/odoo/onpipeline.mailbox/%d" % mailbox.id, "onpipeline_mail_microsoft_sign_in",
                        login=self.user_alice.login)
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.state, "connected", mailbox.last_error)
        self.assertTrue(mailbox.microsoft_signed_in)

    def test_tokens_refreshed_before_expiry_and_on_refusal(self):
        account = self.new_microsoft_account()
        mailbox = self.create_microsoft_mailbox(account)
        self.sign_in(mailbox, self.user_alice)
        secrets = mailbox.sudo()
        refreshes = len(self.provider.requests_for("refresh_token"))

        # Within a minute of its expiry the token is refreshed before logging in; Microsoft also sends a
        # new refresh token, which is kept.
        append(account, "INBOX", make_message("One", to=account.username))
        first_refresh_token = secrets.microsoft_outlook_refresh_token
        secrets.microsoft_outlook_access_token_expiration = int(time.time()) + 30
        self.assertTrue(mailbox._sync())
        self.assertEqual(len(self.provider.requests_for("refresh_token")), refreshes + 1)
        self.assertNotEqual(secrets.microsoft_outlook_refresh_token, first_refresh_token)

        # A token the server refuses before its announced expiry: refreshed once, the sync goes on.
        append(account, "INBOX", make_message("Two", to=account.username))
        token = secrets.microsoft_outlook_access_token
        self.provider.expire_access_tokens(account.username)
        self.assertTrue(mailbox._sync())
        self.assertEqual(len(self.provider.requests_for("refresh_token")), refreshes + 2)
        self.assertNotEqual(secrets.microsoft_outlook_access_token, token)
        self.assertEqual(self.synced_subjects(mailbox), {"One", "Two"})

        # Sending refreshes too.
        self.provider.expire_access_tokens(account.username)
        self.assertTrue(mailbox._send_test_email("microsoft-refresh@example.test")[0])
        self.assertEqual(len(self.provider.requests_for("refresh_token")), refreshes + 3)

    def test_revoked_refresh_token_then_sign_in_again(self):
        account = self.new_microsoft_account()
        mailbox = self.create_microsoft_mailbox(account)
        self.sign_in(mailbox, self.user_alice)
        append(account, "INBOX", make_message("Kept", to=account.username))
        self.assertTrue(mailbox._sync())

        self.provider.revoke(account.username)
        self.assertFalse(mailbox._sync())
        self.assertEqual((mailbox.state, mailbox.error_reason), ("error", "oauth_expired"))
        self.assertIn("Sign in again", mailbox.last_error)
        warning = self.env.ref("mail.mail_activity_data_warning")
        self.assertEqual(mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning).user_id,
                         self.user_alice)
        mailbox.sudo().next_sync_date = False
        self.assertFalse(mailbox._sync())
        self.assertEqual(len(mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning)), 1)
        self.assertEqual(self.synced_subjects(mailbox), {"Kept"})

        append(account, "INBOX", make_message("After", to=account.username))
        self.sign_in(mailbox, self.user_alice)
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.state, "connected", mailbox.last_error)
        self.assertFalse(mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning))
        self.assertIn(mailbox, mailbox.sudo()._mailboxes_due())
        self.assertTrue(mailbox._sync())
        self.assertEqual(self.synced_subjects(mailbox), {"Kept", "After"})

    def test_who_may_sign_in(self):
        alice_box = self.create_microsoft_mailbox(self.new_microsoft_account())
        for user in (self.user_bob, self.user_sales_admin):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                alice_box.with_user(user).action_microsoft_sign_in()
        action = alice_box.with_user(self.user_alice).action_microsoft_sign_in()
        alice_state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(action["url"]).query))["state"]
        self.authenticate("bob", "bob")
        with self.assertLogs("odoo.addons.onpipeline_mail.controllers.sign_in_callback", "WARNING"):
            response = self.url_open("/microsoft_outlook/confirm?" + urllib.parse.urlencode(
                {"code": self.provider.issue_code(alice_box.email), "state": alice_state}), allow_redirects=False)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(alice_box.sudo().microsoft_outlook_refresh_token)

        team_box = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create({
            "email": self.new_microsoft_account().username, "mailbox_type": "team", "team_id": self.team_west.id,
            "imap_host": "127.0.0.1", "imap_port": self.oauth_dovecot.tls_port, "imap_security": "ssl",
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.tls_port, "smtp_security": "ssl"})
        with self.assertRaises(AccessError):
            team_box.with_user(self.user_bob).action_microsoft_sign_in()
        self.sign_in(team_box, self.user_sales_admin)
        team_box.invalidate_recordset()
        self.assertEqual(team_box.state, "connected", team_box.last_error)

    def test_presets_offer_the_sign_in(self):
        form = Form(self.env["onpipeline.mailbox"].with_user(self.user_alice))
        form.email = "someone@outlook.com"
        self.assertEqual(form.provider_id, self.env.ref("onpipeline_mail.provider_outlook_com"))
        self.assertTrue(form.is_microsoft_mailbox)
        self.assertTrue(form.microsoft_sign_in_ready)
        self.assertIn("Sign in with Microsoft", form.provider_note)
        form.email = "someone@company.example"
        form.provider_id = self.env.ref("onpipeline_mail.provider_microsoft_365")
        self.assertTrue(form.is_microsoft_mailbox)

        self.env["ir.config_parameter"].sudo().set_param("microsoft_outlook_client_secret", False)
        mailbox = self.create_microsoft_mailbox(self.new_microsoft_account())
        self.assertFalse(mailbox.microsoft_sign_in_ready)
        with self.assertRaisesRegex(Exception, "not set up"):
            mailbox.action_microsoft_sign_in()
        view = self.env.ref("onpipeline_mail_microsoft.onpipeline_mailbox_view_form")
        self.assertIn("/odoo/settings#email-outlook-setting", view.arch_db)
