"""scheduler: exactly one per state root. loop (admission, GPUs, starting and watching runs, scoring),
fair_share (the order queued runs are served: round robin over their owners), daemon (the process: lock, passes
until idle, hand-off), lease (the lock that makes it one, starting it, waking it), recovery (runs whose scheduler
died), waiting (waiting for a run to end, starting a scheduler when none serves it). Started as
`python -m harness.scheduler`.
Never imports contest rules: a run carries what admission needs (its team and GPU quota).
May import: runs, scoring, runtime, taskpacks, store, core.
"""
