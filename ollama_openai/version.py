"""The gateway's version, shown by the status page; pyproject.toml says the same (a test checks)."""

__version__ = "0.1.0"
