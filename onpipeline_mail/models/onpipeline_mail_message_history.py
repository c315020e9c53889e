"""History entries: copies of linked emails in the chatter of their contacts and deals."""

import re
from collections import defaultdict
from typing import NamedTuple

from markupsafe import Markup

from odoo import _, models, tools
from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tools import SQL

from ..engine.parse import normalize_address
from . import sql_rows
from .onpipeline_mail_message import block_remote_content
from .onpipeline_mail_message_link import address_variants, field_values

#: Fields ``create()`` never takes from ``default_get`` (``_prepare_create_values`` drops them).
MAGIC_FIELDS = ("id", "parent_path", *LOG_ACCESS_COLUMNS)
#: The fields of a synced email its history entries are made of (see ``column_values``); the last
#: two name the author (``_history_authors``).
HISTORY_EMAIL_FIELDS = ("message_id", "date", "direction", "subject", "email_from", "reply_to", "email_to",
                        "email_cc", "body_html", "body_text", "author_email", "mailbox_id")
#: The fields of a history entry ``_post_history`` gives (its values and the body).
HISTORY_ENTRY_FIELDS = ("model", "res_id", "record_name", "message_type", "subtype_id", "is_internal", "author_id",
                        "email_from", "reply_to", "subject", "date", "message_id", "body")


class HistoryCopy(NamedTuple):
    """A history entry to make: the link it is for, its email, and the contact or deal."""

    link_id: int
    email_id: int
    model: str
    res_id: int


def column_values(records, names):
    """{record id: {field name: value}} of ``records``, read a field at a time (``field_values``).

    Only these stored fields are loaded, in one query: reading a field loads every column of a record.
    """
    records.fetch(names)
    columns = [field_values(records, name) for name in names]
    return {record_id: dict(zip(names, row, strict=True))
            for record_id, *row in zip(records.ids, *columns, strict=True)}


def x2many_ids(records, name):
    """The ids of x2many field ``name`` of each of ``records``, in their order, as ``record[name].ids``.

    Read from the cache after one fetch for all, without a recordset made per record.
    Only for a comodel without an ``active`` field: ``record[name]`` would leave archived ones out.
    """
    field = records._fields[name]
    assert not records.pool[field.comodel_name]._active_name, name
    records.mapped(name)  # fetches what the cache misses, for the whole recordset at once
    return [list(ids) for ids in records.env.cache.get_values(records, field)]


def display_names(records):
    """{id: display name} of ``records``, each computed once (an email has many copies per contact)."""
    return dict(zip(records.ids, records.mapped("display_name"), strict=True))


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


def history_body(email, labels, Entry):
    """An entry's HTML: a header (incoming or outgoing, From, To, Cc), then the email's body.

    ``email``: the email's ``HISTORY_EMAIL_FIELDS``, ``labels``: ``_history_labels()``,
    ``Entry``: the ``mail.message`` model. Sanitized with the options of ``mail.message.body``,
    piece by piece: the stored ``body_html`` already is, so only the header and a text body go
    through the sanitizer here (see ``_write_history_bodies``).
    """
    direction = email["direction"]
    title = labels["outgoing" if direction == "outgoing" else "incoming"]
    lines = [(labels["from"], email["email_from"]), (labels["to"], email["email_to"]),
             (labels["cc"], email["email_cc"])]
    lines = [(name, value) for name, value in lines if value]
    as_stored = Entry._fields["body"].convert_to_cache  # the field's own html_sanitize options
    if email["body_html"]:
        # Remote images stay blocked in the history: the chatter has no "show" button, and loading them
        # would tell the sender each time a colleague opens the record. Inline images are stored ones.
        header = sanitized_history_header(direction, title, lines)
        if header is None:
            header = as_stored(history_header(direction, title, lines), Entry)
        return header + block_remote_content(email["body_html"])[0]
    header = history_header(direction, title, lines)
    return as_stored(header + tools.plaintext2html(email["body_text"] or ""), Entry)


