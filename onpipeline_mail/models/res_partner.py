from odoo import models


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "onpipeline.mail.linked.mixin"]

    def _onpipeline_mail_domain(self):
        return [("link_ids", "any", [("is_candidate", "=", False), ("partner_id", "child_of", self.ids)])]

    def write(self, vals):
        result = super().write(vals)
        if "email" in vals:
            self._onpipeline_link_late()
        return result

    def _onpipeline_link_late(self):
        """Late linking: mail synced before this contact had its address now links to it."""
        addresses = self.filtered("email_normalized").mapped("email_normalized")
        if addresses and not self.env.context.get("onpipeline_mail_no_link"):
            self.env["onpipeline.mail.message"]._link_late(addresses)
