"""The deployment recipes in deploy/: each one checked as far as this machine can run it.

systemd units go through `systemd-analyze verify` (when installed) and are parsed for the keys
a graceful stop depends on; the Procfile's commands must be real jobctl commands; the compose
file and the Dockerfile are parsed (no container engine runs here)."""

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobctl.config.queues import QueueConfig, load_queues
from jobctl.options.durations import parse_duration

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
JOBCTL = Path(sys.executable).parent / "jobctl"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def longest_shutdown_timeout() -> float:
    queues = load_queues(ROOT / "queue.yml").queues.values()
    return max([q.shutdown_timeout for q in queues] + [QueueConfig.shutdown_timeout])


def test_there_is_a_unit_for_work_scheduler_and_web():
    commands = {shlex.split(unit(path)["Service"]["ExecStart"])[1] for path in UNITS}
    assert commands == {"work", "scheduler", "web"}


def test_the_web_unit_listens_on_localhost_with_its_token_from_a_file():
    service = unit(DEPLOY / "systemd" / "jobctl-web.service")["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert "/etc/jobctl/web.env" in service["EnvironmentFile"]
    assert "JOBCTL_WEB_TOKEN" not in service.get("Environment", "")  # never in the unit itself


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_stop_gracefully(path):
    service = unit(path)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the supervisor, which stops its workers itself
    assert parse_duration(service["TimeoutStopSec"]) > longest_shutdown_timeout()
    assert service["Restart"] == "on-failure"
    assert shlex.split(service["ExecStart"])[0].endswith("/jobctl")


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_pass_systemd_analyze_verify(path, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # the unit as installed on this machine: this venv's jobctl, a directory and user that exist
    text = path.read_text().replace("/srv/jobctl/.venv/bin/jobctl", str(JOBCTL)).replace("/srv/jobctl", str(tmp_path))
    text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.MULTILINE)
    installed = tmp_path / path.name
    installed.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(installed)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "Invalid" not in result.stderr, result.stderr


def test_procfile_commands_are_jobctl_commands():
    processes = dict(line.split(":", 1) for line in (DEPLOY / "Procfile").read_text().splitlines() if line.strip())
    assert set(processes) == {"worker", "scheduler", "web"}
    for command in processes.values():
        program, *args = shlex.split(command)
        assert program == "jobctl"
        result = subprocess.run([sys.executable, "-m", "jobctl", *args, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Example:" in result.stdout


def test_compose_runs_redis_with_aof_workers_scheduler_and_web():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "worker", "scheduler", "web"}

    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert redis_command[redis_command.index("--appendfsync") + 1] == "everysec"
    assert redis_command[redis_command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])

    for name, command in (("worker", ["jobctl", "work"]), ("scheduler", ["jobctl", "scheduler"])):
        service = services[name]
        assert service["command"] == command
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"][1:3] == ["jobctl", "health"]
    assert parse_duration(services["worker"]["stop_grace_period"]) > longest_shutdown_timeout()

    web = services["web"]
    assert web["command"][:2] == ["jobctl", "web"]
    assert web["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert web["environment"]["JOBCTL_WEB_TOKEN"].startswith("${JOBCTL_WEB_TOKEN:?")  # required, never a default
    assert web["ports"] == ["127.0.0.1:9181:9181"]  # the host's loopback only
    assert "/login" in " ".join(web["healthcheck"]["test"])


def test_dockerfile_installs_the_project_and_runs_jobctl():
    instructions = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest))
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install --no-cache-dir ." in runs
    copied = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    assert "pyproject.toml" in copied and "src" in copied
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert yaml.safe_load(cmd)[:2] == ["jobctl", "work"]  # exec form: jobctl is PID 1 and gets SIGTERM
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    healthcheck = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"][-1]
    assert '["jobctl", "health"]' in healthcheck
