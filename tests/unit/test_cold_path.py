"""What the functions leave out of INIT (behaviour, never timings): clients, XML, the folded zone index."""

from __future__ import annotations

import json
import subprocess
import sys

from lead_caller import timezones
from lead_caller.crms.salesforce.webhook import load_xml, soap_fault
from lead_caller.wiring import LazyClient, build_sqs
from tests.lambda_like import lambda_like_environment


def loaded_after(statement: str) -> dict[str, object]:
    """sys.modules and a few facts of a fresh interpreter after `statement` (Lambda-like environment)."""
    environment = lambda_like_environment(POWERTOOLS_TRACE_DISABLED="true")
    code = (
        f"import sys, json\n{statement}\n"
        "from lead_caller import timezones\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'zone_index': timezones._zone_index.cache_info().currsize}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def test_the_dispatch_function_creates_no_client_and_no_function_loads_xml_or_folds_every_zone_at_init():
    for module in ("webhook", "dispatch", "events"):
        found = loaded_after(f"import lead_caller.handlers.{module} as handler")
        modules = set(found["modules"])  # type: ignore[call-overload]
        assert "defusedxml" not in modules, module
        assert "xml.sax.saxutils" not in modules, module
        assert found["zone_index"] == 0, module  # the template's policy names its zone exactly
    found = loaded_after("import lead_caller.handlers.dispatch as handler\nassert handler.sqs._client is None")
    assert found


def test_each_function_loads_only_the_builders_it_uses():
    others = {"lead_caller.outcomes", "lead_caller.writeback", "lead_caller.call_events", "lead_caller.outbound"}
    webhook = set(loaded_after("import lead_caller.handlers.webhook")["modules"])  # type: ignore[call-overload]
    assert not (others | {"lead_caller.dispatcher", "lead_caller.event_intake"}) & webhook
    dispatch = set(loaded_after("import lead_caller.handlers.dispatch")["modules"])  # type: ignore[call-overload]
    assert not (others | {"lead_caller.event_intake"}) & dispatch


def test_the_dispatchers_sqs_client_is_lazy():
    assert isinstance(build_sqs(), LazyClient)


def test_an_exact_zone_name_is_read_without_the_folded_index_and_others_still_fold():
    timezones._zone_index.cache_clear()
    assert timezones.zone_name("America/New_York") == "America/New_York"
    assert timezones.zone_name("Etc/GMT+5") == "Etc/GMT+5"  # not its folded twin Etc/GMT-5
    assert timezones._zone_index.cache_info().currsize == 0
    assert timezones.zone_name("america_slash_new_york") == "America/New_York"
    assert timezones.zone_name("europe/berlin") == "Europe/Berlin"
    assert timezones.zone_name("Mars/Olympus_Mons") is None
    assert timezones.zone_name("posixrules") is None  # loadable, but not an IANA zone name


def test_salesforce_xml_is_parsed_and_faults_escaped_with_the_modules_imported_on_first_use():
    root = load_xml(b'<?xml version="1.0" encoding="UTF-8"?><a><b>1</b></a>')
    assert root.tag == "a"
    assert "<faultstring>a &lt;b&gt; &amp; c</faultstring>" in soap_fault(400, "a <b> & c")


def test_the_dispatcher_imports_a_crm_api_on_its_first_fetch():
    from lead_caller.config import Settings
    from lead_caller.crms import OnFirstFetch, build_enrichers
    from lead_caller.crms.hubspot.api import HubSpotContacts
    from lead_caller.crms.pipedrive.api import PipedrivePersons
    from lead_caller.crms.zoho.api import ZohoRecords

    dispatch = set(loaded_after("import lead_caller.handlers.dispatch")["modules"])  # type: ignore[call-overload]
    assert not {m for m in dispatch if m.startswith("lead_caller.crms.") and m.endswith(".api")}
    enrichers = build_enrichers(Settings())
    expected = {
        HubSpotContacts.kind: HubSpotContacts,
        PipedrivePersons.kind: PipedrivePersons,
        ZohoRecords.kind: ZohoRecords,
    }
    assert set(enrichers) == set(expected)
    for kind, enricher in enrichers.items():
        assert isinstance(enricher, OnFirstFetch)
        assert isinstance(enricher.enricher, expected[kind])
        assert enricher.enricher is enricher.enricher  # built once
