"""Around every job attempt: the Middleware base, @job's hooks, StatsD, retry delays, RQ's per-job
options and callbacks."""
