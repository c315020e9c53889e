import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..engine import connection, errors, folders, smtp
from ..engine.parse import normalize_address
from ..engine.window import DEFAULT_WINDOW, WINDOWS, window_start
from .onpipeline_mail_provider import SECURITY_SELECTION

_logger = logging.getLogger(__name__)

#: Saving any of these re-checks the IMAP login at once.
IMAP_FIELDS = {"email", "imap_host", "imap_port", "imap_security", "imap_login", "imap_password_input",
               "allow_self_signed"}
SMTP_FIELDS = {"smtp_host", "smtp_port", "smtp_security", "smtp_login", "smtp_password_input", "allow_self_signed"}


class OnpipelineMailbox(models.Model):
    """An IMAP (reading) + SMTP (sending) account: a user's personal mailbox or a sales team's."""

    _name = "onpipeline.mailbox"
    _description = "Mailbox"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "mailbox_type, name, email, id"
    _rec_names_search = ["name", "email"]

    # Name and IMAP login are empty unless the user sets them: they then follow the email address
    # (a derived copy would keep the old address when the email is corrected).
    name = fields.Char(help="A label for this mailbox, e.g. \"Sales inbox\". Empty: the email address.")
    active = fields.Boolean(default=True)
    email = fields.Char(required=True, tracking=True)
    mailbox_type = fields.Selection(
        [("personal", "Personal"), ("team", "Sales Team")], required=True, default="personal", tracking=True)
    user_id = fields.Many2one(
        "res.users", "Owner", index=True, ondelete="cascade", default=lambda self: self._default_user_id(),
        domain=[("share", "=", False)])
    team_id = fields.Many2one("crm.team", "Sales Team", index=True, ondelete="cascade", tracking=True)
    company_id = fields.Many2one("res.company", required=True, default=lambda self: self.env.company)
    provider_id = fields.Many2one(
        "onpipeline.mail.provider", "Provider", compute="_compute_provider_id", store=True, readonly=False,
        help="Fills host, port and security. Empty means \"Other\": enter them yourself.")
    provider_note = fields.Text(related="provider_id.note")

    # Reading (IMAP)
    imap_host = fields.Char("IMAP Host", compute="_compute_server_settings", store=True, readonly=False)
    imap_port = fields.Integer("IMAP Port", compute="_compute_server_settings", store=True, readonly=False)
    imap_security = fields.Selection(
        SECURITY_SELECTION, "IMAP Security", compute="_compute_server_settings", store=True, readonly=False)
    imap_login = fields.Char("IMAP Login", help="Leave empty when it is the email address, as it usually is.")
    # Secrets are stored in fields nobody but the system can read; users type
    # them into the non-stored *_input fields, which always read back empty.
    imap_password = fields.Char(groups="base.group_system", copy=False)
    imap_password_input = fields.Char(
        "IMAP Password", compute="_compute_password_inputs", inverse="_inverse_imap_password_input")
    has_imap_password = fields.Boolean(compute="_compute_has_passwords")
    allow_self_signed = fields.Boolean(
        "Allow self-signed certificate",
        help="Accept a server certificate that no trusted authority signed. Only for your own server: "
             "anyone able to intercept the connection could then read the password and the mail.")

    # Sending (SMTP)
    smtp_host = fields.Char("SMTP Host", compute="_compute_server_settings", store=True, readonly=False)
    smtp_port = fields.Integer("SMTP Port", compute="_compute_server_settings", store=True, readonly=False)
    smtp_security = fields.Selection(
        SECURITY_SELECTION, "SMTP Security", compute="_compute_server_settings", store=True, readonly=False)
    smtp_login = fields.Char("SMTP Login", help="Leave empty to use the IMAP login.")
    smtp_password = fields.Char(groups="base.group_system", copy=False)
    smtp_password_input = fields.Char(
        "SMTP Password", compute="_compute_password_inputs", inverse="_inverse_smtp_password_input")
    smtp_uses_imap_password = fields.Boolean(
        "Same Password as IMAP", default=True, compute="_compute_smtp_uses_imap_password",
        inverse="_inverse_smtp_uses_imap_password",
        help="Off: the SMTP server takes another password, typed below.")
    has_smtp_password = fields.Boolean(compute="_compute_has_passwords")

    # Connection state
    state = fields.Selection(
        [("not_connected", "Not connected"), ("connected", "Connected"), ("error", "Error")],
        default="not_connected", required=True, readonly=True, copy=False, tracking=True)
    last_error = fields.Text(readonly=True, copy=False)
    error_reason = fields.Char(readonly=True, copy=False, help="Stable code of the last error, e.g. auth_failed.")
    last_check_date = fields.Datetime("Last Check", readonly=True, copy=False)
    capabilities = fields.Char(readonly=True, copy=False)
    smtp_state = fields.Selection(
        [("untested", "Not tested"), ("ok", "Working"), ("error", "Error")],
        "Sending", default="untested", required=True, readonly=True, copy=False)
    smtp_error = fields.Text("Sending Error", readonly=True, copy=False)
    can_send = fields.Boolean(compute="_compute_can_send")
    can_manage = fields.Boolean(compute="_compute_can_manage",
                                help="The user may change this mailbox (a team member may only read and use it).")
    send_unavailable_reason = fields.Char(compute="_compute_can_send")

    # What to sync
    # A list, not the engine's tuple: Odoo registers (and translates) the
    # options of list selections only, and the web client shows those.
    sync_window = fields.Selection(list(WINDOWS), "Sync Period", default=DEFAULT_WINDOW, required=True,
                                   help="How far back mail is synced: never more than 6 months.")
    folder_ids = fields.One2many("onpipeline.mailbox.folder", "mailbox_id", "Folders")
    selected_folder_count = fields.Integer(compute="_compute_selected_folder_count")

    _sql_constraints = [
        ("team_unique", "unique(team_id)",
         "This sales team already has a team mailbox. Open it from the Sales Team form to change it."),
    ]

    def _default_user_id(self):
        if self.env.context.get("default_mailbox_type") == "team":
            return False
        return self.env.user

    # ------------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------------

    @api.depends("name", "email", "mailbox_type", "team_id.name")
    def _compute_display_name(self):
        # Said where a user picks a mailbox (Send from): whose it is, not only its address.
        for mailbox in self:
            label = mailbox.name or mailbox.email or _("New mailbox")
            if mailbox.name and mailbox.email and mailbox.name != mailbox.email:
                label = "%s <%s>" % (mailbox.name, mailbox.email)
            if mailbox.mailbox_type == "team" and mailbox.team_id:
                mailbox.display_name = _("%(mailbox)s (team %(team)s)", mailbox=label, team=mailbox.team_id.name)
            else:
                mailbox.display_name = _("%s (personal)", label)

    @api.depends("email")
    def _compute_provider_id(self):
        for mailbox in self:
            provider = self.env["onpipeline.mail.provider"]._find_by_email(mailbox.email)
            # Keep a provider picked by hand (Microsoft 365 on a company domain).
            if provider or not mailbox.provider_id:
                mailbox.provider_id = provider

    @api.depends("provider_id")
    def _compute_server_settings(self):
        for mailbox in self:
            provider = mailbox.provider_id
            if provider:
                mailbox.update({
                    "imap_host": provider.imap_host, "imap_port": provider.imap_port,
                    "imap_security": provider.imap_security, "smtp_host": provider.smtp_host,
                    "smtp_port": provider.smtp_port, "smtp_security": provider.smtp_security,
                })
            else:
                mailbox.update({
                    "imap_host": mailbox.imap_host, "imap_port": mailbox.imap_port or 993,
                    "imap_security": mailbox.imap_security or "ssl", "smtp_host": mailbox.smtp_host,
                    "smtp_port": mailbox.smtp_port or 465, "smtp_security": mailbox.smtp_security or "ssl",
                })

    def _compute_password_inputs(self):
        self.imap_password_input = False
        self.smtp_password_input = False

    def _inverse_imap_password_input(self):
        for mailbox in self:
            if mailbox.imap_password_input:
                mailbox.sudo().imap_password = mailbox.imap_password_input

    def _inverse_smtp_password_input(self):
        for mailbox in self:
            if mailbox.smtp_password_input:
                mailbox.sudo().smtp_password = mailbox.smtp_password_input

    def _compute_smtp_uses_imap_password(self):
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            mailbox.smtp_uses_imap_password = not secrets.smtp_password

    def _inverse_smtp_uses_imap_password(self):
        for mailbox in self:
            if mailbox.smtp_uses_imap_password:
                mailbox.sudo().smtp_password = False

    def _compute_has_passwords(self):
        for mailbox, secrets in zip(self, self.sudo(), strict=True):
            mailbox.has_imap_password = bool(secrets.imap_password)
            mailbox.has_smtp_password = bool(secrets.smtp_password or secrets.imap_password)

    @api.depends("smtp_host", "smtp_port", "smtp_state", "smtp_error", "has_smtp_password")
    def _compute_can_send(self):
        for mailbox in self:
            reason = False
            if not mailbox.smtp_host or not mailbox.smtp_port:
                reason = _("Sending is unavailable: no SMTP server is set.")
            elif not mailbox.has_smtp_password:
                reason = _("Sending is unavailable: no password is set.")
            elif mailbox.smtp_state == "error":
                reason = _("Sending is unavailable: %s", mailbox.smtp_error or _("the last test failed."))
            mailbox.can_send = not reason
            mailbox.send_unavailable_reason = reason

    # Depends on the fields it reads: the web client's onchange computes only fields with
    # dependencies on a new record; without them a new mailbox came back read-only.
    @api.depends("mailbox_type", "user_id", "team_id")
    @api.depends_context("uid")
    def _compute_can_manage(self):
        is_crm_admin = self.env.user.has_group("sales_team.group_sale_manager")
        for mailbox in self:
            mailbox.can_manage = (mailbox.mailbox_type == "personal" and mailbox.user_id == self.env.user) or (
                mailbox.mailbox_type == "team" and is_crm_admin) or not mailbox._origin.id

    @api.depends("folder_ids.is_selected")
    def _compute_selected_folder_count(self):
        for mailbox in self:
            mailbox.selected_folder_count = len(mailbox.folder_ids.filtered("is_selected"))

    # ------------------------------------------------------------------
    # Constraints
    # ------------------------------------------------------------------

    @api.constrains("mailbox_type", "user_id", "team_id")
    def _check_owner(self):
        for mailbox in self:
            if mailbox.mailbox_type == "personal":
                if not mailbox.user_id:
                    raise ValidationError(_("A personal mailbox needs an owner."))
                if mailbox.team_id:
                    raise ValidationError(_("A personal mailbox cannot belong to a sales team."))
                if not mailbox.user_id.has_group("onpipeline_mail.group_personal_mailbox"):
                    raise ValidationError(_(
                        "Personal mailboxes are turned off for this company (Settings > CRM > Mailboxes). "
                        "Ask an administrator for a team mailbox."))
            else:
                if not mailbox.team_id:
                    raise ValidationError(_("A team mailbox needs a sales team."))
                if mailbox.user_id:
                    raise ValidationError(_("A team mailbox belongs to its team, not to one user."))

    @api.constrains("imap_port", "smtp_port")
    def _check_ports(self):
        for mailbox in self:
            for port in (mailbox.imap_port, mailbox.smtp_port):
                if port and not 0 < port < 65536:
                    raise ValidationError(_("%s is not a valid port number.", port))

    # ------------------------------------------------------------------
    # CRUD: the IMAP login is checked whenever it may have changed
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("mailbox_type") == "team":
                vals.setdefault("user_id", False)
        mailboxes = super().create(vals_list)
        mailboxes._check_imap_connection()
        mailboxes._forget_typed_passwords()
        return mailboxes

    def write(self, vals):
        result = super().write(vals)
        if IMAP_FIELDS & set(vals):
            self._check_imap_connection()
        if SMTP_FIELDS & set(vals):
            self.sudo().write({"smtp_state": "untested", "smtp_error": False})
        self._forget_typed_passwords()
        return result

    def _forget_typed_passwords(self):
        # The typed password would otherwise stay in the cache and go back to the
        # browser in the save response: it is written to the secret field only.
        self.invalidate_recordset(["imap_password_input", "smtp_password_input"])

    # ------------------------------------------------------------------
    # Engine settings
    # ------------------------------------------------------------------

    def _extra_ca_data(self):
        # A company with a private certificate authority trusts it (PEM uploaded in
        # Settings > CRM > Mailboxes) instead of turning verification off.
        return self.env["ir.config_parameter"].sudo().get_param("onpipeline_mail.extra_ca_pem") or ""

    def _imap_settings(self):
        self.ensure_one()
        secrets = self.sudo()
        return connection.ServerSettings(
            host=(self.imap_host or "").strip(), port=self.imap_port, security=self.imap_security or "ssl",
            username=(self.imap_login or self.email or "").strip(), password=secrets.imap_password or "",
            verify_tls=not self.allow_self_signed, ca_data=self._extra_ca_data(),
            provider_note=self.provider_id.note or "",
        )

    def _smtp_settings(self):
        self.ensure_one()
        secrets = self.sudo()
        return connection.ServerSettings(
            host=(self.smtp_host or "").strip(), port=self.smtp_port, security=self.smtp_security or "ssl",
            username=(self.smtp_login or self.imap_login or self.email or "").strip(),
            password=secrets.smtp_password or secrets.imap_password or "",
            verify_tls=not self.allow_self_signed, ca_data=self._extra_ca_data(),
            provider_note=self.provider_id.note or "",
        )

    # Login hooks: a password by default; the OAuth bridges (onpipeline_mail_google,
    # onpipeline_mail_microsoft) log in with a token instead, as google_gmail's _imap_login does.

    def _has_imap_credentials(self):
        """Whether the mailbox has something to log in with (a password here, a token in the bridges)."""
        self.ensure_one()
        return bool(self.sudo().imap_password)

    def _imap_login_callable(self):
        """The engine's IMAP login hook (``connection.imap_session(settings, login=…)``)."""
        self.ensure_one()
        return connection.password_login

    def _smtp_login_callable(self):
        """The engine's SMTP login hook (``smtp.send_message(settings, message, login=…)``)."""
        self.ensure_one()
        return smtp.password_login

    def _own_addresses(self):
        """The normalized addresses this mailbox sends as: mail from them is outgoing."""
        self.ensure_one()
        candidates = (self.email, self.imap_login, self.smtp_login)
        return {address for address in map(normalize_address, candidates) if "@" in address}

    def _sync_window_start(self, today=None):
        self.ensure_one()
        return window_start(self.sync_window, today or fields.Date.context_today(self))

    # ------------------------------------------------------------------
    # Connection check and folder discovery
    # ------------------------------------------------------------------

    def _check_imap_connection(self):
        """Log in, record the outcome and refresh the folder list. Never raises:
        the result is the mailbox's state and message."""
        for mailbox in self:
            values = {"last_check_date": fields.Datetime.now()}
            if not mailbox._has_imap_credentials() or not mailbox.imap_host:
                values.update(state="not_connected", last_error=False, error_reason=False)
                mailbox.sudo().write(values)
                continue
            try:
                settings = mailbox._imap_settings()
                with connection.imap_session(settings, login=mailbox._imap_login_callable()) as client:
                    capabilities = client.capabilities()
                    listed = folders.list_folders(client)
            except errors.MailSyncError as exc:
                _logger.info("Mailbox %s: IMAP check failed (%s)", mailbox.id, exc.reason)
                values.update(state="error", last_error=str(exc), error_reason=exc.reason)
                mailbox.sudo().write(values)
                continue
            values.update(
                state="connected", last_error=False, error_reason=False,
                capabilities=" ".join(sorted(cap.decode() if isinstance(cap, bytes) else cap for cap in capabilities)),
            )
            mailbox.sudo().write(values)
            mailbox.sudo()._update_folders(listed)

    def _update_folders(self, listed):
        """Merge a fresh LIST into the folder records, keeping the user's selection."""
        self.ensure_one()
        Folder = self.env["onpipeline.mailbox.folder"]
        existing = {folder.name: folder for folder in self.with_context(active_test=False).folder_ids}
        # Inbox and Sent are suggested once, when the mailbox is first
        # connected; later folders wait for the user to pick them.
        suggested = {folder.name for folder in folders.suggested_folders(listed)} if not existing else set()
        by_name = {}
        for listed_folder in listed:
            values = {
                "delimiter": listed_folder.delimiter, "flags": " ".join(listed_folder.flags),
                "role": listed_folder.role, "is_selectable": listed_folder.is_selectable,
                "skip_reason": listed_folder.skip_reason, "is_present": True,
            }
            folder = existing.get(listed_folder.name)
            if folder:
                if not listed_folder.is_selectable:
                    values["is_selected"] = False
                folder.write(values)
            else:
                folder = Folder.create(dict(
                    values, mailbox_id=self.id, name=listed_folder.name,
                    is_selected=listed_folder.name in suggested))
            by_name[listed_folder.name] = folder
        for name, folder in existing.items():
            if name not in by_name:
                folder.write({"is_present": False})
        for name, folder in by_name.items():
            parent = by_name.get(name.rsplit(folder.delimiter, 1)[0]) if folder.delimiter in name else None
            if folder.parent_id != (parent or Folder):
                folder.parent_id = parent
        # The cache holds the folders in creation (server) order; the form must
        # get them in the model's order, Inbox and Sent first.
        self.invalidate_recordset(["folder_ids"])

    # ------------------------------------------------------------------
    # Buttons
    # ------------------------------------------------------------------

    def action_check_connection(self):
        self.check_access("write")
        self._check_imap_connection()
        if len(self) == 1 and self.state == "connected":
            return self._notify_and_reload(_(
                "Connected to %(host)s. %(folders)s folders found, %(selected)s selected for sync.",
                host=self.imap_host, folders=len(self.folder_ids), selected=self.selected_folder_count))
        # An error is shown on the form itself, which reloads.
        return True

    def _notify_and_reload(self, message, kind="success"):
        """A notification, then the form reloads (as base's outgoing-server Test Connection)."""
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": message, "type": kind, "sticky": False,
                       "next": {"type": "ir.actions.act_window_close"}},
        }

    def action_refresh_folders(self):
        self.check_access("write")
        self._check_imap_connection()
        if any(mailbox.state == "error" for mailbox in self):
            raise UserError("\n".join(self.filtered(lambda m: m.state == "error").mapped("last_error")))
        return True

    @api.model
    def _action_open_my_mailbox(self):
        """The user's personal mailbox form: theirs if they have one, else a new one to connect."""
        mailbox = self.search([("mailbox_type", "=", "personal"), ("user_id", "=", self.env.uid)], limit=1)
        return {
            "type": "ir.actions.act_window",
            "name": _("My Mailbox"),
            "res_model": self._name,
            "view_mode": "form",
            "views": [(False, "form")],
            "res_id": mailbox.id or False,
            "context": {"default_mailbox_type": "personal"},
        }

    def action_open_test_email(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Send test email"),
            "res_model": "onpipeline.mailbox.test.email",
            "view_mode": "form",
            "target": "new",
            "context": {"default_mailbox_id": self.id},
        }

    def _send_test_email(self, email_to):
        """Send a real message through the SMTP settings and record the outcome."""
        self.ensure_one()
        self.check_access("read")
        try:
            settings = self._smtp_settings()
            sender = "%s <%s>" % (self.name, self.email) if self.name and self.name != self.email else self.email
            message = smtp.build_test_message(sender, email_to, self.name or "")
            smtp.send_message(settings, message, from_addr=self.email, login=self._smtp_login_callable())
        except errors.MailSyncError as exc:
            self.sudo().write({"smtp_state": "error", "smtp_error": str(exc)})
            return False, str(exc)
        self.sudo().write({"smtp_state": "ok", "smtp_error": False})
        return True, _("The test email was sent to %s through %s.", email_to, self.smtp_host)

    # ------------------------------------------------------------------
    # Sign-in with a provider (the OAuth bridges: onpipeline_mail_google, onpipeline_mail_microsoft)
    # ------------------------------------------------------------------

    def _check_may_sign_in(self):
        """A personal mailbox: its owner only (not even an administrator); a team mailbox: a CRM admin."""
        self.ensure_one()
        user = self.env.user
        if self.mailbox_type == "personal":
            allowed = self.user_id == user
        else:
            allowed = user.has_group("sales_team.group_sale_manager")
        if not allowed:
            raise AccessError(_("Only the owner of a personal mailbox, or a CRM administrator for a team mailbox, "
                                "can sign it in."))
        self.check_access("write")

    def _after_oauth_sign_in(self, note):
        """Connected again: the check lists the folders, the error backoff is forgotten, the owner's
        warning is closed and the sync starts at once (from where it stood: nothing is read twice)."""
        self.ensure_one()
        self.sudo().write({"sync_error_count": 0, "next_sync_date": False, "smtp_state": "untested",
                           "smtp_error": False})
        self._check_imap_connection()
        if self.state == "connected":
            self.sudo().activity_feedback(["mail.mail_activity_data_warning"], feedback=note)
            self.sudo().message_post(body=note)
            self._trigger_sync()
