"""runs: the Run, the one thing the scheduler knows. create (options, checks, a new queued Run),
spec (the RunSpec a runtime starts: argv, mounts, limits), snapshot (the code copy a run gets), events (what the
in-session `nsml` module reports: metrics, checkpoints), ending (how every run ends: status, reason, the
submission it serves, the end marker).
May import: scoring, runtime, taskpacks, store, core.
"""
