"""Enqueue a job from a script, wait for it, print its result.

JOBCTL_JOBS=script jobctl work &     # from this directory: the workers import this module
python script.py 12                  # prints 144
"""

import sys

import jobctl
from jobctl import job


@job("square")
def square(n: int) -> int:
    return n * n


if __name__ == "__main__":
    jobctl.connect()  # REDIS_URL and queue.yml, as the CLI reads them
    handle = square.enqueue(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(f"enqueued {handle.id}", file=sys.stderr)
    print(handle.result(timeout=60))
