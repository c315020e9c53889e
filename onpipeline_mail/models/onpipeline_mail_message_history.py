"""History entries: copies of linked emails in the chatter of their contacts and deals."""

import re
from collections import defaultdict

from markupsafe import Markup

from odoo import _, models, tools
from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tools import SQL

from ..engine.parse import normalize_address
from . import sql_rows
from .onpipeline_mail_message import block_remote_content
from .onpipeline_mail_message_link import address_variants

#: Fields ``create()`` never takes from ``default_get`` (``_prepare_create_values`` drops them).
MAGIC_FIELDS = ("id", "parent_path", *LOG_ACCESS_COLUMNS)


def history_header(direction, title, lines):
    """The header of a history entry: ``title`` (incoming or outgoing email), then a line per ``(name, value)``."""
    return Markup('<p class="o_onpipeline_mail_%s text-muted small">%s</p>') % (
        direction, Markup("<br/>").join([Markup("<b>%s</b>") % title] + [Markup("%s: %s") % line for line in lines]))


#: Characters that Odoo's sanitizer (lxml) may drop or change in text: controls, tab and line ends,
#: surrogates, U+FFFE/U+FFFF. A header holding one is sanitized the slow way.
_UNSAFE_TEXT = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _as_sanitized_text(value):
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\xa0", "&nbsp;")


