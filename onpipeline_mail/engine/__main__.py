"""Command line of the engine: presets, IMAP login check, folders, SMTP test, demo.

Run it as a file, from anywhere, with a Python that has imapclient::

    python onpipeline_mail/engine/__main__.py --help
    python onpipeline_mail/engine/__main__.py check --user me@example.com --password-env MAIL_PASSWORD

``python -m onpipeline_mail.engine`` works only where Odoo is importable:
``-m`` first imports the parent package ``onpipeline_mail``, whose
``__init__`` imports the Odoo models. Run as a file, this module registers
``onpipeline_mail`` as a bare package (``__path__`` = the addon folder, as
``engine_tests/conftest.py`` does) and sets its own ``__package__`` (PEP 366),
so the engine's relative imports work and Odoo is never imported.

Passwords are never taken from the command line (they would show in ``ps``
and the shell history): ``--password-env VAR`` names an environment variable,
otherwise the password is asked for in the terminal. They are never printed.

Exit codes: 0 done, 1 nothing found (``presets`` for an unknown domain),
2 the server or the settings failed (the message says why) or bad usage.
"""

import os
import sys
import types

if __name__ == "__main__" and not __package__:
    _ENGINE_DIR = os.path.dirname(os.path.abspath(__file__))
    # Python put the engine folder first on sys.path; its modules are only
    # meant to be imported as onpipeline_mail.engine.*.
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or os.curdir) != _ENGINE_DIR]
    if "onpipeline_mail" not in sys.modules:
        _package = types.ModuleType("onpipeline_mail")
        _package.__path__ = [os.path.dirname(_ENGINE_DIR)]
        sys.modules["onpipeline_mail"] = _package
    import onpipeline_mail.engine  # noqa: E402, F401

    __package__ = "onpipeline_mail.engine"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import email.message  # noqa: E402
import email.utils  # noqa: E402
import getpass  # noqa: E402
import secrets  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402

from . import errors, presets  # noqa: E402
from .connection import PLAIN, SECURITIES, SSL, STARTTLS, ServerSettings, check_imap, imap_session  # noqa: E402
from .folders import SENT, find_role, list_folders, suggested_folders  # noqa: E402
from .smtp import build_test_message, send_message  # noqa: E402

PROG = "python onpipeline_mail/engine/__main__.py"

DEFAULT_PORTS = {
    "imap": {SSL: 993, STARTTLS: 143, PLAIN: 143},
    "smtp": {SSL: 465, STARTTLS: 587, PLAIN: 25},
}

EXIT_OK, EXIT_NOT_FOUND, EXIT_FAILED = 0, 1, 2


class CliError(Exception):
    """Wrong or missing command line input; the message says what to pass."""


# ---------------------------------------------------------------------------
# Settings from the command line


def read_password(args):
    """The password from ``--password-env`` or the terminal; never from argv."""
    if not args.user:
        return ""
    if args.password_env:
        if args.password_env not in os.environ:
            # Not echoed: a password passed here by mistake must not end up in a terminal or a log.
            raise CliError("The environment variable named by --password-env is not set (give the variable's "
                           "name, not the password).")
        return os.environ[args.password_env]
    if sys.stdin.isatty():
        return getpass.getpass("Password for %s: " % args.user)
    raise CliError("No password: pass --password-env VAR, VAR being an environment variable that holds it "
                   "(or run in a terminal to be asked).")


def server_settings(args, protocol):
    """ServerSettings for ``protocol`` ("imap" or "smtp"), completed from the user's provider preset."""
    preset = presets.preset_for_email(args.user) if args.user else None
    host, port, security = args.host, args.port, args.security
    if not host:
        if not preset:
            raise CliError("No --host given, and no provider preset matches %r: pass --host (and --port, --security)."
                           % (args.user or ""))
        host = getattr(preset, protocol + "_host")
        port = port or getattr(preset, protocol + "_port")
        security = security or getattr(preset, protocol + "_security")
    security = security or SSL
    port = port or DEFAULT_PORTS[protocol][security]
    note = preset.note if preset and getattr(preset, protocol + "_host") == host else ""
    return ServerSettings(
        host, port, security, username=args.user or "", password=read_password(args),
        verify_tls=not args.insecure, ca_file=args.ca_file or "",
        connect_timeout=args.timeout, read_timeout=max(args.timeout, 60), provider_note=note,
    )


