"""The example data shipped inside the jobctl package (channel exports, CSVs, documents), so
that the built-in jobs and `jobctl demo` run wherever jobctl is installed and run.

A job argument `example:<path>` (e.g. `example:imports/channels.csv`) names a file of it; any
other path is read as given, relative to the working directory.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent / "example_data"
PREFIX = "example:"


def resolve(path: str) -> Path:
    """The file a job argument names: `example:...` inside the shipped data, anything else as given."""
    return ROOT / path.removeprefix(PREFIX) if path.startswith(PREFIX) else Path(path)
