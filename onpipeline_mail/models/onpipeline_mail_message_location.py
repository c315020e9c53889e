from odoo import fields, models

from .fields import BigInteger


class OnpipelineMailMessageLocation(models.Model):
    """Where a stored message sits on the server: one row per (folder, UIDVALIDITY, UID).

    The same message in Inbox and in a label (Gmail's All Mail) is one
    message with two locations.
    """

    _name = "onpipeline.mail.message.location"
    _description = "Synced Message Location"
    _order = "folder_id, uid desc"

    message_id = fields.Many2one("onpipeline.mail.message", required=True, index=True, ondelete="cascade")
    mailbox_id = fields.Many2one(related="message_id.mailbox_id", store=True, index=True)
    company_id = fields.Many2one(related="message_id.company_id", store=True)
    folder_id = fields.Many2one("onpipeline.mailbox.folder", required=True, index=True, ondelete="cascade")
    uidvalidity = BigInteger("UIDVALIDITY", required=True)
    uid = BigInteger("UID", required=True)

    _sql_constraints = [
        ("folder_uid_unique", "unique(folder_id, uidvalidity, uid)",
         "A server message is stored once per folder."),
    ]
