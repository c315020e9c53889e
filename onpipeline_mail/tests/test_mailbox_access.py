from odoo.exceptions import AccessError
from odoo.tests import tagged, users
from odoo.tools import mute_logger
from odoo.tools.safe_eval import safe_eval

from .common import OnpipelineMailCase


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxAccess(OnpipelineMailCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Mailbox = cls.env["onpipeline.mailbox"]
        cls.alice_account = cls.new_account(prefix="alice")
        cls.alice_mailbox = Mailbox.with_user(cls.user_alice).create({
            "email": cls.alice_account.username, "imap_host": "127.0.0.1", "imap_port": cls.dovecot.tls_port,
            "imap_security": "ssl", "imap_password_input": cls.alice_account.password,
        })
        cls.east_mailbox = Mailbox.with_user(cls.user_sales_admin).create({
            "email": "east@example.test", "mailbox_type": "team", "team_id": cls.team_east.id,
            "imap_host": "127.0.0.1", "imap_port": cls.dovecot.tls_port, "imap_security": "ssl",
            "imap_password_input": "team-secret",
        })

    @users("bob")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_other_users_personal_mailbox_is_invisible(self):
        Mailbox = self.env["onpipeline.mailbox"]
        self.assertFalse(Mailbox.search([("id", "=", self.alice_mailbox.id)]))
        self.assertFalse(Mailbox.search([("email", "ilike", "alice")]))
        self.assertNotIn(self.alice_mailbox.id, [row["id"] for row in Mailbox.search_read([], ["id"])])
        self.assertEqual(Mailbox.search_count([("mailbox_type", "=", "personal")]), 0)
        with self.assertRaises(AccessError):
            Mailbox.browse(self.alice_mailbox.id).read(["email"])
        with self.assertRaises(AccessError):
            Mailbox.browse(self.alice_mailbox.id).write({"sync_window": "6m"})
        with self.assertRaises(AccessError):
            Mailbox.browse(self.alice_mailbox.id).unlink()
        with self.assertRaises(AccessError):
            Mailbox.browse(self.alice_mailbox.id).action_open_test_email()
        Folder = self.env["onpipeline.mailbox.folder"]
        self.assertFalse(Folder.search([("mailbox_id", "=", self.alice_mailbox.id)]))
        self.assertFalse(Mailbox.read_group([], ["email"], ["email"]))

    @users("alice")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_owner_manages_own_mailbox_but_never_reads_the_password_back(self):
        mailbox = self.env["onpipeline.mailbox"].browse(self.alice_mailbox.id)
        self.assertEqual(mailbox.state, "connected")
        self.assertTrue(mailbox.has_imap_password)
        self.assertFalse(mailbox.read(["imap_password_input"])[0]["imap_password_input"])
        with self.assertRaises(AccessError):
            mailbox.read(["imap_password"])
        with self.assertRaises(AccessError):
            mailbox.read(["smtp_password"])
        # What the form gets back after saving a new password: not the password.
        saved = mailbox.web_save({"imap_password_input": "typed-in-the-form", "smtp_password_input": "smtp-typed"},
                                 {"imap_password_input": {}, "smtp_password_input": {}, "has_imap_password": {}})
        self.assertNotIn("typed-in-the-form", str(saved))
        self.assertNotIn("smtp-typed", str(saved))
        self.assertTrue(saved[0]["has_imap_password"])
        self.assertNotIn("imap_password", mailbox.fields_get())
        mailbox.write({"sync_window": "6m"})
        self.assertEqual(mailbox.sync_window, "6m")
        # Selecting folders of the own mailbox is allowed.
        archive = mailbox.folder_ids.filtered(lambda folder: folder.name == "INBOX")
        archive.is_selected = False

    @users("alice")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_team_member_reads_and_uses_team_mailbox_but_cannot_edit(self):
        mailbox = self.env["onpipeline.mailbox"].browse(self.east_mailbox.id)
        self.assertEqual(mailbox.email, "east@example.test")
        self.assertIn(mailbox, self.env["onpipeline.mailbox"].search([("mailbox_type", "=", "team")]))
        self.assertFalse(mailbox.read(["imap_password_input"])[0]["imap_password_input"])
        with self.assertRaises(AccessError):
            mailbox.read(["imap_password"])
        with self.assertRaises(AccessError):
            mailbox.write({"sync_window": "6m"})
        with self.assertRaises(AccessError):
            mailbox.unlink()
        with self.assertRaises(AccessError):
            self.env["onpipeline.mailbox"].create({
                "email": "x@example.test", "mailbox_type": "team", "team_id": self.team_west.id})
        # Using it: opening the test email wizard is allowed.
        self.assertEqual(mailbox.action_open_test_email()["res_model"], "onpipeline.mailbox.test.email")

    @users("bob")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_non_member_does_not_see_other_team_mailbox(self):
        Mailbox = self.env["onpipeline.mailbox"]
        self.assertFalse(Mailbox.search([("id", "=", self.east_mailbox.id)]))
        with self.assertRaises(AccessError):
            Mailbox.browse(self.east_mailbox.id).read(["email"])

    @users("crm_admin")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_crm_admin_manages_team_mailboxes_but_not_personal_ones(self):
        Mailbox = self.env["onpipeline.mailbox"]
        team_mailbox = Mailbox.browse(self.east_mailbox.id)
        team_mailbox.write({"sync_window": "3m"})
        self.assertEqual(team_mailbox.sync_window, "3m")
        with self.assertRaises(AccessError):
            team_mailbox.read(["imap_password"])  # not even admins read secrets back over RPC
        self.assertFalse(Mailbox.search([("id", "=", self.alice_mailbox.id)]))
        with self.assertRaises(AccessError):
            Mailbox.browse(self.alice_mailbox.id).read(["email"])

    @users("alice")
    @mute_logger("odoo.addons.base.models.ir_rule", "odoo.models")
    def test_cannot_create_a_personal_mailbox_for_someone_else(self):
        with self.assertRaises(AccessError):
            self.env["onpipeline.mailbox"].create({"email": "b@example.test", "user_id": self.user_bob.id})

    def test_password_is_stored_only_where_the_system_reads_it(self):
        self.assertEqual(self.alice_mailbox.sudo().imap_password, self.alice_account.password)
        field = self.env["onpipeline.mailbox"]._fields["imap_password"]
        self.assertEqual(field.groups, "base.group_system")

    def test_team_mailbox_menus(self):
        # Members open their teams' mailboxes without a New button; CRM admins manage them from Configuration.
        member_action = self.env.ref("onpipeline_mail.onpipeline_mailbox_menu_team").action
        self.assertIs(safe_eval(member_action.context).get("create"), False)
        manage_menu = self.env.ref("onpipeline_mail.onpipeline_mailbox_menu_team_manage")
        self.assertNotIn("'create'", manage_menu.action.context)
        self.assertEqual(manage_menu.parent_id, self.env.ref("onpipeline_mail.onpipeline_mail_menu_config"))
        config_menu = manage_menu.parent_id
        Menu = self.env["ir.ui.menu"]
        self.assertNotIn(config_menu.id, Menu.with_user(self.user_alice)._visible_menu_ids())
        self.assertIn(config_menu.id, Menu.with_user(self.user_sales_admin)._visible_menu_ids())
        self.assertIn(self.env.ref("onpipeline_mail.onpipeline_mailbox_menu_team").id,
                      Menu.with_user(self.user_alice)._visible_menu_ids())

    def test_form_is_read_only_for_team_members(self):
        self.assertFalse(self.east_mailbox.with_user(self.user_alice).can_manage)
        self.assertTrue(self.east_mailbox.with_user(self.user_sales_admin).can_manage)
        self.assertTrue(self.alice_mailbox.with_user(self.user_alice).can_manage)
        arch = self.env["onpipeline.mailbox"].with_user(self.user_alice).get_views([(False, "form")])[
            "views"]["form"]["arch"]
        self.assertIn('readonly="not can_manage"', arch)
