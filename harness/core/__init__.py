"""core: what every other floor may use, and which imports nothing of the harness above it.

settings (harness.toml, validated by schema), enums (statuses, failure reasons, phases), errors, names (user and
team name rules), clock (the contest clock and utcnow), safefs (file operations that never follow a link out),
notify (the scheduler's doorbell and run-end markers), progress (the progress reporting protocol), escape
(participant text made safe for a CSV cell and for a terminal).
May import: the standard library and small libraries only.
"""
