from odoo import _, api, fields, models

#: Writing one of these may give a deal new addresses or make it an opportunity; not the stage, which
#: changes often (kanban) and never adds an address.
LINK_FIELDS = {"email_from", "partner_id", "type"}


class CrmLead(models.Model):
    _inherit = "crm.lead"

    onpipeline_mail_count = fields.Integer("Emails", compute="_compute_onpipeline_mail_count")

    def _onpipeline_mail_domain(self):
        return [("link_ids", "any", [("is_candidate", "=", False), ("lead_id", "in", self.ids)])]

    @api.depends_context("uid")
    def _compute_onpipeline_mail_count(self):
        Message = self.env["onpipeline.mail.message"]
        for lead in self:
            lead.onpipeline_mail_count = Message.search_count(lead._origin._onpipeline_mail_domain()) \
                if lead._origin.id else 0

    def action_view_onpipeline_mail(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("onpipeline_mail.onpipeline_mail_message_action")
        action.update(domain=self._onpipeline_mail_domain(), context={"create": False})
        action["name"] = _("Emails of %s", self.display_name)
        return action

    @api.model_create_multi
    def create(self, vals_list):
        leads = super().create(vals_list)
        leads._onpipeline_link_late()
        return leads

    def write(self, vals):
        result = super().write(vals)
        if LINK_FIELDS & set(vals) or vals.get("active"):
            self._onpipeline_link_late()
        return result

    def _onpipeline_link_late(self):
        """Late linking: mail synced before this deal existed (or had its address) now links to it."""
        if self.env.context.get("onpipeline_mail_no_link"):
            return
        leads = self.filtered(lambda lead: lead.type == "opportunity" and lead.active)
        company = leads.partner_id.commercial_partner_id
        partners = leads.partner_id | company | company.child_ids
        addresses = leads.mapped("email_normalized") + partners.mapped("email_normalized")
        addresses = [address for address in addresses if address]
        if addresses:
            self.env["onpipeline.mail.message"]._link_late(addresses)
