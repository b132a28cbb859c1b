"""Tables fit the terminal: at 80 columns `status` leaves out less important columns rather than
cutting ids and pids; piped output has a fixed width."""

from __future__ import annotations

from conftest import child_pids, wait_for

from jobctl.store import keys


def test_status_fits_80_columns_without_cutting_ids_or_pids(project, db, tmp_path):
    marker, gate = tmp_path / "started", tmp_path / "gate"
    work = project.start("work")
    job_id = project.enqueue("gated", str(marker), str(gate))
    failed = project.enqueue("refuses")
    wait_for(marker.exists, message="the job to start")
    # recent failures come from job tracking, which each worker flushes about once a second
    wait_for(lambda: db.llen(keys.layout_of(db).recent_failures("default")) > 0, message="the failure, tracked")
    try:
        narrow = project.run("status", env={"COLUMNS": "80"})
        assert narrow.returncode == 0, narrow.stderr
        lines = narrow.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80
        assert "…" not in narrow.stdout
        assert f"gated {job_id[:8]}" in narrow.stdout and failed[:8] in narrow.stdout
        for pid in child_pids(work.pid):
            assert str(pid) in narrow.stdout
        assert "canceled" not in narrow.stdout.split("Queue activity")[0]  # a count left out at 80 columns
        piped = project.run("status")
        assert max(len(line) for line in piped.stdout.splitlines()) <= 120
        assert "canceled" in piped.stdout and " cpu " in piped.stdout  # room for every column
    finally:
        gate.touch()


def test_the_consoles_print_data_as_given_never_as_markup_or_emoji(capsys):
    """Rich would turn :thumbs_up: into an emoji and [bold] into style: arguments, results and
    error texts printed by the CLI (tables included) are data."""
    from rich.table import Table

    from jobctl.cli.common import console, errors

    text = ":thumbs_up: [bold]x[/bold]"
    table = Table()
    table.add_column("args")
    table.add_row(text)
    console().print(text)
    console().print(table)
    errors().print(text)
    out, err = capsys.readouterr()
    assert out.count(text) == 2
    assert text in err
