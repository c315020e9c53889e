"""Linking writes the same rows set-based as through the ORM (``sql_rows.ORM_PATH``).

The same mail is synced and linked twice, once each way, each run in a savepoint
rolled back afterwards: contacts, companies and deals are the same records in both
runs, and so is the transaction time of the rows' create and write dates. The emails
are stored the same way in both runs (each way in turn, in subtests), so that what
differs is the linking's own doing; ``test_store_rows`` compares whole syncs.
"""

import contextlib
import datetime
from unittest.mock import patch

from odoo.tests import tagged

from ..models import onpipeline_mail_message_link as link_module
from ..models import sql_rows
from ..models.onpipeline_mail_message_link import OnpipelineMailMessage
from .common import append, make_message
from .test_linking import LinkingCase

UTC = datetime.timezone.utc


class _LinkPath:
    """``sql_rows`` as the linking module sees it, with the path of the linking alone chosen."""

    def __init__(self, orm):
        self.orm = orm

    def __getattr__(self, name):
        return getattr(sql_rows, name)

    def use_orm_path(self, env):
        return self.orm


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestLinkRows(LinkingCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        params = cls.env["ir.config_parameter"].sudo()
        # Small batches: a root and its reply are linked in different batches of one transaction.
        params.set_param("onpipeline_mail.sync_batch_size", "2")
        params.set_param("onpipeline_mail.link_by_domain", "True")
        other_company = cls.env["res.company"].create({"name": "Other Company (link rows)"})
        # A contact of another company: mail of this company's mailboxes never links to it.
        cls.wrong_company = cls.Partner.create({"name": "Sam Elsewhere", "email": "sam@client.example",
                                                "company_id": other_company.id})
        cls.acme = cls.Partner.create({"name": "Acme", "is_company": True, "email": "contact@acme.example"})
        cls.alices = cls.Lead.create({"name": "Alice's deal", "type": "opportunity", "partner_id": cls.client.id,
                                      "user_id": cls.user_alice.id})
        cls.bobs = cls.Lead.create({"name": "Bob's deal", "type": "opportunity", "partner_id": cls.jane.id,
                                    "user_id": cls.user_bob.id})
        cls.Lead.create({"name": "Other company's deal", "type": "opportunity", "partner_id": cls.jane.id,
                         "company_id": other_company.id})
        cls.Lead.create({"name": "Won deal", "type": "opportunity", "partner_id": cls.jane.id,
                         "stage_id": cls.won_stage.id})
        cls.acme_deal = cls.Lead.create({"name": "Acme deal", "type": "opportunity", "partner_id": cls.acme.id})
        cls.prospect_deal = cls.Lead.create({"name": "Prospect", "type": "opportunity",
                                             "email_from": "max@prospect.example"})

    def setUp(self):
        super().setUp()
        now = datetime.datetime.now(UTC)
        address = self.account.username

        def mail(folder, minutes, subject, **values):
            date = now - datetime.timedelta(minutes=minutes)
            append(self.account, folder, make_message(subject, date=date, **values), date=date)

        # INBOX in this order of UIDs: a first sync reads the newest UIDs first, two by two, so
        # the root <q1> (UID 4) is linked one batch before its reply (UID 1).
        mail("INBOX", 50, "Re: quote", sender="stranger@else.example", to=address,
             message_id="<r1@else.example>", In_Reply_To="<q1@client.example>")
        mail("INBOX", 70, "lunch?", sender="Bob <bob@company.test>", to=address, Cc="carla@company.test",
             message_id="<lunch@company.test>")
        mail("INBOX", 80, "cold", sender="nobody@unknown.example", to=address, message_id="<cold@unknown.example>")
        mail("INBOX", 90, "quote", sender="Jane Doe <jane.doe@client.example>", to=address,
             Cc="Sam <sam@client.example>, noreply@client.example", message_id="<q1@client.example>")
        mail("INBOX", 85, "order", sender="someone@acme.example", to=address, message_id="<order@acme.example>")
        mail("INBOX", 60, "hello", sender="max@prospect.example", to=address, message_id="<hello@prospect.example>")
        mail("INBOX", 40, "no address", sender="", to="", message_id="<empty@nowhere.example>")
        # Sent, synced later in the same run: replies to mail linked (or unlinked by hand) before.
        mail("Sent", 30, "Re: quote", sender=address, to="jane.doe@client.example",
             message_id="<s1@example.test>", In_Reply_To="<q1@client.example>", References="<q1@client.example>")
        mail("Sent", 20, "Re: hello", sender=address, to="max@prospect.example",
             message_id="<s2@example.test>", In_Reply_To="<hello@prospect.example>")
        mail("Sent", 10, "Re: order", sender=address, to="someone@acme.example, jane.doe@client.example",
             message_id="<s3@example.test>", References="<order@acme.example>")

    def run_linking(self, orm, orm_store):
        """Sync and link the mail (the ORM or the set-based way), change it as users do; the rows it left."""
        context = {sql_rows.ORM_PATH: True} if orm_store else {}
        env = self.env(context=dict(self.env.context, **context))
        mailbox = self.mailbox.with_env(env)
        original = OnpipelineMailMessage._link_write_rows
        with contextlib.closing(self.env.cr.savepoint()), patch.object(link_module, "sql_rows", _LinkPath(orm)), \
                patch.object(OnpipelineMailMessage, "_link_write_rows", autospec=True,
                             side_effect=original) as set_based:
            sent = mailbox.folder_ids.filtered(lambda folder: folder.name == "Sent")
            self.assertTrue(sent.is_selected)
            sent.is_selected = False
            mailbox._sync()
            Message = env["onpipeline.mail.message"]
            # The deal of "hello" removed by hand: its reply in Sent follows that choice.
            hello = Message.search([("message_key", "=", "<hello@prospect.example>")])
            hello.link_ids.filtered("lead_id").action_unlink()
            sent.is_selected = True
            mailbox._sync()
            # Late linking: a contact and deals that appear after the mail (a new candidate for Jane's mail).
            nobody = env["res.partner"].create({"name": "Nobody", "email": "nobody@unknown.example"})
            env["crm.lead"].create({"name": "Nobody's deal", "type": "opportunity", "partner_id": nobody.id})
            env["crm.lead"].create({"name": "Jane's new deal", "type": "opportunity", "partner_id": self.jane.id,
                                    "user_id": self.user_bob.id})
            self.assertEqual(bool(set_based.call_count), not orm, "the path asked for is the one taken")
            messages = Message.search([("mailbox_id", "=", self.mailbox.id)])
            # What the ORM shows in the same transaction, before anything is flushed.
            shown = {message.message_key: (message.link_state, message.is_internal_only, bool(message.link_date),
                                           message.is_deal_locked, sorted(message.partner_ids.mapped("name")),
                                           sorted(message.lead_ids.mapped("name")), self.targets(message.link_ids))
                     for message in messages}
            self.env.flush_all()
            return shown, self.link_rows(), self.message_rows()

    def targets(self, links):
        return sorted((link.partner_id.name or "", link.lead_id.name or "", link.reason, link.is_candidate,
                       link.active) for link in links)

    def link_rows(self):
        """Every column of the mailbox's links; the email by its key, contacts, deals and history entries by name.

        (Records made in a run have other ids in the other run.)
        """
        self.env.cr.execute("""
            SELECT link.*, message.message_key, partner.name AS partner, lead.name AS lead,
                   entry.model AS entry_model, COALESCE(entry_lead.name, entry_partner.name) AS entry_record
              FROM onpipeline_mail_link link
              JOIN onpipeline_mail_message message ON message.id = link.message_id
              LEFT JOIN res_partner partner ON partner.id = link.partner_id
              LEFT JOIN crm_lead lead ON lead.id = link.lead_id
              LEFT JOIN mail_message entry ON entry.id = link.mail_message_id
              LEFT JOIN crm_lead entry_lead ON entry.model = 'crm.lead' AND entry_lead.id = entry.res_id
              LEFT JOIN res_partner entry_partner ON entry.model = 'res.partner' AND entry_partner.id = entry.res_id
             WHERE message.mailbox_id = %s""", [self.mailbox.id])
        return self.rows_without_ids(["id", "message_id", "mail_message_id", "partner_id", "lead_id"])

    def message_rows(self):
        self.env.cr.execute("""
            SELECT message_key, is_internal_only, link_date, link_state, is_deal_locked, write_uid, write_date
              FROM onpipeline_mail_message WHERE mailbox_id = %s""", [self.mailbox.id])
        rows = self.rows_without_ids([])
        for row in rows:
            # Set from the clock when linked: compared as set or not.
            row["link_date"] = row["link_date"] is not None
        return sorted(rows, key=lambda row: row["message_key"])

    def rows_without_ids(self, ids):
        names = [column.name for column in self.env.cr.description]
        rows = [{name: value for name, value in zip(names, row, strict=True) if name not in ids}
                for row in self.env.cr.fetchall()]
        return sorted(rows, key=lambda row: sorted((name, repr(value)) for name, value in row.items()))

    def test_set_based_links_are_the_orm_rows(self):
        for orm_store in (False, True):
            with self.subTest(emails_stored="through the ORM" if orm_store else "set-based"):
                self.check_same_rows(orm_store)

    def check_same_rows(self, orm_store):
        orm_shown, orm_links, orm_messages = self.run_linking(orm=True, orm_store=orm_store)
        shown, links, messages = self.run_linking(orm=False, orm_store=orm_store)

        # The scenario covers what it is meant to (checked on the ORM run, the reference).
        state = {key: values[0] for key, values in orm_shown.items()}
        self.assertEqual(len(state), 10)
        self.assertEqual(state["<lunch@company.test>"], "internal")
        self.assertEqual(state["<empty@nowhere.example>"], "not_linked")
        self.assertEqual(orm_shown["<r1@else.example>"][5], [self.alices.name],
                         "a reply linked a batch after its root follows the root's deal")
        self.assertIn(("", self.alices.name, "thread", False, True), orm_shown["<s1@example.test>"][6])
        self.assertTrue(orm_shown["<s2@example.test>"][3], "a reply to mail unlinked by hand stays unlinked")
        self.assertTrue(any(target[3] for values in orm_shown.values() for target in values[6]), "candidates")
        self.assertIn(self.acme.name, orm_shown["<order@acme.example>"][4], "the company by its domain")
        self.assertNotIn(self.wrong_company.name, orm_shown["<q1@client.example>"][4])
        self.assertEqual(state["<cold@unknown.example>"], "linked", "linked late")
        self.assertTrue(any(row["entry_model"] for row in orm_links), "history entries made")
        self.assertTrue(any(row["is_candidate"] is None for row in orm_links), "contact links: is_candidate NULL")

        self.assertEqual(len(links), len(orm_links))
        for row, orm_row in zip(links, orm_links, strict=True):
            self.assertEqual(row, orm_row)
        self.assertEqual(messages, orm_messages)
        self.assertEqual(shown, orm_shown, "the ORM sees the same in the transaction that linked")
