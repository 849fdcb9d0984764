"""scoring: turning a prediction into a score. evaluator (calls a pack's evaluation.py in-process),
evaluator_call (runs it in a sandbox or a container), splits (public/private split scoring), grade (a submit
run's prediction → its score and failure reason), board_rules (the SQL rules of what counts on a board),
provenance (hashes of the code, data and evaluator that made a score).
May import: runtime, taskpacks, store, core.
"""
