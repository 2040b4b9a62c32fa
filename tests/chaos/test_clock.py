"""Skewed clocks: a domain's delays pass at its rate; absolute deadlines and readings stay true."""

import asyncio

import pytest

from ember.chaos._clock import SkewedLoop, run_skewed


def test_a_domain_sleeps_at_its_rate_and_others_at_the_true_rate():
    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SkewedLoop)
        loop.set_rate("fast", 2.0)
        loop.set_rate("slow", 0.5)
        took = {}

        async def nap(name):
            t0 = loop.time()
            await asyncio.sleep(1.0)
            took[name] = loop.time() - t0

        tasks = [
            loop.create_task(nap(name), context=loop.domain_context(name))
            for name in ("fast", "slow", "true")
        ]
        await asyncio.gather(*tasks)
        loop.set_rate("fast", 1.0)
        t0 = loop.time()
        await loop.create_task(asyncio.sleep(1.0), context=loop.domain_context("fast"))
        return took, loop.time() - t0

    took, back = run_skewed(main)
    assert took == {"fast": 0.5, "slow": 2.0, "true": 1.0}
    assert back == 1.0


def test_absolute_deadlines_are_not_skewed():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_rate("fast", 4.0)
        done = asyncio.Event()
        t0 = loop.time()
        ctx = loop.domain_context("fast")
        ctx.run(loop.call_at, t0 + 1.0, done.set)
        await done.wait()
        return loop.time() - t0

    assert run_skewed(main) == 1.0


def test_rates_must_be_positive():
    async def main():
        asyncio.get_running_loop().set_rate("x", 0)

    with pytest.raises(ValueError, match="positive"):
        run_skewed(main)
