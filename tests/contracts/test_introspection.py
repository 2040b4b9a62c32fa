"""A compiled contract as data, as Mermaid text, its required capabilities and ``explain``."""

from __future__ import annotations

import json
from typing import Any

from ember.contracts import (
    Contract,
    Input,
    Output,
    Retry,
    await_event,
    branch,
    collection,
    compose,
    compute,
)


class Enrich(Contract):
    email = Input(str)

    @compute(capabilities="external_api", idempotent=True)
    def profile(email: str) -> dict[str, Any]:
        return {"email": email}

    outputs = ("profile",)


class Lead(Contract, version=2):
    """Qualify a lead once the CRM has seen it."""

    lead_id = Input(str)
    email = Input(str)
    scores = Input(list, default=[])
    correlate_by = ("lead_id",)

    @compute(capabilities="pure")
    def normalized(email: str) -> str:
        """The address in lower case."""
        return email.lower()

    crm = await_event("crm_synced", timeout=3600, after=("normalized",))
    enriched = compose(Enrich, inputs={"email": "normalized"})
    tier = branch("crm", {"gold": lambda normalized: "vip"}, default=lambda: "std")
    scored = collection("scores", lambda item: item * 2, mode="collect")

    @compute(capabilities=("network",), timeout=10, retry=Retry(attempts=3))
    async def welcome(normalized: str, tier: str, enriched: dict[str, Any]) -> str:
        return f"{tier}:{normalized}"

    report = Output("welcome")


def test_graph_as_data_is_json() -> None:
    data = Lead.graph().as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["name"] == "Lead" and data["version"] == 2
    assert [s["name"] for s in data["steps"]] == [
        "normalized",
        "crm",
        "enriched",
        "tier",
        "scored",
        "welcome",
    ]
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["crm"]["event"] == "crm_synced" and steps["crm"]["await_timeout"] == 3600
    assert steps["welcome"]["retry"]["attempts"] == 3 and steps["welcome"]["timeout"] == 10
    assert steps["enriched"]["contract"] == "Enrich"
    assert steps["scored"]["mode"] == "collect" and steps["scored"]["over"] == "scores"
    assert ["normalized", "welcome"] in data["edges"] and ["lead_id", "welcome"] not in data[
        "edges"
    ]
    assert data["outputs"] == {"report": "welcome"}
    assert data["correlation"] == ["lead_id"]
    assert {i["name"]: i["required"] for i in data["inputs"]} == {
        "lead_id": True,
        "email": True,
        "scores": False,
    }


def test_mermaid_has_a_node_per_declaration_and_an_edge_per_dependency() -> None:
    text = Lead.mermaid()
    assert text.startswith("flowchart TD\n")
    assert 'i_email[/"email"/]' in text
    assert 's_crm{{"crm<br/>await crm_synced"}}' in text
    assert 's_tier{"tier<br/>branch on crm"}' in text
    assert 's_scored[["scored<br/>each of scores"]]' in text
    assert 's_enriched[["enriched<br/>contract Enrich"]]' in text
    assert 's_welcome["welcome<br/>network"]' in text
    assert 'o_report(["report"])' in text
    edges = [line.strip() for line in text.splitlines() if "-->" in line]
    expected = sum(len(s.deps) for s in Lead.graph().steps.values()) + 1
    assert len(edges) == expected
    assert "i_email --> s_normalized" in edges and "s_welcome --> o_report" in edges


def test_required_capabilities_include_composed_contracts() -> None:
    assert Lead.required_capabilities() == {"pure", "network", "external_api"}
    assert Enrich.required_capabilities() == {"external_api"}


def test_explain_says_what_where_and_what_if_lost() -> None:
    text = Lead.explain("welcome")
    assert text.splitlines()[0].startswith("step 'welcome' of contract Lead v2: compute (line ")
    assert "runs async function Lead.welcome" in text
    assert "depends on normalized (compute), tier (branch), enriched (compose)" in text
    assert "needs network: runs on a node offering it" in text
    assert "each attempt limited to 10 s" in text
    assert "retried: 3 attempts, waits 1 s x2 up to 100 s" in text
    assert "not idempotent: if its node is lost mid-step the run ends with outcome unknown" in text
    assert "used by report (output)" in text

    pure = Lead.explain("normalized")
    assert "The address in lower case." in pure and "pure: cached by content" in pure
    assert "used by crm (await), enriched (compose), tier (branch), welcome (compute)" in pure

    wait = Lead.explain("crm")
    assert (
        "waits for event 'crm_synced' (an earlier delivery is kept); after 3600 s it fails" in wait
    )
    assert "depends on normalized (compute)" in wait and "attempt" not in wait

    assert "runs Lead.<lambda> for each item of scores in parallel" in Lead.explain("scored")


def test_explain_of_an_unknown_step() -> None:
    try:
        Lead.explain("nope")
    except KeyError as exc:
        assert "contract Lead has no step 'nope'" in str(exc)
    else:
        raise AssertionError("no KeyError")