class OnpipelineMailMessage(models.Model):
    _inherit = "onpipeline.mail.message"

    # ------------------------------------------------------------------
    # History (chatter) of the linked records
    # ------------------------------------------------------------------

    def _post_history(self, links, pending=False, entry_ids=None):
        """Copy the emails into the history of their linked contacts and deals, like Odoo's incoming mail.

        Created directly as the system: nobody is notified or subscribed, nothing is sent. Mail of a
        personal mailbox set to "only me" gets no copy: it stays visible to its owner alone.

        ``pending``: the links come from ``_post_pending_history``, whose query selected them by the
        rules of ``_links_to_post`` and in its order; checking and sorting them again, record by
        record, cost a sixth of a first sync's history.
        """
        # Odoo's chatter orders by id. A first sync reads newest first, so the copies of a
        # mailbox still in its first sync wait until it has caught up, then go in date order
        # (_post_pending_history); re-creating newer copies per batch made first syncs quadratic.
        if self.env.context.get("onpipeline_defer_history"):
            return
        links = links.sudo()
        if not pending:
            links = self._links_to_post(links)
        if not links:
            return
        # Read a column at a time, once per chunk: through each link and email, once per use,
        # the values of the entries cost as much as writing them.
        emails = column_values(links.message_id, HISTORY_EMAIL_FIELDS)
        copies = self._without_known_entries(links, emails)
        if not copies:
            return
        links = links.browse([copy.link_id for copy in copies])
        messages = links.message_id
        authors = messages._history_authors()
        names = {"crm.lead": display_names(links.lead_id), "res.partner": display_names(links.partner_id)}
        comment = self.env.ref("mail.mt_comment")
        labels = self._history_labels()  # _() looks up its caller's module: once per batch, not per email
        entry_model = links.env["mail.message"]  # whose body field sanitizes the bodies
        bodies = {}  # an email linked to a contact and a deal has the same body twice
        values = []
        for copy in copies:
            email = emails[copy.email_id]
            if copy.email_id not in bodies:
                bodies[copy.email_id] = history_body(email, labels, entry_model)
            values.append({
                "model": copy.model,
                "res_id": copy.res_id,
                "record_name": names[copy.model][copy.res_id],
                "message_type": "email",
                "subtype_id": comment.id,
                "is_internal": True,
                "author_id": authors.get(copy.email_id, False),
                "email_from": email["email_from"],
                "reply_to": email["reply_to"] or email["email_from"],
                "subject": email["subject"] or False,
                "date": email["date"],
                "message_id": email["message_id"] or False,
            })
        files = dict(zip(messages.ids, x2many_ids(messages, "attachment_ids"), strict=True))
        Entry = self.env["mail.message"].sudo().with_context(mail_create_nosubscribe=True)
        if not sql_rows.use_orm_path(self.env):
            entries = self._insert_history_entries(Entry, values, [bodies[copy.email_id] for copy in copies],
                                                   ids=entry_ids)
            if entries is not None:
                self._attach_history_files({entry_id: files[copy.email_id]
                                            for copy, entry_id in zip(copies, entries.ids, strict=True)})
                self._set_history_entries(links, entries)
                return
        entries = Entry.create(values)
        self._write_history_bodies({entry_id: bodies[copy.email_id]
                                    for copy, entry_id in zip(copies, entries.ids, strict=True)})
        self._attach_history_files({entry_id: files[copy.email_id]
                                    for copy, entry_id in zip(copies, entries.ids, strict=True)})
        for link, entry in zip(links, entries, strict=True):
            link.mail_message_id = entry

    def _links_to_post(self, links):
        """The ``links`` still to copy into the history, ordered as the copies are made.

        Active, not a candidate, without an entry yet, of a mailbox that shares its linked mail
        (``PENDING_HISTORY`` in SQL); by the date of their emails, then email and link id.
        """
        # Asked once per mailbox, not per link: reading each link's email and mailbox cost a sixth of the history.
        sharing = {mailbox.id for mailbox in links.mailbox_id if mailbox._shares_linked_mail()}
        links = links.filtered(lambda link: link.active and not link.is_candidate and not link.mail_message_id
                               and link.mailbox_id.id in sharing)
        return links.sorted(lambda link: (link.message_id.date, link.message_id.id, link.id))

    def _without_known_entries(self, links, emails):
        """A ``HistoryCopy`` per link of ``links``, in order, but for copies the history holds already.

        Mail sent from Odoo is in the history already, under its own Message-ID.
        ``emails``: ``column_values`` of the links' emails (their ``message_id`` is used).
        """
        targets = [("crm.lead", lead_id) if lead_id else ("res.partner", partner_id) for lead_id, partner_id
                   in zip(field_values(links, "lead_id"), field_values(links, "partner_id"), strict=True)]
        copies = [HistoryCopy(link_id, email_id, model, res_id) for link_id, email_id, (model, res_id)
                  in zip(links.ids, field_values(links, "message_id"), targets, strict=True)]
        ids = [email["message_id"] for email in emails.values() if email["message_id"]]
        if not ids:
            return copies
        known = {(entry.message_id, entry.model, entry.res_id) for entry in self.env["mail.message"].sudo().search(
            [("message_id", "in", ids), ("model", "in", ("crm.lead", "res.partner"))])}
        return [copy for copy in copies
                if (emails[copy.email_id]["message_id"], copy.model, copy.res_id) not in known]

    def _insert_history_entries(self, Entry, values, bodies, ids=None):
        """The history entries of ``values`` with their ``bodies``, INSERTed in one statement per batch.

        The rows are those ``Entry.create(values)`` writes, column for column:
        what ``default_get`` adds (field defaults, ``default_*`` context keys,
        ``ir.default``, asked once per batch since every entry has the same keys),
        a Message-ID generated as mail.message's ``create()`` does for an email
        without one, and the bodies, written as given (see ``_write_history_bodies``).
        What ``create()`` does beyond the row is kept: fields depending on the
        entries are marked for recomputation (``insert_rows``) and the cached
        history of their contacts and deals is invalidated (``_invalidate_documents``).

        ``ids``: the entries' ids, in order (the first ``len(values)`` are used), else the sequence's.

        None when a default would make ``create()`` write more than columns (a
        ``default_partner_ids`` in the context, say): then ``create()`` does it.
        """
        defaults = self._history_entry_defaults(Entry, set(HISTORY_ENTRY_FIELDS))
        if defaults is None:
            return None
        rows = []
        for index, (row, body) in enumerate(zip(values, bodies, strict=True)):
            row = dict(defaults, **row, body=body)
            if ids is not None:
                row["id"] = ids[index]
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
            [self.env.uid, self.env.cr.now(), *(value for link_id, entry_id in zip(links.ids, entries.ids, strict=True)
                                                for value in (link_id, entry_id))])
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
        senders = field_values(self, "author_email")
        addresses = {address for address in senders if address}
        by_variant = {variant: address for address in addresses for variant in address_variants(address)}
        partners = {}
        if by_variant:
            colleagues = set(self.env["res.users"].sudo().search_fetch([("share", "=", False)],
                                                                        ["partner_id"]).partner_id.ids)
            for partner in self.env["res.partner"].sudo().search_fetch(
                    [("email_normalized", "in", list(by_variant))], ["email_normalized"], order="id"):
                address = normalize_address(partner.email_normalized)
                # A colleague wins over a contact with the same address.
                if address not in partners or partner.id in colleagues:
                    partners[address] = partner.id
        # Mail sent from the mailbox by an address of no contact: its owner wrote it.
        owners = {mailbox.id: mailbox.user_id.partner_id.id for mailbox in self.mailbox_id}
        result = {}
        for message_id, sender, direction, mailbox_id in zip(
                self.ids, senders, field_values(self, "direction"), field_values(self, "mailbox_id"), strict=True):
            partner = partners.get(sender)
            if not partner and direction == "outgoing":
                partner = owners[mailbox_id]
            result[message_id] = partner or False
        return result

    def _history_labels(self):
        return {"outgoing": _("Outgoing email"), "incoming": _("Incoming email"),
                "from": _("From"), "to": _("To"), "cc": _("Cc")}
