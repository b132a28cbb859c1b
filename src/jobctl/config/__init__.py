"""Files and environment: queue.yml and recurring.yml, where each setting comes from, the limits
the scripts enforce."""
