from odoo import fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    onpipeline_mailbox_ids = fields.One2many(
        "onpipeline.mailbox", "user_id", "Personal Mailboxes", domain=[("mailbox_type", "=", "personal")])

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + ["onpipeline_mailbox_ids"]
