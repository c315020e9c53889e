"""Conversations: the emails of one thread of a mailbox, listed like a mail client lists them.

A thread is keyed by the Message-ID of its first message: the first entry of
References (RFC 5322 keeps the root first), else In-Reply-To, else the email's
own key. An email that answers one already stored joins that email's
conversation even when its References were cut. A reply without threading
headers ("Re: Offer" from a client that drops them) falls back to its
normalized subject, and only joins a conversation one of its addresses already
takes part in. Keys and counters are computed for a whole batch at once, when
the emails are created: a few queries per batch, none per email.
"""

import collections
import re

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..engine.parse import header_addresses
from . import sql_rows
from .onpipeline_mail_message import block_remote_content
from .onpipeline_mail_message_link import LINK_STATES

#: Reply prefixes of common mail clients (English, German, Nordic, Dutch, French, Italian, Polish...).
REPLY_PREFIX_RE = re.compile(r"^\s*(?:(?:re|aw|sv|antw|ref|réf|rif|odp|vá)\s*(?:\[\d+\])?\s*[:：]\s*)+",
                             re.IGNORECASE)
FORWARD_PREFIX_RE = re.compile(r"^\s*(?:(?:fwd?|wg|tr|rv|enc|vb|doorst|pd)\s*(?:\[\d+\])?\s*[:：]\s*)+",
                               re.IGNORECASE)
SUBJECT_KEY = "subject:"
#: Addresses shown in the Participants column; the others are counted.
SHOWN_PARTICIPANTS = 3


def normalize_subject(subject):
    """The subject without reply and forward prefixes, case and extra spaces."""
    text = subject or ""
    while True:
        stripped = FORWARD_PREFIX_RE.sub("", REPLY_PREFIX_RE.sub("", text))
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split()).casefold()


def is_reply_subject(subject):
    return bool(REPLY_PREFIX_RE.match(subject or ""))


def _ref(conversation):
    """A conversation of ``_assign``: an id, or the values of one still to create (by identity)."""
    return id(conversation) if isinstance(conversation, dict) else conversation


def _addresses(*values):
    return {address for value in values if value for address in header_addresses(value)} - {""}


