from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..engine.folders import ROLES

ROLE_LABELS = {
    "inbox": "Inbox", "sent": "Sent", "drafts": "Drafts", "trash": "Trash", "junk": "Junk", "archive": "Archive",
    "all": "All Mail", "flagged": "Flagged", "other": "Other",
}


class OnpipelineMailboxFolder(models.Model):
    """A folder of a mailbox as the server lists it, and whether the user syncs it."""

    _name = "onpipeline.mailbox.folder"
    _description = "Mailbox Folder"
    _order = "mailbox_id, sequence_role, name"
    _parent_store = True

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    name = fields.Char("Folder", required=True, readonly=True, help="Full path, decoded from modified UTF-7.")
    display_label = fields.Char("Name", compute="_compute_display_label")
    parent_id = fields.Many2one("onpipeline.mailbox.folder", "Parent Folder", index=True, ondelete="cascade",
                                readonly=True)
    parent_path = fields.Char(index=True)
    delimiter = fields.Char(readonly=True)
    flags = fields.Char(readonly=True)
    role = fields.Selection([(role, ROLE_LABELS[role]) for role in ROLES], default="other", required=True,
                            readonly=True)
    sequence_role = fields.Integer(compute="_compute_sequence_role", store=True)
    is_selectable = fields.Boolean("Can Be Synced", readonly=True, default=True)
    skip_reason = fields.Char("Why Not", readonly=True)
    is_present = fields.Boolean("On Server", default=True, readonly=True,
                                help="False when the folder was not listed by the server at the last refresh.")
    is_selected = fields.Boolean("Sync")

    _sql_constraints = [
        ("name_unique", "unique(mailbox_id, name)", "A folder is listed once per mailbox."),
    ]

    @api.depends("role")
    def _compute_sequence_role(self):
        order = {"inbox": 0, "sent": 1}
        for folder in self:
            folder.sequence_role = order.get(folder.role, 5)

    @api.depends("name", "delimiter")
    def _compute_display_label(self):
        for folder in self:
            leaf = folder.name.rsplit(folder.delimiter, 1)[-1] if folder.delimiter else folder.name
            depth = folder.name.count(folder.delimiter) if folder.delimiter else 0
            if folder.name and folder.name.upper() == "INBOX":
                leaf = _("Inbox")  # the protocol's name for it, not a user's
            folder.display_label = "\u2003" * depth + (leaf or "")

    @api.depends("name", "mailbox_id")
    def _compute_display_name(self):
        for folder in self:
            folder.display_name = "%s: %s" % (folder.mailbox_id.name or folder.mailbox_id.email, folder.name)

    @api.constrains("is_selected", "is_selectable")
    def _check_selectable(self):
        for folder in self:
            if folder.is_selected and not folder.is_selectable:
                raise ValidationError(_("The folder %(folder)s cannot be synced: %(reason)s",
                                        folder=folder.name, reason=folder.skip_reason))
