"""How long a jobctl process counts as alive without a sign of life. Workers (their lease),
supervisors, the scheduler and the health check all use this one window, so none of them counts
a process as dead while another still counts it as alive. JOBCTL_LEASE_TTL shortens it (tests) or lengthens it (hosts
that pause for long)."""

import os

LEASE_TTL = max(2, int(os.environ.get("JOBCTL_LEASE_TTL", "20")))
HEARTBEAT_INTERVAL = LEASE_TTL / 4  # how often a process renews its sign of life
