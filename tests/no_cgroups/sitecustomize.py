"""On PYTHONPATH of a test's harness processes: the process runtime makes no control group, as on a machine that
does not delegate cgroups to the harness (the harness then measures a run's memory itself)."""
try:
    from harness.runtime import cgroups
    cgroups.create = lambda *args, **kwargs: None
except ImportError:  # (a participant's interpreter without the harness)
    pass
