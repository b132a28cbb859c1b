"""examples/script.py as a user runs it: `jobctl work` in one process, the script in another."""

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_the_script_prints_the_result_a_worker_computed(jobctl_redis, jobctl_client, tmp_path):
    shutil.copy(HERE / "script.py", tmp_path / "script.py")
    (tmp_path / "queue.yml").write_text("default: {worker_count: 1}\n")
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": jobctl_redis, "JOBCTL_JOBS": "script"}
    worker = subprocess.Popen([sys.executable, "-m", "jobctl", "work"], cwd=tmp_path, env=env)
    try:
        ran = subprocess.run(
            [sys.executable, "script.py", "12"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "144\n"
