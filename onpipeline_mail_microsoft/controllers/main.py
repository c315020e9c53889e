"""microsoft_outlook's OAuth callback, extended to mailboxes (see onpipeline_mail's sign_in_callback)."""

from odoo import http

from odoo.addons.microsoft_outlook.controllers.main import MicrosoftOutlookController
from odoo.addons.onpipeline_mail.controllers.sign_in_callback import MailboxSignInCallback


class OnpipelineMicrosoftOutlookController(MailboxSignInCallback, MicrosoftOutlookController):
    provider = "Microsoft"

    @http.route()
    def microsoft_outlook_callback(self, code=None, state=None, error_description=None, **kwargs):
        parsed = self._mailbox_state(state)
        if parsed is None:
            return super().microsoft_outlook_callback(
                code=code, state=state, error_description=error_description, **kwargs)
        return self._mailbox_callback(code, parsed, error_description or kwargs.get("error"))

    def _mailbox_csrf_token(self, mailbox):
        return mailbox._get_outlook_csrf_token()

    def _mailbox_sign_in_done(self, mailbox, code):
        mailbox._microsoft_sign_in_done(code)
