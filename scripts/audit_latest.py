"""Known vulnerabilities of installed packages, from PyPI's project JSON (S43 fallback).

pip-audit asks PyPI's per-release JSON (``/pypi/NAME/VERSION/json``) for each pinned package.
Some networks serve the index and the project JSON but answer 404 for per-release documents.
The project JSON (``/pypi/NAME/json``) still lists the advisories of the project's *latest*
release, so for every installed package that is at its latest release this is the same answer
pip-audit would give. Packages behind their latest release cannot be checked this way; they are
named, not passed.

    python scripts/audit_latest.py REQUIREMENTS [--ignore-vuln ID ...]

Exit status: 0 when no known vulnerability was found, 1 when one was, 2 when PyPI could not be
reached at all.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)")


@dataclass
class Finding:
    name: str
    version: str
    latest: str | None = None
    vulnerabilities: list[str] = field(default_factory=list)
    error: str | None = None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found.append((match["name"], match["version"]))
    return found


def check(name: str, version: str, ignored: frozenset[str]) -> Finding:
    finding = Finding(name, version)
    url = PROJECT_JSON.format(name=_normal(name))
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:  # noqa: S310 - a fixed https URL
            document = json.load(answer)
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        finding.error = str(exc)[:200]
        return finding
    finding.latest = str(document.get("info", {}).get("version", ""))
    if finding.latest != version:
        return finding
    for advisory in document.get("vulnerabilities") or []:
        ids = {str(advisory.get("id", "")), *map(str, advisory.get("aliases") or [])}
        if advisory.get("withdrawn") or ids & ignored:
            continue
        fixed = ", ".join(advisory.get("fixed_in") or []) or "no fixed release"
        finding.vulnerabilities.append(f"{advisory.get('id')} (fixed in {fixed})")
    return finding


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements")
    parser.add_argument("--ignore-vuln", action="append", default=[])
    args = parser.parse_args(argv)
    with open(args.requirements, encoding="utf-8") as handle:
        wanted = pins(handle.read())
    ignored = frozenset(args.ignore_vuln)
    with ThreadPoolExecutor(max_workers=8) as pool:
        findings = list(pool.map(lambda pin: check(*pin, ignored), wanted))

    unreachable = [f for f in findings if f.error is not None]
    if findings and len(unreachable) == len(findings):
        print(f"PyPI's project JSON is unreachable too: {unreachable[0].error}", file=sys.stderr)
        return 2
    checked = [f for f in findings if f.error is None and f.latest == f.version]
    behind = [f for f in findings if f.error is None and f.latest != f.version]
    vulnerable = [f for f in checked if f.vulnerabilities]
    for f in vulnerable:
        print(f"VULNERABLE {f.name} {f.version}: {'; '.join(f.vulnerabilities)}")
    print(
        f"{len(checked)} of {len(findings)} packages are at their latest release and were checked:"
        f" {sum(len(f.vulnerabilities) for f in checked)} known vulnerabilities"
    )
    if behind:
        names = ", ".join(f"{f.name} {f.version} (latest {f.latest})" for f in behind)
        print(f"not checked, behind their latest release: {names}")
    for f in unreachable:
        print(f"not checked, PyPI did not answer for {f.name}: {f.error}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
