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

:func:`insert_rows` converts a column at a time, and computes itself what Odoo
18's conversion of the plain field types gives (:func:`column_converter`): the
chain of ``convert_to_column_insert`` calls per cell cost more than the INSERT.
``tests/test_sql_rows.py`` converts every column the sync writes both ways.
"""

import itertools

from odoo.fields import Boolean, Char, Field, Integer, Many2one, Selection
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
      does (see :func:`column_converter`), except the Html fields named in
      ``sanitized``: their values are written as given, and must be the output
      of the field's own sanitizer.
      Any other Html field is refused: nothing unsanitized reaches the table.
    - ``computed``: the stored computed fields the rows hold already computed.
      They are not recomputed; fields of other records that depend on what
      was written are marked for recomputation as ``create()`` marks them.
    """
    if not rows:
        return model.browse()
    env = model.env
    fields = model._fields
    names = sorted({name for row in rows for name in row} | ({*LOG_ACCESS_COLUMNS} if model._log_access else set()))
    _check_columns(model, names, sanitized)
    converters = [column_converter(model, fields[name], name in sanitized) for name in names]
    log_access = {}
    if model._log_access:
        now, uid = env.cr.now(), env.uid
        log_access = {"create_uid": uid, "create_date": now, "write_uid": uid, "write_date": now}
    # One query string and one flat parameter list per chunk: an SQL object per cell cost more than the INSERT.
    head = 'INSERT INTO "%s" (%s) VALUES ' % (model._table, ", ".join('"%s"' % name for name in names))
    ids = []
    for chunk in split_every(INSERT_BATCH_SIZE, rows):
        if log_access:
            chunk = [{**log_access, **row} for row in chunk]
        values, params = _values_list(names, converters, chunk)
        env.cr.execute(head + values + " RETURNING id", params)
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


def _values_list(names, converters, rows):
    """``(%s, DEFAULT, ...), ...``: the VALUES of ``rows`` (dicts of ``names``, or of some), and its parameters.

    Converted a column at a time, each column by one call of its converter. When
    every row has every column and no value is an :class:`~odoo.tools.SQL` (written
    as SQL, as before), each row's text is the same: it is made once, and the
    parameters are the columns read row by row.
    """
    width = len(names)
    complete = all(len(row) == width for row in rows)  # names holds every key of every row
    columns = []
    for name, convert in zip(names, converters, strict=True):
        given = rows if complete else [row for row in rows if name in row]
        columns.append(convert([row[name] for row in given], given))
    if complete and not any(isinstance(value, SQL) for column, convert in zip(columns, converters, strict=True)
                            if getattr(convert, "by_field", False) for value in column):
        row_text = "(%s)" % ", ".join(["%s"] * width)
        return ", ".join([row_text] * len(rows)), list(itertools.chain.from_iterable(zip(*columns, strict=True)))
    # Rows with keys missing (DEFAULT) or SQL values: cell by cell.
    texts, params = [], []
    values = [iter(column) for column in columns]
    for row in rows:
        cells = []
        for name, column in zip(names, values, strict=True):
            if name not in row:
                cells.append("DEFAULT")
                continue
            value = next(column)
            if isinstance(value, SQL):
                cells.append(value.code)
                params.extend(value.params)
            else:
                cells.append("%s")
                params.append(value)
        texts.append("(%s)" % ", ".join(cells))
    return ", ".join(texts), params


def column_converter(model, field, sanitized=False):
    """``convert(values, rows)``: the column values of ``field`` for ``values``, one per row of ``rows``.

    Exactly what ``field.convert_to_column_insert(value, model, row)`` returns,
    computed here, without its chain of method calls, for the field classes whose
    conversion is one of Odoo 18's own below (checked on the methods the field's
    class resolves, so that a subclass converting otherwise is asked itself), and
    for the value types they write as they are. Any other field or value is
    converted by the field: translated or company-dependent fields, Float,
    Monetary, Json, Binary, Reference, unsanitized Html. A ``sanitized`` Html
    value is written as given (see :func:`insert_rows`).
    """
    if sanitized:
        return _sanitized_column

    def by_field(value, row):
        return field.convert_to_column_insert(value, model, row)

    def convert_each(values, rows):
        return [by_field(value, row) for value, row in zip(values, rows, strict=True)]

    convert_each.by_field = True  # its values may be SQL (not the others': Odoo 18's conversions never are)
    return _own_converter(field, by_field) or convert_each


