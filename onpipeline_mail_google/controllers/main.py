"""google_gmail's OAuth callback, extended to mailboxes (see onpipeline_mail's sign_in_callback)."""

from odoo import http

from odoo.addons.google_gmail.controllers.main import GoogleGmailController
from odoo.addons.onpipeline_mail.controllers.sign_in_callback import MailboxSignInCallback


class OnpipelineGoogleGmailController(MailboxSignInCallback, GoogleGmailController):
    provider = "Google"

    @http.route()
    def google_gmail_callback(self, code=None, state=None, error=None, **kwargs):
        parsed = self._mailbox_state(state)
        if parsed is None:
            return super().google_gmail_callback(code=code, state=state, error=error, **kwargs)
        return self._mailbox_callback(code, parsed, error)

    def _mailbox_csrf_token(self, mailbox):
        return mailbox._get_gmail_csrf_token()

    def _mailbox_sign_in_done(self, mailbox, code):
        mailbox._google_sign_in_done(code)
