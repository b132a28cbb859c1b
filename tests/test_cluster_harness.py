"""The local Redis Cluster the cluster tests run on (tests/cluster.py), checked with redis-py's
cluster client alone: keys spread over the 3 masters, a master killed with SIGKILL loses no write
its replica acknowledged, a slot moved while a client writes loses nothing."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import redis
from cluster import slot_of
from conftest import wait_for


def test_keys_of_many_slots_spread_over_the_masters(redis_cluster):
    client = redis_cluster.client()
    keys = [f"key:{n}" for n in range(3000)]
    with client.pipeline() as pipe:  # one round trip per master, not per key
        for key in keys:
            pipe.set(key, key)
        assert pipe.execute() == [True] * len(keys)
    masters = redis_cluster.masters()
    assert len(masters) == 3
    # each key is on the master the harness names for it, in the process it names
    held: Counter[int] = Counter()
    for key in keys[:100]:
        master = redis_cluster.master_of(key)
        with master.client() as direct:
            assert direct.get(key) == key
        assert f"{master.port}" in Path(f"/proc/{master.pid}/cmdline").read_text()
        held[master.port] += 1
    assert set(held) == {master.port for master in masters}
    assert sum(master.info("keyspace")["db0"]["keys"] for master in masters) == len(keys)


class AcknowledgedWriter(threading.Thread):
    """Writes key:0, key:1, ... each followed by WAIT 1 on the same connection, to the master of
    its slot; `written` holds the keys whose SET succeeded, `acknowledged` those a replica had
    received when WAIT answered (a promoted master has no replica left: WAIT gives up after
    100 ms). A write that fails (its master is gone) is tried again until the client has found
    the new master."""

    def __init__(self, client: redis.cluster.RedisCluster):
        super().__init__(daemon=True)
        self.client = client
        self.written: list[str] = []
        self.acknowledged: list[str] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            key = f"key:{n}"
            try:
                node = self.client.get_node_from_key(key)
                with node.redis_connection.pipeline(transaction=False) as pipe:
                    pipe.set(key, key)
                    pipe.wait(1, 100)
                    _, replicas = pipe.execute()
            except redis.RedisError:
                self.failures += 1
                # through the cluster client, which refreshes its map of the slots on the error;
                # until the replica has taken over that fails too, and the write is tried again
                try:
                    self.client.exists(key)
                except redis.RedisError:
                    self.stop.wait(0.05)
                continue
            self.written.append(key)
            if replicas >= 1:
                self.acknowledged.append(key)
            n += 1


def test_a_killed_master_loses_no_write_a_replica_acknowledged(redis_cluster):
    writer = AcknowledgedWriter(redis_cluster.client())
    writer.start()
    try:
        wait_for(lambda: len(writer.acknowledged) >= 300, message="300 acknowledged writes")
        owners = redis_cluster.owners()
        victim = owners[slot_of("key:0")]
        victim_slots = {slot for slot, owner in enumerate(owners) if owner is victim}
        on_victim = [key for key in writer.acknowledged if slot_of(key) in victim_slots]
        promoted = redis_cluster.kill_master(victim)
        written = len(writer.written)

        def on_promoted() -> list[str]:
            return [key for key in writer.written[written:] if slot_of(key) in victim_slots]

        # each write there waits out its WAIT (the promoted master has no replica): 5 show it
        wait_for(lambda: len(on_promoted()) >= 5, message="5 writes to the promoted master after the failover")
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive()
    assert on_victim, "no acknowledged key was on the killed master"
    assert writer.failures, "the writer never met the dead master"
    assert redis_cluster.master_of("key:0") is promoted
    assert on_promoted(), "no write reached the new master"
    client = redis_cluster.client()
    assert [key for key in writer.acknowledged if client.get(key) != key] == []


def test_a_slot_moved_while_a_client_writes_loses_nothing(redis_cluster):
    client = redis_cluster.client()
    slot = slot_of("{emails}")
    with client.pipeline() as pipe:  # enough keys for the move to take a while
        for n in range(2000):
            pipe.set(f"{{emails}}:before:{n}", n)
        assert pipe.execute() == [True] * 2000
    written: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            key = f"{{emails}}:during:{n}"
            try:
                assert client.set(key, n)
                client.rpush("{emails}:list", n)
            except redis.RedisError as exc:
                errors.append(exc)
                return
            written.append(key)
            n += 1

    writer = threading.Thread(target=write, daemon=True)
    source = redis_cluster.master_of_slot(slot)
    target = next(master for master in redis_cluster.masters() if master is not source)
    writer.start()
    try:
        wait_for(lambda: len(written) >= 100, message="100 writes before the move")
        redis_cluster.move_slot(slot, target, batch=50, pause=0.01)
        moved_while = len(written)
        wait_for(lambda: len(written) >= moved_while + 100, message="100 writes after the move")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert errors == []
    assert redis_cluster.master_of_slot(slot) is target
    # every key of the slot (the list included) is on the new master, none left behind
    assert target.ask("CLUSTER", "COUNTKEYSINSLOT", slot) == 2000 + len(written) + 1
    assert source.ask("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert [n for n in range(2000) if client.get(f"{{emails}}:before:{n}") != str(n)] == []
    assert [key for key in written if client.get(key) is None] == []
    assert client.lrange("{emails}:list", 0, -1) == [str(n) for n in range(len(written))]
