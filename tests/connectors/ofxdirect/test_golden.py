"""What the connector makes of each corpus OFX file its peer serves, frozen field by field (see
``tests/statements/golden.py``; the statement-file readings of the same files are beside it)."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from typing import Any

import httpx
import pytest
from ofxtools.Types import OFXTypeWarning

from bankhub.connectors.base import ConnectorFailure
from tests.connectors.ofxdirect.ofxserver import CORPUS, Served, User, running_ofx_server
from tests.statements import golden

from .test_ofxdirect import PASSWORD, USER, connector

FILES = sorted(p.name for p in CORPUS.glob("*.ofx"))


@pytest.mark.parametrize("name", FILES)
async def test_the_served_file_reads_as_its_golden(name: str) -> None:
    served = Served.from_corpus(name, desc="Golden")
    # The server writes the account list from the file: a file that names no account or no
    # account type still has its statement asked for, as a bank's would be.
    served = replace(
        served,
        acctid=served.acctid or "SVB-1",
        bankid=served.bankid or "121140399",
        accttype=served.accttype or (None if served.kind == "CC" else "CHECKING"),
    )
    snapshot: dict[str, Any]
    with running_ofx_server() as server, warnings.catch_warnings():
        # ofxtools warns when it writes a request naming a card number longer than OFX allows
        # (br_nubank_cc.ofx); outside the tests that is no error
        warnings.simplefilter("ignore", OFXTypeWarning)
        server.users[USER] = User(PASSWORD, [served])
        async with httpx.AsyncClient() as http:
            ofx = connector(http, server)
            try:
                await ofx.authenticate({"user_id": USER, "password": PASSWORD})
                accounts = await ofx.fetch_accounts()
                rows = [r for a in accounts for r in await ofx.fetch_transactions(a, None, None)]
                snapshot = golden.records(accounts, rows)
            except ConnectorFailure as failure:
                # a message that quotes an object's address would differ on every run
                message = re.sub(r" at 0x[0-9a-f]+", " at 0x…", failure.message)
                snapshot = {"failure": type(failure).__name__, "message": message}
    golden.check(f"ofxdirect/{name}", snapshot)
