"""The single-reader queue that carries relayed tokens."""

from __future__ import annotations

import asyncio

import pytest

from paddler_tui.server.balancer.mailbox import Mailbox


async def test_items_come_out_in_order_and_a_waiting_reader_wakes() -> None:
    mailbox: Mailbox[int] = Mailbox()
    reader = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    assert await reader == 1
    assert mailbox.get_nowait() == 2
    assert mailbox.empty()


def test_an_empty_mailbox_refuses_get_nowait() -> None:
    with pytest.raises(asyncio.QueueEmpty):
        Mailbox[int]().get_nowait()


async def test_a_cancelled_reader_leaves_room_for_the_next() -> None:
    mailbox: Mailbox[str] = Mailbox()
    first = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    mailbox.put_nowait("item")
    assert await asyncio.wait_for(second, 1) == "item"


async def test_an_item_put_before_the_reader_is_there_is_not_lost() -> None:
    mailbox: Mailbox[str] = Mailbox()
    mailbox.put_nowait("early")
    assert await asyncio.wait_for(mailbox.get(), 1) == "early"