class OnpipelineMailConversation(models.Model):
    _name = "onpipeline.mail.conversation"
    _description = "Email Conversation"
    _order = "last_date desc, id desc"
    _rec_name = "subject"

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, index=True, ondelete="cascade",
                                 readonly=True)
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    thread_key = fields.Char(required=True, readonly=True, index=True,
                             help="Message-ID of the first email of the thread, or its subject when the emails "
                                  "carry no threading headers.")
    subject_key = fields.Char(readonly=True, index=True, help="Subject without Re:/Fwd: prefixes, lower case.")
    subject = fields.Char(readonly=True)
    participant_emails = fields.Char(
        "Addresses", readonly=True, index="trigram",
        help="Normalized addresses of every email of the conversation, space-separated and space-framed.")
    participants = fields.Char(compute="_compute_participants")
    first_date = fields.Datetime("Started", readonly=True)
    last_date = fields.Datetime("Last Email", readonly=True, index=True)
    message_count = fields.Integer("Emails", readonly=True)
    attachment_count = fields.Integer("Files", readonly=True)
    last_message_id = fields.Many2one("onpipeline.mail.message", "Last Email Record", readonly=True)
    last_direction = fields.Selection(related="last_message_id.direction", string="Last Direction")
    message_ids = fields.One2many("onpipeline.mail.message", "conversation_id", "Emails", readonly=True)
    partner_ids = fields.Many2many("res.partner", string="Contacts", compute="_compute_links",
                                   search="_search_partner_ids")
    lead_ids = fields.Many2many("crm.lead", string="Deals", compute="_compute_links", search="_search_lead_ids")
    hidden_link_note = fields.Char("Not Shown", compute="_compute_links")
    link_summary = fields.Char("Linked To", compute="_compute_links")
    link_state = fields.Selection(LINK_STATES, "Link Status", compute="_compute_links", search="_search_link_state")
    thread_html = fields.Html("Thread", compute="_compute_thread_html", sanitize=False)
    has_blocked_content = fields.Boolean(compute="_compute_thread_html")
    is_readable = fields.Boolean(compute="_compute_is_readable", search="_search_is_readable")

    def init(self):
        super().init()
        # Emails stored before conversations existed (an upgrade) get theirs. The emails' table is
        # set up before this one (its model comes first), so it is there to read.
        self.env.cr.execute("SELECT 1 FROM onpipeline_mail_message WHERE conversation_id IS NULL LIMIT 1")
        if self.env.cr.fetchone():
            while self._backfill():
                pass

    # ------------------------------------------------------------------
    # Assigning new emails, counters
    # ------------------------------------------------------------------

    @api.model
    def _assign(self, vals_list):
        """Set ``conversation_id`` in the values of new emails, creating the conversations they start."""
        todo = [vals for vals in vals_list if not vals.get("conversation_id") and vals.get("mailbox_id")
                and vals.get("message_key")]
        if not todo:
            return
        Conversation = self.sudo()
        mailbox_ids = list({vals["mailbox_id"] for vals in todo})
        # The mailbox's own addresses are in every email: they say nothing about who a thread is with.
        own = {mailbox.id: mailbox._own_addresses()
               for mailbox in self.env["onpipeline.mailbox"].sudo().with_context(active_test=False).browse(mailbox_ids)}
        info = []
        for vals in todo:
            refs = (vals.get("references") or "").split()
            if vals.get("in_reply_to") and vals["in_reply_to"] not in refs:
                refs.append(vals["in_reply_to"])
            people = _addresses(vals.get("email_from"), vals.get("email_to"), vals.get("email_cc"))
            info.append((vals, refs, normalize_subject(vals.get("subject")), is_reply_subject(vals.get("subject")),
                         people - own[vals["mailbox_id"]]))

        # Stored ancestors (any email the new one answers) and conversations by key or subject.
        by_message = {}
        all_refs = list({ref for _vals, refs, *_rest in info for ref in refs})
        if all_refs:
            for message in self.env["onpipeline.mail.message"].sudo().search_fetch(
                    [("mailbox_id", "in", mailbox_ids), ("message_key", "in", all_refs),
                     ("conversation_id", "!=", False)], ["mailbox_id", "message_key", "conversation_id"]):
                by_message[(message.mailbox_id.id, message.message_key)] = message.conversation_id.id
        keys = {refs[0] if refs else vals["message_key"] for vals, refs, *_rest in info}
        subjects = {subject for _vals, refs, subject, _reply, _people in info if not refs and subject}
        by_key, by_subject, members = {}, collections.defaultdict(list), {}
        for conversation in Conversation.search_fetch(
                [("mailbox_id", "in", mailbox_ids), "|",
                 ("thread_key", "in", list(keys | {SUBJECT_KEY + subject for subject in subjects})),
                 ("subject_key", "in", list(subjects))],
                ["mailbox_id", "thread_key", "subject_key", "participant_emails"]):
            mailbox_id = conversation.mailbox_id.id
            by_key.setdefault((mailbox_id, conversation.thread_key), conversation.id)
            members[conversation.id] = set((conversation.participant_emails or "").split())
            by_subject[(mailbox_id, conversation.subject_key)].append(conversation.id)

        new = {}  # (mailbox id, key): values of a conversation to create
        chosen = []
        for vals, refs, subject, is_reply, people in info:
            mailbox_id = vals["mailbox_id"]
            found = next((by_message[(mailbox_id, ref)] for ref in refs if (mailbox_id, ref) in by_message), None)
            key = refs[0] if refs else vals["message_key"]
            if not found and not refs and subject:
                # No threading headers: a reply joins the latest conversation of its subject that one of its
                # addresses takes part in; an original joins the one its headerless replies started.
                started = by_key.get((mailbox_id, SUBJECT_KEY + subject))
                if started and members[_ref(started)] & people:
                    found = started
                elif is_reply:
                    found = next((conversation for conversation in by_subject[(mailbox_id, subject)]
                                  if members[_ref(conversation)] & people), None)
                    key = SUBJECT_KEY + subject
            found = found or by_key.get((mailbox_id, key))
            if not found:
                found = new[(mailbox_id, key)] = {"mailbox_id": mailbox_id, "thread_key": key,
                                                  "subject_key": subject, "subject": vals.get("subject") or False}
                by_key[(mailbox_id, key)] = found
                by_subject[(mailbox_id, subject)].insert(0, found)
            members.setdefault(_ref(found), set()).update(people)
            by_message[(mailbox_id, vals["message_key"])] = found
            chosen.append((vals, found))
        created = Conversation._create_started(list(new.values())) if new else Conversation
        ids = {id(values): conversation.id for values, conversation in zip(new.values(), created, strict=True)}
        for vals, found in chosen:
            vals["conversation_id"] = ids[id(found)] if isinstance(found, dict) else found

    @api.model
    def _create_started(self, vals_list):
        """The conversations new emails start, set-based (see ``sql_rows``; ``create()`` on the ORM path)."""
        if sql_rows.use_orm_path(self.env):
            return self.create(vals_list)
        mailboxes = self.env["onpipeline.mailbox"].browse({vals["mailbox_id"] for vals in vals_list})
        company_of = {mailbox.id: mailbox.company_id.id or False for mailbox in mailboxes}
        defaults = sql_rows.column_defaults(self, vals_list[0])
        rows = [dict(defaults, **vals, company_id=company_of[vals["mailbox_id"]]) for vals in vals_list]
        return sql_rows.insert_rows(self, rows, computed=("company_id",))

    def _refresh_stats(self):
        """Recount these conversations from their emails: one statement, whatever their number."""
        if not self:
            return
        self.env["onpipeline.mail.message"].flush_model()
        self.flush_recordset()
        self.env.cr.execute(SQL(
            """UPDATE onpipeline_mail_conversation conversation
                  SET message_count = stats.message_count, first_date = stats.first_date,
                      last_date = stats.last_date, last_message_id = stats.last_message_id,
                      subject = COALESCE(stats.subject, conversation.subject),
                      attachment_count = stats.attachment_count, participant_emails = people.addresses,
                      write_date = (now() at time zone 'UTC')
                 FROM (SELECT conversation_id, count(*) AS message_count, min(date) AS first_date,
                              max(date) AS last_date, sum(COALESCE(attachment_count, 0)) AS attachment_count,
                              (array_agg(id ORDER BY date DESC, id DESC))[1] AS last_message_id,
                              (array_agg(subject ORDER BY date, id) FILTER (WHERE subject IS NOT NULL))[1] AS subject
                         FROM onpipeline_mail_message WHERE conversation_id = ANY(%(ids)s)
                        GROUP BY conversation_id) stats
                 LEFT JOIN (SELECT conversation_id, ' ' || string_agg(DISTINCT address, ' ') || ' ' AS addresses
                              FROM onpipeline_mail_message,
                                   unnest(string_to_array(btrim(participant_emails), ' ')) AS address
                             WHERE conversation_id = ANY(%(ids)s) AND address != ''
                             GROUP BY conversation_id) people ON people.conversation_id = stats.conversation_id
                WHERE conversation.id = stats.conversation_id""", ids=self.ids))
        self.invalidate_recordset()

    # ------------------------------------------------------------------
    # Shown fields
    # ------------------------------------------------------------------

    @api.depends("subject")
    def _compute_display_name(self):
        for conversation in self:
            conversation.display_name = conversation.subject or _("(no subject)")

    @api.depends("participant_emails", "mailbox_id")
    def _compute_participants(self):
        own = {}
        for conversation in self:
            mailbox = conversation.sudo().mailbox_id
            if mailbox.id not in own:
                own[mailbox.id] = mailbox._own_addresses() if mailbox else set()
            addresses = [address for address in (conversation.participant_emails or "").split()
                         if address not in own[mailbox.id]]
            shown = ", ".join(addresses[:SHOWN_PARTICIPANTS])
            if len(addresses) > SHOWN_PARTICIPANTS:
                shown = _("%(addresses)s +%(count)s", addresses=shown, count=len(addresses) - SHOWN_PARTICIPANTS)
            conversation.participants = shown

    @api.depends_context("uid")
    def _compute_links(self):
        """Contacts and deals of the conversation the user may open; the others are counted, never named."""
        if not self.ids:
            self.update({"partner_ids": False, "lead_ids": False, "hidden_link_note": False,
                         "link_summary": False, "link_state": False})
            return
        states = collections.defaultdict(set)
        for conversation, state in self.env["onpipeline.mail.message"].sudo()._read_group(
                [("conversation_id", "in", self.ids)], ["conversation_id", "link_state"]):
            states[conversation.id].add(state)
        links = self.env["onpipeline.mail.link"].sudo().search_fetch(
            [("message_id.conversation_id", "in", self.ids), ("is_candidate", "=", False)],
            ["message_id", "partner_id", "lead_id"])
        targets = collections.defaultdict(lambda: [self.env["res.partner"], self.env["crm.lead"]])
        for link in links:
            pair = targets[link.message_id.conversation_id.id]
            pair[0] |= link.partner_id.with_env(self.env)
            pair[1] |= link.lead_id.with_env(self.env)
        all_partners = self.env["res.partner"].union(*(pair[0] for pair in targets.values()))
        all_leads = self.env["crm.lead"].union(*(pair[1] for pair in targets.values()))
        readable_partners = all_partners._filtered_access("read")
        readable_leads = all_leads._filtered_access("read")
        for conversation in self:
            partners, leads = targets[conversation.id] if conversation.id in targets else (all_partners.browse(),
                                                                                            all_leads.browse())
            conversation.partner_ids = partners & readable_partners
            conversation.lead_ids = leads & readable_leads
            conversation.hidden_link_note = hidden_note(self.env, len(partners - readable_partners),
                                                        len(leads - readable_leads))
            conversation.link_summary = link_summary(self.env, conversation.partner_ids, conversation.lead_ids,
                                                     conversation.hidden_link_note)
            found = states[conversation.id]
            conversation.link_state = next(
                (state for state in ("linked", "candidates", "pending", "not_linked") if state in found),
                "internal" if found else False)

    def _search_partner_ids(self, operator, value):
        return [("message_ids", "any", [("partner_ids", operator, value)])]

    def _search_lead_ids(self, operator, value):
        return [("message_ids", "any", [("lead_ids", operator, value)])]

    def _search_link_state(self, operator, value):
        if operator not in ("=", "in"):
            raise UserError(_("Unsupported search on conversations."))
        return [("message_ids", "any", [("link_state", operator, value)])]

    @api.depends_context("uid")
    def _compute_thread_html(self):
        """Every email of the conversation the user may read, oldest first, as a mail client shows a thread."""
        labels = {"from": _("From"), "to": _("To"), "cc": _("Cc"), "date": _("Date"),
                  "files": _("%s file(s) attached")}
        for conversation in self:
            parts = []
            conversation.has_blocked_content = any(
                message.has_remote_content and not message.is_remote_content_shown
                for message in conversation.message_ids)
            for message in conversation.message_ids.sorted(lambda m: (m.date, m.id)):
                header = [Markup("<b>%s</b>: %s") % (labels["from"], message.email_from or "")]
                for label, value in ((labels["to"], message.email_to), (labels["cc"], message.email_cc)):
                    if value:
                        header.append(Markup("%s: %s") % (label, value))
                header.append(Markup("%s: %s") % (labels["date"], fields.Datetime.context_timestamp(
                    message, message.date).strftime("%Y-%m-%d %H:%M") if message.date else ""))
                if message.attachment_count:
                    header.append(Markup("<i>%s</i>") % (labels["files"] % message.attachment_count))
                body = message.body_html
                if body and not message.is_remote_content_shown:
                    body = block_remote_content(body)[0]
                parts.append(Markup(
                    '<div class="o_onpipeline_thread_message border-bottom pb-3 mb-3">'
                    '<p class="text-muted small mb-2">%s</p><div>%s</div></div>') % (
                    Markup("<br/>").join(header), body or message.body_view))
            conversation.thread_html = Markup("").join(parts)

    def _compute_is_readable(self):
        readable = self.search([("id", "in", self.ids), ("is_readable", "=", True)])
        for conversation in self:
            conversation.is_readable = conversation in readable

    def _search_is_readable(self, operator, value):
        """A conversation is readable by whoever may read one of its emails (their record rules apply)."""
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(_("Unsupported search on conversations."))
        messages = self.env(su=False)["onpipeline.mail.message"]._search([("conversation_id", "!=", False)])
        positive = (operator == "=") == value
        return [("id", "in" if positive else "not in", messages.subselect("conversation_id"))]

    # ------------------------------------------------------------------
    # Buttons
    # ------------------------------------------------------------------

    def _last_readable_message(self):
        self.ensure_one()
        message = self.env["onpipeline.mail.message"].search([("conversation_id", "=", self.id)], limit=1)
        if not message:
            raise UserError(_("You cannot read any email of this conversation."))
        return message

    def action_reply(self):
        return self._last_readable_message().action_reply()

    def action_reply_all(self):
        return self._last_readable_message().action_reply_all()

    def action_forward(self):
        return self._last_readable_message().action_forward()

    def action_show_remote_content(self):
        self.message_ids.action_show_remote_content()
        return True

    def action_open_conversation(self):
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id, "view_mode": "form",
                "views": [(False, "form")]}

    @api.model
    def _backfill(self, limit=5000):
        """Give emails stored before conversations existed theirs, oldest first; returns how many were done."""
        Message = self.env["onpipeline.mail.message"].sudo()
        messages = Message.search([("conversation_id", "=", False)], order="date, id", limit=limit)
        fields_ = ["mailbox_id", "message_key", "references", "in_reply_to", "subject", "email_from", "email_to",
                   "email_cc"]
        vals_list = []
        for row in messages.read(fields_, load=None):
            vals_list.append(dict(row))
        for start in range(0, len(vals_list), 500):
            chunk = vals_list[start:start + 500]
            self._assign(chunk)
            self.env.cr.execute(SQL(
                "UPDATE onpipeline_mail_message SET conversation_id = c.conversation_id "
                "FROM (VALUES %s) AS c(id, conversation_id) WHERE onpipeline_mail_message.id = c.id",
                SQL(", ").join(SQL("(%s, %s)", vals["id"], vals["conversation_id"]) for vals in chunk)))
            Message.browse([vals["id"] for vals in chunk]).invalidate_recordset(["conversation_id"])
            self.browse({vals["conversation_id"] for vals in chunk})._refresh_stats()
        return len(messages)


