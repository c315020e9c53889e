"""Linking synced emails to contacts and deals, and showing them in their history.

Runs right after a sync batch is stored (``_store_batch``) and again when a
contact or deal gets an address later (``_link_late``). Every run is
idempotent: it only adds the links that are missing, and a link removed by
hand stays archived, so it never comes back.
"""

import collections
import datetime
import functools
import os
import re

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import SQL

from ..engine.parse import header_addresses, normalize_address
from . import sql_rows

#: Local parts (``name@``), domains and addresses never linked; a setting overrides it.
DEFAULT_IGNORED = ("noreply@ no-reply@ no_reply@ donotreply@ do-not-reply@ do_not_reply@ mailer-daemon@ "
                   "postmaster@ bounce@ bounces@ notification@ notifications@")
#: Mail not linked yet (synced before linking existed) linked per scheduled run: batches of this size.
PENDING_BATCH_SIZE = 200
PENDING_BATCHES = 5
#: Addresses looked up per query when contacts or deals get addresses (imports create many at once).
LATE_CHUNK = 100
FREE_MAIL_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "free_mail_domains.txt")


def _read_free_mail_domains(path=FREE_MAIL_FILE):
    with open(path, encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


FREE_MAIL_DOMAINS = _read_free_mail_domains()


def addresses_of(*values):
    """Normalized addresses of address header values, in order, without repeats."""
    result = []
    for value in values:
        if not value:
            continue
        for normalized in header_addresses(value):
            if "@" in normalized and normalized not in result:
                result.append(normalized)
    return result


@functools.lru_cache(maxsize=8192)
def address_variants(address):
    """The forms a contact's ``email_normalized`` may take for ``address``: Unicode and IDNA domain.

    Kept per address (a function of the address alone): every batch of a sync asked it again
    for the same correspondents, and ``email_normalize`` parses the address each time.
    """
    local, _at, domain = address.rpartition("@")
    variants = {address}
    try:
        variants.add("%s@%s" % (local, domain.encode("idna").decode("ascii")))
    except UnicodeError:
        pass
    odoo_form = tools.email_normalize(address)
    if odoo_form:
        variants.add(odoo_form)
    return frozenset(variants)


def domain_of(address):
    return address.rpartition("@")[2]


def field_values(records, name):
    """The values of field ``name`` of ``records``, in their order; a many2one's as ids (False for none).

    Read as ``mapped`` reads them (pending computations done, what the cache misses fetched
    for the whole recordset at once), without a record made per value: linking reads a
    batch's fields once this way instead of through each record, once per use.
    """
    field = records._fields[name]
    if field.type != "many2one":
        return records.mapped(name)
    field.mapped(records)  # the same computing and fetching; the cache then holds every value
    return [value or False for value in records.env.cache.get_values(records, field)]


#: Where an email stands with its contacts and deals; short labels: they are badges in narrow columns.
LINK_STATES = [("linked", "Linked"), ("candidates", "Deal to choose"), ("pending", "Pending"),
               ("not_linked", "No contact"), ("internal", "Internal")]


def link_state(candidate_flags, is_internal_only, link_date):
    """An email's ``link_state`` from the ``is_candidate`` of its active links and its own two fields.

    The compute and the set-based write of ``_link`` both use it, so they cannot disagree.
    """
    if any(not is_candidate for is_candidate in candidate_flags):
        return "linked"
    if candidate_flags:
        return "candidates"
    if is_internal_only:
        return "internal"
    return "not_linked" if link_date else "pending"


class IgnoreRules:
    """The ignore list: ``name@`` ignores a local part, ``domain`` a domain and its subdomains."""

    def __init__(self, text):
        self.local_parts, self.domains, self.addresses = set(), set(), set()
        for token in re.split(r"[\s,;]+", (text or "").lower()):
            if not token:
                continue
            if token.endswith("@"):
                self.local_parts.add(token[:-1])
            elif "@" in token.strip("@"):
                self.addresses.add(normalize_address(token))
            else:
                self.domains.add(domain_of(normalize_address("x@" + token.lstrip("@"))))

    def __contains__(self, address):
        local, _at, domain = address.rpartition("@")
        return (address in self.addresses or local in self.local_parts or local.split("+")[0] in self.local_parts
                or any(domain == ignored or domain.endswith("." + ignored) for ignored in self.domains))


class OnpipelineMailbox(models.Model):
    _inherit = "onpipeline.mailbox"

    linked_visibility = fields.Selection(
        [("colleagues", "Colleagues who can see the contact or deal"), ("owner", "Only me")],
        "Linked Mail Visible To", default="colleagues", required=True, tracking=True,
        help="Mail of a personal mailbox that is not linked is only ever visible to its owner. Linked mail "
             "shows in the history of the contact or deal for everyone who can see them, or only to you.")

    @api.model
    def _cron_sync_mailboxes(self):
        super()._cron_sync_mailboxes()
        # Mail stored before linking existed (or whose linking failed) is linked here, a bounded amount per run.
        Message = self.env["onpipeline.mail.message"].sudo()
        for _batch in range(PENDING_BATCHES):
            pending = Message.search([("link_date", "=", False)], order="date, id", limit=PENDING_BATCH_SIZE)
            if not pending:
                break
            pending._link()
            self.env.cr.commit()

    def _sync(self, commit=None, deadline=None, manual=False):
        mailbox = self if self.sudo().is_sync_complete else self.with_context(onpipeline_defer_history=True)
        return super(OnpipelineMailbox, mailbox)._sync(commit=commit, deadline=deadline, manual=manual)

    def _after_sync(self, commit):
        super()._after_sync(commit)
        if self.sudo().is_sync_complete:
            self.with_context(onpipeline_defer_history=False)._post_pending_history(commit)

    def _shares_linked_mail(self):
        self.ensure_one()
        return self.mailbox_type == "team" or self.linked_visibility == "colleagues"

    def write(self, vals):
        result = super().write(vals)
        if "linked_visibility" in vals or "mailbox_type" in vals:
            links = self.env["onpipeline.mail.link"].sudo().search([("mailbox_id", "in", self.ids)])
            for mailbox in self:
                mailbox_links = links.filtered(lambda link, mailbox=mailbox: link.mailbox_id == mailbox)
                if mailbox._shares_linked_mail():
                    mailbox_links.message_id._post_history(mailbox_links)
                else:
                    mailbox_links._remove_history()
        return result


class OnpipelineMailMessage(models.Model):
    _inherit = "onpipeline.mail.message"

    link_ids = fields.One2many("onpipeline.mail.link", "message_id", "Links", readonly=True)
    partner_ids = fields.Many2many("res.partner", string="Contacts", compute="_compute_link_targets",
                                   search="_search_partner_ids")
    lead_ids = fields.Many2many("crm.lead", string="Deals", compute="_compute_link_targets",
                                search="_search_lead_ids")
    link_state = fields.Selection(LINK_STATES, "Link Status", compute="_compute_link_state", store=True, index=True)
    link_date = fields.Datetime("Linked On", readonly=True, copy=False)
    is_internal_only = fields.Boolean("Between Colleagues", readonly=True)
    is_deal_locked = fields.Boolean(
        "Deal Chosen by Hand", readonly=True,
        help="The deal of this email was chosen or removed by hand; replies in its thread follow that choice.")
    participant_emails = fields.Char(
        compute="_compute_participant_emails", store=True, index="trigram",
        help="Normalized addresses of From, To, Cc and Reply-To, space-separated and space-framed.")
    thread_key = fields.Char(compute="_compute_thread_key", store=True, index=True,
                             help="Message-ID of the first message of the conversation.")
    thread_id = fields.Many2one("onpipeline.mail.message", "Conversation", compute="_compute_thread_id",
                                store=True, index=True)
    folder_id = fields.Many2one("onpipeline.mailbox.folder", "Folder", compute="_compute_folder_id", store=True,
                                index=True, help="The folder the email is listed under (the first it was found in).")
    is_shared_through_link = fields.Boolean(compute="_compute_is_shared_through_link",
                                            search="_search_is_shared_through_link")

    def init(self):
        super().init()
        # Every scheduled run looks for mail not linked yet (synced before linking existed, or whose
        # linking failed), oldest first: none, usually, among all synced mail. Without this index that
        # was a scan of the whole table, the one cost of a sync with nothing new that grew with the mailbox.
        tools.create_index(self.env.cr, "onpipeline_mail_message_link_pending_index", self._table, ["date", "id"],
                           where="link_date IS NULL")

    # ------------------------------------------------------------------
    # Fields
    # ------------------------------------------------------------------

    @api.depends("link_ids.partner_id", "link_ids.lead_id", "link_ids.is_candidate")
    def _compute_link_targets(self):
        for message in self:
            links = message.link_ids.filtered(lambda link: not link.is_candidate)
            message.partner_ids = links.partner_id
            message.lead_ids = links.lead_id

    def _search_partner_ids(self, operator, value):
        return [("link_ids", "any", [("is_candidate", "=", False), ("partner_id", operator, value)])]

    def _search_lead_ids(self, operator, value):
        return [("link_ids", "any", [("is_candidate", "=", False), ("lead_id", operator, value)])]

    @api.depends("link_ids.is_candidate", "link_ids.active", "is_internal_only", "link_date")
    def _compute_link_state(self):
        for message in self:
            message.link_state = link_state(message.link_ids.mapped("is_candidate"), message.is_internal_only,
                                            message.link_date)

    @api.depends("email_from", "email_to", "email_cc", "reply_to")
    def _compute_participant_emails(self):
        for message in self:
            addresses = addresses_of(message.email_from, message.email_to, message.email_cc, message.reply_to)
            message.participant_emails = " %s " % " ".join(addresses) if addresses else False

    @api.depends("references", "in_reply_to", "message_key")
    def _compute_thread_key(self):
        for message in self:
            references = (message.references or "").split()
            message.thread_key = references[0] if references else message.in_reply_to or message.message_key

    @api.depends("thread_key", "mailbox_id")
    def _compute_thread_id(self):
        roots = {}
        stored = self.filtered("id")
        if stored:
            for root in self.sudo().search([("mailbox_id", "in", stored.mailbox_id.ids),
                                            ("message_key", "in", list(set(stored.mapped("thread_key"))))]):
                roots[(root.mailbox_id.id, root.message_key)] = root.id
        for message in self:
            message.thread_id = roots.get((message.mailbox_id.id, message.thread_key), message.id or False)

    @api.depends("location_ids.folder_id")
    def _compute_folder_id(self):
        for message in self:
            message.folder_id = message.location_ids.sorted("id")[:1].folder_id

    def _precomputed_values(self, folder, rows):
        """The values the computes above give a new email of ``folder``, written with its row.

        A new email has no link and no link date yet (pending), its first location is in
        ``folder``, and its thread is the stored email whose key is its thread key, or
        itself; an email of the same batch can be that root (its id is reserved).
        """
        computed = super()._precomputed_values(folder, rows)
        mailbox_id = folder.mailbox_id.id
        roots = {}
        for row in rows:
            addresses = addresses_of(row.get("email_from"), row.get("email_to"), row.get("email_cc"),
                                     row.get("reply_to"))
            row["participant_emails"] = " %s " % " ".join(addresses) if addresses else False
            references = (row.get("references") or "").split()
            row["thread_key"] = references[0] if references else row.get("in_reply_to") or row["message_key"]
            row["folder_id"] = folder.id
            row["link_state"] = "pending"
            roots[row["message_key"]] = row["id"]
        stored = set(row["thread_key"] for row in rows) - set(roots)
        if stored:
            for root in self.sudo().search_fetch([("mailbox_id", "=", mailbox_id), ("message_key", "in", list(stored))],
                                                 ["message_key"]):
                roots[root.message_key] = root.id
        for row in rows:
            row["thread_id"] = roots.get(row["thread_key"], row["id"])
        return computed + ["participant_emails", "thread_key", "folder_id", "link_state", "thread_id"]

    def _compute_is_shared_through_link(self):
        shared = self.search([("id", "in", self.ids), ("is_shared_through_link", "=", True)])
        for message in self:
            message.is_shared_through_link = message in shared

    def _search_is_shared_through_link(self, operator, value):
        """Emails linked to a contact or deal the current user can read, from a mailbox that shares them.

        Used by a record rule: rules run as superuser, so the contacts' and deals'
        own rules are applied here explicitly, as the real user.
        """
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(_("Unsupported search on shared emails."))
        env = self.env(su=False)
        targets = []
        for model, field in (("crm.lead", "lead_id"), ("res.partner", "partner_id")):
            if env["ir.model.access"].check(model, "read", raise_exception=False):
                targets.append([(field, "in", env[model].with_context(active_test=False)._search([]))])
        if targets:
            domain = [
                ("link_ids", "any", expression.AND([[("is_candidate", "=", False)], expression.OR(targets)])),
                "|", ("mailbox_id.mailbox_type", "=", "team"), ("mailbox_id.linked_visibility", "=", "colleagues"),
            ]
        else:
            domain = expression.FALSE_DOMAIN
        return domain if (operator == "=") == value else ["!"] + domain

    # ------------------------------------------------------------------
    # Hook: link every stored batch
    # ------------------------------------------------------------------

    @api.model
    def _store_batch(self, folder, uidvalidity, fetched):
        messages = super()._store_batch(folder, uidvalidity, fetched)
        new = messages.filtered(lambda message: not message.link_date)
        if new:
            # A root that arrives after its replies becomes their conversation.
            orphans = self.sudo().search([("mailbox_id", "=", folder.mailbox_id.id),
                                          ("thread_key", "in", new.mapped("message_key")), ("id", "not in", new.ids)])
            if orphans:
                self.env.add_to_compute(self._fields["thread_id"], orphans)
            new._link()
        return messages

    @api.model
    def _link_late(self, addresses):
        """A contact or deal got these addresses: link the mail already synced with them."""
        addresses = sorted({normalize_address(address) for address in addresses if address} - {""})
        messages = self.sudo().browse()
        for start in range(0, len(addresses), LATE_CHUNK):
            domain = expression.OR([[("participant_emails", "ilike", " %s " % address)]
                                    for address in addresses[start:start + LATE_CHUNK]])
            messages |= self.sudo().search(domain + [("link_date", "!=", False)])
        messages = messages.sorted(lambda message: (message.date or datetime.datetime.min, message.id))
        for start in range(0, len(messages), PENDING_BATCH_SIZE):
            messages[start:start + PENDING_BATCH_SIZE]._link()

    # ------------------------------------------------------------------
    # The linking rules
    # ------------------------------------------------------------------

    def _link_context(self):
        params = self.env["ir.config_parameter"].sudo()
        users = self.env["res.users"].sudo().with_context(active_test=False).search([("share", "=", False)])
        internal = {normalize_address(email) for email in users.partner_id.mapped("email") + users.mapped("login")}
        mailboxes = self.env["onpipeline.mailbox"].sudo().with_context(active_test=False).search([])
        for mailbox in mailboxes:
            internal |= mailbox._own_addresses()
        internal.discard("")
        return {
            "internal": internal,
            "internal_partner_ids": set(users.partner_id.ids),
            "internal_domains": {domain_of(address) for address in internal if "@" in address} - FREE_MAIL_DOMAINS,
            "ignored": IgnoreRules(params.get_param("onpipeline_mail.link_ignored_addresses", DEFAULT_IGNORED)),
            "by_domain": str2bool(params.get_param("onpipeline_mail.link_by_domain", "False")),
        }

    def _link(self):
        """Link these emails (idempotent): contacts by address, then one deal, the others as candidates.

        What the rules need of the emails, their links, contacts, deals and mailboxes is read
        once per batch (``_link_emails``, ``field_values``), not through each record as it is used.
        """
        messages = self.sudo().with_context(active_test=True)
        if not messages:
            return
        by_date = sorted(zip(field_values(messages, "date"), messages._ids, strict=True),
                         key=lambda pair: (pair[0] or datetime.datetime.min, pair[1]))
        messages = messages.browse([message_id for _date, message_id in by_date])
        context = messages._link_context()
        emails = messages._link_emails()
        external = {
            email.id: [address for address in email.participants
                       if address not in context["internal"] and address not in context["ignored"]]
            for email in emails
        }
        all_external = set().union(*external.values())
        contacts, commercial_of = messages._link_find_contacts(context, emails, external, all_external)
        thread_choice = messages._link_thread_choices(emails)
        deals = messages._link_open_deals(contacts, commercial_of, all_external)

        Link = self.env["onpipeline.mail.link"].sudo()
        known_links = Link.with_context(active_test=False).search_fetch(
            [("message_id", "in", messages.ids)], ["message_id", "partner_id", "lead_id", "active", "is_candidate"])
        known = _known_links(known_links)
        mailboxes = {mailbox.id: mailbox for mailbox in map(_Mailbox.of, messages.mailbox_id)}
        new_links = []
        for email in emails:
            links = known[email.id]
            known_partners = {link.partner_id for link in links}
            new_links += [{"message_id": email.id, "partner_id": partner_id, "reason": reason}
                          for partner_id, reason in contacts[email.id].items() if partner_id not in known_partners]
            new_links += messages._link_deal(email, mailboxes[email.mailbox_id], deals, contacts[email.id],
                                             commercial_of, external[email.id], links, thread_choice)
        internal_only = {email.id: bool(email.participants) and all(
            address in context["internal"] for address in email.participants) for email in emails}

        if sql_rows.use_orm_path(self.env):
            created = Link.create(new_links) if new_links else Link
            # One write per distinct set of values, not one per email.
            updates = collections.defaultdict(lambda: messages.browse())
            for message in messages:
                updates[(internal_only[message.id], not message.link_date)] |= message
            now = fields.Datetime.now()
            for (is_internal_only, first_time), group in updates.items():
                group.write(dict({"is_internal_only": is_internal_only}, **({"link_date": now} if first_time else {})))
        else:
            created = messages._link_write_rows(new_links, emails, known, internal_only)
        messages._post_history(created)

    def _link_emails(self):
        """What linking reads of these emails, as :class:`_Email` tuples in their order: one read per field."""
        names = ["mailbox_id", "company_id", "message_key", "link_date", "is_deal_locked", "in_reply_to", "references",
                 "email_from", "email_to", "email_cc", "reply_to"]
        emails = []
        for message_id, *values in zip(self._ids, *(field_values(self, name) for name in names), strict=True):
            (mailbox_id, company_id, message_key, link_date, is_deal_locked, in_reply_to, references,
             *address_headers) = values
            # The references nearest first: the message it replies to, then the others from the newest.
            refs = ([in_reply_to] if in_reply_to else []) + list(reversed((references or "").split()))
            emails.append(_Email(message_id, mailbox_id, company_id, message_key, link_date, is_deal_locked, refs,
                                 addresses_of(*address_headers)))
        return emails

    def _link_write_rows(self, new_links, emails, known, internal_only):
        """Set-based end of ``_link``: an INSERT of the links (one per kind), one UPDATE of the emails; the new links.

        Writes the rows the ORM path writes (``create()`` of the links, ``write()`` of
        ``is_internal_only`` and ``link_date``, then ``link_state`` computed at the flush),
        ``link_state`` computed here by the compute's own rule, and leaves the cache as
        that path does: ``link_ids`` of the emails read again from the table.
        ``emails`` are these emails' :class:`_Email` and ``known`` their links before, as ``_link`` read them.
        """
        Link = self.env["onpipeline.mail.link"].sudo()
        # Values waiting in the cache would overwrite the UPDATE when flushed.
        self.flush_recordset(["is_internal_only", "link_date", "write_uid", "write_date"])
        # The rows create() writes with these values: the related mailbox and company, the default
        # active; is_candidate, which has no default, stays NULL in contact links as through create().
        # One INSERT per set of fields (contact links, deal links), each row complete for its set.
        place = {email.id: (email.mailbox_id, email.company_id) for email in emails}
        rows = collections.defaultdict(list)
        for values in new_links:
            mailbox_id, company_id = place[values["message_id"]]
            rows[frozenset(values)].append(dict(values, mailbox_id=mailbox_id, company_id=company_id, active=True))
        created = Link.union(*(sql_rows.insert_rows(Link, same, computed=("mailbox_id", "company_id"))
                               for same in rows.values()))
        # link_state from the active links as the compute would read them after the INSERT.
        candidate_flags = {email.id: [link.is_candidate for link in known[email.id] if link.active]
                           for email in emails}
        for values in new_links:
            candidate_flags[values["message_id"]].append(values.get("is_candidate", False))
        # write() leaves out the records whose cached value is the one written: a False written over
        # a NULL that the cache holds as False (a new email) leaves the NULL. So does the UPDATE.
        cache = self.env.cache
        field = self._fields["is_internal_only"]
        changed = set()
        for is_internal_only in (True, False):
            same = self.browse([message_id for message_id, value in internal_only.items() if value is is_internal_only])
            changed.update(cache.get_records_different_from(same, field, is_internal_only)._ids)
        now = fields.Datetime.now()
        link_dates = [email.link_date or now for email in emails]
        link_states = [link_state(candidate_flags[email.id], internal_only[email.id], link_date)
                       for email, link_date in zip(emails, link_dates, strict=True)]
        # The rows' values as four arrays of one constant query: an SQL object per row cost more than the UPDATE.
        write_uid, write_date = self.env.uid, self.env.cr.now()
        self.env.cr.execute(SQL(
            """UPDATE onpipeline_mail_message message
                  SET is_internal_only = COALESCE(linked.is_internal_only, message.is_internal_only),
                      link_date = linked.link_date, link_state = linked.link_state,
                      write_uid = %s, write_date = %s
                 FROM unnest(%s::integer[], %s::boolean[], %s::timestamp[], %s::varchar[])
                      AS linked(id, is_internal_only, link_date, link_state)
                WHERE message.id = linked.id""",
            write_uid, write_date, list(self._ids),
            [internal_only[message_id] if message_id in changed else None for message_id in self._ids],
            link_dates, link_states))
        # The cache as after write() and the flush: the values written, nothing left to compute,
        # and the links of the emails read again (the INSERT did not add the new ones to them).
        self.env.remove_to_compute(self._fields["link_state"], self)
        cache.update(self, field, [internal_only[message_id] for message_id in self._ids])
        cache.update(self, self._fields["link_date"], link_dates)
        # (A link_state computed earlier and waiting to be flushed stays so, with this value.)
        cache.update(self, self._fields["link_state"], link_states, check_dirty=False)
        cache.update(self, self._fields["write_uid"], [write_uid] * len(self))
        cache.update(self, self._fields["write_date"], [write_date] * len(self))
        self.invalidate_recordset(["link_ids"], flush=False)
        return created

    def _link_find_contacts(self, context, emails, external, all_external):
        """Contacts of each email, one query for every address of the batch (and one by domain).

        Returns ({message id: {contact id: reason}}, {contact id: its commercial partner id}).
        """
        Partner = self.env["res.partner"].sudo()
        commercial_of, company_of = {}, {}

        def read(partners):
            """(id, email_normalized) of ``partners``, in order; their company and commercial partner kept."""
            commercial_of.update(zip(partners._ids, field_values(partners, "commercial_partner_id"), strict=True))
            company_of.update(zip(partners._ids, field_values(partners, "company_id"), strict=True))
            return zip(partners._ids, field_values(partners, "email_normalized"), strict=True)

        read_fields = ["email_normalized", "company_id", "commercial_partner_id"]
        by_variant = {variant: address for address in all_external for variant in address_variants(address)}
        contacts_by_address = collections.defaultdict(list)
        if by_variant:
            for partner_id, email in read(Partner.search_fetch([("email_normalized", "in", list(by_variant))],
                                                               read_fields)):
                if partner_id not in context["internal_partner_ids"]:
                    contacts_by_address[normalize_address(email)].append(partner_id)
        # Company by domain, for addresses no person matches (never free-mail domains).
        companies_by_domain = collections.defaultdict(list)
        domains = {domain_of(address) for address in all_external if not contacts_by_address[address]}
        domains -= FREE_MAIL_DOMAINS | context["internal_domains"]
        if context["by_domain"] and domains:
            domain_filter = expression.OR([[("email_normalized", "=ilike", "%%@%s" % domain)] for domain in domains])
            for company_id, email in read(Partner.search_fetch([("is_company", "=", True)] + domain_filter,
                                                               read_fields)):
                companies_by_domain[domain_of(normalize_address(email))].append(company_id)
        result = {}
        for email in emails:
            found = {}
            for address in external[email.id]:
                matches = contacts_by_address[address] or companies_by_domain[domain_of(address)]
                for partner_id in matches:
                    found.setdefault(partner_id, "contact" if contacts_by_address[address] else "domain")
            result[email.id] = {partner_id: reason for partner_id, reason in found.items()
                                if not company_of[partner_id] or company_of[partner_id] == email.company_id}
        return result, commercial_of

    def _link_thread_choices(self, emails):
        """The deal of each already linked ancestor of these emails: {message_key: deal id}.

        A False deal means the deal was removed by hand, which replies follow too. An
        ancestor's deal is its active link to a deal that is not a candidate (one query for all).
        """
        all_refs = set().union(*(email.refs for email in emails))
        thread_choice = {}
        if not all_refs:
            return thread_choice
        company_ids = sorted({email.company_id for email in emails if email.company_id})
        ancestors = self.search_fetch([("message_key", "in", list(all_refs)), ("company_id", "in", company_ids)],
                                      ["message_key", "is_deal_locked"])
        if not ancestors:
            return thread_choice
        primary = {}
        links = self.env["onpipeline.mail.link"].sudo().search_fetch(
            [("message_id", "in", ancestors.ids), ("lead_id", "!=", False), ("is_candidate", "=", False)],
            ["message_id", "lead_id"])
        for message_id, lead_id in zip(field_values(links, "message_id"), field_values(links, "lead_id"), strict=True):
            primary.setdefault(message_id, lead_id)
        # The ancestors in their order (newest first), those whose deal was chosen by hand before the others.
        ancestors = sorted(zip(ancestors._ids, field_values(ancestors, "message_key"),
                               field_values(ancestors, "is_deal_locked"), strict=True),
                           key=lambda ancestor: not ancestor[2])
        for ancestor_id, message_key, is_deal_locked in ancestors:
            choice = primary.get(ancestor_id, False)
            if message_key not in thread_choice and (choice or is_deal_locked):
                thread_choice[message_key] = choice
        return thread_choice

    def _link_open_deals(self, contacts, commercial_of, addresses):
        """Open opportunities of the contacts, of their companies, or with one of the addresses (indexed)."""
        Lead = self.env["crm.lead"].sudo()
        commercial_ids = {commercial_of[partner_id] for found in contacts.values() for partner_id in found}
        commercial_ids.discard(False)
        variants = [variant for address in addresses for variant in address_variants(address)]
        lead_filters = []
        if commercial_ids:
            lead_filters.append([("partner_id.commercial_partner_id", "in", sorted(commercial_ids))])
        if variants:
            lead_filters.append([("email_normalized", "in", variants)])
        if not lead_filters:
            return _DealIndex(Lead)
        return _DealIndex(Lead.search_fetch(
            [("type", "=", "opportunity"), "|", ("stage_id", "=", False), ("stage_id.is_won", "=", False)]
            + expression.OR(lead_filters), _DealIndex.FIELDS))

    def _link_deal(self, email, mailbox, deals, contacts, commercial_of, addresses, links, thread_choice):
        """Values of the deal links of ``email``: the thread's deal, else the best open one and candidates.

        ``links`` are the email's links before (:class:`_Link`); ``contacts`` its {contact id: reason}.
        """
        ranked = []  # [(lead id, reason)], best first
        primary = next((link.lead_id for link in links
                        if link.active and link.lead_id and not link.is_candidate), False)
        locked = email.is_deal_locked
        followed = next((thread_choice[ref] for ref in email.refs if ref in thread_choice), None)
        if followed is not None and not primary:
            if followed:
                ranked = [(followed, "thread")]
            else:
                self.browse(email.id).is_deal_locked = True
                locked = True
        elif contacts or addresses:
            ranked = deals.rank(email, mailbox, contacts, commercial_of, addresses)
        known_leads = {link.lead_id for link in links}
        values = []
        for lead_id, reason in ranked:
            if lead_id in known_leads:
                continue
            values.append({"message_id": email.id, "lead_id": lead_id, "reason": reason,
                           "is_candidate": bool(primary or locked)})
            known_leads.add(lead_id)
            if not (primary or locked):
                primary = lead_id
        # Later messages of the batch that reply to this one follow it.
        if primary or locked:
            thread_choice.setdefault(email.message_key, primary)
        return values

    # ------------------------------------------------------------------
    # Manual control
    # ------------------------------------------------------------------

    def _link_manually(self, lead=None, partner=None):
        """Link these emails to ``lead`` (replacing their deal) and/or ``partner``; the choice sticks."""
        self.check_access("read")
        for target in (lead, partner):
            if target:
                target.check_access("read")
        Link = self.env["onpipeline.mail.link"].sudo().with_context(active_test=False)
        changed = Link
        for message in self.sudo():
            links = Link.search([("message_id", "=", message.id)])
            if lead:
                current = links.filtered(lambda link: link.lead_id and not link.is_candidate and link.active)
                others = current.filtered(lambda link: link.lead_id != lead)
                others._remove_history()
                others.write({"active": False})
                message.is_deal_locked = True
                changed |= message._activate_link(links.filtered(lambda link: link.lead_id == lead), lead_id=lead.id)
            if partner:
                changed |= message._activate_link(links.filtered(lambda link: link.partner_id == partner),
                                                  partner_id=partner.id)
        self._post_history(changed)
        return True

    def _activate_link(self, link, **target):
        if link:
            link.write({"active": True, "is_candidate": False, "reason": "manual"})
            return link
        return self.env["onpipeline.mail.link"].sudo().create(
            dict(target, message_id=self.id, reason="manual", is_candidate=False))

    def action_open_link_wizard(self):
        return {
            "type": "ir.actions.act_window",
            "name": _("Link Email"),
            "res_model": "onpipeline.mail.link.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_message_ids": [(6, 0, self.ids)]},
        }


