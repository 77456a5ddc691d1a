"""Tables: boxes on a terminal, plain lines with whole values when piped."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Pkiforge

BOX = set("│┃┏┓┗┛┡┩━─╇┳┻└┘┌┐")


def test_piped_tables_are_plain_lines_with_whole_values(pkiforge: Pkiforge) -> None:
    r = pkiforge("ca", "list", env={"COLUMNS": "40"})  # captured: stdout is not a terminal
    assert r.code == 0, r.stderr
    assert not BOX & set(r.stdout), r.stdout
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["name", "kind", "status", "key", "parent", "expires", "key", "file"]
    cas = json.loads(pkiforge("ca", "list", "--json").stdout)
    assert len(rows) == len(cas)  # one line per CA, nothing folded
    for row, ca in zip(rows, cas, strict=True):
        assert row.split()[:3] == [ca["name"], ca["kind"], ca["status"]]
        assert row.endswith(ca["key_location"])
    # the columns line up: each header starts where its values start
    start = header.index("parent")
    assert all(
        row[start:].startswith(ca["parent"] or "-") for row, ca in zip(rows, cas, strict=True)
    )


def test_piped_certificate_list_keeps_each_certificate_on_one_line(
    pkiforge: Pkiforge, tmp_path: Path
) -> None:
    name = "a-rather-long-common-name-that-a-narrow-box-would-fold.internal"
    issued = pkiforge("cert", "issue", "--cn", name, "--key-out", str(tmp_path / "k"), "--json")
    assert issued.code == 0, issued.stderr
    serial = json.loads(issued.stdout)["serial"]
    r = pkiforge("cert", "list", env={"COLUMNS": "60"})
    assert r.code == 0, r.stderr
    assert not BOX & set(r.stdout)
    line = next(line for line in r.stdout.splitlines() if line.startswith(serial))
    assert name in line.split()
