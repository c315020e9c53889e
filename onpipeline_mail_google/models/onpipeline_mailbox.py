"""Sign in with Google on a mailbox, on google_gmail's mixin, as google_gmail does for fetchmail.server.

The mixin brings the token fields (readable by base.group_system only, like
``imap_password``), the authorization URL with its CSRF state, the token
exchange and the refresh; this module adds who may sign in, the engine's
login hooks (XOAUTH2) and what the form offers for Gmail and Google Workspace.
"""

import dataclasses
import logging
import urllib.parse

import requests

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import misc

from odoo.addons.onpipeline_mail.engine import errors, oauth

_logger = logging.getLogger(__name__)

#: The presets whose mailboxes are Google's (a mailbox with another preset on imap.gmail.com is too).
GOOGLE_PROVIDERS = ("onpipeline_mail.provider_gmail", "onpipeline_mail.provider_google_workspace")
GOOGLE_IMAP_HOSTS = ("imap.gmail.com",)
#: Error reasons of a mailbox whose Google sign-in must be done again.
SIGN_IN_AGAIN_REASONS = ("oauth_expired", "oauth_signin_required")


class OnpipelineMailbox(models.Model):
    _name = "onpipeline.mailbox"
    _inherit = ["onpipeline.mailbox", "google.gmail.mixin"]

    is_google_mailbox = fields.Boolean(
        compute="_compute_google_sign_in", help="A Gmail or Google Workspace mailbox: Sign in with Google applies.")
    google_signed_in = fields.Boolean(
        "Signed in with Google", compute="_compute_google_sign_in",
        help="The mailbox logs in with Google's OAuth tokens (XOAUTH2), not with a password.")
    google_sign_in_ready = fields.Boolean(
        compute="_compute_google_sign_in", help="The company's Google OAuth app (client ID and secret) is set up.")

    @api.depends("provider_id", "imap_host", "google_gmail_refresh_token")
    def _compute_google_sign_in(self):
        params = self.env["ir.config_parameter"].sudo()
        ready = bool(params.get_param("google_gmail_client_id") and params.get_param("google_gmail_client_secret"))
        providers = self.env["onpipeline.mail.provider"].browse(
            [p.id for p in (self.env.ref(xmlid, raise_if_not_found=False) for xmlid in GOOGLE_PROVIDERS) if p])
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            signed_in = bool(secrets.google_gmail_refresh_token)
            mailbox.google_signed_in = signed_in
            mailbox.is_google_mailbox = signed_in or mailbox.provider_id in providers or (
                (mailbox.imap_host or "").strip().lower() in GOOGLE_IMAP_HOSTS)
            mailbox.google_sign_in_ready = ready

    def _uses_google_oauth(self):
        self.ensure_one()
        return bool(self.sudo().google_gmail_refresh_token)

    # ------------------------------------------------------------------
    # Login hooks of onpipeline_mail
    # ------------------------------------------------------------------

    def _has_imap_credentials(self):
        return self._uses_google_oauth() or super()._has_imap_credentials()

    def _imap_login_callable(self):
        if self._uses_google_oauth():
            return oauth.imap_login(self._google_access_token)
        return super()._imap_login_callable()

    def _smtp_login_callable(self):
        if self._uses_google_oauth():
            return oauth.smtp_login(self._google_access_token)
        return super()._smtp_login_callable()

    def _compute_has_passwords(self):
        super()._compute_has_passwords()
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            if secrets.google_gmail_refresh_token:
                # Sending needs no password: the Google token covers SMTP too.
                mailbox.has_smtp_password = True

    def _google_note(self):
        return _("Sign in with Google again on the mailbox (as %s): Google refused the saved sign-in.",
                 self.imap_login or self.email)

    def _imap_settings(self):
        settings = super()._imap_settings()
        if self._uses_google_oauth():
            settings = dataclasses.replace(settings, provider_note=self._google_note())
        return settings

    def _smtp_settings(self):
        settings = super()._smtp_settings()
        if self._uses_google_oauth():
            settings = dataclasses.replace(settings, provider_note=self._google_note())
        return settings

    def _google_access_token(self, refresh=False):
        """The engine's ``get_token``: google_gmail's token, refreshed by its mixin shortly before it
        expires, or at once with ``refresh=True`` (the server refused it)."""
        self.ensure_one()
        secrets = self.sudo()
        if not secrets.google_gmail_refresh_token:
            raise errors.AuthError(_("%s is not signed in with Google: click Sign in with Google.", self.email),
                                   reason="oauth_signin_required")
        if refresh:
            # The mixin refreshes a token past its expiration: make the current one so.
            secrets.google_gmail_access_token_expiration = 0
        try:
            secrets._generate_oauth2_string(self.imap_login or self.email, secrets.google_gmail_refresh_token)
        except UserError as exc:
            # Google answered the refresh with an error: the refresh token was revoked or expired
            # (invalid_grant), or the company's OAuth app changed. Only a new sign-in helps.
            _logger.info("Mailbox %s: Google refused the refresh token", self.id)
            raise errors.AuthError(_(
                "Google no longer accepts the sign-in of %s (it was revoked, expired or the password changed). "
                "Click Sign in again: nothing synced is lost, the sync goes on after the new sign-in.",
                self.email), reason="oauth_expired") from exc
        except requests.RequestException as exc:
            raise errors.ConnectError(
                _("Google's sign-in service cannot be reached (%s). The mailbox tries again later.",
                  exc.__class__.__name__), reason="oauth_unreachable") from exc
        return secrets.google_gmail_access_token

    # ------------------------------------------------------------------
    # Sign in
    # ------------------------------------------------------------------

    def _get_gmail_csrf_token(self):
        """The mixin's state token, bound to the user too: only who started the sign-in can finish it."""
        self.ensure_one()
        return misc.hmac(env=self.env(su=True), scope="onpipeline_mail_google_oauth",
                         message=(self._name, self.id, self.env.uid))

    def action_google_sign_in(self):
        """Sign in with Google (button): to Google's consent page, back to /google_gmail/confirm."""
        self.ensure_one()
        self._check_may_sign_in()
        if not self.google_sign_in_ready:
            raise UserError(_(
                "Sign in with Google is not set up: an administrator enters the Google OAuth client ID and secret "
                "in Settings > General Settings > Emails (Use Custom Email Servers, Use a Gmail Server). Until then, "
                "use an app password."))
        url = self.sudo().google_gmail_uri
        # Google preselects the account of the mailbox.
        url += "&" + urllib.parse.urlencode({"login_hint": self.imap_login or self.email})
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _google_sign_in_done(self, code):
        """The callback's work once its state is checked: store the tokens, connect, resume the sync."""
        self.ensure_one()
        refresh_token, access_token, expiration = self.sudo()._fetch_gmail_refresh_token(code)
        self.sudo().write({
            "google_gmail_refresh_token": refresh_token,
            "google_gmail_access_token": access_token,
            "google_gmail_access_token_expiration": expiration,
        })
        self._after_oauth_sign_in(_("Signed in with Google."))

    def action_google_sign_out(self):
        """Use a password instead (button): forget the Google tokens."""
        for mailbox in self:
            mailbox._check_may_sign_in()
            mailbox.sudo().write({
                "google_gmail_refresh_token": False, "google_gmail_access_token": False,
                "google_gmail_access_token_expiration": False, "google_gmail_authorization_code": False,
            })
        self._check_imap_connection()
        return True
