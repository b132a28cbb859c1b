"""Jobs tests/test_app_api.py enqueues from Python (the application's side of jobctl)."""

import asyncio
import threading

from jobctl import job, progress
from jobctl.api.client import current_client


@job("app_add", queue="default")
def app_add(a: int, b: int = 0) -> int:
    return a + b


@job("app_echo")
def app_echo(value: object, queue: str = "not an option") -> list:
    """Takes an argument named `queue`: options(queue=...) must not collide with it."""
    return [value, queue]


@job("app_fails")
def app_fails(message: str) -> None:
    raise ValueError(message)


@job("app_progress")
def app_progress() -> str:
    progress(40, "almost")
    return "done"


@job("app_async_add")
async def app_async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@job("app_parent")
def app_parent(n: int) -> dict:
    """Enqueues children from its own thread and from a thread it starts."""
    client = current_client()
    ids = [app_add.enqueue(n, 1).id]
    thread = threading.Thread(target=lambda: ids.append(app_add.enqueue(n, 2).id))
    thread.start()
    thread.join()
    return {"children": ids, "worker_client": client.given_connection}


@job("app_async_parent")
async def app_async_parent(n: int) -> dict:
    client = current_client()
    child = await app_add.aenqueue(n, 3)
    return {"children": [child.id], "worker_client": client.given_connection}
