"""Deleting a mailbox: its synced mail goes with it; its copies in the history of contacts and deals
(``mail.message`` records of ``onpipeline.mail.link.mail_message_id``) stay or go, as chosen in the
*Delete* wizard (:mod:`..wizard.onpipeline_mailbox_delete`). Nothing is deleted on the mail server."""

import collections

from odoo import Command, _, models
from odoo.exceptions import UserError

#: Context key read by :meth:`OnpipelineMailbox.unlink`: ``keep`` (the default) or ``delete``.
HISTORY_CONTEXT = "onpipeline_mailbox_history"
HISTORY_CHOICES = [
    ("keep", "Keep them in the history of contacts and deals"),
    ("delete", "Delete them with the mailbox"),
]


class OnpipelineMailbox(models.Model):
    _inherit = "onpipeline.mailbox"

    def action_open_delete(self):
        """Delete (button): asks what becomes of the mail copied into the history of contacts and deals."""
        self.ensure_one()
        self.check_access("unlink")
        return {
            "type": "ir.actions.act_window",
            "name": _("Delete mailbox"),
            "res_model": "onpipeline.mailbox.delete",
            "view_mode": "form",
            "target": "new",
            "context": {"default_mailbox_id": self.id},
        }

    def _history_entries(self):
        """The copies of this mailbox's mail in the history of contacts and deals."""
        links = self.env["onpipeline.mail.link"].sudo().with_context(active_test=False).search(
            [("mailbox_id", "in", self.ids), ("mail_message_id", "!=", False)])
        return links.mail_message_id

    def unlink(self):
        """The synced mail goes with the mailbox; its history copies stay (context ``onpipeline_mailbox_history``
        = ``keep``, the default, also for a plain delete) with their files, or go too (``delete``)."""
        history = self.env.context.get(HISTORY_CONTEXT) or "keep"
        if history not in dict(HISTORY_CHOICES):
            raise UserError(_("Unknown choice for the history of a deleted mailbox: %s", history))
        self.check_access("unlink")
        entries = self._history_entries()
        if history == "delete":
            entries.unlink()
        else:
            self._keep_history_files(entries)
        # Through the ORM, so that the emails' own files go with them (those of kept copies were handed over).
        self.env["onpipeline.mail.message"].sudo().search([("mailbox_id", "in", self.ids)]).unlink()
        return super().unlink()

    def _keep_history_files(self, entries):
        """The history copies show the emails' own files (not copied at sync time): hand each file over to
        the record of the copy that shows it (a copy of it for each further record), so that it outlives
        the email."""
        users = collections.defaultdict(list)
        for entry in entries:
            for attachment in entry.attachment_ids:
                if attachment.res_model == "onpipeline.mail.message":
                    users[attachment].append(entry)
        for attachment, shown_on in users.items():
            owner = shown_on[0]
            attachment.sudo().write({"res_model": owner.model, "res_id": owner.res_id})
            for entry in shown_on[1:]:
                if (entry.model, entry.res_id) == (owner.model, owner.res_id):
                    continue
                copy = attachment.sudo().copy({"res_model": entry.model, "res_id": entry.res_id})
                entry.sudo().write({"attachment_ids": [Command.unlink(attachment.id), Command.link(copy.id)]})
