"""The documents stay true to the code."""

from __future__ import annotations

import re

from liveset.dev import schema_doc
from realtime.core import protocol

from .servers import ROOT


def test_protocol_doc_schemas_match_the_structs() -> None:
    document = (ROOT / "docs" / "protocol.md").read_text()
    assert schema_doc.replace_block(document) == document, (
        "docs/protocol.md is stale: run `python -m liveset.dev.schema_doc --write docs/protocol.md`"
    )


def test_every_event_in_the_tables_is_documented() -> None:
    document = (ROOT / "docs" / "protocol.md").read_text()
    for event in [*protocol.CLIENT_EVENTS, *protocol.SERVER_EVENTS]:
        assert f"`{event}`" in document


def test_every_type_a_schema_refers_to_is_rendered() -> None:
    document = (ROOT / "docs" / "protocol.md").read_text()
    referred = set(re.findall(r'"#/\$defs/(\w+)"', document))
    assert referred and all(f"#### `{name}`" in document for name in referred), sorted(
        name for name in referred if f"#### `{name}`" not in document)