#: What linking reads of an email (``_link_emails``); ``refs`` nearest first, ``participants`` normalized.
_Email = collections.namedtuple(
    "_Email", "id mailbox_id company_id message_key link_date is_deal_locked refs participants")

#: A link an email has already (``_link``): targets as ids, False for none.
_Link = collections.namedtuple("_Link", "partner_id lead_id active is_candidate")


def _known_links(links):
    """{email id: [:class:`_Link`]} of ``links``, in their order (emails without links: an empty list)."""
    known = collections.defaultdict(list)
    columns = (field_values(links, name) for name in ("message_id", "partner_id", "lead_id", "active", "is_candidate"))
    for message_id, *values in zip(*columns, strict=True):
        known[message_id].append(_Link(*values))
    return known


class _Mailbox(collections.namedtuple("_Mailbox", "id owner_id team_id")):
    """The owner (personal mailbox) or team (team mailbox) whose deals rank first, read once per batch."""

    @classmethod
    def of(cls, mailbox):
        return cls(mailbox.id, mailbox.user_id.id if mailbox.mailbox_type == "personal" else False,
                   mailbox.team_id.id if mailbox.mailbox_type == "team" else False)


_Deal = collections.namedtuple(
    "_Deal", "id company_id partner_id commercial_id email user_id team_id write_date")


