"""Sign in with Microsoft on a mailbox, on microsoft_outlook's mixin, as microsoft_outlook does for
fetchmail.server and ir.mail_server.

The mixin brings the token fields (readable by base.group_system only, like
``imap_password``), the authorization URL with its CSRF state, the token
exchange and the refresh (Microsoft sends a new refresh token each time; the
mixin keeps it); this module adds who may sign in, the engine's login hooks
(XOAUTH2) and what the form offers for Outlook.com and Microsoft 365.
"""

import dataclasses
import logging
import time
import urllib.parse

import requests

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import misc

from odoo.addons.onpipeline_mail.engine import errors, oauth

_logger = logging.getLogger(__name__)

MICROSOFT_PROVIDERS = ("onpipeline_mail.provider_outlook_com", "onpipeline_mail.provider_microsoft_365")
MICROSOFT_IMAP_HOSTS = ("outlook.office365.com", "imap-mail.outlook.com", "outlook.office.com")
#: The mixin refreshes a token once it has expired; the mailbox refreshes it this many seconds before,
#: so that a token does not expire between the check and the login (as google_gmail's threshold).
TOKEN_REFRESH_MARGIN = 60


class OnpipelineMailbox(models.Model):
    _name = "onpipeline.mailbox"
    _inherit = ["onpipeline.mailbox", "microsoft.outlook.mixin"]

    # One consent for both protocols (offline_access is added by the mixin for the refresh token).
    _OUTLOOK_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"

    is_microsoft_mailbox = fields.Boolean(
        compute="_compute_microsoft_sign_in",
        help="An Outlook.com or Microsoft 365 mailbox: Sign in with Microsoft applies.")
    microsoft_signed_in = fields.Boolean(
        "Signed in with Microsoft", compute="_compute_microsoft_sign_in",
        help="The mailbox logs in with Microsoft's OAuth tokens (XOAUTH2), not with a password.")
    # The mixin's is_microsoft_outlook_configured has no dependency: on a new record's form it comes
    # back as its default (False) and the form said "not set up"; this one is computed there too.
    microsoft_sign_in_ready = fields.Boolean(
        compute="_compute_microsoft_sign_in",
        help="The company's Microsoft OAuth app (client ID and secret) is set up.")

    @api.depends("provider_id", "imap_host", "microsoft_outlook_refresh_token")
    def _compute_microsoft_sign_in(self):
        params = self.env["ir.config_parameter"].sudo()
        ready = bool(params.get_param("microsoft_outlook_client_id")
                     and params.get_param("microsoft_outlook_client_secret"))
        providers = self.env["onpipeline.mail.provider"].browse(
            [p.id for p in (self.env.ref(xmlid, raise_if_not_found=False) for xmlid in MICROSOFT_PROVIDERS) if p])
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            signed_in = bool(secrets.microsoft_outlook_refresh_token)
            mailbox.microsoft_signed_in = signed_in
            mailbox.is_microsoft_mailbox = signed_in or mailbox.provider_id in providers or (
                (mailbox.imap_host or "").strip().lower() in MICROSOFT_IMAP_HOSTS)
            mailbox.microsoft_sign_in_ready = ready

    def _uses_microsoft_oauth(self):
        self.ensure_one()
        return bool(self.sudo().microsoft_outlook_refresh_token)

    # ------------------------------------------------------------------
    # Login hooks of onpipeline_mail
    # ------------------------------------------------------------------

    def _has_imap_credentials(self):
        return self._uses_microsoft_oauth() or super()._has_imap_credentials()

    def _imap_login_callable(self):
        if self._uses_microsoft_oauth():
            return oauth.imap_login(self._microsoft_access_token)
        return super()._imap_login_callable()

    def _smtp_login_callable(self):
        if self._uses_microsoft_oauth():
            return oauth.smtp_login(self._microsoft_access_token)
        return super()._smtp_login_callable()

    def _compute_has_passwords(self):
        super()._compute_has_passwords()
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            if secrets.microsoft_outlook_refresh_token:
                # Sending needs no password: the Microsoft token covers SMTP too.
                mailbox.has_smtp_password = True

    def _microsoft_note(self):
        return _("Sign in with Microsoft again on the mailbox (as %s): Microsoft refused the saved sign-in.",
                 self.imap_login or self.email)

    def _imap_settings(self):
        settings = super()._imap_settings()
        if self._uses_microsoft_oauth():
            settings = dataclasses.replace(settings, provider_note=self._microsoft_note())
        return settings

    def _smtp_settings(self):
        settings = super()._smtp_settings()
        if self._uses_microsoft_oauth():
            settings = dataclasses.replace(settings, provider_note=self._microsoft_note())
        return settings

    def _microsoft_access_token(self, refresh=False):
        """The engine's ``get_token``: microsoft_outlook's token, refreshed by its mixin shortly before it
        expires, or at once with ``refresh=True`` (the server refused it)."""
        self.ensure_one()
        secrets = self.sudo()
        if not secrets.microsoft_outlook_refresh_token:
            raise errors.AuthError(
                _("%s is not signed in with Microsoft: click Sign in with Microsoft.", self.email),
                reason="oauth_signin_required")
        expiration = secrets.microsoft_outlook_access_token_expiration or 0
        if refresh or expiration - TOKEN_REFRESH_MARGIN < time.time():
            # The mixin refreshes a token past its expiration: make the current one so.
            secrets.microsoft_outlook_access_token_expiration = 0
        try:
            secrets._generate_outlook_oauth2_string(self.imap_login or self.email)
        except UserError as exc:
            # Microsoft answered the refresh with an error (invalid_grant: revoked, expired, password
            # changed, consent withdrawn) or the company's OAuth app changed: only a new sign-in helps.
            _logger.info("Mailbox %s: Microsoft refused the refresh token", self.id)
            raise errors.AuthError(_(
                "Microsoft no longer accepts the sign-in of %s (it was revoked, expired or the password "
                "changed). Click Sign in again: nothing synced is lost, the sync goes on after the new sign-in.",
                self.email), reason="oauth_expired") from exc
        except requests.RequestException as exc:
            raise errors.ConnectError(
                _("Microsoft's sign-in service cannot be reached (%s). The mailbox tries again later.",
                  exc.__class__.__name__), reason="oauth_unreachable") from exc
        return secrets.microsoft_outlook_access_token

    # ------------------------------------------------------------------
    # Sign in
    # ------------------------------------------------------------------

    def _get_outlook_csrf_token(self):
        """The mixin's state token, bound to the user too: only who started the sign-in can finish it."""
        self.ensure_one()
        return misc.hmac(env=self.env(su=True), scope="onpipeline_mail_microsoft_oauth",
                         message=(self._name, self.id, self.env.uid))

    def action_microsoft_sign_in(self):
        """Sign in with Microsoft (button): to Microsoft's consent page, back to /microsoft_outlook/confirm."""
        self.ensure_one()
        self._check_may_sign_in()
        if not self.microsoft_sign_in_ready:
            raise UserError(_(
                "Sign in with Microsoft is not set up: an administrator enters the Microsoft OAuth client ID and "
                "secret in Settings > General Settings > Emails (Use Custom Email Servers, Use an Outlook Server)."))
        url = self.sudo().microsoft_outlook_uri
        # Microsoft preselects the account of the mailbox.
        url += "&" + urllib.parse.urlencode({"login_hint": self.imap_login or self.email})
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _microsoft_sign_in_done(self, code):
        """The callback's work once its state is checked: store the tokens, connect, resume the sync."""
        self.ensure_one()
        refresh_token, access_token, expiration = self.sudo()._fetch_outlook_refresh_token(code)
        self.sudo().write({
            "microsoft_outlook_refresh_token": refresh_token,
            "microsoft_outlook_access_token": access_token,
            "microsoft_outlook_access_token_expiration": expiration,
        })
        self._after_oauth_sign_in(_("Signed in with Microsoft."))

    def action_microsoft_sign_out(self):
        """Use a password instead (button): forget the Microsoft tokens."""
        for mailbox in self:
            mailbox._check_may_sign_in()
            mailbox.sudo().write({
                "microsoft_outlook_refresh_token": False, "microsoft_outlook_access_token": False,
                "microsoft_outlook_access_token_expiration": False,
            })
        self._check_imap_connection()
        return True
