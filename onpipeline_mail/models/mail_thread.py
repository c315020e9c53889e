from odoo import models

PERSONAL_LAYOUT = "onpipeline_mail.mail_layout_personal"


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _notify_by_email_render_layout_body(self, message, recipients_group, msg_vals=False, render_values=None):
        """Mail that goes out through a mailbox looks like what a mail client sends: text and signature only."""
        if self._onpipeline_sends_through_mailbox(message, msg_vals or {}):
            msg_vals = dict(msg_vals or {}, email_layout_xmlid=PERSONAL_LAYOUT)
        return super()._notify_by_email_render_layout_body(
            message, recipients_group, msg_vals=msg_vals, render_values=render_values)

    def _onpipeline_sends_through_mailbox(self, message, msg_vals):
        layout = msg_vals.get("email_layout_xmlid") if "email_layout_xmlid" in msg_vals else message.email_layout_xmlid
        if layout and layout not in ("mail.mail_notification_layout", "mail.mail_notification_light"):
            return False  # a layout chosen on purpose (a template's) stays
        context = self.env.context
        if "onpipeline_mailbox_id" in context:
            return bool(context["onpipeline_mailbox_id"])
        author = self.env["res.partner"].browse(msg_vals["author_id"]) if msg_vals.get("author_id") \
            else message.author_id
        return bool(self.env["mail.mail"]._onpipeline_author_mailbox(
            msg_vals.get("message_type", message.message_type), msg_vals.get("model", message.model), author))
