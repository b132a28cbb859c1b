"""bench/counter.py's job as a Dramatiq actor, with Dramatiq's defaults."""

import dramatiq
from counter import URL, counter
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=URL))
counter_actor = dramatiq.actor(counter, actor_name="counter", queue_name="bench")
