"""Real networks behind the `Transport` interface, and what runs them.

- `redis.py`: Redis Streams, one stream per channel, address and party; read positions
  that a party commits with its steps, so that a restarted party resumes where it stopped.
- `redisserver.py`: a redis-server of our own on a free loopback port, for tests, the
  demo and `fsmc run`: nothing assumes a server is running.

The in-memory network (runtime.harness.network) stays the default, for tests, simulation
and exploration. The asyncio driver that runs a party over these is runtime.aio.
"""
