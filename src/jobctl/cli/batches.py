"""Batches (api/batches.py): jobctl batch show."""

import typer

from ..config.settings import Settings
from .common import console, print_json

app = typer.Typer(no_args_is_help=True, help="Batches of jobs: their counts, failed jobs and callbacks.")


@app.command()
def show(
    ctx: typer.Context,
    batch_id: str = typer.Argument(..., help="The batch's id (`b.id` in Python; `jobctl show` names a job's batch)."),
    as_json: bool = typer.Option(False, "--json", help="Print the batch as JSON."),
) -> None:
    """A batch: its description, how many of its jobs are pending, finished and failed (dead or
    canceled, with their ids), whether it is sealed and complete, and its callbacks with the ids
    of their runs.

    Example: jobctl batch show 3f2a9c1e0b5d4e6f8a7b9c0d1e2f3a4b --json
    """
    # imported here, not at start-up: only this command needs them
    from rich import box
    from rich.text import Text

    from ..api.batches import read
    from ..api.formats import when
    from .views import DataTable, data

    settings: Settings = ctx.obj
    batch = read(settings.connection, batch_id)
    if as_json:
        print_json(batch.as_json())
        return
    grid = DataTable(
        show_header=False, title=data(f"Batch {batch.id}"), title_justify="left", title_style="bold", box=box.SIMPLE
    )
    grid.add_column(style="bold")
    grid.add_column()
    state = "complete" if batch.complete else "sealed, running" if batch.sealed else "open (jobs may still join)"
    rows: list[tuple[str, str | Text]] = [
        ("description", data(batch.description or "-")),
        ("state", state),
        ("created", when(batch.created_at)),
        ("jobs", f"{batch.total}: {batch.pending} pending, {batch.succeeded} finished, {batch.failed} failed"),
    ]
    if batch.failed_ids:
        rows.append(("failed", data(", ".join(batch.failed_ids), style="red")))
    if batch.generation > 1:
        rows.append(("completions", str(batch.generation)))
    for kind, job in batch.callbacks.items():
        runs = batch.callback_ids.get(kind) or ["not yet"]
        rows.append((f"on_{kind}", data(f"{job}: {', '.join(runs)}")))
    for label, value in rows:
        grid.add_row(label, value)
    console().print(grid)
