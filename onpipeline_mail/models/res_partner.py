from odoo import _, api, fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    onpipeline_mail_count = fields.Integer("Emails", compute="_compute_onpipeline_mail_count")

    def _onpipeline_mail_domain(self):
        return [("link_ids", "any", [("is_candidate", "=", False), ("partner_id", "child_of", self.ids)])]

    @api.depends_context("uid")
    def _compute_onpipeline_mail_count(self):
        Message = self.env["onpipeline.mail.message"]
        for partner in self:
            partner.onpipeline_mail_count = Message.search_count(partner._origin._onpipeline_mail_domain()) \
                if partner._origin.id else 0

    def action_view_onpipeline_mail(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("onpipeline_mail.onpipeline_mail_message_action")
        action.update(domain=self._onpipeline_mail_domain(), context={"create": False})
        action["name"] = _("Emails of %s", self.display_name)
        return action

    @api.model_create_multi
    def create(self, vals_list):
        partners = super().create(vals_list)
        partners._onpipeline_link_late()
        return partners

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
