"""On PYTHONPATH of a test's harness processes: bubblewrap does not work here, as on a machine without it (or one
that gives it no namespaces)."""
try:
    from harness.runtime import sandbox
    sandbox.works = lambda: False
except ImportError:  # (a participant's interpreter without the harness)
    pass
