"""`plugwire proto`: where the installed package keeps its contracts, or their text.

The wheel carries copies of `proto/plugwire/v1/plugin.proto` and `docs/protocol.md` under
`plugwire/_contracts/` (scripts/check_proto.py keeps them equal to the sources), so a plugin
author with only `pip install plugwire` has the schema and the protocol document.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from ._common import JSON_OPTION, fail, print_json

__all__ = ["CONTRACTS", "PROTO", "PROTOCOL", "contract_path", "proto_command"]

#: The folder, inside the installed package, that holds the contracts.
CONTRACTS = "_contracts"
#: The gRPC service definition, relative to `CONTRACTS` (also its path for `protoc -I`).
PROTO = "plugwire/v1/plugin.proto"
#: The wire protocol's document, relative to `CONTRACTS`.
PROTOCOL = "protocol.md"


def contract_path(name: str) -> Path:
    """The installed file `name` (`PROTO` or `PROTOCOL`); a usage error (exit 2) naming the
    file when the installation lacks it."""
    path = Path(str(resources.files("plugwire").joinpath(CONTRACTS, *name.split("/"))))
    if not path.is_file():
        fail(f"this plugwire installation lacks {CONTRACTS}/{name} (reinstall plugwire): {path}")
    return path


@click.command("proto")
@click.option("--protocol", is_flag=True, help="The wire protocol's document (protocol.md) instead of the .proto.")
@click.option("--text", is_flag=True, help="Print the file's text instead of its path.")
@click.option("--include-dir", is_flag=True, help="Print the directory to pass to protoc as -I.")
@JSON_OPTION
def proto_command(*, protocol: bool, text: bool, include_dir: bool, as_json: bool) -> None:
    """Print the path of the gRPC contract (plugin.proto) shipped with plugwire.

    With --protocol, the wire protocol's document instead; with --text, the file's text;
    with --include-dir, the folder for `protoc -I`, e.g.
    `protoc -I "$(plugwire proto --include-dir)" --python_out=. plugwire/v1/plugin.proto`.
    --json prints every path (and the service's name) for scripts.
    """
    if include_dir and (text or protocol):
        raise click.UsageError("--include-dir prints a folder: it does not go with --text or --protocol")
    proto = contract_path(PROTO)
    root = proto.parents[len(PROTO.split("/")) - 1]
    if as_json:
        if text or include_dir or protocol:
            raise click.UsageError("--json prints every path: it does not go with --text, --protocol or --include-dir")
        print_json(
            {
                "proto": str(proto),
                "include_dir": str(root),
                "proto_import": PROTO,
                "service": "plugwire.v1.Plugin",
                "protocol": str(contract_path(PROTOCOL)),
            }
        )
        return
    if include_dir:
        click.echo(str(root))
        return
    path = contract_path(PROTOCOL) if protocol else proto
    click.echo(path.read_text(encoding="utf-8") if text else str(path), nl=not text)
