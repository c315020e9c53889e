"""Rows written set-based: one INSERT per batch where the ORM adds only overhead.

A first sync writes about seven rows per email (the email, its location, its
links, their history entries). Through ``create()`` each row paid for
``default_get``, field conversion, the cache, and a second pass at the commit
that computed and UPDATEd every stored computed field: most of a first sync's
time. The sync's writers build the complete rows themselves (stored computed
fields included) and hand them to :func:`insert_rows`.

The ORM path stays beside each set-based writer, chosen with the context key
:data:`ORM_PATH`: ``tests/test_store_rows.py`` syncs the same mail, hostile
mail included, both ways and compares the rows, so the two cannot drift apart.
"""

from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tools import SQL, split_every

#: Context key: write through ``create()``/``write()`` as before (the reference the set-based rows must equal).
ORM_PATH = "onpipeline_mail_orm_path"

#: Rows per INSERT statement (Odoo's own ``_create`` uses 1000).
INSERT_BATCH_SIZE = 1000


def use_orm_path(env):
    """Whether this environment writes the sync's rows through the ORM (see :data:`ORM_PATH`)."""
    return bool(env.context.get(ORM_PATH))


def reserve_ids(model, count):
    """``count`` new ids of ``model``'s table, from its sequence, in order.

    Reserved before the INSERT so that a row can point at another row of the
    same batch (an email at the first email of its thread).
    """
    if not count:
        return []
    model.env.cr.execute(SQL("SELECT nextval(%s) FROM generate_series(1, %s)",
                             "%s_id_seq" % model._table, count))
    return [row[0] for row in model.env.cr.fetchall()]


def column_defaults(model, given):
    """The default values ``create()`` adds to a row that holds the fields ``given``.

    ``create()`` asks ``default_get`` once per record; a batch of rows with the
    same fields needs it once. Only fields with a column are kept; the log
    access columns are set by :func:`insert_rows`.
    """
    missing = [name for name, field in model._fields.items()
               if name not in given and field.column_type and name not in LOG_ACCESS_COLUMNS and name != "id"]
    defaults = model.default_get(missing) if missing else {}
    return {name: value for name, value in defaults.items() if name in missing}


def insert_rows(model, rows, sanitized=(), computed=()):
    """INSERT ``rows`` (dicts of field name: value, as ``create()`` takes them) into ``model``; its records.

    - Each row must be complete: no default is added, except the log access
      columns, set as ``create()`` sets them (current user, transaction time).
      A stored computed field neither given nor declared ``computed`` is
      computed at the next flush, as after ``create()``.
      An ``id`` given (see :func:`reserve_ids`) is used.
    - Values are converted for their column by their field, as ``create()``
      does, except the Html fields named in ``sanitized``: their values are
      written as given, and must be the output of the field's own sanitizer.
      Any other Html field is refused: nothing unsanitized reaches the table.
    - ``computed``: the stored computed fields the rows hold already computed.
      They are not recomputed; fields of other records that depend on what
      was written are marked for recomputation as ``create()`` marks them.
    """
    if not rows:
        return model.browse()
    env = model.env
    fields = model._fields
    now, uid = env.cr.now(), env.uid
    names = sorted({name for row in rows for name in row} | ({*LOG_ACCESS_COLUMNS} if model._log_access else set()))
    _check_columns(model, names, sanitized)
    # One query string and one flat parameter list per chunk: an SQL object per cell cost more than the INSERT.
    head = 'INSERT INTO "%s" (%s) VALUES ' % (model._table, ", ".join('"%s"' % name for name in names))
    ids = []
    for chunk in split_every(INSERT_BATCH_SIZE, rows):
        tuples, params = [], []
        for row in chunk:
            if model._log_access:
                row = dict(row)
                row.setdefault("create_uid", uid)
                row.setdefault("create_date", now)
                row.setdefault("write_uid", uid)
                row.setdefault("write_date", now)
            tuples.append(_row_placeholders(model, row, names, sanitized, params))
        env.cr.execute(head + ", ".join(tuples) + " RETURNING id", params)
        ids.extend(row_id for row_id, in env.cr.fetchall())
    records = model.browse(ids)
    _cache_unwritten(model, records, names)
    _invalidate_inverses(model, rows, names)
    # As _create(): every field "modified" on creation, so that what depends on the new rows is
    # recomputed; the fields the rows hold computed already are protected from it.
    with env.protecting([fields[name] for name in computed], records):
        records.modified(fields, create=True)
    return records


def _check_columns(model, names, sanitized):
    for name in names:
        if name == "id":
            continue
        field = model._fields[name]
        if not field.column_type:
            raise ValueError("%s.%s has no column: write it through the ORM" % (model._name, name))
        if field.type == "html" and field.sanitize and name not in sanitized:
            raise ValueError("%s.%s is an Html field not declared sanitized" % (model._name, name))


def _row_placeholders(model, row, names, sanitized, params):
    """``(%s, DEFAULT, ...)`` of one row; its values are appended to ``params``."""
    cells = []
    for name in names:
        if name not in row:
            cells.append("DEFAULT")
            continue
        value = _column_value(model, model._fields.get(name), name, row, sanitized)
        if isinstance(value, SQL):
            cells.append(value.code)
            params.extend(value.params)
        else:
            cells.append("%s")
            params.append(value)
    return "(%s)" % ", ".join(cells)


def _cache_unwritten(model, records, names):
    """The cache as ``_create()`` leaves it for what the rows did not write: empty x2many lists, and
    each plain stored field's empty value (False for a Boolean: a ``write(False)`` then changes nothing,
    as on a record made by ``create()``)."""
    cache = model.env.cache
    for field in model._fields.values():
        if field.name in names:
            continue
        if field.type in ("one2many", "many2many"):
            cache.update(records, field, [()] * len(records))
        elif field.store and field.column_type and not field.compute:
            cache.update(records, field, [field.convert_to_cache(None, records)] * len(records))


def _invalidate_inverses(model, rows, names):
    """Forget the cached one2many lists the new rows join (an email's locations, say).

    ``_create()`` adds new records to the cached inverses of their many2one
    fields; cached lists left as they were would miss the new rows for the rest
    of the transaction. (A ``many2one_reference``'s inverse depends on its model
    field: its callers invalidate it.)
    """
    env = model.env
    for name in names:
        field = model._fields.get(name)
        if field is None or field.type != "many2one":
            continue
        inverses = model.pool.field_inverses[field]
        if not inverses:
            continue
        targets = env[field.comodel_name].browse({row[name] for row in rows if row.get(name)})
        for inverse in inverses:
            targets.invalidate_recordset([inverse.name])


def _column_value(model, field, name, row, sanitized):
    value = row[name]
    if field is None:  # id
        return value
    if name in sanitized:
        return str(value) if value else None
    return field.convert_to_column_insert(value, model, row)
