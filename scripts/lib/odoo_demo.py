"""Drive the addon inside a real Odoo 18 database, as a user would through the screens.

Run by scripts/demo-odoo with Odoo's python, after the addon is installed.
"""

import argparse
import contextlib
import datetime
import logging
import os
import sys
import time


def load_odoo(odoo_dir, addons_path, db_port, data_dir):
    """Import Odoo from ``odoo_dir`` and point it at the throwaway cluster; return the ``odoo`` package."""
    sys.path.insert(0, odoo_dir)
    import odoo

    odoo.tools.config.parse_config([
        "-c", os.devnull, "--db_host", "127.0.0.1", "--db_port", db_port, "--db_user", "odoo",
        "--addons-path", addons_path, "--data-dir", data_dir, "--log-level", "warn",
    ])
    logging.getLogger("imapclient").setLevel(logging.WARNING)
    return odoo


@contextlib.contextmanager
def mail_servers(work, address, password, layout):
    """Dovecot and SMTP servers on 127.0.0.1 with one account, its folders laid out as ``layout``
    (engine/testing/accounts.py); yields ``(dovecot, smtp, account)``, ``account`` being the
    engine's ServerSettings for it. Both servers stop on exit. Needs load_odoo() first."""
    from odoo.addons.onpipeline_mail.engine.connection import ServerSettings
    from odoo.addons.onpipeline_mail.engine.testing import accounts
    from odoo.addons.onpipeline_mail.engine.testing.dovecot import Dovecot
    from odoo.addons.onpipeline_mail.engine.testing.smtp_server import SmtpServer

    with Dovecot(root=os.path.join(work, "dovecot")) as dovecot, \
            SmtpServer(os.path.join(dovecot.root, "certs")) as smtp:
        dovecot.add_user(address, password)
        smtp.add_user(address, password)
        account = ServerSettings("127.0.0.1", dovecot.tls_port, "ssl", address, password, ca_file=dovecot.ca_file)
        accounts.provision(account, layout)
        yield dovecot, smtp, account


def mailbox_server_values(dovecot, smtp, password):
    """The onpipeline.mailbox values that connect it to the servers of mail_servers()."""
    return {
        "imap_host": "127.0.0.1", "imap_port": dovecot.tls_port, "imap_security": "ssl",
        "imap_password_input": password, "smtp_host": "127.0.0.1", "smtp_port": smtp.tls_port,
        "smtp_security": "ssl",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--odoo-dir", required=True)
    parser.add_argument("--addons-path", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--db-port", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--messages", type=int, default=120)
    args = parser.parse_args()

    odoo = load_odoo(args.odoo_dir, args.addons_path, args.db_port, args.data_dir)
    from odoo import SUPERUSER_ID, api
    from odoo.addons.onpipeline_mail.engine.testing import mailgen

    address, password = "jane@example.test", "demo-password"
    with mail_servers(args.work, address, password, "gmail") as (dovecot, smtp, account):
        now = datetime.datetime.now(datetime.timezone.utc)
        sample = mailgen.generate_messages(args.messages, seed=7, start=now - datetime.timedelta(days=80), end=now,
                                           mailbox=("Jane Seller", address))
        received = [message for message in sample if message.sender != address]
        sent = [message for message in sample if message.sender == address]
        mailgen.append_messages(account, "INBOX", received)
        mailgen.append_messages(account, "[Gmail]/Sent Mail", sent)
        print("mail servers: Dovecot on 127.0.0.1:%s (TLS), SMTP on 127.0.0.1:%s (TLS); %d messages in INBOX, "
              "%d in [Gmail]/Sent Mail, over the last 80 days" % (dovecot.tls_port, smtp.tls_port, len(received),
                                                                  len(sent)))

        registry = odoo.modules.registry.Registry(args.db)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            # Trust the demo servers' private CA, as Settings > CRM > Mailboxes allows.
            with open(dovecot.ca_file) as ca_file:
                env["ir.config_parameter"].set_param("onpipeline_mail.extra_ca_pem", ca_file.read())
            user = env.ref("base.user_admin")
            user.partner_id.email = address
            Mailbox = env["onpipeline.mailbox"].with_user(user)
            draft = Mailbox.new({"email": "jane@gmail.com"})
            print("\nprovider preset for jane@gmail.com: %s -> IMAP %s:%s %s, SMTP %s:%s %s" % (
                draft.provider_id.name, draft.imap_host, draft.imap_port, draft.imap_security, draft.smtp_host,
                draft.smtp_port, draft.smtp_security))
            print("  note: %s" % draft.provider_note)

            wrong = Mailbox.create({"email": address, "imap_host": "127.0.0.1", "imap_port": dovecot.tls_port,
                                    "imap_security": "ssl", "imap_password_input": "typo"})
            print("\nsaved with a wrong password -> %s: %s" % (wrong.state, wrong.last_error))
            wrong.unlink()

            started = time.monotonic()
            mailbox = Mailbox.create({
                "email": address, **mailbox_server_values(dovecot, smtp, password), "sync_window": "3m",
            })
            print("saved with the right password -> %s in %.2f s (capabilities: %s...)" % (
                mailbox.state, time.monotonic() - started, mailbox.capabilities[:60]))
            print("\nfolders (selected = synced):")
            for folder in mailbox.folder_ids.sorted("name"):
                print("  [%s] %-22s %-8s %s" % ("x" if folder.is_selected else " ", folder.name, folder.role,
                                               folder.skip_reason or ""))
            cr.commit()

            started = time.monotonic()
            mailbox.sudo()._sync(commit=cr.commit)
            elapsed = time.monotonic() - started
            print("\nfirst sync: %d emails stored in %.2f s (%d in the 3-month window on the server)" % (
                mailbox.message_count, elapsed, sum(mailbox.folder_ids.mapped("window_total"))))
            for message in env["onpipeline.mail.message"].search([("mailbox_id", "=", mailbox.id)], limit=5):
                print("  %s  %-8s %-38s %s" % (message.date, message.direction, (message.email_from or "")[:38],
                                               message.subject))
            started = time.monotonic()
            before = mailbox.message_count
            mailbox.sudo()._sync(commit=cr.commit)
            mailbox.invalidate_recordset()
            print("second sync: %d new emails in %.2f s" % (mailbox.message_count - before,
                                                             time.monotonic() - started))

            wizard = env["onpipeline.mailbox.test.email"].with_user(user).with_context(
                default_mailbox_id=mailbox.id).create({})
            result = wizard.action_send()["params"]
            arrived = smtp.messages_to(wizard.email_to)
            print("\nsend test email to %s -> %s: %s (%d message received by the SMTP server)" % (
                wizard.email_to, result["type"], result["message"], len(arrived)))
            cr.commit()
            ok = mailbox.state == "connected" and mailbox.message_count > 0 and result["type"] == "success" and arrived
    print("\nodoo demo: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
