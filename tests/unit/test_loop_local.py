"""LoopLocal: one client per event loop, closed by that loop's shutdown when mooring built it."""

from __future__ import annotations

import asyncio
import gc
import weakref

from mooring.models._retry import LoopLocal


class Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        await asyncio.sleep(0)  # a real close does I/O on the loop
        self.closed = True


async def client_of(clients: LoopLocal[Client]) -> Client:
    first, again = clients.get(), clients.get()
    assert first is again
    return first


def test_each_loop_gets_its_own_client_closed_when_the_loop_shuts_down() -> None:
    built: list[Client] = []

    def build() -> Client:
        built.append(Client())
        return built[-1]

    clients = LoopLocal(build, build(), close=Client.close)
    one = asyncio.run(client_of(clients))
    two = asyncio.run(client_of(clients))
    assert one is built[0] and two is built[1] and len(built) == 2
    assert one.closed and two.closed
    assert clients._closers == {}


def test_a_callers_client_is_never_closed() -> None:
    mine = Client()
    clients = LoopLocal(lambda: mine, mine)
    assert asyncio.run(client_of(clients)) is mine
    assert asyncio.run(client_of(clients)) is mine
    assert not mine.closed


def test_a_loop_closed_without_shutting_down_its_generators_is_not_kept_alive() -> None:
    clients = LoopLocal(Client, close=Client.close)
    loop = asyncio.new_event_loop()
    stranded = loop.run_until_complete(client_of(clients))
    loop.close()  # no shutdown_asyncgens(): nobody closes the client
    asyncio.run(client_of(clients))  # the next new client forgets the closed loop
    assert loop not in clients._closers and not stranded.closed
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None
