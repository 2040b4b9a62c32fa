"""The contract the contracts workload runs: it ends with what the checker's model says, and
its steps note each execution in the KV group's ledger, once per execution."""

from ember.chaos._checkers import expected_order_result, payment_of
from ember.chaos._driver import KV_GROUP
from ember.chaos._kvsm import ChaosKV
from ember.chaos._orders import ChaosOrder, ledger_key
from ember.consensus import Cluster
from ember.contracts import ContractsConfig
from ember.testing import SimCluster


def test_a_note_is_one_entry_per_token():
    kv = ChaosKV()
    note = {"op": "note", "key": "ledger/r", "token": "t1", "value": ["charge", "a", 1]}
    assert kv.apply_command(note) == 1
    assert kv.apply_command(note) == 1  # the same execution noted again
    assert kv.apply_command({**note, "token": "t2"}) == 2
    assert sorted(kv.read("ledger/r")) == ["t1", "t2"]


async def test_a_chaos_order_ends_as_the_model_says_and_notes_its_executions():
    options = {"contracts": ContractsConfig(store=("a", "b"))}
    async with SimCluster(["a", "b"], seed=4, node_options=options) as sim:
        a, b = sim.node("a"), sim.node("b")
        kv = await Cluster.start(["a", "b"], ChaosKV, name=KV_GROUP, node=a)
        await kv.wait_for_leader(timeout=30)
        inputs = {"order": "o1", "amount": 5, "ledger": ["a", "b"]}
        handle = await b.contracts.start_on("a", ChaosOrder, inputs, run_id="o1")
        assert handle.created
        await b.contracts.deliver_event("paid", {"order": "o1"}, payment_of("o1"), event_id="e1")
        assert await b.contracts.result("o1", timeout=30) == expected_order_result(
            "o1", 5, payment_of("o1")
        )
        ledger = await kv.read(ledger_key("o1"))
        assert sorted(row[:2] for row in ledger.values()) == [["charge", "a"], ["reserve", "a"]]
