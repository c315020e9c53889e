from odoo import _, api, fields, models


class OnpipelineMailboxTestEmail(models.TransientModel):
    _name = "onpipeline.mailbox.test.email"
    _description = "Send a test email through a mailbox"

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, ondelete="cascade")
    email_to = fields.Char("Send To", required=True, default=lambda self: self.env.user.email)

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        if not values.get("email_to") and values.get("mailbox_id"):
            values["email_to"] = self.env["onpipeline.mailbox"].browse(values["mailbox_id"]).email
        return values

    def action_send(self):
        self.ensure_one()
        ok, message = self.mailbox_id._send_test_email(self.email_to.strip())
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Test email sent") if ok else _("Test email failed"),
                "message": message,
                "type": "success" if ok else "danger",
                "sticky": not ok,
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
