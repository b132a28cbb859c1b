"""The core without the built-in jobs: every module outside jobctl/builtin/ and jobctl/web/
imports and runs with SQLAlchemy, psycopg and pypdf missing, imports nothing of jobctl.builtin
(catalogue.load names it, like a user's job module), and `jobctl --help` loads neither Redis,
Rich nor YAML."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCKED = ("sqlalchemy", "psycopg", "pypdf")
# None in sys.modules: `import sqlalchemy` raises ImportError, as if it were not installed
WITHOUT_BUILTIN_DEPENDENCIES = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"
RUN_JOBCTL = "import runpy\nsys.argv = ['jobctl', *sys.argv[1:]]\nrunpy.run_module('jobctl', run_name='__main__')\n"


def python(code: str, *args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_every_core_module_imports_without_the_builtin_jobs_dependencies():
    code = WITHOUT_BUILTIN_DEPENDENCIES + textwrap.dedent(
        """
        import importlib, json, pkgutil
        import jobctl

        def modules(package):  # walk_packages would import jobctl.builtin to look inside it
            for found in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
                # jobctl.cli.demo runs the built-in jobs: it needs their dependencies
                if found.name in ("jobctl.builtin", "jobctl.cli.demo", "jobctl.web", "jobctl.__main__"):
                    continue
                yield found.name
                if found.ispkg:
                    yield from modules(importlib.import_module(found.name))

        core = sorted(modules(jobctl))
        for name in core:
            importlib.import_module(name)
        print(json.dumps({"core": core, "builtin": sorted(m for m in sys.modules if m.startswith("jobctl.builtin"))}))
        """
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert {
        "jobctl.cli",
        "jobctl.cli.jobs",
        "jobctl.jobs.catalogue",
        "jobctl.config.settings",
        "jobctl.runtime.worker",
    } <= set(imported["core"])
    assert imported["builtin"] == []  # the core never imports the built-in jobs' package


def test_help_runs_without_the_builtin_jobs_dependencies_and_loads_no_redis_rich_or_yaml():
    code = WITHOUT_BUILTIN_DEPENDENCIES + textwrap.dedent(
        """
        import atexit
        atexit.register(lambda: print("loaded:", sorted({"redis", "rich", "yaml"} & set(sys.modules)), file=sys.stderr))
        """
    )
    result = python(code + RUN_JOBCTL, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: jobctl [OPTIONS] COMMAND [ARGS]..." in result.stdout and "enqueue" in result.stdout
    assert result.stderr.strip() == "loaded: []"

    enqueue_help = python(WITHOUT_BUILTIN_DEPENDENCIES + RUN_JOBCTL, "enqueue", "--help")
    assert enqueue_help.returncode == 0, enqueue_help.stderr
    assert enqueue_help.stdout.startswith("Usage: jobctl enqueue [OPTIONS]") and "--depends-on" in enqueue_help.stdout


def test_builtin_jobs_are_listed_and_enqueued_without_their_dependencies(project):
    """The built-in jobs are declared without importing their modules: `jobs` reads their
    signatures from source, and enqueueing one needs none of what it imports to run."""
    run = WITHOUT_BUILTIN_DEPENDENCIES + RUN_JOBCTL
    listed = python(run, "jobs", "--json", cwd=project.path, env=project.env)
    assert listed.returncode == 0, listed.stderr
    signatures = {job["name"]: job["signature"] for job in json.loads(listed.stdout)}
    assert signatures["upload"].startswith("upload(path: str, collection: str = 'default'")

    enqueued = python(run, "enqueue", "upload", "example:docs/retry-policy.md", cwd=project.path, env=project.env)
    assert enqueued.returncode == 0, enqueued.stderr
    shown = python(run, "show", enqueued.stdout.strip(), "--json", cwd=project.path, env=project.env)
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert (job["job"], job["state"]) == ("upload", "queued")