def link_summary(env, partners, leads, hidden):
    """One short line for a list: the deals, the first contact (+ how many more), what is not shown."""
    parts = leads.mapped("display_name")
    if partners:
        parts.append(partners[0].display_name if len(partners) == 1 else
                     env._("%(contact)s +%(count)s", contact=partners[0].display_name, count=len(partners) - 1))
    if hidden:
        parts.append(hidden)
    return " · ".join(parts) or False


def hidden_note(env, partners, leads):
    """What a user is told about links to records they may not open: how many, never which."""
    notes = []
    if leads:
        notes.append(env._("a deal you cannot open") if leads == 1 else env._("%s deals you cannot open", leads))
    if partners:
        notes.append(env._("a contact you cannot open") if partners == 1
                     else env._("%s contacts you cannot open", partners))
    return ", ".join(notes) or False


class OnpipelineMailMessage(models.Model):
    _inherit = "onpipeline.mail.message"

    hidden_link_note = fields.Char("Not Shown", compute="_compute_link_targets")
    link_summary = fields.Char("Linked To", compute="_compute_link_targets")

    @api.depends("link_ids.partner_id", "link_ids.lead_id", "link_ids.is_candidate")
    @api.depends_context("uid")
    def _compute_link_targets(self):
        """Contacts and deals of the emails that the user may open.

        The web client reads every record of a many2many as the user: a deal of a
        colleague the email is linked to (same company, say) raised an Access Error
        on the whole list. Those are left out and only counted.
        """
        targets = {}
        for message in self:
            links = message.link_ids.filtered(lambda link: not link.is_candidate)
            targets[message] = (links.partner_id, links.lead_id)
        partners = self.env["res.partner"].union(*(pair[0] for pair in targets.values()))
        leads = self.env["crm.lead"].union(*(pair[1] for pair in targets.values()))
        readable_partners, readable_leads = partners._filtered_access("read"), leads._filtered_access("read")
        for message, (message_partners, message_leads) in targets.items():
            message.partner_ids = message_partners & readable_partners
            message.lead_ids = message_leads & readable_leads
            message.hidden_link_note = hidden_note(self.env, len(message_partners - readable_partners),
                                                   len(message_leads - readable_leads))
            message.link_summary = link_summary(self.env, message.partner_ids, message.lead_ids,
                                                message.hidden_link_note)

