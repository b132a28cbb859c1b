"""Highly available Redis: `redis+sentinel://` URLs (and the Valkey spellings) wherever a Redis
URL is accepted, and a failover of the master survived by enqueue, workers and show, against
real redis-server and Sentinel processes of the test's own."""

import json
import signal
import subprocess

import pytest
import redis
import sample_jobs  # noqa: F401  (registers the sample jobs in this process, for enqueue)
from conftest import REDIS_SERVER, die_with_parent, free_port, wait_for

from jobctl.api import admin, records
from jobctl.api.producer import enqueue
from jobctl.config.queues import load_queues
from jobctl.errors import RedisUnavailable
from jobctl.store import keys
from jobctl.store.connection import connect, mask_url, parse_sentinel_url, where

SERVICE = "jobs-ha"


def test_sentinel_urls_are_parsed_and_masked():
    url = "redis+sentinel://app:hunter2@10.0.0.1:26379,10.0.0.2,[::1]:26380/jobs-ha/3?sentinel_password=s3cret"
    target = parse_sentinel_url(url)
    assert target.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)]
    assert (target.service, target.db, target.username, target.password) == ("jobs-ha", 3, "app", "hunter2")
    assert target.sentinel_password == "s3cret" and not target.tls
    assert parse_sentinel_url("valkeys+sentinel://h/s").tls
    masked = mask_url(url)
    assert "hunter2" not in masked and "s3cret" not in masked
    assert masked.startswith("redis+sentinel://app:***@10.0.0.1:26379,10.0.0.2,[::1]:26380/jobs-ha/3")
    assert where(url) == "Sentinel 10.0.0.1:26379,10.0.0.2:26379,::1:26380 (service 'jobs-ha')"


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("redis+sentinel://h1:26379", "no service name"),
        ("redis+sentinel://h1:port/svc", "bad Sentinel address 'h1:port'"),
        ("redis+sentinel://h1/svc/zero", "database 'zero' is not a number"),
        ("redis+sentinel://h1/svc?timeout=1", "unknown parameter 'timeout'"),
        ("memcached://h1", "unknown scheme 'memcached'"),
    ],
)
def test_bad_urls_are_one_line_errors(project, url, complaint):
    result = project.run("--redis-url", url, "status")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"jobctl: error: invalid Redis URL {url!r}: ")
    assert complaint in line


def test_valkey_urls_are_redis_urls(redis_url):
    assert connect(redis_url.replace("redis://", "valkey://")).ping()


def test_no_sentinel_answering_is_one_line_without_password():
    with pytest.raises(RedisUnavailable) as error:
        connect(f"redis+sentinel://:hunter2@127.0.0.1:{free_port()}/{SERVICE}/0")
    assert "no Sentinel answered with a master for the service" in str(error.value)
    assert "hunter2" not in str(error.value)


# --- a real master, replica and Sentinel ----------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path):
    """Start a Sentinel watching a master: sentinel(master_port) -> its port. Stopped by PID."""
    processes: list[subprocess.Popen] = []

    def start(master_port: int) -> int:
        port = free_port()
        conf = tmp_path / f"sentinel-{port}.conf"  # Sentinel rewrites its own config file
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        processes.append(
            subprocess.Popen(
                [REDIS_SERVER, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # it only calls prctl(2)
            )
        )
        client = redis.Redis(port=port)
        wait_for(lambda: _answers(client), message=f"Sentinel on port {port}")
        return port

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def promoted(watcher: redis.Redis, port: int) -> bool:
    """The Sentinel names `port` as the master and has finished the failover (while it is still
    reconfiguring, clients asking it for the master are told there is none)."""
    state = watcher.sentinel_masters()[SERVICE]
    return state["port"] == port and state["flags"] == "master"


def test_enqueue_work_and_show_survive_a_failover(project, redis_server, sentinel):
    # a replica syncs at once (by default a master waits 5 s for more replicas before a diskless sync)
    master = redis_server("--repl-diskless-sync-delay", "0")
    replica = redis_server("--replicaof", "127.0.0.1", str(master.port))
    sentinel_port = sentinel(master.port)
    watcher = redis.Redis(port=sentinel_port, decode_responses=True)
    wait_for(
        lambda: redis.Redis(port=replica.port).info("replication")["master_link_status"] == "up",
        message="the replica to sync",
    )
    wait_for(
        lambda: any(r["master-link-status"] == "ok" for r in watcher.sentinel_slaves(SERVICE)),
        message="the Sentinel to know the replica",
    )

    # a Sentinel that is down comes first in the list: clients move on to the next one
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{sentinel_port}/{SERVICE}/0"
    project.env["REDIS_URL"] = url
    first = project.run("enqueue", "add", "2", "-k", "b=40")
    assert first.returncode == 0, first.stderr
    assert project.run("work", "--burst").returncode == 0
    assert json.loads(project.run("show", first.stdout.strip(), "--json").stdout)["result"] == 42

    client = connect(url)
    # jobs acknowledged before the failover are held on a queue paused before any worker waits on it,
    # so that they are still queued when the master goes
    admin.pause(client, ["default"])
    supervisor = project.start("work")  # long-running: it must live through the failover
    wait_for(lambda: client.scard(keys.WORKERS) == 3, message="the workers to register")
    config = load_queues(project.path / "queue.yml")
    acknowledged = [enqueue(client, config, "add", [n, 1]).id for n in range(20)]
    assert client.execute_command("WAIT", 1, 5000) == 1  # replicated

    master.process.kill()  # the master's host is gone
    master.process.wait()
    wait_for(lambda: promoted(watcher, replica.port), timeout=20, message="the Sentinel to promote the replica")

    assert [job.state for job in records.jobs(client, acknowledged)] == ["queued"] * 20  # nothing lost
    assert project.run("resume", "default").returncode == 0
    after = project.run("enqueue", "add", "5", "5")
    assert after.returncode == 0, after.stderr
    everything = [*acknowledged, after.stdout.strip()]
    wait_for(
        lambda: all(job.state == "finished" for job in records.jobs(client, everything)),
        timeout=20,
        message="the running supervisor to run every job on the new master",
    )
    assert supervisor.poll() is None
    shown = json.loads(project.run("show", after.stdout.strip(), "--json").stdout)
    assert shown["result"] == 10 and shown["attempts"] == 1
    assert redis.Redis(port=replica.port).info("replication")["role"] == "master"
    supervisor.send_signal(signal.SIGTERM)  # while Redis is up: a clean stop, not a 10 s wait at teardown
    assert supervisor.wait(timeout=15) == 0
