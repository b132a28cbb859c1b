"""Redis: every key (keys.py), the job record (jobdata.py), connections, job output, and every
state change of a job as one Lua script (transitions.py, lua/)."""
