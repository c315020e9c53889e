"""History entries: copies of linked emails in the chatter of their contacts and deals."""

from markupsafe import Markup

from odoo import _, models, tools
from odoo.tools import SQL

from ..engine.parse import normalize_address
from .onpipeline_mail_message import block_remote_content
from .onpipeline_mail_message_link import address_variants


class OnpipelineMailMessage(models.Model):
    _inherit = "onpipeline.mail.message"

    # ------------------------------------------------------------------
    # History (chatter) of the linked records
    # ------------------------------------------------------------------

    def _post_history(self, links):
        """Copy the emails into the history of their linked contacts and deals, like Odoo's incoming mail.

        Created directly as the system: nobody is notified or subscribed, nothing is sent. Mail of a
        personal mailbox set to "only me" gets no copy: it stays visible to its owner alone.
        """
        links = links.sudo().filtered(lambda link: link.active and not link.is_candidate and not link.mail_message_id
                                      and link.message_id.mailbox_id._shares_linked_mail())
        # Odoo's chatter orders by id. A first sync reads newest first, so the copies of a
        # mailbox still in its first sync wait until it has caught up, then go in date order
        # (_post_pending_history); re-creating newer copies per batch made first syncs quadratic.
        if not links or self.env.context.get("onpipeline_defer_history"):
            return
        links = links.sorted(lambda link: (link.message_id.date, link.message_id.id, link.id))
        # Mail sent from Odoo is in the history already, under its own Message-ID.
        ids = [message_id for message_id in links.message_id.mapped("message_id") if message_id]
        if ids:
            known = {(entry.message_id, entry.model, entry.res_id) for entry in self.env["mail.message"].sudo().search(
                [("message_id", "in", ids), ("model", "in", ("crm.lead", "res.partner"))])}
            links = links.filtered(lambda link: (link.message_id.message_id, (link.lead_id or link.partner_id)._name,
                                                 (link.lead_id or link.partner_id).id) not in known)
        if not links:
            return
        authors = links.message_id._history_authors()
        comment = self.env.ref("mail.mt_comment")
        labels = self._history_labels()  # _() looks up its caller's module: once per batch, not per email
        bodies = {}  # an email linked to a contact and a deal has the same body twice
        values = []
        for link in links:
            message = link.message_id
            record = link.lead_id or link.partner_id
            if message.id not in bodies:
                bodies[message.id] = message._history_body(labels)
            values.append({
                "model": record._name,
                "res_id": record.id,
                "record_name": record.display_name,
                "message_type": "email",
                "subtype_id": comment.id,
                "is_internal": True,
                "author_id": authors.get(message.id, False),
                "email_from": message.email_from,
                "reply_to": message.reply_to or message.email_from,
                "subject": message.subject or False,
                "date": message.date,
                "message_id": message.message_id or False,
            })
        entries = self.env["mail.message"].sudo().with_context(mail_create_nosubscribe=True).create(values)
        self._write_history_bodies({entry.id: bodies[link.message_id.id]
                                    for link, entry in zip(links, entries, strict=True)})
        self._attach_history_files({entry.id: link.message_id.attachment_ids.ids
                                    for link, entry in zip(links, entries, strict=True)})
        for link, entry in zip(links, entries, strict=True):
            link.mail_message_id = entry

    def _attach_history_files(self, files):
        """Show the synced emails' own files on their history entries ({mail.message id: [attachment id]}).

        Nothing is copied: the chatter's download links check access to the email
        itself. The rows go straight into the relation: writing ``attachment_ids``
        entry by entry (as the system, so without the access check it would run for
        a user) took a fifth of the history time of a first sync.
        """
        rows = [(entry_id, attachment_id) for entry_id, attachment_ids in files.items()
                for attachment_id in attachment_ids]
        if not rows:
            return
        field = self.env["mail.message"]._fields["attachment_ids"]
        self.env.cr.execute(SQL(
            "INSERT INTO %s (%s, %s) VALUES %s ON CONFLICT DO NOTHING",
            SQL.identifier(field.relation), SQL.identifier(field.column1), SQL.identifier(field.column2),
            SQL(", ").join(SQL("(%s, %s)", entry_id, attachment_id) for entry_id, attachment_id in rows)))
        self.env["mail.message"].browse(files).invalidate_recordset(["attachment_ids"])

    def _write_history_bodies(self, bodies):
        """Write the bodies of new history entries ({mail.message id: html}) without sanitizing them again.

        Each body is ``_history_body``: its pieces are each the output of Odoo's
        ``html_sanitize`` with the options of ``mail.message.body`` (the email's
        ``body_html`` was sanitized so when the email was stored; the small header
        and a text body are sanitized on the spot). Through the ORM the whole body
        went through the sanitizer twice more per entry (cache and column): a third
        of the time of a first sync's history. A test checks that mail.message's
        own conversion leaves these bodies unchanged, hostile HTML included.
        """
        if not bodies:
            return
        Entry = self.env["mail.message"]
        self.env.cr.execute(SQL(
            "UPDATE mail_message SET body = entry.body FROM (VALUES %s) AS entry(id, body) "
            "WHERE mail_message.id = entry.id",
            SQL(", ").join(SQL("(%s, %s)", entry_id, str(body)) for entry_id, body in bodies.items())))
        Entry.browse(bodies).invalidate_recordset(["body"])

    def _history_authors(self):
        """{message id: partner id} of the senders: a contact or colleague with the From address."""
        addresses = {address for address in self.mapped("author_email") if address}
        by_variant = {variant: address for address in addresses for variant in address_variants(address)}
        partners = {}
        if by_variant:
            users = self.env["res.users"].sudo().search([("share", "=", False)])
            for partner in self.env["res.partner"].sudo().search([("email_normalized", "in", list(by_variant))],
                                                                 order="id"):
                address = normalize_address(partner.email_normalized)
                # A colleague wins over a contact with the same address.
                if address not in partners or partner in users.partner_id:
                    partners[address] = partner.id
        result = {}
        for message in self:
            partner = partners.get(message.author_email)
            if not partner and message.direction == "outgoing" and message.mailbox_id.user_id:
                partner = message.mailbox_id.user_id.partner_id.id
            result[message.id] = partner or False
        return result

    def _history_labels(self):
        return {"outgoing": _("Outgoing email"), "incoming": _("Incoming email"),
                "from": _("From"), "to": _("To"), "cc": _("Cc")}

    def _history_body(self, labels=None):
        """The entry's HTML: a header (incoming or outgoing, From, To, Cc), then the email's body.

        Sanitized with the options of ``mail.message.body``, piece by piece: the
        stored ``body_html`` already is, so only the header and a text body go
        through the sanitizer here (see ``_write_history_bodies``).
        """
        self.ensure_one()
        labels = labels or self._history_labels()
        lines = [Markup("<b>%s</b>") % labels["outgoing" if self.direction == "outgoing" else "incoming"]]
        for name, value in ((labels["from"], self.email_from), (labels["to"], self.email_to),
                            (labels["cc"], self.email_cc)):
            if value:
                lines.append(Markup("%s: %s") % (name, value))
        header = Markup('<p class="o_onpipeline_mail_%s text-muted small">%s</p>') % (
            self.direction, Markup("<br/>").join(lines))
        Entry = self.env["mail.message"]
        as_stored = Entry._fields["body"].convert_to_cache  # the field's own html_sanitize options
        if self.body_html:
            # Remote images stay blocked in the history: the chatter has no "show" button, and loading them
            # would tell the sender each time a colleague opens the record. Inline images are stored ones.
            return as_stored(header, Entry) + block_remote_content(self.body_html)[0]
        return as_stored(header + tools.plaintext2html(self.body_text or ""), Entry)
