"""store: the database. models (SQLAlchemy tables), engine (`Store`, transactions, after-commit
hooks, Alembic migrations under migrations/), quick (read-only stdlib sqlite3 reads for the fast listings) and
read_sql (the SQL of `ps` and `board`, run by either path).

`Store` and `open_store` load SQLAlchemy on first use (store.quick never does).
May import: core.
"""


def __getattr__(name):
    if name in ("Store", "open_store"):
        from . import engine
        return getattr(engine, name)
    raise AttributeError(name)
