"""The history phase of a first sync: a caught-up mailbox's linked mail copied into the chatter, oldest first.

A first sync reads newest first and defers the copies (``onpipeline_defer_history``); once the
mailbox has caught up they are written here, in date order, a chunk per transaction. Each chunk
is Python (the entries' values and bodies) and then PostgreSQL (their INSERT, the links' UPDATE),
one waiting for the other, while the parse worker's core has nothing left to do. So the chunks
go over two database connections at once, each on a thread: while one thread's statements run
in PostgreSQL, the other builds its next chunk. Odoo's chatter orders entries by id: every entry
gets an id reserved beforehand in the order of the chunks, whichever connection writes it first.
"""

import os
import threading

from odoo import api, models
from odoo.sql_db import TestCursor
from odoo.tools import SQL

from . import sql_rows
from .onpipeline_mail_link import PENDING_HISTORY
from .onpipeline_mail_message_history import HISTORY_ENTRY_FIELDS

#: Links whose history entries a caught-up first sync writes per commit: each chunk reads its users,
#: authors and known entries again (about 15 ms), so 200 paid that 48 times per 4,000 emails.
HISTORY_CHUNK_SIZE = 500
#: Database connections the history of a first sync is written with, by default (parameter
#: ``onpipeline_mail.history_connections``; 1 writes it chunk after chunk on the sync's own).
DEFAULT_HISTORY_CONNECTIONS = 2


class OnpipelineMailbox(models.Model):
    _inherit = "onpipeline.mailbox"

    def _post_pending_history(self, commit):
        """Once the mailbox has caught up, copy its linked mail into the history, oldest first.

        Ordered by SQL and read a chunk at a time: sorting the links as records loaded every
        email of a first sync (bodies included) at once, +270 MB at 50,000 emails. The query
        uses a partial index of the pending links, so a sync with nothing new pays nothing.
        It selects and orders the links as ``_post_history`` would (``_links_to_post``), so each
        chunk goes as it is (``pending=True``): checking and sorting them again, record by record,
        cost a sixth of the history of a first sync. What a commit between chunks may have changed
        is checked again in SQL (``_still_pending_history``).
        """
        if not self.sudo()._shares_linked_mail():
            return
        Link = self.env["onpipeline.mail.link"].sudo()
        Link.flush_model()
        self.env.cr.execute(SQL(
            """SELECT link.id
                 FROM (SELECT id, message_id FROM onpipeline_mail_link WHERE mailbox_id = %s AND %s) link
                 JOIN onpipeline_mail_message message ON message.id = link.message_id
                ORDER BY message.date, message.id, link.id""", self.id, SQL(PENDING_HISTORY)))
        pending = [link_id for link_id, in self.env.cr.fetchall()]
        chunks = [pending[start:start + HISTORY_CHUNK_SIZE] for start in range(0, len(pending), HISTORY_CHUNK_SIZE)]
        connections = self._history_connections(commit, len(chunks))
        if connections > 1:
            entry_ids = sql_rows.reserve_ids(self.env["mail.message"], len(pending))
            commit()  # the other connections read what this transaction wrote
            self._post_history_chunks(chunks, entry_ids, connections)
            self.env.invalidate_all()
            return
        Message = Link.env["onpipeline.mail.message"]
        for index, chunk in enumerate(chunks):
            if index:
                chunk = self._still_pending_history(chunk)
                if chunk is None:
                    return
            Message._post_history(Link.browse(chunk), pending=True)
            commit()
            self.env.invalidate_all()  # memory stays that of one chunk

    def _still_pending_history(self, chunk):
        """The links of ``chunk`` still without an entry, or None once the mailbox no longer shares its mail.

        The chunks before were committed: since the query, the mailbox may have stopped sharing
        its mail, or a link may have got its entry (or been removed) in another transaction.
        """
        if not self.sudo()._shares_linked_mail():
            return None
        self.env.cr.execute(SQL("SELECT id FROM onpipeline_mail_link WHERE id = ANY(%s) AND %s",
                                chunk, SQL(PENDING_HISTORY)))
        still_pending = {link_id for link_id, in self.env.cr.fetchall()}
        return [link_id for link_id in chunk if link_id in still_pending]

    def _history_connections(self, commit, chunk_count):
        """How many database connections write the ``chunk_count`` chunks: 1 unless they may go in parallel.

        Other connections see only what is committed: ``commit`` must be this cursor's own
        (a scheduled run; "Sync now" commits nothing before the request ends). Not on Odoo's
        test cursors, which serialize their users on one lock (a request holding it would wait
        for its own threads), nor when the entries go through ``create()``, which numbers them
        itself (see ``_history_entries_go_set_based``).
        """
        cr = self.env.cr
        if chunk_count < 2 or commit != cr.commit or isinstance(cr, TestCursor) or self.env.registry.test_cr:
            return 1
        if not self._history_entries_go_set_based():
            return 1
        default = DEFAULT_HISTORY_CONNECTIONS if (os.cpu_count() or 1) > 1 else 1
        value = self.env["ir.config_parameter"].sudo().get_param("onpipeline_mail.history_connections", default)
        return max(1, min(int(value), chunk_count))

    def _history_entries_go_set_based(self):
        """Whether ``_post_history`` INSERTs the entries itself, with the ids given (``_insert_history_entries``)."""
        Entry = self.env["mail.message"].sudo().with_context(mail_create_nosubscribe=True)
        return not sql_rows.use_orm_path(self.env) and self.env["onpipeline.mail.message"]._history_entry_defaults(
            Entry, set(HISTORY_ENTRY_FIELDS)) is not None

    def _post_history_chunks(self, chunks, entry_ids, connections):
        """Post ``chunks`` (of link ids, in order) over ``connections`` connections, a transaction per chunk.

        ``entry_ids``: ids reserved for the entries, in the order of the links; each chunk takes
        its share, so the entries are numbered in date order whichever thread writes first. A
        chunk that fails is rolled back (its links stay pending for the next run), the threads stop
        taking chunks, and the first error is raised here once they have all ended.
        """
        shares, start = [], 0
        for chunk in chunks:
            shares.append((chunk, entry_ids[start:start + len(chunk)]))
            start += len(chunk)
        queue = iter(shares)
        lock, stop, failures = threading.Lock(), threading.Event(), []

        def next_share():
            with lock:
                return None if stop.is_set() else next(queue, None)

        def post_shares():
            try:
                while (share := next_share()) is not None:
                    # A cursor per chunk: its environment (and cache) ends with it.
                    with self.env.registry.cursor() as cr:
                        mailbox = self.with_env(api.Environment(cr, self.env.uid, self.env.context, su=self.env.su))
                        chunk = mailbox._still_pending_history(share[0])
                        if chunk is None:
                            stop.set()
                            break
                        Link = mailbox.env["onpipeline.mail.link"].sudo()
                        Link.env["onpipeline.mail.message"]._post_history(
                            Link.browse(chunk), pending=True, entry_ids=share[1])
            except Exception as exc:  # noqa: BLE001 - raised again by the sync's own thread, below
                stop.set()
                failures.append(exc)

        threads = [threading.Thread(target=post_shares, name="onpipeline-history-%d" % index, daemon=True)
                   for index in range(connections)]
        for thread in threads:
            thread.dbname = self.env.cr.dbname  # as Odoo's own threads, for its logging
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
