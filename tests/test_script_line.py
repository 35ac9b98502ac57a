"""The pipelined script connection (realtime/live/script_line.py) against the test Valkey."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.live.script_line import Function, ScriptLine

TEST_LIBRARY = f"line_test_{uuid.uuid4().hex[:8]}"
_SOURCE = f"""#!lua name={TEST_LIBRARY}
redis.register_function('{TEST_LIBRARY}_append', function(keys, args)
  redis.call('RPUSH', keys[1], args[1])
  return {{args[1], redis.call('LLEN', keys[1])}}
end)
redis.register_function('{TEST_LIBRARY}_fail', function(keys, args)
  return redis.error_reply('NOPE not today')
end)""".encode()
APPEND = Function(_SOURCE, f"{TEST_LIBRARY}_append".encode())
FAIL = Function(_SOURCE, f"{TEST_LIBRARY}_fail".encode())


async def forget(plain: aioredis.Redis) -> None:
    """The server forgets the test library, as a restarted one would."""
    await plain.execute_command("FUNCTION", "DELETE", TEST_LIBRARY)


@pytest.fixture
async def plain(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_calls_made_together_are_answered_each_with_its_own_reply_in_order(
    redis_url: str, plain: aioredis.Redis
) -> None:
    key = f"line:{uuid.uuid4().hex}"
    with contextlib.suppress(ResponseError):
        await forget(plain)  # the first call finds the function missing and loads the library
    line = ScriptLine(redis_url)
    try:
        # Each call gets its own reply, though after a missing function each one retries on its own.
        first = await asyncio.gather(*(line.run(APPEND, [key], [n]) for n in range(100)))
        assert [arg for arg, _ in first] == [str(n).encode() for n in range(100)]
        assert sorted(length for _, length in first) == list(range(1, 101))
        # Loaded, calls reach Redis in the order they were made.
        then = await asyncio.gather(*(line.run(APPEND, [key], [n]) for n in range(100, 200)))
        assert then == [[str(n).encode(), n + 1] for n in range(100, 200)]
        assert (await plain.lrange(key, 100, -1)) == [str(n).encode() for n in range(100, 200)]
        batch = await line.run_all(APPEND, [([key], ["a"]), ([key], [1.5])])
        assert batch == [[b"a", 201], [b"1.5", 202]]
        await forget(plain)  # a batch that finds it missing loads the library and runs each call once
        again = await line.run_all(APPEND, [([key], ["b"]), ([key], ["c"])])
        assert again == [[b"b", 203], [b"c", 204]]
        assert await plain.llen(key) == 204
    finally:
        await line.aclose()


async def test_the_calls_of_one_loop_turn_reach_redis_in_one_write(redis_url: str, plain: aioredis.Redis) -> None:
    """Redis counts the reads it makes: 100 calls made together cost it a few, not 100."""
    key = f"line:{uuid.uuid4().hex}"
    line = ScriptLine(redis_url)
    try:
        await line.run(APPEND, [key], [0])  # connected, the script loaded
        before = (await plain.info("stats"))["total_reads_processed"]
        await asyncio.gather(*(line.run(APPEND, [key], [n]) for n in range(1, 101)))
        reads = (await plain.info("stats"))["total_reads_processed"] - before
        assert reads <= 10  # the 100 calls, the INFO, and whatever else the test servers did meanwhile
        assert await plain.llen(key) == 101
    finally:
        await line.aclose()


async def test_a_function_library_is_loaded_once_by_all_the_calls_that_find_it_missing(
    redis_url: str, plain: aioredis.Redis
) -> None:
    tag = uuid.uuid4().hex[:8]
    append = Function(f"""#!lua name=line_{tag}
redis.register_function('append_{tag}', function(keys, args)
  redis.call('RPUSH', keys[1], args[1])
  return redis.call('LLEN', keys[1])
end)""".encode(), f"append_{tag}".encode())
    key = f"line:{uuid.uuid4().hex}"
    line = ScriptLine(redis_url)

    async def loads() -> int:
        return (await plain.info("commandstats")).get("cmdstat_function|load", {}).get("calls", 0)
    try:
        before = await loads()
        lengths = await asyncio.gather(*(line.run(append, [key], [n]) for n in range(50)))
        assert sorted(lengths) == list(range(1, 51))
        assert await loads() == before + 1
        await plain.execute_command("FUNCTION", "DELETE", f"line_{tag}")  # as a restarted server would
        batch = await line.run_all(append, [([key], ["a"]), ([key], ["b"])])
        assert batch == [51, 52] and await loads() == before + 2
        assert await plain.llen(key) == 52
    finally:
        await plain.execute_command("FUNCTION", "DELETE", f"line_{tag}")
        await line.aclose()


async def test_an_error_reply_fails_its_call_only(redis_url: str) -> None:
    line = ScriptLine(redis_url)
    try:
        results = await asyncio.gather(
            line.run(APPEND, [f"line:{uuid.uuid4().hex}"], ["x"]), line.run(FAIL, [], []), return_exceptions=True)
        assert results[0] == [b"x", 1]
        assert isinstance(results[1], ResponseError) and "not today" in str(results[1])
        assert await line.call(b"PING") == b"PONG"
    finally:
        await line.aclose()


async def test_a_lost_connection_fails_what_waits_and_the_next_call_connects_again(
    redis_url: str, plain: aioredis.Redis
) -> None:
    line = ScriptLine(redis_url)
    try:
        name = f"line-{uuid.uuid4().hex[:8]}"
        await line.call(b"CLIENT", b"SETNAME", name)
        waiting = asyncio.ensure_future(line.call(b"WAIT", 1, 3000))  # blocks: there is no replica
        await asyncio.sleep(0.1)
        assert await plain.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal", "ID",
                                           await _client_id(plain, name)) == 1
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await line.call(b"PING") == b"PONG"
    finally:
        await line.aclose()


async def test_a_reply_that_never_comes_times_out_instead_of_hanging(redis_url: str) -> None:
    line = ScriptLine(redis_url, timeout_s=0.3)
    try:
        with pytest.raises(RedisTimeoutError):
            await line.call(b"WAIT", 1, 2000)
        assert await line.call(b"PING") == b"PONG"  # a new connection
    finally:
        await line.aclose()


async def test_the_url_chooses_user_password_and_database(redis_url: str, plain: aioredis.Redis) -> None:
    user, password = f"line-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await plain.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")
    key = f"line:{uuid.uuid4().hex}"
    base = redis_url.rsplit("/", 1)[0].replace("redis://", f"redis://{user}:{password}@")
    line = ScriptLine(f"{base}/3")
    try:
        await line.run(APPEND, [key], ["in db 3"])
        assert await line.call(b"ACL", b"WHOAMI") == user.encode()
        third = aioredis.Redis.from_url(f"{redis_url.rsplit('/', 1)[0]}/3")
        assert await third.lrange(key, 0, -1) == [b"in db 3"]
        assert await plain.exists(key) == 0
        await third.aclose()
    finally:
        await line.aclose()
        await plain.execute_command("ACL", "DELUSER", user)
    refused = ScriptLine(base.replace(password, "wrong") + "/0")
    with pytest.raises(ResponseError):
        await refused.call(b"PING")
    await refused.aclose()


async def _client_id(plain: aioredis.Redis, name: str) -> int:
    for client in await plain.client_list():
        if client["name"] == name:
            return int(client["id"])
    raise AssertionError(f"no client named {name}")
