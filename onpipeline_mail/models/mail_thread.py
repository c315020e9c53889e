"""What goes out through a mailbox when a message is posted on a record, and what stays Odoo's.

Odoo notifies a message by groups of recipients (internal users,
followers, customers), each group with its own layout (a *View* button and
the record's name for users, Odoo's footer...) and its own ``mail.mail``.
When the message leaves through a mailbox, only the recipients the author
chose (the message's partners who are not internal users) get it through
the mailbox: one email to all of them, as a mail client sends it (the
text and the signature, no record banner nor company footer unless a
template chose its own layout) and with the subject the author wrote, even
an empty one (Odoo would fall back on the record's name). Followers and
internal users get Odoo's own notification, through Odoo's outgoing mail
server, never through a personal or team mailbox.
"""

from odoo import models

PERSONAL_LAYOUT = "onpipeline_mail.mail_layout_personal"
#: Odoo's generic layouts: replaced by the personal layout. Any other layout was chosen by a template and stays.
ODOO_LAYOUTS = ("mail.mail_notification_layout", "mail.mail_notification_light")
#: Context key set for the notification pass that goes out through the mailbox.
MAILBOX_PASS = "onpipeline_mailbox_pass"


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _notify_thread_by_email(self, message, recipients_data, msg_vals=False, **kwargs):
        context = self.env.context
        if context.get(MAILBOX_PASS) or not self._onpipeline_notified_through_mailbox(message, msg_vals or {}):
            return super()._notify_thread_by_email(message, recipients_data, msg_vals=msg_vals, **kwargs)
        chosen = set(message.sudo().partner_ids.ids)
        customers = [data for data in recipients_data if data["id"] in chosen and data.get("type") != "user"]
        others = [data for data in recipients_data if data["id"] not in {c["id"] for c in customers}]
        if customers:
            super(MailThread, self.with_context(**{MAILBOX_PASS: True}))._notify_thread_by_email(
                message, customers, msg_vals=msg_vals, **kwargs)
        if others:
            # Odoo's notification through Odoo's outgoing server: "False" keeps every mailbox out of it.
            super(MailThread, self.with_context(onpipeline_mailbox_id=False))._notify_thread_by_email(
                message, others, msg_vals=msg_vals, **kwargs)
        return True

    def _onpipeline_notified_through_mailbox(self, message, msg_vals):
        """Does the email of ``message`` to its recipients leave through a mailbox (as ``mail.mail`` decides)?"""
        context = self.env.context
        if "onpipeline_mailbox_id" in context:
            return bool(context["onpipeline_mailbox_id"])  # the composer's choice (False: the company's server)
        author = self.env["res.partner"].browse(msg_vals["author_id"]) if msg_vals.get("author_id") \
            else message.author_id
        if self.env["mail.mail"]._onpipeline_author_mailbox(
                msg_vals.get("message_type", message.message_type), msg_vals.get("model", message.model), author):
            return True
        # Odoo's "Resend" of a failed message: the new mail goes out as the failed one did.
        return bool(message.id and self.env["mail.mail"].sudo().search_count(
            [("mail_message_id", "=", message.id), ("onpipeline_mailbox_id", "!=", False)], limit=1))

    def _notify_get_classified_recipients_iterator(self, message, recipients_data, msg_vals=False, **kwargs):
        classified = super()._notify_get_classified_recipients_iterator(
            message, recipients_data, msg_vals=msg_vals, **kwargs)
        if not self.env.context.get(MAILBOX_PASS):
            return classified
        return self._onpipeline_one_group(classified)

    @staticmethod
    def _onpipeline_one_group(classified):
        """One email for all the chosen recipients, whatever their language or group, as a mail client sends."""
        merged = None
        for lang, render_values, group in classified:
            if merged is None:
                merged = (lang, render_values, dict(group, recipients=list(group["recipients"]),
                                                    has_button_access=False, actions=[]))
            else:
                merged[2]["recipients"].extend(group["recipients"])
        return [merged] if merged else []

    def _notify_by_email_render_layout(self, message, recipients_group, msg_vals=False, render_values=None):
        if self.env.context.get(MAILBOX_PASS):
            layout = msg_vals.get("email_layout_xmlid") if msg_vals else message.email_layout_xmlid
            if not layout or layout in ODOO_LAYOUTS:
                msg_vals = dict(msg_vals or {}, email_layout_xmlid=PERSONAL_LAYOUT)
        return super()._notify_by_email_render_layout(
            message, recipients_group, msg_vals=msg_vals, render_values=render_values)

    def _notify_by_email_get_base_mail_values(self, message, additional_values=None):
        values = super()._notify_by_email_get_base_mail_values(message, additional_values=additional_values)
        if self.env.context.get(MAILBOX_PASS) and not message.subject:
            # The subject the author wrote, empty included: never the record's name.
            values.pop("subject", None)
        return values
