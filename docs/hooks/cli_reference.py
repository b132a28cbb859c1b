"""MkDocs hook (mkdocs.yml `hooks:`): writes the CLI reference from the Typer app itself, so it
cannot drift from the code.

docs/cli.md holds one `<!-- help: COMMAND -->` marker per command (and `<!-- help -->` for jobctl's
own options); each becomes that command's `--help`, as a terminal 100 columns wide shows it. A
command of the app without a marker, or a marker naming no command, fails the build.
"""

import re
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "cli.md"
MARKER = re.compile(r"<!-- help(?:: ([a-z-]+(?: [a-z-]+)?))? -->")  # a command, or a group's
WIDTH = 100


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    import typer.main
    from typer.testing import CliRunner

    from jobctl.cli import app

    commands = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    runner = CliRunner()

    def help_block(match: re.Match[str]) -> str:
        command = match.group(1)
        if command is not None and command.split()[0] not in commands:
            raise PluginError(f"{PAGE}: {match.group(0)} names no command of jobctl ({', '.join(commands)})")
        arguments = [*command.split(), "--help"] if command else ["--help"]
        result = runner.invoke(app, arguments, prog_name="jobctl", env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
        if result.exit_code != 0:
            raise PluginError(f"{PAGE}: jobctl {' '.join(arguments)} exited {result.exit_code}: {result.output}")
        return f"```text\n{result.output.rstrip()}\n```"

    documented = {match.group(1).split()[0] for match in MARKER.finditer(markdown) if match.group(1)}
    undocumented = [command for command in commands if command not in documented]
    if undocumented:
        raise PluginError(f"{PAGE}: no <!-- help: COMMAND --> section for {', '.join(undocumented)}")
    return MARKER.sub(help_block, markdown)
