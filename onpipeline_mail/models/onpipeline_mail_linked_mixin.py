from odoo import _, api, fields, models


class OnpipelineMailLinkedMixin(models.AbstractModel):
    """What a record that synced mail links to (contact, deal) shows: the count and the list of its emails."""

    _name = "onpipeline.mail.linked.mixin"
    _description = "Record with linked synced emails"

    onpipeline_mail_count = fields.Integer("Emails", compute="_compute_onpipeline_mail_count")

    def _onpipeline_mail_domain(self):
        """Domain on onpipeline.mail.message of the emails linked to these records."""
        raise NotImplementedError

    def _onpipeline_link_late(self):
        """Link the mail synced before these records existed or had their addresses (late linking)."""
        raise NotImplementedError

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._onpipeline_link_late()
        return records

    @api.depends_context("uid")
    def _compute_onpipeline_mail_count(self):
        Message = self.env["onpipeline.mail.message"]
        for record in self:
            record.onpipeline_mail_count = Message.search_count(record._origin._onpipeline_mail_domain()) \
                if record._origin.id else 0

    def action_view_onpipeline_mail(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("onpipeline_mail.onpipeline_mail_message_action")
        action.update(domain=self._onpipeline_mail_domain(), context={"create": False})
        action["name"] = _("Emails of %s", self.display_name)
        return action
