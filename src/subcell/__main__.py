"""``python -m subcell`` runs the CLI."""

from subcell.cli.main import entry

entry()
