"""Command-line interface (typer). ``subcell --help`` lists the commands."""
