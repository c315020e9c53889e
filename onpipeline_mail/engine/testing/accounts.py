"""Mail accounts laid out like the providers users connect.

``provision(settings, layout)`` creates the folders of one layout on a fresh
Dovecot account over IMAP, the way a real server would present them:

* ``plain``: a standard server with SPECIAL-USE flags;
* ``gmail``: the ``[Gmail]/...`` tree under a ``\\Noselect`` container;
* ``exchange``: groupware folders (Calendar, Contacts, Tasks, Notes,
  Journal, Sync Issues...), "Sent Items" without SPECIAL-USE, localized and
  non-ASCII names.
"""

from ..connection import imap_session

LAYOUTS = {
    "plain": ("Sent", "Drafts", "Trash", "Junk", "Archive", "Projects/Acme"),
    "gmail": ("[Gmail]/Sent Mail", "[Gmail]/Drafts", "[Gmail]/All Mail", "[Gmail]/Spam", "[Gmail]/Trash",
              "[Gmail]/Starred", "Clients"),
    "exchange": (
        "Sent Items", "Drafts", "Deleted Items", "Junk E-mail", "Outbox", "Archive",
        "Calendar", "Calendar/Birthdays", "Contacts", "Contacts/Recipient Cache", "Tasks", "Notes", "Journal",
        "Sync Issues", "Sync Issues/Conflicts", "Sync Issues/Local Failures", "RSS Feeds", "Conversation History",
        "Gesendete Objekte", "Kalender", "Отправленные", "Clients/Société Générale", "客户",
    ),
}


def provision(settings, layout):
    """Create the folders of ``layout`` on the account reached with ``settings``."""
    with imap_session(settings) as client:
        for name in LAYOUTS[layout]:
            client.create_folder(name)
