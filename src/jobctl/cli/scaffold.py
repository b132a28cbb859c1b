"""`jobctl init`: a new project directory's commented queue.yml, recurring.yml and example jobs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import OperationFailed

TEMPLATES = ("queue.yml", "recurring.yml", "example_jobs.py")


def write_project(directory: str | Path, *, force: bool = False) -> list[Path]:
    """Write the templates into `directory` (created if needed); returns the files written.
    Nothing is written when one of them exists, unless `force`."""
    target = Path(directory).resolve()
    existing = [name for name in TEMPLATES if (target / name).exists()]
    if existing and not force:
        raise OperationFailed(
            f"init: {', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {target}; "
            "nothing written (--force overwrites)"
        )
    if target.exists() and not target.is_dir():
        raise OperationFailed(f"init: {target} is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    templates = resources.files("jobctl.cli") / "init_templates"
    written = []
    for name in TEMPLATES:
        (target / name).write_text((templates / name).read_text())
        written.append(target / name)
    return written
