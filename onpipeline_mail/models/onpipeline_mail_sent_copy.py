from odoo import fields, models


class OnpipelineMailSentCopy(models.Model):
    """A sent message whose copy could not be filed in the Sent folder yet; the sync retries it."""

    _name = "onpipeline.mail.sent.copy"
    _description = "Sent Copy To File"
    _order = "id"

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, index=True, ondelete="cascade", readonly=True)
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    message_id = fields.Char("Message-ID", required=True, readonly=True)
    subject = fields.Char(readonly=True)
    raw = fields.Binary("Message", attachment=True, readonly=True, help="The message exactly as sent.")
    error = fields.Text(readonly=True)
    attempt_count = fields.Integer(readonly=True, default=1)
    last_attempt_date = fields.Datetime(readonly=True, default=fields.Datetime.now)

    _sql_constraints = [
        ("mailbox_message_unique", "unique(mailbox_id, message_id)", "A sent message waits once per mailbox."),
    ]
