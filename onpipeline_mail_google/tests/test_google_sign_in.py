"""Sign in with Google, end to end with real components.

The provider is a local OAuth server (token endpoint, consent page,
introspection), Dovecot checks the bearer tokens with it (oauth2 passdb,
XOAUTH2) and the SMTP test server asks it too. google_gmail posts to Google's
fixed token URL: as Odoo's own tests do, ``_request_handler`` (BaseCase's
hook on every outgoing HTTP request) sends that one URL to the local server;
the exchange itself is real HTTP. The sign-in goes through the real
``/google_gmail/confirm`` route with the state google_gmail's mixin made.
"""

import email
import os
import time
import urllib.parse

import requests

from odoo.exceptions import AccessError
from odoo.tests import Form, HttpCase, tagged

from odoo.addons.onpipeline_mail.engine.connection import ServerSettings, imap_session
from odoo.addons.onpipeline_mail.engine.testing.accounts import provision
from odoo.addons.onpipeline_mail.engine.testing.oauth_server import oauth_mail_servers
from odoo.addons.onpipeline_mail.tests.common import OnpipelineMailCase, append, make_message

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


@tagged("post_install", "-at_install", "onpipeline_mail_google")
class TestGoogleSignIn(HttpCase, OnpipelineMailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider, cls.oauth_dovecot = oauth_mail_servers(cert_dir=os.path.join(cls.dovecot.root, "certs"))
        cls.smtp.oauth_verifier = cls.provider.token_owner
        cls.addClassCleanup(setattr, cls.smtp, "oauth_verifier", None)
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("google_gmail_client_id", cls.provider.client_id)
        params.set_param("google_gmail_client_secret", cls.provider.client_secret)

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        if r.url.split("?")[0] == GOOGLE_TOKEN_URL:
            r.url = cls.provider.token_url
        return super()._request_handler(s, r, **kw)

    # -- helpers ---------------------------------------------------------------------------

    def new_google_account(self):
        """An account on the OAuth Dovecot; its password serves only the test's own APPENDs."""
        account = self.new_account(prefix="google")
        email = account.username
        self.oauth_dovecot.add_user(email, account.password)
        return ServerSettings("127.0.0.1", self.oauth_dovecot.tls_port, "ssl", email, account.password,
                              ca_file=self.oauth_dovecot.ca_file)

    def create_google_mailbox(self, account, user=None, **values):
        values = dict({
            "email": account.username,
            "imap_host": "127.0.0.1", "imap_port": self.oauth_dovecot.tls_port, "imap_security": "ssl",
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.tls_port, "smtp_security": "ssl",
        }, **values)
        return self.env["onpipeline.mailbox"].with_user(user or self.user_alice).create(values)

    def sign_in(self, mailbox, user, login=None):
        """Click Sign in with Google, consent at the provider, come back through /google_gmail/confirm."""
        self.authenticate(login or user.login, login or user.login)
        action = mailbox.with_user(user).action_google_sign_in()
        url = urllib.parse.urlsplit(action["url"])
        query = dict(urllib.parse.parse_qsl(url.query))
        self.assertEqual((url.netloc, url.path), ("accounts.google.com", "/o/oauth2/v2/auth"))
        self.assertEqual(query["redirect_uri"], mailbox.get_base_url() + "/google_gmail/confirm")
        self.assertEqual(query["login_hint"], mailbox.email)
        self.assertEqual(query["scope"], "https://mail.google.com/")
        self.assertEqual(query["access_type"], "offline")
        # Google's consent page is the local provider's: the user consents as the mailbox's account.
        self.provider.consenting_email = mailbox.email
        consent = requests.get(self.provider.base_url + "/authorize?" + url.query, allow_redirects=False, timeout=10)
        self.assertEqual(consent.status_code, 302)
        location = consent.headers["Location"]
        self.assertTrue(location.startswith(query["redirect_uri"] + "?"))
        return self.url_open(location, allow_redirects=False)

    def synced_subjects(self, mailbox):
        return set(mailbox.sudo().synced_message_ids.mapped("subject"))

    # -- tests -----------------------------------------------------------------------------

    def test_sign_in_round_trip_sync_and_send(self):
        account = self.new_google_account()
        append(account, "INBOX", make_message("Before sign-in", to=account.username))
        mailbox = self.create_google_mailbox(account)
        self.assertEqual(mailbox.state, "not_connected")
        self.assertFalse(mailbox.google_signed_in)

        response = self.sign_in(mailbox, self.user_alice)
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response.headers["Location"].endswith("/odoo/onpipeline.mailbox/%s" % mailbox.id))

        mailbox.invalidate_recordset()
        self.assertTrue(mailbox.sudo().google_gmail_refresh_token)
        self.assertTrue(mailbox.google_signed_in)
        self.assertEqual(mailbox.state, "connected", mailbox.last_error)
        self.assertIn("INBOX", mailbox.folder_ids.mapped("name"))
        self.assertFalse(mailbox.sudo().imap_password)
        [exchange] = self.provider.requests_for("authorization_code")[-1:]
        self.assertEqual(exchange.redirect_uri, mailbox.get_base_url() + "/google_gmail/confirm")

        # Tokens are write-only, as passwords: not even the owner reads them.
        for field in ("google_gmail_refresh_token", "google_gmail_access_token"):
            with self.assertRaises(AccessError):
                mailbox.with_user(self.user_alice).read([field])

        self.assertTrue(mailbox._sync())
        self.assertEqual(self.synced_subjects(mailbox), {"Before sign-in"})

        self.assertTrue(mailbox.with_user(self.user_alice).can_send)
        ok, text = mailbox.with_user(self.user_alice)._send_test_email("google-dest@example.test")
        self.assertTrue(ok, text)
        [received] = self.smtp.messages_to("google-dest@example.test")
        self.assertEqual(received.login, account.username)
        self.assertIn(b"From: " + account.username.encode(), received.data)

    def test_composer_sends_and_files_the_copy_with_the_token(self):
        """Sending from a deal: SMTP and the copy in Sent (IMAP APPEND) both log in with the token."""
        account = self.new_google_account()
        provision(account, "plain")
        mailbox = self.create_google_mailbox(account)
        self.sign_in(mailbox, self.user_alice)
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sent_copy_wait", "0.5")
        customer = self.env["res.partner"].create({"name": "Carl Customer", "email": "carl@client.example"})
        lead = self.env["crm.lead"].create({"name": "Big deal", "type": "opportunity", "partner_id": customer.id,
                                            "user_id": self.user_alice.id})
        composer = self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            default_model="crm.lead", default_res_ids=lead.ids, default_composition_mode="comment",
        ).create({"subject": "Our offer", "body": "<p>Hello</p>", "partner_ids": [(6, 0, customer.ids)]})
        self.assertEqual(composer.onpipeline_mailbox_id, mailbox)
        composer.action_send_mail()
        [received] = [m for m in self.smtp.messages_to("carl@client.example") if m.login == account.username]
        message_id = email.message_from_bytes(received.data)["Message-ID"]
        with imap_session(account) as client:
            client.select_folder("Sent", readonly=True)
            self.assertEqual(len(client.search(["HEADER", "Message-ID", message_id])), 1)

    def test_expired_token_refreshed_during_sync(self):
        account = self.new_google_account()
        mailbox = self.create_google_mailbox(account)
        self.sign_in(mailbox, self.user_alice)
        self.assertEqual(mailbox.state, "connected")
        secrets = mailbox.sudo()
        append(account, "INBOX", make_message("One", to=account.username))

        # Shortly before it expires, the token is refreshed before logging in.
        refreshes = len(self.provider.requests_for("refresh_token"))
        first = secrets.google_gmail_access_token
        secrets.google_gmail_access_token_expiration = int(time.time()) + 5
        self.assertTrue(mailbox._sync())
        self.assertEqual(len(self.provider.requests_for("refresh_token")), refreshes + 1)
        self.assertNotEqual(secrets.google_gmail_access_token, first)

        # The provider ends a token early (the server refuses it): refreshed once, the sync goes on.
        append(account, "INBOX", make_message("Two", to=account.username))
        second = secrets.google_gmail_access_token
        self.provider.expire_access_tokens(account.username)
        self.assertTrue(mailbox._sync())
        self.assertEqual(len(self.provider.requests_for("refresh_token")), refreshes + 2)
        self.assertNotEqual(secrets.google_gmail_access_token, second)
        self.assertEqual(mailbox.state, "connected")
        self.assertEqual(self.synced_subjects(mailbox), {"One", "Two"})

    def test_revoked_refresh_token_then_sign_in_again(self):
        account = self.new_google_account()
        mailbox = self.create_google_mailbox(account)
        self.sign_in(mailbox, self.user_alice)
        append(account, "INBOX", make_message("Kept", to=account.username))
        self.assertTrue(mailbox._sync())

        self.provider.revoke(account.username)
        self.assertFalse(mailbox._sync())
        self.assertEqual(mailbox.state, "error")
        self.assertEqual(mailbox.error_reason, "oauth_expired")
        self.assertIn("Sign in again", mailbox.last_error)
        warning = self.env.ref("mail.mail_activity_data_warning")
        activities = mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning)
        self.assertEqual(activities.user_id, self.user_alice)
        # Told once: the next failed run adds nothing.
        mailbox.sudo().next_sync_date = False
        self.assertFalse(mailbox._sync())
        self.assertEqual(len(mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning)), 1)
        self.assertEqual(self.synced_subjects(mailbox), {"Kept"})
        self.assertFalse(mailbox._send_test_email("never@example.test")[0])
        self.assertFalse(self.smtp.messages_to("never@example.test"))

        # Sign in again: connected, the warning closed, due at once, and the sync picks up from where it was.
        append(account, "INBOX", make_message("After", to=account.username))
        self.sign_in(mailbox, self.user_alice)
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.state, "connected", mailbox.last_error)
        self.assertFalse(mailbox.activity_ids.filtered(lambda a: a.activity_type_id == warning))
        self.assertIn(mailbox, mailbox.sudo()._mailboxes_due())
        self.assertTrue(mailbox._sync())
        self.assertEqual(self.synced_subjects(mailbox), {"Kept", "After"})
        self.assertEqual(len(mailbox.sudo().synced_message_ids), 2)

    def test_who_may_sign_in(self):
        alice_box = self.create_google_mailbox(self.new_google_account())
        # Another user, even a CRM admin, cannot start the sign-in of Alice's personal mailbox.
        for user in (self.user_bob, self.user_sales_admin):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                alice_box.with_user(user).action_google_sign_in()

        # Nor finish it: with Alice's state (bound to her), or with a state made for themselves.
        action = alice_box.with_user(self.user_alice).action_google_sign_in()
        alice_state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(action["url"]).query))["state"]
        code = self.provider.issue_code(alice_box.email)
        self.authenticate("bob", "bob")
        with self.assertLogs("odoo.addons.onpipeline_mail.controllers.sign_in_callback", "WARNING"):
            response = self.url_open("/google_gmail/confirm?" + urllib.parse.urlencode(
                {"code": code, "state": alice_state}), allow_redirects=False)
        self.assertEqual(response.status_code, 403)
        bob_state = '{"model": "onpipeline.mailbox", "id": %d, "csrf_token": "%s"}' % (
            alice_box.id, alice_box.with_user(self.user_bob)._get_gmail_csrf_token())
        with self.assertLogs("odoo.addons.onpipeline_mail.controllers.sign_in_callback", "WARNING"):
            response = self.url_open("/google_gmail/confirm?" + urllib.parse.urlencode(
                {"code": code, "state": bob_state}), allow_redirects=False)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(alice_box.sudo().google_gmail_refresh_token)

        # A team mailbox: a CRM admin signs it in; a team member cannot.
        team_box = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create({
            "email": self.new_google_account().username, "mailbox_type": "team", "team_id": self.team_east.id,
            "imap_host": "127.0.0.1", "imap_port": self.oauth_dovecot.tls_port, "imap_security": "ssl",
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.tls_port, "smtp_security": "ssl"})
        with self.assertRaises(AccessError):
            team_box.with_user(self.user_alice).action_google_sign_in()
        self.sign_in(team_box, self.user_sales_admin, login="crm_admin")
        team_box.invalidate_recordset()
        self.assertEqual(team_box.state, "connected", team_box.last_error)

    def test_gmail_address_offers_the_sign_in(self):
        form = Form(self.env["onpipeline.mailbox"].with_user(self.user_alice))
        form.email = "someone@gmail.com"
        self.assertEqual(form.provider_id, self.env.ref("onpipeline_mail.provider_gmail"))
        self.assertTrue(form.is_google_mailbox)
        self.assertTrue(form.google_sign_in_ready)

    def test_presets_offer_the_sign_in(self):
        params = self.env["ir.config_parameter"].sudo()
        with Form(self.env["onpipeline.mailbox"].with_user(self.user_alice)) as form:
            form.email = "someone@example.org"
            self.assertFalse(form.is_google_mailbox)
            form.provider_id = self.env.ref("onpipeline_mail.provider_google_workspace")
            self.assertTrue(form.is_google_mailbox)
            self.assertTrue(form.google_sign_in_ready)
            form.imap_password_input = "app-password"
            form.imap_host = "127.0.0.1"
            form.imap_port = self.oauth_dovecot.tls_port
        params.set_param("google_gmail_client_secret", False)
        mailbox = self.env["onpipeline.mailbox"].with_user(self.user_alice).search(
            [("email", "=", "someone@example.org")])
        mailbox.invalidate_recordset()
        self.assertFalse(mailbox.google_sign_in_ready)
        with self.assertRaisesRegex(Exception, "not set up"):
            mailbox.with_user(self.user_alice).action_google_sign_in()
        view = self.env.ref("onpipeline_mail_google.onpipeline_mailbox_view_form")
        self.assertIn("/odoo/settings", view.arch_db)


