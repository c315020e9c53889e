"""Odoo's "Resend" of a failed chatter message: a mail that may already have been delivered is not ticked."""

from odoo import api, models


class MailResendMessage(models.TransientModel):
    _inherit = "mail.resend.message"

    @api.model
    def default_get(self, fields):
        values = super().default_get(fields)
        lines = self.env["mail.resend.partner"].browse(
            [command[1] for command in values.get("partner_ids") or [] if command[0] == 4])
        for line in lines:
            mail = line.notification_id.sudo().mail_mail_id
            if mail.onpipeline_may_be_delivered:
                # Sending again is the user's explicit choice: the line says why (the failure reason).
                line.write({"resend": False, "message": mail.failure_reason})
        return values
