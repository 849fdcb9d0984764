"""The store. `Store` and `open_store` load SQLAlchemy on first use (harness.db.quick never does)."""


def __getattr__(name):
    if name in ("Store", "open_store"):
        from . import engine
        return getattr(engine, name)
    raise AttributeError(name)
