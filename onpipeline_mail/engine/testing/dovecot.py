"""Start a private Dovecot IMAP server for tests, demos and benchmarks.

The server runs from Debian's ``dovecot-imapd`` binaries with a configuration
written here: it listens on 127.0.0.1 on free ports (plain/STARTTLS and
implicit TLS), keeps its mail under a temporary folder, and accepts users
added at run time with :meth:`Dovecot.add_user`.
"""

import concurrent.futures
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .certs import make_test_certificates

DOVECOT_BINARIES = ("/usr/sbin/dovecot", "dovecot")

CONFIG_TEMPLATE = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = onpipeline-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 0
mail_location = maildir:~/Maildir:LAYOUT=fs
mail_max_userip_connections = 200
{capability_line}
passdb {{
  driver = passwd-file
  # One file per user: a new file is read at first use, whereas an appended
  # shared file may be served stale for up to a second.
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
  process_min_avail = 1
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
{prefix_line}
{special_use}
}}
"""

#: Appended to the configuration by ``Dovecot(oauth2_introspection_url=…)``: Debian's Dovecot 2.3 oauth2
#: passdb asks the introspection URL about every token (POST ``token=…``, no cache) and accepts it when
#: the answer says ``"active": true`` and its ``email`` is the login.
OAUTH2_PASSDB_TEMPLATE = """\
auth_mechanisms = plain login xoauth2 oauthbearer
# Refused tokens are part of the tests: no delay after each (the auth penalty per IP remains).
auth_failure_delay = 0
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {args}
}}
"""
OAUTH2_CONFIG_TEMPLATE = """\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = email
active_attribute = active
active_value = true
"""

#: Folder names that carry a SPECIAL-USE flag on this server, whoever the user.
#: "Sent Items", "Gesendete Objekte" and friends deliberately have none, so
#: that the name-based fallback is exercised as on Exchange.
SPECIAL_USE = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
    "[Gmail]/Sent Mail": "\\Sent",
    "[Gmail]/Drafts": "\\Drafts",
    "[Gmail]/Trash": "\\Trash",
    "[Gmail]/Spam": "\\Junk",
    "[Gmail]/All Mail": "\\All",
    "[Gmail]/Starred": "\\Flagged",
}


def _die_with_parent():
    # Linux: the server gets SIGTERM when the test process dies, even when it is
    # killed and its atexit/fixture clean-up never runs.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_dovecot():
    for candidate in DOVECOT_BINARIES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


class Dovecot:
    """One running Dovecot instance. Use as a context manager or call start/stop."""

    def __init__(self, root=None, capabilities=None, namespace_prefix="", oauth2_introspection_url=None):
        self.root = root or tempfile.mkdtemp(prefix="onpipeline-dovecot-")
        self.port = free_port()
        self.tls_port = free_port()
        #: Override of the advertised capabilities, e.g. to hide CONDSTORE.
        self.capabilities = capabilities
        #: Personal namespace prefix, e.g. "INBOX/" as cPanel and Courier servers have ("INBOX.").
        self.namespace_prefix = namespace_prefix
        #: Also accept OAuth2 bearer tokens (XOAUTH2, OAUTHBEARER), checked at this RFC 7662 introspection
        #: URL (see :mod:`.oauth_server`); passwords keep working.
        self.oauth2_introspection_url = oauth2_introspection_url
        self.process = None
        self._users = {}
        self._launcher = None

    @property
    def ca_file(self):
        return os.path.join(self.root, "certs", "ca.pem")

    def start(self):
        binary = find_dovecot()
        if not binary:
            raise RuntimeError("Dovecot is not installed: apt-get install dovecot-imapd")
        for sub in ("run", "state", "home", "users"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        certs = make_test_certificates(os.path.join(self.root, "certs"))
        if os.geteuid() == 0:
            # Dovecot refuses uid 0 for mail: store it as the dovecot user.
            internal_user, login_user = "dovecot", "dovenull"
            mail_user = pwd.getpwnam("dovecot")
            os.chown(os.path.join(self.root, "home"), mail_user.pw_uid, mail_user.pw_gid)
        else:
            internal_user = login_user = pwd.getpwuid(os.geteuid()).pw_name
            mail_user = pwd.getpwuid(os.geteuid())
        special_use = "\n".join('  mailbox "%s" {\n    special_use = %s\n  }' % item for item in SPECIAL_USE.items())
        config = CONFIG_TEMPLATE.format(
            root=self.root, port=self.port, tls_port=self.tls_port, cert=certs["server.pem"], key=certs["server.key"],
            internal_user=internal_user, login_user=login_user, uid=mail_user.pw_uid, gid=mail_user.pw_gid,
            special_use=special_use,
            capability_line="imap_capability = %s" % self.capabilities if self.capabilities else "",
            prefix_line="  prefix = %s" % self.namespace_prefix if self.namespace_prefix else "",
        )
        config += self._oauth2_config()
        self.config_path = os.path.join(self.root, "dovecot.conf")
        with open(self.config_path, "w") as handle:
            handle.write(config)
        # Dovecot's login processes run as dovenull and must read the certificates.
        os.chmod(self.root, 0o755)
        self.process = subprocess.Popen([binary, "-F", "-c", self.config_path], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self._wait_listening()
        return self

    def _oauth2_config(self):
        """The oauth2 passdb, after the password one: a later ``auth_mechanisms`` line replaces the first."""
        if not self.oauth2_introspection_url:
            return ""
        args = os.path.join(self.root, "dovecot-oauth2.conf.ext")
        with open(args, "w") as handle:
            handle.write(OAUTH2_CONFIG_TEMPLATE.format(introspection_url=self.oauth2_introspection_url))
        return OAUTH2_PASSDB_TEMPLATE.format(args=args)

    def _wait_listening(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("Dovecot exited: %s\n%s" % (self.process.stderr.read().decode(), self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("Dovecot did not start listening on %s:\n%s" % (self.port, self.log()))

    def _wait_closed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    time.sleep(0.05)
            except OSError:
                return

    def log(self):
        path = os.path.join(self.root, "dovecot.log")
        return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""

    def add_user(self, username, password):
        """Create an account that can log in at once."""
        if username in self._users:
            raise ValueError("user %s exists" % username)
        if ":" in username or ":" in password or "/" in username or "\n" in username + password:
            raise ValueError("no ':', '/' or newline in test credentials")
        self._users[username] = password
        with open(os.path.join(self.root, "users", username), "w", encoding="utf-8") as handle:
            handle.write("%s:{PLAIN}%s\n" % (username, password))

    def maildir(self, username, folder="INBOX"):
        """Where ``folder`` of ``username`` is on disk: ``mail_location = maildir:~/Maildir:LAYOUT=fs``
        puts INBOX at the root of ~/Maildir and every other folder below it by its path (``a/b``)."""
        if self.namespace_prefix and folder.startswith(self.namespace_prefix):
            folder = folder[len(self.namespace_prefix):]
        root = os.path.join(self.root, "home", username, "Maildir")
        return root if folder.upper() == "INBOX" else os.path.join(root, *folder.split("/"))

    def message_file(self, username, message_id, folder="INBOX"):
        """The file (in cur/ or new/) of the message whose source holds ``message_id``."""
        found = []
        for sub in ("cur", "new"):
            directory = os.path.join(self.maildir(username, folder), sub)
            for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
                with open(os.path.join(directory, name), "rb") as handle:
                    if message_id.encode() in handle.read():
                        found.append(os.path.join(directory, name))
        if len(found) != 1:
            raise LookupError("%d files hold %s in %s of %s" % (len(found), message_id, folder, username))
        return found[0]

    def damage_message(self, username, message_id, folder="INBOX", keep=100):
        """Cut the message's file to ``keep`` bytes, below the size Dovecot recorded for it: Dovecot then
        drops the connection every time the message's body is fetched (its other messages still work)."""
        with open(self.message_file(username, message_id, folder), "r+b") as handle:
            handle.truncate(keep)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._launcher is not None:
            self._launcher.shutdown(wait=False)
        # The master's children exit with it; give them a moment before removal.
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self):
        """Stop and start the server on the same ports, keeping its mail."""
        self.process.terminate()
        self.process.wait(10)
        # The old login processes may hold the listening sockets a moment longer: a new master
        # started meanwhile could not bind them (and a greeting from an old one is no proof).
        self._wait_closed()
        # PR_SET_PDEATHSIG fires when the *thread* that started the server ends: a restart called from a
        # short-lived thread (a proxy's cut) starts it from a thread that lives as long as this object.
        if self._launcher is None:
            self._launcher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dovecot-launcher")
        self.process = self._launcher.submit(
            subprocess.Popen, [find_dovecot(), "-F", "-c", self.config_path], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_die_with_parent).result()
        self._wait_listening()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
