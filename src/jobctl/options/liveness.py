"""How long a jobctl process counts as alive without a sign of life. Workers (their lease),
supervisors, the scheduler and the health check all use this one window, so none of them counts
a process as dead while another still counts it as alive. JOBCTL_LEASE_TTL shortens it (tests)
or lengthens it (hosts that pause for long); the settings (config/settings.py) read it once and
hand the value to each process."""

DEFAULT_LEASE_TTL = 20  # seconds
MIN_LEASE_TTL = 2


def parse_lease_ttl(text: str) -> int:
    """Whole seconds, at least MIN_LEASE_TTL (a smaller number counts as it); raises ValueError."""
    try:
        seconds = int(text.strip())
    except ValueError:
        raise ValueError(f"expected whole seconds, like {DEFAULT_LEASE_TTL}, got {text!r}") from None
    return max(MIN_LEASE_TTL, seconds)


def heartbeat_interval(lease_ttl: float) -> float:
    """How often a process renews its sign of life within a lease of `lease_ttl` seconds."""
    return lease_ttl / 4
