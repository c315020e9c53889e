import datetime

from odoo import api, fields, models

from .fields import BigInteger

#: Retry delays after the 1st, 2nd... failure; the last one repeats.
RETRY_DELAYS = (datetime.timedelta(minutes=5), datetime.timedelta(minutes=30), datetime.timedelta(hours=2),
                datetime.timedelta(hours=12), datetime.timedelta(days=1))


class OnpipelineMailSyncFailure(models.Model):
    """A server message that could not be fetched or stored: kept until it imports.

    Nothing is skipped silently: the sync records the folder, UIDVALIDITY and
    UID with the error, retries it with growing delays and shows it on the
    mailbox, where the owner can also retry it at once.
    """

    _name = "onpipeline.mail.sync.failure"
    _description = "Message That Failed to Sync"
    _order = "state, last_attempt_date desc"

    mailbox_id = fields.Many2one(related="folder_id.mailbox_id", store=True, index=True)
    company_id = fields.Many2one(related="folder_id.company_id", store=True)
    folder_id = fields.Many2one("onpipeline.mailbox.folder", required=True, index=True, ondelete="cascade",
                                readonly=True)
    uidvalidity = BigInteger("UIDVALIDITY", required=True, readonly=True)
    uid = BigInteger("UID", required=True, readonly=True)
    error = fields.Text(readonly=True)
    attempt_count = fields.Integer("Attempts", default=1, readonly=True)
    last_attempt_date = fields.Datetime(default=fields.Datetime.now, readonly=True)
    next_retry_date = fields.Datetime(readonly=True, index=True)
    state = fields.Selection([("pending", "To retry"), ("resolved", "Imported"), ("gone", "Gone from server")],
                             default="pending",
                             required=True, readonly=True, index=True)

    _sql_constraints = [
        ("folder_uid_unique", "unique(folder_id, uidvalidity, uid)", "A failure is recorded once per message."),
    ]

    @api.model
    def _record(self, folder, uidvalidity, failures):
        """Record or update ``failures`` [(uid, error text)] and schedule their retry."""
        if not failures:
            return
        now = fields.Datetime.now()
        uids = [uid for uid, _error in failures]
        known = {failure.uid: failure for failure in self.search([
            ("folder_id", "=", folder.id), ("uidvalidity", "=", uidvalidity), ("uid", "in", uids)])}
        to_create = []
        for uid, error in failures:
            failure = known.get(uid)
            attempts = failure.attempt_count + 1 if failure else 1
            values = {"error": error, "attempt_count": attempts, "last_attempt_date": now, "state": "pending",
                      "next_retry_date": now + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]}
            if failure:
                failure.write(values)
            else:
                to_create.append(dict(values, folder_id=folder.id, uidvalidity=uidvalidity, uid=uid))
        self.create(to_create)

    @api.model
    def _resolve(self, folder, uidvalidity, uids, state="resolved"):
        """Close the failures of ``uids``: imported now, or ``gone`` (expunged from the server)."""
        if uids:
            self.search([("folder_id", "=", folder.id), ("uidvalidity", "=", uidvalidity), ("uid", "in", list(uids)),
                         ("state", "=", "pending")]).write({"state": state, "next_retry_date": False})

    def action_retry(self):
        """Retry now (button): the next sync of the mailbox picks these first."""
        self.check_access("read")
        self.sudo().write({"next_retry_date": fields.Datetime.now()})
        return self.mailbox_id.action_sync_now()
