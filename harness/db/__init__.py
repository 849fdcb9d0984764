from .engine import open_store, Store  # noqa: F401