def _own_converter(field, by_field):
    """The converter of :func:`column_converter` for ``field``'s conversion, or None: the field converts."""
    cls = type(field)
    if field.company_dependent:
        return None
    if cls.convert_to_column_insert is Field.convert_to_column_insert:
        column = cls.convert_to_column
        if column is Selection.convert_to_column:
            return _selection_column(field, by_field) if cls.convert_to_cache is Selection.convert_to_cache else None
        return _COLUMN_CONVERTERS.get(column)
    if (cls.convert_to_column_insert is Char.convert_to_column_insert and not field.translate
            and cls.convert_to_column is Char.convert_to_column and cls.convert_to_cache is Char.convert_to_cache):
        return _string_column(field.size, by_field)  # Char, Text
    return None


# The converters of column_converter. Each one's Odoo 18 conversion (odoo/fields.py), for a
# field neither translated nor company-dependent, is quoted; a value the converter does not
# compute itself is given to the field (by_field).

def _sanitized_column(values, rows):
    return [str(value) if value else None for value in values]


def _plain_column(values, rows):
    # Field.convert_to_column, whole.
    #     if value is None or value is False: return None
    #     if isinstance(value, str): return value
    #     elif isinstance(value, bytes): return value.decode()
    #     else: return str(value)
    return [None if value is None or value is False else value if isinstance(value, str)
            else value.decode() if isinstance(value, bytes) else str(value) for value in values]


def _boolean_column(values, rows):
    # Boolean.convert_to_column: bool(value)
    return list(map(bool, values))


def _integer_column(values, rows):
    # Integer.convert_to_column: int(value or 0), which is the value itself for an int (not a bool).
    return [value if type(value) is int else int(value or 0) for value in values]


def _many2one_column(values, rows):
    # Many2one.convert_to_column: value or None
    return [value or None for value in values]


def _selection_column(field, by_field):
    # Selection.convert_to_column then Field.convert_to_column: with validation and a list of values
    # (Selection._selection), a value of the list as it is (a string: Field.convert_to_column keeps it),
    # else (validation off, or values from a method) a non-empty string as it is.
    # Anything else (empty, None, a wrong value that raises) by the field.
    allowed = field._selection if field.validate and field._selection is not None else None
    if allowed is None:
        def convert(values, rows):
            return [value if type(value) is str and value else by_field(value, row)
                    for value, row in zip(values, rows, strict=True)]
    else:
        def convert(values, rows):
            return [value if type(value) is str and value in allowed else by_field(value, row)
                    for value, row in zip(values, rows, strict=True)]
    return convert


def _string_column(size, by_field):
    # _String.convert_to_column_insert (not translated) -> Field.convert_to_column_insert -> _String.convert_to_column
    # -> _String.convert_to_cache:
    #     if value is None or value is False: return None
    #     s = value.decode() if bytes else str(value); value = s[:self.size]  (translate: none)
    # A string as it is (s[:None] is s), or cut to the field's size; None for None and False; others by the field.
    def convert(values, rows):
        return [value[:size] if type(value) is str else None if value is None or value is False
                else by_field(value, row) for value, row in zip(values, rows, strict=True)]
    return convert


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


#: Converters of the fields converted by ``Field.convert_to_column_insert``, by the ``convert_to_column`` they use.
_COLUMN_CONVERTERS = {
    Field.convert_to_column: _plain_column,  # Date, Datetime, Id: strings as they are, others str()
    Boolean.convert_to_column: _boolean_column,
    Integer.convert_to_column: _integer_column,  # Integer, Many2oneReference (and subclasses: BigInteger)
    Many2one.convert_to_column: _many2one_column,
}
