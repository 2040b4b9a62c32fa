"""``skew_timers``: a node's timers at a rate (the processes driver's clock-skew), on the
virtual-time loop."""

import asyncio

import pytest

from ember._skew import skew_timers


async def test_timers_run_at_the_rate_and_readings_stay_true():
    loop = asyncio.get_running_loop()
    skew_timers(loop, 4.0)
    try:
        t0 = loop.time()
        await asyncio.sleep(10)  # call_later
        assert loop.time() - t0 == pytest.approx(2.5)
        fired = loop.create_future()
        loop.call_at(loop.time() + 8, fired.set_result, None)
        t1 = loop.time()
        await fired
        assert loop.time() - t1 == pytest.approx(2.0)
        t2 = loop.time()
        try:
            async with asyncio.timeout(20):  # call_at: an absolute deadline, moved as well
                await loop.create_future()
        except TimeoutError:
            pass
        assert loop.time() - t2 == pytest.approx(5.0)
        skew_timers(loop, 0.5)  # a new rate replaces the old one, never compounds it
        t3 = loop.time()
        await asyncio.sleep(1)
        assert loop.time() - t3 == pytest.approx(2.0)
    finally:
        skew_timers(loop, 1.0)
    assert "call_later" not in vars(loop) and "call_at" not in vars(loop)
    t4 = loop.time()
    await asyncio.sleep(3)
    assert loop.time() - t4 == pytest.approx(3.0)


@pytest.mark.ember_realtime
async def test_on_uvloop_a_delay_is_scaled_once():
    # uvloop's call_at goes through its call_later: the delay must not be divided twice.
    loop = asyncio.get_running_loop()
    skew_timers(loop, 4.0)
    try:
        handle = loop.call_at(loop.time() + 40.0, lambda: None)
        later = loop.call_later(40.0, lambda: None)
        for h in (handle, later):
            # 10 s (not 2.5 s: scaled twice; not 40 s: not at all), to uvloop's ms clock
            assert h.when() - loop.time() == pytest.approx(10.0, abs=0.1)
            h.cancel()
    finally:
        skew_timers(loop, 1.0)
