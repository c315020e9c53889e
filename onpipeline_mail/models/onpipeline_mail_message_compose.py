"""Reply, reply all and forward from a synced email, in Odoo's composer."""

import email.utils

from markupsafe import Markup, escape

from odoo import _, models

from ..engine import outgoing
from ..engine.parse import normalize_address


class OnpipelineMailMessage(models.Model):
    _inherit = "onpipeline.mail.message"

    def action_reply(self):
        return self._onpipeline_open_composer("reply")

    def action_reply_all(self):
        return self._onpipeline_open_composer("reply_all")

    def action_forward(self):
        return self._onpipeline_open_composer("forward")

    def _reply_addresses(self, mode):
        """(name, address) pairs to answer: the sender (or, for our own mail, its recipients), plus the rest."""
        self.ensure_one()
        own = self.mailbox_id._own_addresses()
        if mode == "forward":
            return []
        if self.direction == "outgoing":
            first = email.utils.getaddresses([self.email_to or ""])
        else:
            first = email.utils.getaddresses([self.reply_to or self.email_from or ""])
        pairs = list(first)
        if mode == "reply_all":
            pairs += email.utils.getaddresses([self.email_from or "", self.email_to or "", self.email_cc or ""])
        seen, result = set(), []
        for name, address in pairs:
            normalized = normalize_address(address)
            if normalized and normalized not in own and normalized not in seen:
                seen.add(normalized)
                result.append((name, address))
        return result

    def _reply_record(self, partners):
        """Where the answer is posted: the deal or contact the email is linked to, else its first correspondent."""
        self.ensure_one()
        for field_name, model in (("lead_id", "crm.lead"), ("lead_ids", "crm.lead"), ("partner_id", "res.partner"),
                                  ("partner_ids", "res.partner")):
            if field_name in self._fields and self[field_name]:
                return model, self[field_name][:1].id
        if partners:
            return "res.partner", partners[:1].id
        own_partner = self.mailbox_id.user_id.partner_id or self.env.user.partner_id
        return "res.partner", own_partner.id

    def _quoted_body(self):
        original = self.body_html or (escape(self.body_text or "").replace("\n", Markup("<br/>")))
        header = _("On %(date)s, %(sender)s wrote:", date=self.date, sender=self.email_from or "")
        return Markup("<p><br/></p><p>%s</p><blockquote>%s</blockquote>") % (header, Markup(original))

    def _onpipeline_open_composer(self, mode):
        self.ensure_one()
        self.check_access("read")
        Partner = self.env["res.partner"]
        partners = Partner
        for name, address in self._reply_addresses(mode):
            partners |= Partner.find_or_create(email.utils.formataddr((name, address)) if name else address)
        model, res_id = self._reply_record(partners)
        context = {
            "default_composition_mode": "comment",
            "default_model": model,
            "default_res_ids": [res_id],
            "default_partner_ids": partners.ids,
            "default_subject": outgoing.prefixed_subject(_("Fwd:") if mode == "forward" else _("Re:"), self.subject),
            "default_body": self._quoted_body(),
            "default_subtype_xmlid": "mail.mt_comment",
        }
        mailbox = self.mailbox_id
        if mailbox in self.env["onpipeline.mailbox"]._sending_mailboxes() and mailbox.sudo().can_send:
            context["default_onpipeline_mailbox_id"] = mailbox.id
        if mode == "forward":
            context["default_attachment_ids"] = [
                attachment.copy({"res_model": "mail.compose.message", "res_id": 0}).id
                for attachment in self.attachment_ids.sudo()]
        else:
            context["default_onpipeline_reply_to_id"] = self.id
        return {
            "type": "ir.actions.act_window",
            "name": {"reply": _("Reply"), "reply_all": _("Reply All"), "forward": _("Forward")}[mode],
            "res_model": "mail.compose.message",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": context,
        }
