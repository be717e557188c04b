"""The per-write timeout of client streams: a stuck write ends the writer, slow progress not."""

from __future__ import annotations

import asyncio

from paddler_tui.server.balancer.web.write_timeout import WriteTimeout


async def write_all(delays: list[float], timeout_s: float | None) -> str:
    """Writes that take ``delays`` seconds each: "done", or "timed out" at the stuck one."""
    with WriteTimeout(timeout_s) as writes:
        for delay in delays:
            writes.begin()
            await asyncio.sleep(delay)
            writes.end()
    return "timed out" if writes.timed_out else "done"


async def test_a_write_that_waits_the_whole_timeout_ends_the_writer() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await write_all([0, 0, 10], 0.1) == "timed out"

    assert 0.1 <= loop.time() - started < 1


async def test_writes_that_each_take_less_than_the_timeout_never_time_out() -> None:
    # 0.3 s of writes in all, longer than the timeout, none of them alone; each write leaves the
    # loop ten times its length of slack, so a busy machine does not make it a stuck one.
    assert await write_all([0.02] * 15, 0.2) == "done"


async def test_an_idle_writer_is_not_timed_out() -> None:
    write_timeout = WriteTimeout(0.05)
    write_timeout.begin()
    write_timeout.end()

    await asyncio.sleep(0.15)

    assert not write_timeout.expired()
    write_timeout.close()


async def test_without_a_timeout_a_write_may_wait_forever() -> None:
    writing = asyncio.create_task(write_all([10], None))
    await asyncio.sleep(0.1)
    assert not writing.done()
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)
    assert writing.cancelled()


async def test_a_real_cancellation_is_not_taken_for_a_timeout() -> None:
    writing = asyncio.create_task(write_all([10], 5))
    await asyncio.sleep(0.05)

    writing.cancel()

    await asyncio.gather(writing, return_exceptions=True)
    assert writing.cancelled()


async def test_a_timed_out_write_leaves_the_task_uncancelled() -> None:
    async def writer() -> int:
        assert await write_all([10], 0.05) == "timed out"
        current = asyncio.current_task()
        assert current is not None
        return current.cancelling()

    assert await writer() == 0