def sanitized_history_header(direction, title, lines):
    """``history_header(...)`` as Odoo's ``html_sanitize`` returns it (``mail.message.body``'s options), or None.

    The header is tags the sanitizer keeps as they are around escaped text, so its
    output is known without running it: lxml writes ``<br>`` and escapes only
    ``&``, ``<`` and ``>`` in text, and Odoo writes a no-break space as ``&nbsp;``.
    Sanitizing it took 0.2 ms per history entry, a sixth of a first sync's history.
    None when a value holds a character lxml may change (see ``_UNSAFE_TEXT``):
    then sanitize. ``tests/test_history_rows.py`` compares both on hostile values.
    """
    texts = [title] + [text for line in lines for text in line]
    if any(not isinstance(text, str) or _UNSAFE_TEXT.search(text) for text in texts):
        return None
    body = "<br>".join(["<b>%s</b>" % _as_sanitized_text(title)]
                       + ["%s: %s" % (_as_sanitized_text(name), _as_sanitized_text(value)) for name, value in lines])
    return Markup('<p class="o_onpipeline_mail_%s text-muted small">%s</p>' % (direction, body))


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
        links = links.sudo()
        # Asked once per mailbox, not per link: reading each link's email and mailbox cost a sixth of the history.
        sharing = {mailbox.id for mailbox in links.mailbox_id if mailbox._shares_linked_mail()}
        links = links.filtered(lambda link: link.active and not link.is_candidate and not link.mail_message_id
                               and link.mailbox_id.id in sharing)
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
        Entry = self.env["mail.message"].sudo().with_context(mail_create_nosubscribe=True)
        if not sql_rows.use_orm_path(self.env):
            entries = self._insert_history_entries(
                Entry, values, [bodies[link.message_id.id] for link in links])
            if entries is not None:
                self._attach_history_files({entry.id: link.message_id.attachment_ids.ids
                                            for link, entry in zip(links, entries, strict=True)})
                self._set_history_entries(links, entries)
                return
        entries = Entry.create(values)
        self._write_history_bodies({entry.id: bodies[link.message_id.id]
                                    for link, entry in zip(links, entries, strict=True)})
        self._attach_history_files({entry.id: link.message_id.attachment_ids.ids
                                    for link, entry in zip(links, entries, strict=True)})
        for link, entry in zip(links, entries, strict=True):
            link.mail_message_id = entry

    def _insert_history_entries(self, Entry, values, bodies):
        """The history entries of ``values`` with their ``bodies``, INSERTed in one statement per batch.

        The rows are those ``Entry.create(values)`` writes, column for column:
        what ``default_get`` adds (field defaults, ``default_*`` context keys,
        ``ir.default``, asked once per batch since every entry has the same keys),
        a Message-ID generated as mail.message's ``create()`` does for an email
        without one, and the bodies, written as given (see ``_write_history_bodies``).
        What ``create()`` does beyond the row is kept: fields depending on the
        entries are marked for recomputation (``insert_rows``) and the cached
        history of their contacts and deals is invalidated (``_invalidate_documents``).

        None when a default would make ``create()`` write more than columns (a
        ``default_partner_ids`` in the context, say): then ``create()`` does it.
        """
        defaults = self._history_entry_defaults(Entry, {*values[0], "body"})
        if defaults is None:
            return None
        rows = []
        for row, body in zip(values, bodies, strict=True):
            row = dict(defaults, **row, body=body)
            if not row.get("message_id"):
                row["message_id"] = Entry._get_message_id(row)
            rows.append(row)
        entries = sql_rows.insert_rows(Entry, rows, sanitized=("body",))
        documents = defaultdict(list)
        for row in rows:
            if Entry.is_thread_message(row):
                documents[row["model"]].append(row["res_id"])
        for model, res_ids in documents.items():
            if model in self.pool and issubclass(self.pool[model], self.pool["mail.thread"]):
                self.env[model].browse(res_ids).invalidate_recordset(
                    ["message_ids", "message_needaction", "message_needaction_counter"])
        return entries

    def _history_entry_defaults(self, Entry, given):
        """What ``create()`` adds to values holding the fields ``given``: {column field: default}, or None.

        As ``_add_missing_default_values`` and ``_prepare_create_values``: one
        ``default_get`` of the fields not given, magic columns dropped; None when a
        default is not a plain column (a relation, an inverse) that ``insert_rows``
        cannot write.
        """
        fields = Entry._fields
        defaults = Entry.default_get([name for name in fields if name not in given and name not in MAGIC_FIELDS])
        columns = {}
        for name, value in defaults.items():
            field = fields[name]
            if field.store and field.column_type and not field.inverse and not field.inherited:
                columns[name] = value
            elif field.store or field.inverse or field.inherited or field.type == "properties":
                return None
        return columns

    def _set_history_entries(self, links, entries):
        """``link.mail_message_id = entry`` for each link, in one UPDATE, as ``write()`` leaves the rows.

        ``write()`` also sets ``write_uid`` and ``write_date``; the cached values are invalidated.
        """
        links.flush_recordset(["mail_message_id"])
        # One query string and one flat parameter list: an SQL object per row cost more than the UPDATE.
        self.env.cr.execute(
            'UPDATE "%s" AS link SET mail_message_id = entry.id, write_uid = %%s, write_date = %%s '
            "FROM (VALUES %s) AS entry(link_id, id) WHERE link.id = entry.link_id"
            % (links._table, ", ".join(["(%s, %s)"] * len(links))),
            [self.env.uid, self.env.cr.now(), *(value for link, entry in zip(links, entries, strict=True)
                                                for value in (link.id, entry.id))])
        links.invalidate_recordset(["mail_message_id", "write_uid", "write_date"])
        links.modified(["mail_message_id"])

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
        self.env.cr.execute(
            'INSERT INTO "%s" ("%s", "%s") VALUES %s ON CONFLICT DO NOTHING'
            % (field.relation, field.column1, field.column2, ", ".join(["(%s, %s)"] * len(rows))),
            [value for row in rows for value in row])
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
        direction = "outgoing" if self.direction == "outgoing" else "incoming"
        lines = [(labels["from"], self.email_from), (labels["to"], self.email_to), (labels["cc"], self.email_cc)]
        lines = [(name, value) for name, value in lines if value]
        Entry = self.env["mail.message"]
        as_stored = Entry._fields["body"].convert_to_cache  # the field's own html_sanitize options
        if self.body_html:
            # Remote images stay blocked in the history: the chatter has no "show" button, and loading them
            # would tell the sender each time a colleague opens the record. Inline images are stored ones.
            header = sanitized_history_header(self.direction, labels[direction], lines)
            if header is None:
                header = as_stored(history_header(self.direction, labels[direction], lines), Entry)
            return header + block_remote_content(self.body_html)[0]
        header = history_header(self.direction, labels[direction], lines)
        return as_stored(header + tools.plaintext2html(self.body_text or ""), Entry)
