"""A Starlette app that hands work to jobctl: POST /jobs enqueues, GET /jobs/{id} waits for the
outcome (up to ?timeout= seconds) without blocking the event loop.

    cd examples/asgi_app
    JOBCTL_JOBS=example_jobs jobctl work &          # the workers (REDIS_URL as for the app)
    uvicorn example_app:app                         # then:
    curl -d '{"text": "to be or not to be"}' localhost:8000/jobs     # {"id": "..."}
    curl 'localhost:8000/jobs/<id>?timeout=5'
"""

from __future__ import annotations

from example_jobs import word_count
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import jobctl

MAX_WAIT = 30.0  # seconds a GET may wait for the job


async def submit(request: Request) -> JSONResponse:
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return JSONResponse({"error": 'expected {"text": "..."}'}, status_code=400)
    handle = await word_count.aenqueue(body["text"])
    return JSONResponse({"id": handle.id}, status_code=202)


async def outcome(request: Request) -> JSONResponse:
    try:
        timeout = min(float(request.query_params.get("timeout", "0")), MAX_WAIT)
        handle = await jobctl.aget(request.path_params["job_id"])
        return JSONResponse({"state": "finished", "result": await handle.aresult(timeout=timeout)})
    except ValueError:
        return JSONResponse({"error": "timeout: expected seconds"}, status_code=400)
    except jobctl.JobNotFound:
        return JSONResponse({"error": "no such job"}, status_code=404)
    except TimeoutError:
        return JSONResponse({"state": await handle.astatus()}, status_code=202)
    except jobctl.JobFailed as failed:
        return JSONResponse({"state": "dead", "error": f"{failed.error_type}: {failed.message}"})
    except jobctl.JobCanceled:
        return JSONResponse({"state": "canceled"})


app = Starlette(routes=[Route("/jobs", submit, methods=["POST"]), Route("/jobs/{job_id}", outcome)])
