"""The README's quick start in practice: ``bankhub serve``, then the seed's curl examples.

The server is the one ``scripts/serve`` runs (``python -m bankhub serve``, started by the
``live_server`` fixture). The curl commands below are copied verbatim from the Finsify Hub API v2
reference (seed 004); only the host, the credentials and the ids the reference leaves as samples
are substituted, and each runs through ``sh -c`` with the real ``curl`` binary. The one login
the account and transaction examples need is made by walking the connect page with plain HTTP,
as a browser without JavaScript would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.seed_shapes import ACCOUNT_KEYS, SERVICE_KEYS, TRANSACTION_KEYS
from tests.support.http_connect import connect_over_http
from tests.support.live_server import LiveServer
from tests.support.server_plugin import LiveServerFactory

# --- the reference's examples, verbatim ------------------------------------------------------

SEED_HOST = "https://api.finsify.com"

SEED_CREATE_CUSTOMER = """\
curl -X POST \\
https://api.finsify.com/v2/customer \\
-H 'accept: application/json' \\
-H 'content-type: application/json' \\
-H 'client-id: sample-clientId' \\
-H 'service-secret: sample-clientSecret' \\
-d '{
"identifier": "sample-identifier-user"
}'
"""

SEED_CREATE_TOKEN = """\
curl -X POST \\
https://api.finsify.com/v2/token \\
-H 'client-id: sample-clientId' \\
-H 'content-type: application/json' \\
-H 'service-secret: sample-clientSecret' \\
-d '{
"customer_id": "115eff49-1323-4f09-9fc1-c8009d81777b",
"service_id": 8,
"callback_url": "http://localhost:2000/v2"
}'
"""

SEED_ACCOUNT_LIST = """\
curl -X GET \\
https://api.finsify.com/v2/account \\
-H 'client-id: sample-clientId' \\
-H 'content-type: application/json' \\
-H 'login-secret: 78cea84c-7eb8-4425-2312-3a1ac8383afe' \\
-H 'service-secret: sample-secret'
"""

SEED_TRANSACTIONS = """\
curl -X GET \\
'https://api.finsify.com/v2/transaction?account_id=14324&from_date=2016-08-26&to_date=2017-10-25' \\
-H 'client-id: sample-clientId' \\
-H 'content-type: application/json' \\
-H 'login-secret: 78cea84c-7eb8-4425-2312-3a1ac8383afe' \\
-H 'service-secret: sample-service-secret'
"""

SEED_CUSTOMER_ID = "115eff49-1323-4f09-9fc1-c8009d81777b"
SEED_LOGIN_SECRET = "78cea84c-7eb8-4425-2312-3a1ac8383afe"
SEED_CALLBACK = "http://localhost:2000/v2"
#: the reference's example picks service 8; the catalogue has it (Sandbox Thames Bank, GBP).
SEED_SERVICE_ID = 8

LISTENING = re.compile(r"^bankhub listening on (http://127\.0\.0\.1:(\d+))$", re.MULTILINE)
CRED_LINES = {
    "client_id": re.compile(r"^client-id: (\S+)$", re.MULTILINE),
    "service_secret": re.compile(r"^service-secret: (\S+)$", re.MULTILINE),
    "app_secret": re.compile(r"^app-secret: (\S+)$", re.MULTILINE),
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AMOUNT = re.compile(r"^-?\d+\.\d{2,3}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def substitute(command: str, replacements: dict[str, str]) -> str:
    for sample, real in replacements.items():
        assert sample in command, (sample, command)
        command = command.replace(sample, real)
    return command


def run_curl(command: str) -> Any:
    """Run a curl command line as a shell would; its stdout must be JSON."""
    assert shutil.which("curl"), "the curl binary is needed"
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, (command, done.returncode, done.stderr)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON from {command!r}:\n{done.stdout}\n{done.stderr}")


# --- the one login the examples need ---------------------------------------------------------


# --- the test --------------------------------------------------------------------------------


def parse_banner(server: LiveServer) -> tuple[str, dict[str, str]]:
    server.wait_for_output(LISTENING.pattern)
    output = server.stdout_text()
    listening = LISTENING.search(output)
    assert listening, output
    assert int(listening.group(2)) == server.port
    assert "Created the demo app; its secrets are shown this once:" in output
    creds: dict[str, str] = {}
    for key, line in CRED_LINES.items():
        found = line.findall(output)
        assert len(found) == 1, (key, output)
        creds[key] = found[0]
    assert creds == server.demo_credentials()
    return listening.group(1), creds


def test_readme_quick_start_with_the_seeds_curl_examples(live_server: LiveServerFactory) -> None:
    server = live_server()
    url, creds = parse_banner(server)
    client_id, service_secret = creds["client_id"], creds["service_secret"]
    host = {SEED_HOST: url}

    # Create a customer.
    body = run_curl(
        substitute(
            SEED_CREATE_CUSTOMER,
            {**host, "sample-clientId": client_id, "sample-clientSecret": service_secret},
        )
    )
    assert set(body) == {"data", "version"}, body
    assert body["version"] == "v2"
    assert set(body["data"]) == {"customer_id", "identifier"}
    assert body["data"]["identifier"] == "sample-identifier-user"
    customer_id = body["data"]["customer_id"]
    assert UUID.match(customer_id), customer_id

    # The same again: the reference's sample error.
    again = run_curl(
        substitute(
            SEED_CREATE_CUSTOMER,
            {**host, "sample-clientId": client_id, "sample-clientSecret": service_secret},
        )
    )
    assert again["error"] == "CustomerExists", again
    assert again["extra"]["identifier"] == "sample-identifier-user"

    # Create a token for service 8, as the reference's example does.
    body = run_curl(
        substitute(
            SEED_CREATE_TOKEN,
            {
                **host,
                "sample-clientId": client_id,
                "sample-clientSecret": service_secret,
                SEED_CUSTOMER_ID: customer_id,
            },
        )
    )
    assert set(body) == {"data", "version"}, body
    assert set(body["data"]) == {"id", "connect_url"}
    token_id = body["data"]["id"]
    assert UUID.match(token_id), token_id
    assert body["data"]["connect_url"] == f"{url}/v2/connect/term/{token_id}"

    # The user connects; the browser would land on http://localhost:2000/v2/{...}.
    result = connect_over_http(body["data"]["connect_url"], url, SEED_CALLBACK)
    assert set(result) == {"status", "login_id", "secret"}, result
    assert result["status"] == "success"
    assert isinstance(result["login_id"], int)
    secret = result["secret"]
    assert UUID.match(secret), secret

    login = {SEED_LOGIN_SECRET: secret}

    # Account list.
    body = run_curl(
        substitute(
            SEED_ACCOUNT_LIST,
            {**host, **login, "sample-clientId": client_id, "sample-secret": service_secret},
        )
    )
    assert set(body) == {"data", "version"}, body
    assert body["version"] == "v2"
    accounts = body["data"]
    assert len(accounts) == 3
    for account in accounts:
        assert set(account) == ACCOUNT_KEYS, account
        assert isinstance(account["id"], int)
        assert account["login_id"] == result["login_id"]
        assert AMOUNT.match(account["balance"]), account
        assert account["currency"] == "GBP"
    account_id = accounts[0]["id"]

    # Transactions: first with the reference's own dates (2016-2017, before any sandbox data).
    tx_replacements = {
        **host,
        **login,
        "sample-clientId": client_id,
        "sample-service-secret": service_secret,
        "account_id=14324": f"account_id={account_id}",
    }
    body = run_curl(substitute(SEED_TRANSACTIONS, tx_replacements))
    assert body == {"data": [], "version": "v2"}

    # Then over the last year, where the sandbox has data.
    today = datetime.now(UTC).date()
    dates = f"from_date={today - timedelta(days=365)}&to_date={today}"
    body = run_curl(
        substitute(
            SEED_TRANSACTIONS, {**tx_replacements, "from_date=2016-08-26&to_date=2017-10-25": dates}
        )
    )
    assert set(body) == {"data", "version"}, body
    rows = body["data"]
    assert rows, "no transactions in the last year"
    for row in rows:
        assert set(row) == TRANSACTION_KEYS, row
        assert isinstance(row["id"], int)
        assert AMOUNT.match(row["amount"]), row
        assert DATE.match(row["date"]), row
        assert row["currency"] == "GBP"
        assert isinstance(row["category"], str)
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)

    # The public catalogue.
    services = run_curl(f"curl {url}/service.json")
    assert isinstance(services, list)
    assert services
    for service in services:
        assert set(service) == SERVICE_KEYS, service
        assert service["media_path"] == f"{url}/media/services/"
        assert set(service["color"]) == {"primary", "secondary"}
        assert service["type"] in {"bank", "statement", "other"}
    assert SEED_SERVICE_ID in {s["id"] for s in services}


def test_second_start_does_not_show_secrets_again(live_server: LiveServerFactory) -> None:
    first = live_server()
    _, creds = parse_banner(first)
    first.stop()

    second = live_server(data_dir=first.data_dir)
    second.wait_for_output(LISTENING.pattern)
    output = second.stdout_text()
    assert "Demo app exists" in output
    assert "Created the demo app" not in output
    for key, line in CRED_LINES.items():
        assert not line.search(output), (key, output)
    for value in creds.values():
        assert value not in output

    # The credentials shown on the first start still work.
    response = httpx.post(
        f"{second.url}/v2/customer",
        json={"identifier": "after-restart"},
        headers={"client-id": creds["client_id"], "service-secret": creds["service_secret"]},
    )
    assert response.status_code == 200, response.text
