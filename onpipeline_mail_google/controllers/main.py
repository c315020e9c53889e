"""google_gmail's OAuth callback, extended to mailboxes.

Google sends the user back to the one redirect URI registered for the
company's OAuth app, ``/google_gmail/confirm`` (google_gmail's token exchange
posts that URI too), so a mailbox's sign-in ends there. google_gmail's own
callback accepts administrators only; a mailbox is signed in by its owner or,
for a team mailbox, by a CRM admin, so the states naming a mailbox are
handled here, every other state by google_gmail as before.
"""

import json
import logging

from werkzeug.exceptions import Forbidden

from odoo import _, http
from odoo.exceptions import AccessError, UserError
from odoo.http import request
from odoo.tools import consteq

from odoo.addons.google_gmail.controllers.main import GoogleGmailController

_logger = logging.getLogger(__name__)

MAILBOX_MODEL = "onpipeline.mailbox"


class OnpipelineGoogleGmailController(GoogleGmailController):
    @http.route()
    def google_gmail_callback(self, code=None, state=None, error=None, **kwargs):
        try:
            parsed = json.loads(state)
            is_mailbox = isinstance(parsed, dict) and parsed.get("model") == MAILBOX_MODEL
        except (TypeError, ValueError):
            is_mailbox = False
        if not is_mailbox:
            return super().google_gmail_callback(code=code, state=state, error=error, **kwargs)
        return self._onpipeline_mailbox_callback(code, parsed, error)

    def _onpipeline_mailbox_callback(self, code, state, error):
        rec_id, csrf_token = state.get("id"), state.get("csrf_token")
        if not isinstance(rec_id, int) or not isinstance(csrf_token, str):
            raise Forbidden()
        mailbox = request.env[MAILBOX_MODEL].browse(rec_id).exists()
        if not mailbox:
            raise Forbidden()
        # The state is bound to the mailbox and to the user who clicked: checked before anything else.
        if not consteq(csrf_token, mailbox._get_gmail_csrf_token()):
            _logger.warning("Mailbox sign-in with Google: wrong state token for mailbox %s", rec_id)
            raise Forbidden()
        try:
            mailbox._check_may_sign_in()
        except AccessError:
            _logger.warning("Mailbox sign-in with Google: user %s may not sign in mailbox %s", request.env.uid, rec_id)
            raise Forbidden() from None
        if error or not code:
            return request.redirect(self._onpipeline_mailbox_url(mailbox, _("Google sign-in was cancelled.")))
        try:
            mailbox._google_sign_in_done(code)
        except UserError:
            return request.redirect(self._onpipeline_mailbox_url(
                mailbox, _("Google did not complete the sign-in: try again.")))
        return request.redirect(self._onpipeline_mailbox_url(mailbox))

    def _onpipeline_mailbox_url(self, mailbox, problem=None):
        if problem:
            mailbox.sudo().message_post(body=problem)
        return "/odoo/%s/%s" % (MAILBOX_MODEL, mailbox.id)
