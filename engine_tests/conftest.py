"""Engine tier fixtures: one Dovecot and one SMTP server per test run, a fresh account per test.

``import onpipeline_mail`` would run the addon's ``__init__`` and import
Odoo, so the addon folder is registered here as a bare package: the engine
only uses relative imports and never needs Odoo.
"""

import itertools
import os
import sys
import types

import pytest

ADDON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "onpipeline_mail")
if "onpipeline_mail" not in sys.modules:
    package = types.ModuleType("onpipeline_mail")
    package.__path__ = [ADDON_DIR]
    sys.modules["onpipeline_mail"] = package

from onpipeline_mail.engine.connection import ServerSettings  # noqa: E402
from onpipeline_mail.engine.testing.accounts import provision  # noqa: E402
from onpipeline_mail.engine.testing.dovecot import Dovecot  # noqa: E402
from onpipeline_mail.engine.testing.smtp_server import SmtpServer  # noqa: E402

_account_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot():
    with Dovecot() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_server(dovecot):
    with SmtpServer(os.path.join(dovecot.root, "certs")) as server:
        yield server


def new_account(dovecot, prefix="user"):
    """A fresh account on the shared Dovecot; returns implicit-TLS settings for it."""
    username = "%s%d@example.test" % (prefix, next(_account_numbers))
    password = "pw-%s" % username
    dovecot.add_user(username, password)
    return ServerSettings("127.0.0.1", dovecot.tls_port, "ssl", username, password, ca_file=dovecot.ca_file)


@pytest.fixture
def mailbox(dovecot):
    """Settings of a fresh, empty account (only INBOX)."""
    return new_account(dovecot)


@pytest.fixture(params=["plain", "gmail", "exchange"])
def laid_out_mailbox(request, dovecot):
    """A fresh account laid out like a plain server, Gmail or Exchange; yields (layout, settings)."""
    settings = new_account(dovecot, prefix=request.param)
    provision(settings, request.param)
    return request.param, settings


#: What Dovecot 2.3 advertises after login, minus CONDSTORE and QRESYNC.
CAPABILITIES_WITHOUT_CONDSTORE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+"
)


@pytest.fixture(scope="session")
def dovecot_without_condstore():
    """A second Dovecot that does not advertise CONDSTORE/QRESYNC, for the fallback paths."""
    with Dovecot(capabilities=CAPABILITIES_WITHOUT_CONDSTORE) as server:
        yield server


@pytest.fixture
def mailbox_without_condstore(dovecot_without_condstore):
    """Settings of a fresh, empty account on the Dovecot without CONDSTORE."""
    return new_account(dovecot_without_condstore, prefix="nocondstore")


@pytest.fixture
def plain_mailbox(dovecot):
    """Settings of a fresh account over unencrypted IMAP (readable byte counts for the cutting proxy)."""
    settings = new_account(dovecot, prefix="plain")
    return ServerSettings(settings.host, dovecot.port, "none", settings.username, settings.password)
