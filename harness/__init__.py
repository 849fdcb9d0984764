"""A local, open-source NSML: sessions, checkpoints, submits, scoring and leaderboards."""

__version__ = "0.1.0"
