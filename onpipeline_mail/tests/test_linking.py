import datetime
import email.utils
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import Form, tagged

from .common import OnpipelineMailCase, append, make_message

UTC = datetime.timezone.utc


class LinkingCase(OnpipelineMailCase):
    """A personal mailbox of Alice, synced from a real Dovecot account, and a client with deals."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Partner = cls.env["res.partner"]
        cls.Lead = cls.env["crm.lead"]
        cls.client = cls.Partner.create({"name": "Client Co", "is_company": True, "email": "info@client.example"})
        cls.jane = cls.Partner.create({"name": "Jane Doe", "email": "Jane.Doe@Client.Example",
                                       "parent_id": cls.client.id})
        cls.won_stage = cls.env["crm.stage"].create({"name": "Won (test)", "is_won": True, "sequence": 90})

    def setUp(self):
        super().setUp()
        self.account = self.new_account(layout="plain")
        self.mailbox = self.create_mailbox(self.account, sync_window="1m")
        self.Message = self.env["onpipeline.mail.message"]

    def deliver(self, subject, sender="Jane Doe <jane.doe@client.example>", to=None, folder="INBOX", mailbox=None,
                account=None, **headers):
        """Put a message on the server, sync the mailbox as the scheduled action does, return the record."""
        account = account or self.account
        mailbox = mailbox or self.mailbox
        message_id = headers.pop("message_id", None) or email.utils.make_msgid(domain="client.example")
        append(account, folder, make_message(subject, sender=sender, to=to or account.username,
                                             message_id=message_id, **headers))
        mailbox._sync()
        return self.Message.search([("mailbox_id", "=", mailbox.id), ("message_key", "=", message_id)])

    def opportunity(self, name, **values):
        return self.Lead.create(dict({"name": name, "type": "opportunity"}, **values))

    def links(self, message, **domain):
        links = message.link_ids
        for field, value in domain.items():
            links = links.filtered(lambda link, field=field, value=value: link[field] == value)
        return links

    def history(self, record):
        return self.env["mail.message"].search([("model", "=", record._name), ("res_id", "=", record.id),
                                                ("message_type", "=", "email")])


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestContactMatching(LinkingCase):

    def test_addresses_match_contacts_by_normalized_email(self):
        buecher = self.Partner.create({"name": "Bücher", "email": "verkauf@bücher.example"})
        twin_a = self.Partner.create({"name": "Shared A", "email": "shared@client.example"})
        twin_b = self.Partner.create({"name": "Shared B", "email": "SHARED@client.example"})
        plus = self.Partner.create({"name": "Jane Sales", "email": "jane.doe+sales@client.example"})
        noreply = self.Partner.create({"name": "Robot", "email": "noreply@client.example"})
        message = self.deliver(
            "hello", sender='"DOE, Jane" <JANE.DOE@CLIENT.EXAMPLE> (work)',
            to="%s, verkauf@xn--bcher-kva.example" % self.account.username,
            Cc="shared@client.example, noreply@client.example, Bob <bob@company.test>",
            Reply_To="Jane <jane.doe@client.example>")
        contacts = self.links(message, reason="contact").partner_id
        self.assertEqual(contacts, self.jane | buecher | twin_a | twin_b,
                         "case and IDNA are normalized, every contact of an address is linked")
        self.assertNotIn(plus, contacts, "plus-addressing is a different address")
        self.assertNotIn(noreply, contacts, "ignored addresses are never linked")
        self.assertNotIn(self.user_bob.partner_id, message.link_ids.partner_id, "colleagues are never linked")
        self.assertEqual(message.link_state, "linked")
        self.assertEqual(message.partner_ids, contacts)

    def test_ignore_list_is_a_setting(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.link_ignored_addresses",
                                                         "newsletter@ client.example")
        robot = self.Partner.create({"name": "Robot", "email": "noreply@other.example"})
        message = self.deliver("news", sender="noreply@other.example",
                               Cc="jane.doe@client.example, newsletter@third.example")
        self.assertEqual(message.partner_ids, robot, "the setting replaces the default list and ignores domains")

    def test_mail_between_colleagues_is_kept_but_not_linked(self):
        self.Partner.create({"name": "Bob as a contact", "email": "bob@company.test"})
        message = self.deliver("lunch?", sender="Bob <bob@company.test>",
                               Cc="Carla <carla@company.test>")
        self.assertTrue(message)
        self.assertFalse(message.link_ids)
        self.assertEqual(message.link_state, "internal")

    def test_unknown_sender_is_not_linked(self):
        message = self.deliver("cold", sender="nobody@unknown.example")
        self.assertEqual(message.link_state, "not_linked")

    def test_company_by_domain_is_a_setting_and_never_for_free_mail(self):
        acme = self.Partner.create({"name": "Acme", "is_company": True, "email": "contact@acme.example"})
        self.Partner.create({"name": "Gmail Fans", "is_company": True, "email": "fans@gmail.com"})
        first = self.deliver("off", sender="someone@acme.example")
        self.assertFalse(first.link_ids, "off by default")
        self.env["res.config.settings"].create({"onpipeline_mail_link_by_domain": True}).execute()
        message = self.deliver("on", sender="someone@acme.example", Cc="friend@gmail.com")
        self.assertEqual(message.link_ids.partner_id, acme)
        self.assertEqual(message.link_ids.reason, "domain")
        person = self.deliver("person", sender="jane.doe@client.example")
        self.assertEqual(person.partner_ids, self.jane, "a matching person wins over the company domain")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestDeals(LinkingCase):

    def test_ranking_owner_first_others_candidates_won_and_lost_left_out(self):
        bobs = self.opportunity("Bob's deal", partner_id=self.jane.id, user_id=self.user_bob.id)
        alices = self.opportunity("Alice's deal", partner_id=self.client.id, user_id=self.user_alice.id)
        won = self.opportunity("Won deal", partner_id=self.jane.id, user_id=self.user_alice.id,
                               stage_id=self.won_stage.id)
        lost = self.opportunity("Lost deal", partner_id=self.jane.id, user_id=self.user_alice.id)
        lost.action_set_lost()
        message = self.deliver("pricing")
        primary = self.links(message, is_candidate=False).filtered("lead_id")
        self.assertEqual(primary.lead_id, alices, "the mailbox owner's deal comes first")
        self.assertEqual(primary.reason, "company")
        candidates = self.links(message, is_candidate=True)
        self.assertEqual(candidates.lead_id, bobs)
        self.assertEqual(candidates.reason, "contact")
        self.assertEqual(message.lead_ids, alices)
        self.assertNotIn(won, message.link_ids.lead_id)
        self.assertNotIn(lost, message.link_ids.with_context(active_test=False).lead_id)

    def test_ranking_team_then_most_recent_activity(self):
        account = self.new_account(layout="plain")
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(account, mailbox_type="team", team_id=self.team_east.id, sync_window="1m"))
        other_team = self.opportunity("West deal", partner_id=self.jane.id, team_id=self.team_west.id)
        east = self.opportunity("East deal", partner_id=self.jane.id, team_id=self.team_east.id)
        message = self.deliver("team", account=account, mailbox=team_mailbox)
        self.assertEqual(message.lead_ids, east)
        self.assertEqual(self.links(message, is_candidate=True).lead_id, other_team)

        old = self.opportunity("Old", partner_id=self.jane.id, team_id=self.team_west.id)
        recent = self.opportunity("Recent", partner_id=self.jane.id, team_id=self.team_west.id)
        (other_team | east).action_set_lost()
        self.env.flush_all()
        self.env.cr.execute("UPDATE crm_lead SET write_date = %s WHERE id = %s",
                            (datetime.datetime(2020, 1, 1), old.id))
        self.env.invalidate_all()
        message = self.deliver("activity", account=account, mailbox=team_mailbox)
        self.assertEqual(message.lead_ids, recent, "then the most recent activity")

    def test_replies_follow_their_thread_even_to_won_deals(self):
        deal = self.opportunity("Deal", partner_id=self.jane.id, user_id=self.user_alice.id)
        first = self.deliver("quote", message_id="<quote-1@client.example>")
        self.assertEqual(first.lead_ids, deal)
        deal.stage_id = self.won_stage
        other = self.opportunity("Next deal", partner_id=self.jane.id, user_id=self.user_bob.id)
        # A reply of a colleague's address list still follows the thread.
        reply = self.deliver("Re: quote", sender=self.account.username, to="jane.doe@client.example",
                             folder="Sent", In_Reply_To="<quote-1@client.example>",
                             References="<quote-1@client.example>")
        self.assertEqual(reply.direction, "outgoing")
        self.assertEqual(reply.lead_ids, deal)
        self.assertEqual(reply.link_ids.filtered("lead_id").reason, "thread")
        fresh = self.deliver("new topic")
        self.assertEqual(fresh.lead_ids, other, "a won deal only receives replies to its own threads")

    def test_thread_is_followed_within_one_batch(self):
        deal = self.opportunity("Deal", partner_id=self.jane.id, user_id=self.user_alice.id)
        now = datetime.datetime.now(UTC)
        append(self.account, "INBOX", make_message("q", sender="jane.doe@client.example",
                                                   message_id="<a@client.example>",
                                                   date=now - datetime.timedelta(hours=2)))
        append(self.account, "INBOX", make_message("Re: q", sender="stranger@else.example",
                                                   message_id="<b@else.example>", In_Reply_To="<a@client.example>",
                                                   date=now - datetime.timedelta(hours=1)))
        self.mailbox._sync()
        reply = self.Message.search([("message_key", "=", "<b@else.example>")])
        self.assertEqual(reply.lead_ids, deal)
        self.assertEqual(reply.thread_id.message_key, "<a@client.example>")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestHistory(LinkingCase):

    def test_linked_mail_shows_in_history_without_notifying_anyone(self):
        deal = self.opportunity("Deal", partner_id=self.jane.id, user_id=self.user_alice.id)
        deal.message_subscribe(partner_ids=self.user_bob.partner_id.ids)
        followers_before = deal.message_follower_ids
        mails_before = self.env["mail.mail"].search_count([])
        append(self.account, "INBOX", make_message(
            "plans", sender="Jane Doe <jane.doe@client.example>", to=self.account.username,
            Cc="Carla <carla@company.test>", body="See the plans",
            attachments=[("plans.pdf", "application/pdf", b"%PDF-1.4 plans")],
            date=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)), date=datetime.datetime.now(UTC))
        append(self.account, "Sent", make_message("my offer", sender=self.account.username,
                                                  to="jane.doe@client.example"))
        self.mailbox._sync()
        for record in (deal, self.jane):
            entries = self.history(record)
            self.assertEqual(len(entries), 2, record)
            incoming = entries.filtered(lambda m: m.subject == "plans")
            self.assertEqual(incoming.author_id, self.jane)
            self.assertEqual(incoming.email_from, "Jane Doe <jane.doe@client.example>")
            self.assertEqual(incoming.date, datetime.datetime(2026, 1, 2, 3, 4, 5))
            self.assertIn("Incoming email", incoming.body)
            self.assertIn("carla@company.test", incoming.body)
            self.assertIn("See the plans", incoming.body)
            self.assertEqual(incoming.attachment_ids.mapped("name"), ["plans.pdf"])
            self.assertEqual(incoming.attachment_ids.raw, b"%PDF-1.4 plans")
            self.assertFalse(incoming.notification_ids)
            outgoing = entries - incoming
            self.assertIn("Outgoing email", outgoing.body)
            self.assertEqual(outgoing.author_id, self.user_alice.partner_id)
        self.assertEqual(deal.message_follower_ids, followers_before)
        self.assertEqual(self.env["mail.mail"].search_count([]), mails_before, "nothing is sent")
        # The smart buttons count the linked mail; the company counts its contacts' mail.
        self.assertEqual(deal.with_user(self.user_alice).onpipeline_mail_count, 2)
        self.assertEqual(self.client.with_user(self.user_alice).onpipeline_mail_count, 2)
        action = deal.with_user(self.user_alice).action_view_onpipeline_mail()
        self.assertEqual(sorted(self.Message.with_user(self.user_alice).search(action["domain"]).mapped("subject")),
                         ["my offer", "plans"])


    def test_history_bodies_are_what_odoo_would_store(self):
        # The history entries' bodies skip a second sanitizing pass: they must be a fixed point
        # of mail.message's own body conversion, hostile HTML, quotes and plain text alike.
        hostile = ('<p onclick="steal()" style="color:red;position:fixed">Offer &amp; terms</p>'
                   '<script>alert(1)</script><img src="x" onerror="steal()">'
                   '<blockquote>On Monday Bob wrote:<br>old text</blockquote><a href="javascript:evil()">x</a>')
        deliveries = {"hostile": {"html": hostile}, "plain": {"body": "a < b & c > d\nsecond line"},
                      "header <b>tricks</b>": {"html": "<p>fine</p>", "Cc": '"<script>x</script>" <c@client.example>'}}
        for subject, content in deliveries.items():
            self.deliver(subject, **content)
        body_field = self.env["mail.message"]._fields["body"]
        entries = self.history(self.jane)
        self.assertEqual(sorted(entries.mapped("subject")), sorted(deliveries))
        for entry in entries:
            self.assertEqual(entry.body, body_field.convert_to_cache(entry.body, entry), entry.subject)
            for dangerous in ("<script", "onclick", "onerror", "javascript:", "alert(1)", "position:fixed"):
                self.assertNotIn(dangerous, entry.body)
        self.assertIn("a &lt; b &amp; c &gt; d", entries.filtered(lambda entry: entry.subject == "plain").body)
        self.assertIn("&lt;script&gt;", entries.filtered(lambda entry: entry.subject.startswith("header")).body)

    def test_history_of_a_first_sync_is_in_date_order(self):
        # The first sync reads newest first, one message per batch here; the history copies wait
        # until the mailbox has caught up and are made oldest first.
        self.mailbox.action_reinitialize_sync()
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sync_batch_size", "1")
        now = datetime.datetime.now(UTC)
        for subject, age in (("oldest", 5), ("middle", 2), ("newest", 0)):
            date = now - datetime.timedelta(days=age, hours=1)
            append(self.account, "INBOX", make_message(subject, sender="Jane Doe <jane.doe@client.example>",
                                                       to=self.account.username, date=date), date=date)
        self.mailbox._sync()
        # Odoo's chatter shows messages by id: ids must follow the dates.
        entries = self.history(self.jane).sorted("id")
        self.assertEqual(entries.mapped("subject"), ["oldest", "middle", "newest"])
        self.assertEqual(self.env["onpipeline.mail.link"].search(
            [("partner_id", "=", self.jane.id)]).mail_message_id, entries)

    def test_mail_stored_before_linking_is_linked_by_the_scheduled_action(self):
        message = self.deliver("old mail")
        message.link_ids.unlink()
        message.write({"link_date": False})
        self.assertEqual(message.link_state, "pending")
        with patch.object(self.env.cr, "commit"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertEqual(message.partner_ids, self.jane)
        self.assertEqual(message.link_state, "linked")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestLateAndManualLinking(LinkingCase):

    def test_contact_and_deal_created_later_get_the_mail(self):
        message = self.deliver("hello", sender="New Person <new.person@prospect.example>")
        self.assertEqual(message.link_state, "not_linked")
        person = self.Partner.create({"name": "New Person", "email": "New.Person@prospect.example"})
        self.assertEqual(message.partner_ids, person)
        self.assertEqual(len(self.history(person)), 1)
        deal = self.opportunity("Prospect deal", email_from="new.person@prospect.example")
        self.assertEqual(message.lead_ids, deal)
        later = self.opportunity("Second deal", partner_id=person.id)
        self.assertEqual(message.lead_ids, deal, "a deal that comes later is a candidate, not a replacement")
        self.assertIn(later, self.links(message, is_candidate=True).lead_id)
        # Contacts imported together.
        first = self.deliver("one", sender="a@import.example")
        second = self.deliver("two", sender="b@import.example")
        imported = self.Partner.create([{"name": name, "email": "%s@import.example" % name} for name in "abc"])
        self.assertEqual(first.partner_ids, imported[0])
        self.assertEqual(second.partner_ids, imported[1])
        # A contact that gets its address later.
        other = self.deliver("again", sender="other@prospect.example")
        nameless = self.Partner.create({"name": "Other"})
        nameless.email = "other@prospect.example"
        self.assertEqual(other.partner_ids, nameless)

    def test_manual_relink_sticks_and_replies_follow(self):
        first_deal = self.opportunity("First", partner_id=self.jane.id, user_id=self.user_alice.id)
        second_deal = self.opportunity("Second", partner_id=self.jane.id, user_id=False)
        message = self.deliver("quote", message_id="<m1@client.example>")
        self.assertEqual(message.lead_ids, first_deal)
        wizard = Form(self.env["onpipeline.mail.link.wizard"].with_user(self.user_alice).with_context(
            default_message_ids=message.ids))
        wizard.lead_id = second_deal
        wizard.save().action_apply()
        self.assertEqual(message.lead_ids, second_deal)
        self.assertEqual(self.links(message, lead_id=second_deal).reason, "manual")
        self.assertFalse(self.history(first_deal), "the history entry moves with the link")
        self.assertEqual(len(self.history(second_deal)), 1)
        # Late linking never brings the removed deal back.
        first_deal.email_from = "jane.doe@client.example"
        self.assertEqual(message.lead_ids, second_deal)
        reply = self.deliver("Re: quote", message_id="<m2@client.example>", In_Reply_To="<m1@client.example>")
        self.assertEqual(reply.lead_ids, second_deal)

        # Unlinking by hand: the email and its later replies stay off any deal.
        self.links(reply, lead_id=second_deal).with_user(self.user_alice).action_unlink()
        self.assertFalse(reply.lead_ids)
        self.assertTrue(reply.is_deal_locked)
        again = self.deliver("Re: Re: quote", In_Reply_To="<m2@client.example>",
                             References="<m1@client.example> <m2@client.example>")
        self.assertFalse(again.lead_ids)
        self.assertEqual(again.partner_ids, self.jane, "contacts are still linked")

    def test_candidate_can_be_chosen(self):
        mine = self.opportunity("Mine", partner_id=self.jane.id, user_id=self.user_alice.id)
        other = self.opportunity("Unassigned", partner_id=self.jane.id, user_id=False)
        message = self.deliver("which one")
        self.assertEqual(message.lead_ids, mine)
        self.links(message, lead_id=other).with_user(self.user_alice).action_make_primary()
        self.assertEqual(message.lead_ids, other)
        # Only a deal the user may see can be chosen.
        bobs = self.opportunity("Bob's", user_id=self.user_bob.id)
        with self.assertRaises(AccessError):
            message.with_user(self.user_alice)._link_manually(lead=bobs.with_user(self.user_alice))

    def test_link_to_a_contact_by_hand(self):
        message = self.deliver("cold", sender="nobody@unknown.example")
        wizard = self.env["onpipeline.mail.link.wizard"].with_user(self.user_alice).create(
            {"message_ids": [(6, 0, message.ids)], "partner_id": self.client.id})
        wizard.action_apply()
        self.assertEqual(message.partner_ids, self.client)
        self.assertEqual(message.link_ids.reason, "manual")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestLinkedMailVisibility(LinkingCase):

    def visible(self, user, message):
        return message in self.Message.with_user(user).search([("id", "=", message.id)])

    def assert_invisible(self, user, message):
        self.assertFalse(self.visible(user, message))
        with self.assertRaises(AccessError):
            message.with_user(user).read(["subject"])
        self.assertFalse(self.env["onpipeline.mail.link"].with_user(user).search([("message_id", "=", message.id)]))

    def test_personal_mail_linked_to_a_contact_is_shared_by_default(self):
        message = self.deliver("shared", attachments=[("terms.txt", "text/plain", b"terms")])
        self.assertEqual(self.mailbox.linked_visibility, "colleagues")
        self.assertTrue(self.visible(self.user_bob, message))
        # The list and the form of the email open for him (the mailbox itself stays private).
        as_bob = message.with_user(self.user_bob)
        as_bob.web_read({"subject": {}, "body_html": {}, "mailbox_id": {"fields": {"display_name": {}}},
                         "partner_ids": {"fields": {"display_name": {}}}, "lead_ids": {}, "link_state": {},
                         "folder_ids": {}, "attachment_ids": {},
                         "link_ids": {"fields": {"partner_id": {}, "reason": {}, "is_candidate": {}}}})
        self.Message.with_user(self.user_bob).web_search_read(
            [], {"subject": {}, "email_from": {}, "partner_ids": {}, "link_state": {}, "folder_ids": {}})
        # The Conversations menu groups by mailbox, folder and conversation, for him too.
        for user in (self.user_alice, self.user_bob):
            groups = self.Message.with_user(user).web_read_group(
                [], ["subject"], ["mailbox_id", "folder_id", "thread_id"], lazy=False)
            self.assertEqual(groups["length"], 1)
        self.assertEqual(message.folder_id.name, "INBOX")
        self.assertEqual(self.jane.with_user(self.user_bob).onpipeline_mail_count, 1)
        self.assertEqual(len(self.history(self.jane).with_user(self.user_bob).read(["body"])), 1)
        # Attachments open too: the email's own and the copy in the history.
        self.assertEqual(message.attachment_ids.with_user(self.user_bob).read(["name"])[0]["name"], "terms.txt")
        self.assertEqual(self.history(self.jane).attachment_ids.with_user(self.user_bob).raw, b"terms")
        self.assertTrue(self.env["onpipeline.mail.link"].with_user(self.user_bob).search(
            [("message_id", "=", message.id)]))

    def test_only_me_keeps_linked_mail_to_the_owner(self):
        self.mailbox.with_user(self.user_alice).linked_visibility = "owner"
        message = self.deliver("private")
        self.assertEqual(message.partner_ids, self.jane, "still linked")
        self.assertFalse(self.history(self.jane), "no history entry anyone else could read")
        self.assertEqual(self.jane.with_user(self.user_alice).onpipeline_mail_count, 1)
        self.assertEqual(self.jane.with_user(self.user_bob).onpipeline_mail_count, 0)
        self.assert_invisible(self.user_bob, message)
        self.assert_invisible(self.user_sales_admin, message)
        self.assertFalse(self.env["mail.message"].with_user(self.user_bob).search(
            [("model", "=", "res.partner"), ("res_id", "=", self.jane.id), ("message_type", "=", "email")]))
        # Switching back shares it, with its history entry.
        self.mailbox.with_user(self.user_alice).linked_visibility = "colleagues"
        self.assertTrue(self.visible(self.user_bob, message))
        self.assertEqual(len(self.history(self.jane)), 1)
        self.mailbox.with_user(self.user_alice).linked_visibility = "owner"
        self.assertFalse(self.history(self.jane))

    def test_unlinked_personal_mail_is_the_owners_only(self):
        message = self.deliver("unknown", sender="nobody@unknown.example")
        self.assertTrue(self.visible(self.user_alice, message))
        self.assert_invisible(self.user_bob, message)
        self.assert_invisible(self.user_sales_admin, message)

    def test_team_mail_visible_to_members_admins_and_readers_of_the_deal(self):
        account = self.new_account(layout="plain")
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(account, mailbox_type="team", team_id=self.team_east.id, sync_window="1m"))
        alices = self.opportunity("Alice's prospect", email_from="lead@prospect.example",
                                  user_id=self.user_alice.id, team_id=self.team_east.id)
        message = self.deliver("deal mail", sender="lead@prospect.example", account=account, mailbox=team_mailbox)
        self.assertEqual(message.lead_ids, alices)
        self.assertFalse(message.partner_ids)
        self.assertTrue(self.visible(self.user_alice, message), "team member")
        self.assertTrue(self.visible(self.user_sales_admin, message), "CRM admin")
        # Bob sees only his own deals (and unassigned ones): not this one, so not its mail.
        self.assertFalse(alices.with_user(self.user_bob).has_access("read"))
        self.assert_invisible(self.user_bob, message)
        self.assertFalse(self.env["mail.message"].with_user(self.user_bob).search(
            [("model", "=", "crm.lead"), ("res_id", "=", alices.id)]))
        # Once the deal is his, he sees the mail, in its history and in the list.
        alices.user_id = self.user_bob
        self.assertTrue(self.visible(self.user_bob, message))
        self.assertEqual(alices.with_user(self.user_bob).onpipeline_mail_count, 1)
        unlinked = self.deliver("other", sender="nobody@unknown.example", account=account, mailbox=team_mailbox)
        self.assert_invisible(self.user_bob, unlinked)
        # Nor does an export or a read_group leak it.
        self.assertNotIn(unlinked.id, [row["id"] for row in self.Message.with_user(self.user_bob).search_read(
            [], ["subject"])])
        counts = self.Message.with_user(self.user_bob)._read_group([], [], ["__count"])
        self.assertEqual(counts[0][0], 1)