class _DealIndex:
    """The open deals of a batch, read once and indexed by contact, company and address.

    Ranking looked at every open deal of the batch for every email (deals x emails
    field reads): the first sync of a mailbox spent most of its time there. The
    deals' fields are read column by column for the batch, not deal by deal.
    """

    FIELDS = ["company_id", "partner_id", "email_normalized", "user_id", "team_id", "write_date"]

    def __init__(self, leads):
        self.by_partner = collections.defaultdict(list)
        self.by_commercial = collections.defaultdict(list)
        self.by_email = collections.defaultdict(list)
        if not leads:
            return
        partners = leads.partner_id
        commercial_of = dict(zip(partners._ids, field_values(partners, "commercial_partner_id"), strict=True))
        commercial_of[False] = False
        columns = [field_values(leads, name) for name in self.FIELDS]
        for lead_id, company_id, partner_id, email, user_id, team_id, write_date in zip(leads._ids, *columns,
                                                                                         strict=True):
            deal = _Deal(lead_id, company_id, partner_id, commercial_of[partner_id],
                         normalize_address(email) if email else "", user_id, team_id,
                         write_date or datetime.datetime.min)
            if deal.partner_id:
                self.by_partner[deal.partner_id].append(deal)
            if deal.commercial_id:
                self.by_commercial[deal.commercial_id].append(deal)
            if deal.email:
                self.by_email[deal.email].append(deal)

    def candidates(self, partner_ids, commercial_ids, addresses):
        """Deals of these contacts, companies or addresses, each once."""
        found = {}
        for index, keys in ((self.by_partner, partner_ids), (self.by_commercial, commercial_ids),
                            (self.by_email, addresses)):
            for key in keys:
                for deal in index.get(key, ()):
                    found[deal.id] = deal
        return found.values()

    def rank(self, email, mailbox, contacts, commercial_of, addresses):
        """Open deals of ``contacts`` (and their companies) for ``email``, best first: [(deal id, reason)].

        Only the deals of this email's contacts, companies and addresses are looked at,
        not every open deal of the batch. ``contacts`` is {contact id: reason}.
        """
        owner_id, team_id = mailbox.owner_id, mailbox.team_id
        commercial = {commercial_of[partner_id]: reason for partner_id, reason in contacts.items()}
        ranked = []
        for deal in self.candidates(contacts, commercial, addresses):
            if deal.company_id and deal.company_id != email.company_id:
                continue
            if deal.partner_id in contacts or deal.email in addresses:
                reason = contacts.get(deal.partner_id, "contact")
            elif deal.commercial_id in commercial:
                reason = "domain" if commercial[deal.commercial_id] == "domain" else "company"
            else:
                continue
            key = (bool(owner_id) and deal.user_id == owner_id, bool(team_id) and deal.team_id == team_id,
                   deal.write_date, deal.id)
            ranked.append((key, deal.id, reason))
        ranked.sort(key=lambda item: item[0], reverse=True)
        return [(lead_id, reason) for _key, lead_id, reason in ranked]


def str2bool(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")