def describe(settings):
    return "%s:%s (%s%s)" % (settings.host, settings.port, settings.security,
                             ", certificate not verified" if not settings.verify_tls else "")


# ---------------------------------------------------------------------------
# Output


def display_width(text):
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def format_table(headers, rows):
    """Left-aligned columns that stay aligned with wide (CJK) characters; the last column is not padded."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(display_width(row[col]) for row in [headers, *rows]) for col in range(len(headers))]

    def line(cells):
        padded = [cell + " " * (widths[col] - display_width(cell)) for col, cell in enumerate(cells[:-1])]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])


def folder_rows(folders, counts=None):
    suggested = {folder.name for folder in suggested_folders(folders)}
    rows = []
    # INBOX first, then by name: the order a mail client shows.
    for folder in sorted(folders, key=lambda folder: (folder.name.upper() != "INBOX", folder.name.lower())):
        row = [folder.name, folder.role, "yes" if folder.is_selectable else "no",
               "yes" if folder.name in suggested else "", folder.skip_reason]
        if counts is not None:
            row.insert(4, counts.get(folder.name, ""))
        rows.append(row)
    headers = ["FOLDER", "ROLE", "SELECTABLE", "SUGGESTED", "SKIP REASON"]
    if counts is not None:
        headers.insert(4, "MESSAGES")
    return headers, rows


def folder_summary(folders):
    return "%d folders, %d selectable, suggested for sync: %s" % (
        len(folders), sum(folder.is_selectable for folder in folders),
        ", ".join(folder.name for folder in suggested_folders(folders)) or "none")


# ---------------------------------------------------------------------------
# Commands


def short_domains(domains, shown=3):
    if not domains:
        return "(your own domain)"
    return " ".join(domains[:shown]) + (" +%d" % (len(domains) - shown) if len(domains) > shown else "")


def cmd_presets(args):
    if not args.email:
        rows = [(p.name, short_domains(p.domains), "%s:%s %s" % (p.imap_host, p.imap_port, p.imap_security),
                 "%s:%s %s" % (p.smtp_host, p.smtp_port, p.smtp_security)) for p in presets.load_presets()]
        print(format_table(["PROVIDER", "DOMAINS", "IMAP", "SMTP"], rows))
        return EXIT_OK
    preset = presets.preset_for_email(args.email)
    if preset is None:
        domain = presets.email_domain(args.email)
        print("No preset for %s: choose \"Other\" and enter the IMAP and SMTP servers of your provider."
              % (domain or repr(args.email)))
        return EXIT_NOT_FOUND
    print("Provider: %s" % preset.name)
    print("IMAP:     %s:%s %s" % (preset.imap_host, preset.imap_port, preset.imap_security))
    print("SMTP:     %s:%s %s" % (preset.smtp_host, preset.smtp_port, preset.smtp_security))
    print("Note:     %s" % preset.note)
    return EXIT_OK


def cmd_check(args):
    settings = server_settings(args, "imap")
    capabilities = check_imap(settings)
    print("IMAP login OK: %s at %s" % (settings.username, describe(settings)))
    print("Capabilities: %s" % " ".join(capabilities))
    return EXIT_OK


def cmd_folders(args):
    settings = server_settings(args, "imap")
    with imap_session(settings) as client:
        folders = list_folders(client)
    headers, rows = folder_rows(folders)
    print(format_table(headers, rows))
    print(folder_summary(folders))
    return EXIT_OK


def cmd_send_test(args):
    settings = server_settings(args, "smtp")
    from_addr = args.from_addr or settings.username
    if not from_addr:
        raise CliError("No sender: pass --from (or --user, which is used as the sender).")
    message = build_test_message(from_addr, args.to)
    send_message(settings, message)
    print("Test email sent through %s: %s -> %s, Message-ID %s"
          % (describe(settings), from_addr, args.to, message["Message-ID"]))
    return EXIT_OK


# ---------------------------------------------------------------------------
# Demo: real servers, a Gmail-like account, the whole path


SAMPLES = (
    # (folder role in the layout, from, to, subject, body, days ago)
    ("inbox", "Alice Martin <alice@acme.example>", None, "Quote request for 40 licences",
     "Hello,\n\ncould you send us a quote for 40 licences?\n\nAlice\n", 2),
    ("inbox", "Bruno Keller <bruno@keller.example>", None, "Re: Meeting next Tuesday",
     "Tuesday 10:00 works for me. Bruno\n", 1),
    ("inbox", "Chloé Dubois <chloe@societe-generale.example>", None, "Contrat signé ✔",
     "Bonjour,\n\nvoici le contrat signé.\n\nChloé\n", 0),
    ("sent", None, "Alice Martin <alice@acme.example>", "Re: Quote request for 40 licences",
     "Hi Alice,\n\nthe quote is attached.\n", 1),
)


def sample_message(from_addr, to_addr, subject, body, when):
    message = email.message.EmailMessage()
    message["From"] = from_addr
    message["To"] = to_addr
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(when)
    message["Message-ID"] = email.utils.make_msgid("onpipeline-demo", domain="example.test")
    message.set_content(body)
    return message


def step(number, title):
    print("\n[%d] %s" % (number, title), flush=True)


def cmd_demo(args):
    # Imported here: the testing package needs aiosmtpd and Dovecot, the other commands do not.
    from .testing.accounts import LAYOUTS, provision
    from .testing.dovecot import Dovecot, find_dovecot
    from .testing.smtp_server import SmtpServer

    if not find_dovecot():
        raise CliError("Dovecot is not installed: apt-get install dovecot-imapd (or run scripts/demo as root).")
    started = time.monotonic()
    address = "demo@example.test"
    password = secrets.token_urlsafe(12)
    with contextlib.ExitStack() as stack:
        step(1, "Starting a private Dovecot IMAP server and an SMTP server")
        dovecot = stack.enter_context(Dovecot())
        smtp_server = stack.enter_context(SmtpServer(os.path.join(dovecot.root, "certs")))
        print("IMAP: 127.0.0.1:%d (STARTTLS) and :%d (SSL/TLS)" % (dovecot.port, dovecot.tls_port))
        print("SMTP: 127.0.0.1:%d (STARTTLS) and :%d (SSL/TLS)" % (smtp_server.port, smtp_server.tls_port))

        step(2, "Creating %s, laid out like %s" % (address, "Gmail" if args.layout == "gmail" else args.layout))
        dovecot.add_user(address, password)
        smtp_server.add_user(address, password)
        imap = ServerSettings("127.0.0.1", dovecot.tls_port, SSL, address, password, ca_file=dovecot.ca_file)
        provision(imap, args.layout)
        print("Created: %s" % ", ".join(LAYOUTS[args.layout]))

        step(3, "Checking the IMAP login")
        capabilities = check_imap(imap)
        print("IMAP login OK at %s" % describe(imap))
        print("Capabilities: %s" % " ".join(capabilities))

        step(4, "Listing and classifying the folders")
        with imap_session(imap) as client:
            folders = list_folders(client)
            sent = find_role(folders, SENT)
            now = datetime.datetime.now(datetime.timezone.utc)
            appended = 0
            for role, from_addr, to_addr, subject, body, days in SAMPLES:
                folder = "INBOX" if role == "inbox" else sent.name if sent else None
                if folder is None:
                    continue
                when = now - datetime.timedelta(days=days)
                message = sample_message(from_addr or address, to_addr or address, subject, body, when)
                client.append(folder, message.as_bytes(policy=message.policy.clone(linesep="\r\n")),
                              flags=[b"\\Seen"] if role == "sent" else [], msg_time=when)
                appended += 1
            counts = {}
            for folder in folders:
                if folder.is_selectable:
                    counts[folder.name] = client.folder_status(folder.name, [b"MESSAGES"])[b"MESSAGES"]
        print("Appended %d sample messages (INBOX and %s)." % (appended, sent.name if sent else "no sent folder"))
        headers, rows = folder_rows(folders, counts)
        print(format_table(headers, rows))
        print(folder_summary(folders))

        step(5, "Sending a test email through SMTP")
        smtp = ServerSettings("127.0.0.1", smtp_server.port, STARTTLS, address, password, ca_file=smtp_server.ca_file)
        message = build_test_message(address, address, "the demo mailbox")
        send_message(smtp, message)
        print("Sent through %s: %s" % (describe(smtp), message["Subject"]))
        received = [m for m in smtp_server.messages_to(address) if message["Message-ID"].encode() in m.data]
        if not received:
            raise errors.SendError("The SMTP server did not receive the test email.")
        print("The SMTP server accepted it: %d bytes from %s, authenticated as %s."
              % (len(received[0].data), received[0].mail_from, received[0].login))
        # Deliver it as the provider would, then find it over IMAP.
        with imap_session(imap) as client:
            client.append("INBOX", received[0].data)
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["HEADER", "Message-ID", message["Message-ID"]])
        if not uids:
            raise errors.MessageError("The test email is not in INBOX after delivery.")
        print("Delivered to INBOX and found over IMAP: UID %s, Message-ID %s" % (uids[-1], message["Message-ID"]))

        step(6, "Stopping the servers")
    print("Servers stopped. Demo finished in %.1f s." % (time.monotonic() - started))
    return EXIT_OK


# ---------------------------------------------------------------------------
# Parser


def add_server_options(parser, protocol):
    names = ["--host"] + (["--smtp-host"] if protocol == "smtp" else [])
    parser.add_argument(*names, dest="host", help="server host; default: the preset of --user's domain")
    names = ["--port"] + (["--smtp-port"] if protocol == "smtp" else [])
    parser.add_argument(*names, dest="port", type=int,
                        help="default: the preset's, else %s" % "/".join(
                            "%d for %s" % (port, sec) for sec, port in DEFAULT_PORTS[protocol].items()))
    parser.add_argument("--security", choices=SECURITIES, help="ssl (implicit TLS), starttls or none; default ssl")
    parser.add_argument("--user", help="login, usually the email address")
    parser.add_argument("--password-env", metavar="VAR",
                        help="name of the environment variable holding the password (else asked in the terminal)")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the TLS certificate (self-signed server)")
    parser.add_argument("--ca-file", help="extra CA bundle to trust (a private CA)")
    parser.add_argument("--timeout", type=float, default=15, help="connect timeout in seconds (default 15)")


def build_parser():
    # No abbreviations: "--password SECRET" must be refused, not read as "--password-env".
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add_command(name, help_text):
        return commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)

    sub = add_command("presets", "show the provider preset for an email address (all without one)")
    sub.add_argument("email", nargs="?")
    sub.set_defaults(func=cmd_presets)

    sub = add_command("check", "log in over IMAP and print the capabilities")
    add_server_options(sub, "imap")
    sub.set_defaults(func=cmd_check)

    sub = add_command("folders", "list the IMAP folders and how they would be synced")
    add_server_options(sub, "imap")
    sub.set_defaults(func=cmd_folders)

    sub = add_command("send-test", "send a test email through an SMTP server")
    add_server_options(sub, "smtp")
    sub.add_argument("--from", dest="from_addr", help="sender address (default: --user)")
    sub.add_argument("--to", required=True, help="recipient address")
    sub.set_defaults(func=cmd_send_test)

    sub = add_command("demo", "run the whole path against private Dovecot and SMTP servers")
    sub.add_argument("--layout", choices=("gmail", "plain", "exchange"), default="gmail",
                     help="folder layout of the demo account (default gmail)")
    sub.set_defaults(func=cmd_demo)

    sub = add_command("parse-worker", "(used by the sync) parse the batches sent on stdin, answer on stdout")
    sub.add_argument("--html-filter", help="JSON of a parse_worker.HtmlFilter applied to HTML bodies")
    sub.set_defaults(func=cmd_parse_worker)
    return parser


def cmd_parse_worker(args):
    from .parse_worker import HtmlFilter, serve_stdio

    serve_stdio(HtmlFilter.from_json(args.html_filter) if args.html_filter else None)
    return EXIT_OK


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would echo them; one of them may be a password typed where it does not belong.
        shown = [arg if arg.startswith("-") else "<value hidden>" for arg in unknown]
        parser.error("unrecognized arguments: %s (passwords are read with --password-env or asked for)"
                     % " ".join(shown))
    try:
        return args.func(args)
    except CliError as exc:
        parser.exit(EXIT_FAILED, "%s: error: %s\n" % (args.command, exc))
    except errors.MailSyncError as exc:
        print("%s failed (%s): %s" % (args.command, exc.reason, exc), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into head or less, closed early: not an error, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
