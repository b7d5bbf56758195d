"""Each corpus file is claimed by its own format's sniff and by no other."""

from __future__ import annotations

import pytest

from bankhub.statements import csvfiles, ofx

from .corpus import CORPUS

OFX = sorted(p.name for p in (CORPUS / "ofx").iterdir())
CSV = sorted(p.name for p in (CORPUS / "csv").iterdir())
OTHER = sorted(
    str(p.relative_to(CORPUS))
    for d in ("camt", "mt940")
    for p in (CORPUS / d).rglob("*")
    if p.is_file()
)
CSV_FORMATS = {
    "dkb.csv": "csv:dkb",
    "ing.csv": "csv:ing",
    "sparkasse-lzo-camt-v8.csv": "csv:sparkasse",
    "paypal.csv": "csv:paypal",
}


def test_the_corpus_is_where_the_tests_expect_it() -> None:
    assert len(OFX) == 8
    assert sorted(CSV_FORMATS) == CSV
    assert len(OTHER) >= 10


@pytest.mark.parametrize("name", OFX)
def test_ofx_files_are_ofx_and_not_csv(name: str) -> None:
    data = (CORPUS / "ofx" / name).read_bytes()
    assert ofx.sniff(data)
    assert not csvfiles.sniff(data)


@pytest.mark.parametrize("name", CSV)
def test_csv_files_are_their_profile_and_not_ofx(name: str) -> None:
    data = (CORPUS / "csv" / name).read_bytes()
    assert csvfiles.sniff(data)
    assert not ofx.sniff(data)
    assert csvfiles.parse(data).format == CSV_FORMATS[name]


@pytest.mark.parametrize("name", OTHER)
def test_camt_and_mt940_files_are_neither(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    assert not ofx.sniff(data)
    assert not csvfiles.sniff(data)


@pytest.mark.parametrize(
    "name", [f"ofx/{n}" for n in OFX if n != "error_message.ofx"] + [f"csv/{n}" for n in CSV]
)
def test_parse_statement_picks_the_format(name: str) -> None:
    # detect.py imports the camt and MT940 readers too; they live in their own modules
    for module in ("bankhub.statements.camt", "bankhub.statements.mt940"):
        pytest.importorskip(module)
    from bankhub.statements import parse_statement

    data = (CORPUS / name).read_bytes()
    expected = "ofx" if name.startswith("ofx/") else CSV_FORMATS[name.split("/")[1]]
    assert parse_statement(data, name).format == expected
