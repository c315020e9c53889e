"""The end of a mailbox's sign-in with a provider, shared by the OAuth bridges.

A provider sends the user back to the one redirect URI registered for the
company's OAuth app (``/google_gmail/confirm``, ``/microsoft_outlook/confirm``),
whose controller accepts administrators only. The bridges extend that route:
a state naming a mailbox is handled here, every other state by the provider
module as before. A mailbox is signed in by its owner or, for a team mailbox,
by a CRM admin, and the state is bound to the mailbox and to that user.
"""

import json
import logging

from werkzeug.exceptions import Forbidden

from odoo import _
from odoo.exceptions import AccessError, UserError
from odoo.http import request
from odoo.tools import consteq

_logger = logging.getLogger(__name__)

MAILBOX_MODEL = "onpipeline.mailbox"


class MailboxSignInCallback:
    """Mixed into a provider's callback controller; ``provider`` names it to the user."""

    provider = None

    @staticmethod
    def _mailbox_state(state):
        """The parsed state when it names a mailbox, else None (the provider module's own sign-in)."""
        try:
            parsed = json.loads(state)
        except (TypeError, ValueError):
            return None
        return parsed if isinstance(parsed, dict) and parsed.get("model") == MAILBOX_MODEL else None

    def _mailbox_csrf_token(self, mailbox):
        raise NotImplementedError

    def _mailbox_sign_in_done(self, mailbox, code):
        raise NotImplementedError

    def _mailbox_callback(self, code, state, error):
        rec_id, csrf_token = state.get("id"), state.get("csrf_token")
        if not isinstance(rec_id, int) or not isinstance(csrf_token, str):
            raise Forbidden()
        mailbox = request.env[MAILBOX_MODEL].browse(rec_id).exists()
        if not mailbox:
            raise Forbidden()
        # The state is bound to the mailbox and to the user who clicked: checked before anything else.
        if not consteq(csrf_token, self._mailbox_csrf_token(mailbox)):
            _logger.warning("Mailbox sign-in with %s: wrong state token for mailbox %s", self.provider, rec_id)
            raise Forbidden()
        try:
            mailbox._check_may_sign_in()
        except AccessError:
            _logger.warning("Mailbox sign-in with %s: user %s may not sign in mailbox %s",
                            self.provider, request.env.uid, rec_id)
            raise Forbidden() from None
        if error or not code:
            return request.redirect(self._mailbox_url(mailbox, _(
                "%(provider)s sign-in did not complete: %(reason)s",
                provider=self.provider, reason=error or _("it was cancelled"))))
        try:
            self._mailbox_sign_in_done(mailbox, code)
        except UserError as exc:
            return request.redirect(self._mailbox_url(mailbox, str(exc)))
        return request.redirect(self._mailbox_url(mailbox))

    @staticmethod
    def _mailbox_url(mailbox, problem=None):
        if problem:
            mailbox.sudo().message_post(body=problem)
        return "/odoo/%s/%s" % (MAILBOX_MODEL, mailbox.id)
