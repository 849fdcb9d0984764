"""taskpacks: task packs in NSML's layout. registry (task.toml manifests; built-in packs shipped as
package data, entry points `harness.tasks`, folders; prepare and add) and layout (the pack's folder and file names, spelled once; which folder a run may see: train data for
sessions, test data for submits, labels for scoring only).
May import: core.
"""
