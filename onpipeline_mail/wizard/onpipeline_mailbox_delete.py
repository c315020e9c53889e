from odoo import _, api, fields, models

from ..models.onpipeline_mailbox_delete import HISTORY_CHOICES, HISTORY_CONTEXT


class OnpipelineMailboxDelete(models.TransientModel):
    """Delete a mailbox, choosing whether its mail stays in the history of contacts and deals."""

    _name = "onpipeline.mailbox.delete"
    _description = "Delete a mailbox"

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, ondelete="cascade", readonly=True)
    history = fields.Selection(HISTORY_CHOICES, "Its emails in the history of contacts and deals", required=True,
                               default="keep")
    message_count = fields.Integer("Synced emails", compute="_compute_counts")
    history_count = fields.Integer("Copies in history", compute="_compute_counts")

    @api.depends("mailbox_id")
    def _compute_counts(self):
        Message = self.env["onpipeline.mail.message"].sudo()
        for wizard in self:
            mailbox = wizard.mailbox_id
            wizard.message_count = Message.search_count([("mailbox_id", "=", mailbox.id)]) if mailbox else 0
            wizard.history_count = len(mailbox._history_entries()) if mailbox else 0

    def action_delete(self):
        self.ensure_one()
        mailbox = self.mailbox_id
        mailbox.check_access("unlink")
        mailbox.with_context(**{HISTORY_CONTEXT: self.history}).unlink()
        return {
            "type": "ir.actions.act_window",
            "name": _("Mailboxes"),
            "res_model": "onpipeline.mailbox",
            "view_mode": "list,form",
            "views": [(False, "list"), (False, "form")],
            "target": "main",
        }
