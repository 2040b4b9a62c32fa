"""Two contracts that compose each other by reference: a cycle the compiler can only see once
both are defined (``Contract.graph()`` resolves the references and finds it)."""

from __future__ import annotations

from ember.contracts import Contract, Input, compose


class Ping(Contract):
    n = Input(int)
    pong = compose("tests.contracts.cyclic:Pong", inputs={"n": "n"})


class Pong(Contract):
    n = Input(int)
    ping = compose(Ping)
