"""The README against template.yaml; events/env.json and config.example.json against the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lead_caller.config import Settings
from local.resources import load_template
from local.stack import DEFAULT_PORTS, options_from, parse_args

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TEMPLATE = load_template()
FUNCTIONS = sorted(n for n, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function")


def _table_names(header: str) -> list[str]:
    """First-column names (`Name`) of the README table whose header row starts with `| header |`."""
    start = README.index(f"| {header} |")
    names = []
    for line in README[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        if match := re.match(r"\|\s*`([A-Za-z0-9]+)`", line):
            names.append(match.group(1))
    return names


def test_every_template_parameter_is_in_the_readme_table():
    documented = _table_names("parameter")
    missing = sorted(set(TEMPLATE["Parameters"]) - set(documented))
    stale = sorted(set(documented) - set(TEMPLATE["Parameters"]))

    assert not missing, f"README 'Template parameters and outputs': add a row for {', '.join(missing)}"
    assert not stale, f"README lists parameters the template no longer has: {', '.join(stale)}"


def test_every_template_output_is_in_the_readme_table():
    documented = _table_names("output")
    missing = sorted(set(TEMPLATE["Outputs"]) - set(documented))
    stale = sorted(set(documented) - set(TEMPLATE["Outputs"]))

    assert not missing, f"README 'Template parameters and outputs': add a row for the output(s) {', '.join(missing)}"
    assert not stale, f"README lists outputs the template no longer has: {', '.join(stale)}"


def test_the_parameter_defaults_in_the_readme_are_the_template_s():
    start = README.index("| parameter |")
    for line in README[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        spec = TEMPLATE["Parameters"].get(name.strip("`"))
        if spec is None:
            continue
        expected = str(spec.get("Default", ""))
        shown = "" if default == "empty" else default.strip("`").replace("\\|", "|")
        assert " ".join(expected.split()) == shown, f"README default of {name}: {shown!r}, template: {expected!r}"


def test_the_architecture_diagram_shows_every_function():
    diagram = README[README.index("```mermaid") : README.index("```", README.index("```mermaid") + 3)]

    missing = [function for function in FUNCTIONS if function not in diagram]
    assert not missing, f"README architecture diagram: add {', '.join(missing)}"
    assert "EventBridge bus" in diagram
    assert "EventBridge partner bus" in diagram


def test_env_json_has_every_function_pointed_at_the_local_stack():
    env = json.loads((ROOT / "events" / "env.json").read_text())
    declared = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])

    missing = [function for function in FUNCTIONS if function not in env]
    assert not missing, f"events/env.json: add an entry for {', '.join(missing)} (sam local invoke)"
    for function, variables in env.items():
        assert variables["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{DEFAULT_PORTS['aws']}", function
        assert variables["UNPOD_BASE_URL"].startswith(f"http://host.docker.internal:{DEFAULT_PORTS['sandbox']}/")
        assert variables["CRM_SECRET_ID"] == "lead-caller/crm"
        for name, port in (("HUBSPOT_API_BASE_URL", "hubspot"), ("PIPEDRIVE_API_BASE_URL", "pipedrive")):
            assert variables[name] == f"http://host.docker.internal:{DEFAULT_PORTS[port]}", (function, name)
        assert variables["ZOHO_ACCOUNTS_BASE_URL"] == f"http://host.docker.internal:{DEFAULT_PORTS['zoho']}"
        function_variables = TEMPLATE["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
        unknown = set(variables) - declared - set(function_variables)
        assert not unknown, f"{function}: sam local ignores variables the template does not declare: {unknown}"


def test_readme_commands_use_the_documented_fixed_ports():
    assert "<aws-port>" not in README
    assert "<sandbox-port>" not in README
    assert f"--endpoint-url http://127.0.0.1:{DEFAULT_PORTS['aws']}" in README
    assert f"http://127.0.0.1:{DEFAULT_PORTS['sandbox']}/__sandbox__/config" in README
    assert "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing" in README
    assert ".venv/bin/python -m local.signing" in README
    assert "\npython -m local.signing" not in README


def test_config_example_is_a_valid_config_for_real_calls():
    config = json.loads((ROOT / "config.example.json").read_text())
    args = parse_args(["--port", "0", "--unpod-base-url", "https://unpod.ai/api/v2/platform"])

    options = options_from(args, config)  # not refused: own webhook credentials, no published samples

    assert options.webhook_secret == config["webhooks"]
    assert set(config["unpod"]) == {"api_token", "space_token", "org_handle", "pilot"}
    Settings.from_env({key: str(value) for key, value in config["env"].items()})  # raises ConfigError if invalid


def test_the_readme_says_there_are_three_secrets():
    assert "two empty secrets" not in README
    assert "three empty secrets" in README
