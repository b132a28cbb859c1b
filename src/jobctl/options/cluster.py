"""Whether jobctl talks to a Redis Cluster: JOBCTL_CLUSTER=auto|on|off. `auto` (the default) asks
the server once per URL (`INFO cluster`); `on` and `off` skip the question (a proxy that hides
INFO, a cluster that must never be taken for one Redis). The settings (config/settings.py) read
it once per process and set it here, before the first client is made (store/connection.py)."""

from typing import Literal

ClusterMode = Literal["auto", "on", "off"]
MODES: tuple[ClusterMode, ...] = ("auto", "on", "off")

_mode: ClusterMode = "auto"


def parse_cluster_mode(text: str) -> ClusterMode:
    """auto, on or off (any case); raises ValueError."""
    for mode in MODES:
        if text.strip().lower() == mode:
            return mode
    raise ValueError(f"expected one of {', '.join(MODES)}, got {text!r}")


def set_mode(mode: ClusterMode) -> None:
    global _mode
    _mode = mode


def mode() -> ClusterMode:
    """The process's cluster mode, as the settings set it (auto until they do)."""
    return _mode
