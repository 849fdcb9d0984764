"""NSML's constants, read once from the session's environment.

Outside a session they take the values of NSML's local stub: not on NSML, no dataset, no GPU.
"""
import os

_env = os.environ

IS_ON_NSML = bool(_env.get("NSML_SESSION"))
SESSION_NAME = _env.get("NSML_SESSION", "")
DATASET_PATH = _env.get("NSML_DATASET_PATH", "") if IS_ON_NSML else ""
DATASET_NAME = _env.get("NSML_DATASET_NAME", "") if IS_ON_NSML else ""
try:  # a session of several tasks (NSML's `nsml run -d a,b`): DATASET_PATH lists their roots, its own first
    _COUNT = int(_env.get("NSML_DATASET_COUNT", "1")) if IS_ON_NSML else 1
except ValueError:
    _COUNT = 1
if _COUNT > 1:
    DATASET_PATH = [DATASET_PATH] + [_env.get(f"NSML_DATASET_PATH_{i}", "") for i in range(1, _COUNT)]
HAS_DATASET = bool(DATASET_PATH)
NSML_NFS_OUTPUT = _env.get("NSML_NFS_OUTPUT", "") if IS_ON_NSML else ""  # a writable folder of the run's own
IS_DATASET = HAS_DATASET  # older name
try:
    GPU_NUM = int(_env.get("NSML_GPU_NUM", "0")) if IS_ON_NSML else 0
except ValueError:
    GPU_NUM = 0

# Harness-private wiring (not part of NSML's surface).
_EVENTS_FILE = _env.get("NSML_EVENTS", "")
_CHECKPOINT_DIR = _env.get("NSML_CHECKPOINT_DIR", "")
_SESSIONS_ROOT = _env.get("NSML_SESSIONS_ROOT", "")
_MODE = _env.get("NSML_MODE", "")
_ITERATION = _env.get("NSML_ITERATION", "")
_LOAD_SESSION = _env.get("NSML_LOAD_SESSION", "")
_OUTPUT_FILE = _env.get("NSML_OUTPUT_FILE", "")
_DATA_LOADER = _env.get("NSML_DATA_LOADER", "")
