"""The seeds' examples (``examples/``) run as documented: LeadWorkflow, CallLifecycle and
BidAuction, each on a simulated three-node cluster with the durable store."""

from __future__ import annotations

from examples import bid_auction, call_lifecycle, lead_workflow


async def test_lead_workflow_waits_for_crm_and_billing_by_correlation() -> None:
    lead_workflow.SENT.clear()
    result = await lead_workflow.demo()
    assert result["score"] == 100 and result["welcome"] == "gold"
    assert result["crm_record"]["looked_up_on"] in ("b", "c")  # the nodes offering crm
    assert lead_workflow.SENT == ["gold welcome to ann@acme.example"]  # once


async def test_call_lifecycle_bills_answered_calls_and_notices_missed_ones() -> None:
    call_lifecycle.DIALED.clear()
    answered, missed = await call_lifecycle.demo()
    assert answered == {
        "outcome": "answered",
        "duration": 185.0,
        "bill": {"callee": "+3802", "minutes": 4, "cents": 48},
    }
    assert missed["outcome"] == "missed" and missed["bill"]["notice"] == "voicemail"
    assert call_lifecycle.DIALED == ["call-1", "call-2"]


async def test_bid_auction_commits_parallel_bids_before_the_winner() -> None:
    bid_auction.LEDGER.clear()
    result = await bid_auction.demo()
    assert result == {"winner": {"bidder": "bob", "amount": 150}, "rejected": ["cy bid nothing"]}
    assert sorted(b for _, b, _ in bid_auction.LEDGER) == ["ann", "bob", "dee"]


def test_the_examples_explain_themselves() -> None:
    text = bid_auction.BidAuction.explain("bids")
    assert "runs place_bid for each item of bidders in parallel; collects every outcome" in text
    assert "idempotent: run again elsewhere if its node is lost" in text
    assert "s_crm_synced" in lead_workflow.LeadWorkflow.mermaid()
    assert call_lifecycle.CallLifecycle.required_capabilities() == {"telephony", "pure"}
