"""microsoft_outlook's OAuth callback, extended to mailboxes.

Microsoft sends the user back to the one redirect URI registered for the
company's OAuth app, ``/microsoft_outlook/confirm`` (microsoft_outlook's token
exchange posts that URI too), so a mailbox's sign-in ends there.
microsoft_outlook's own callback accepts administrators only; a mailbox is
signed in by its owner or, for a team mailbox, by a CRM admin, so the states
naming a mailbox are handled here, every other state by microsoft_outlook.
"""

import json
import logging

from werkzeug.exceptions import Forbidden

from odoo import _, http
from odoo.exceptions import AccessError, UserError
from odoo.http import request
from odoo.tools import consteq

from odoo.addons.microsoft_outlook.controllers.main import MicrosoftOutlookController

_logger = logging.getLogger(__name__)

MAILBOX_MODEL = "onpipeline.mailbox"


class OnpipelineMicrosoftOutlookController(MicrosoftOutlookController):
    @http.route()
    def microsoft_outlook_callback(self, code=None, state=None, error_description=None, **kwargs):
        try:
            parsed = json.loads(state)
            is_mailbox = isinstance(parsed, dict) and parsed.get("model") == MAILBOX_MODEL
        except (TypeError, ValueError):
            is_mailbox = False
        if not is_mailbox:
            return super().microsoft_outlook_callback(
                code=code, state=state, error_description=error_description, **kwargs)
        return self._onpipeline_mailbox_callback(code, parsed, error_description or kwargs.get("error"))

    def _onpipeline_mailbox_callback(self, code, state, error):
        rec_id, csrf_token = state.get("id"), state.get("csrf_token")
        if not isinstance(rec_id, int) or not isinstance(csrf_token, str):
            raise Forbidden()
        mailbox = request.env[MAILBOX_MODEL].browse(rec_id).exists()
        if not mailbox:
            raise Forbidden()
        # The state is bound to the mailbox and to the user who clicked: checked before anything else.
        if not consteq(csrf_token, mailbox._get_outlook_csrf_token()):
            _logger.warning("Mailbox sign-in with Microsoft: wrong state token for mailbox %s", rec_id)
            raise Forbidden()
        try:
            mailbox._check_may_sign_in()
        except AccessError:
            _logger.warning("Mailbox sign-in with Microsoft: user %s may not sign in mailbox %s",
                            request.env.uid, rec_id)
            raise Forbidden() from None
        if error or not code:
            return request.redirect(self._onpipeline_mailbox_url(
                mailbox, _("Microsoft sign-in did not complete: %s", error or _("no authorization code"))))
        try:
            mailbox._microsoft_sign_in_done(code)
        except UserError as exc:
            return request.redirect(self._onpipeline_mailbox_url(mailbox, str(exc)))
        return request.redirect(self._onpipeline_mailbox_url(mailbox))

    def _onpipeline_mailbox_url(self, mailbox, problem=None):
        if problem:
            mailbox.sudo().message_post(body=problem)
        return "/odoo/%s/%s" % (MAILBOX_MODEL, mailbox.id)
