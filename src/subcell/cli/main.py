"""The ``subcell`` command: a thin typer layer over the Python API.

Conventions every command follows: ``--voxel-size Z Y X`` (µm) for inputs without metadata, the output format
from the output's extension (``.ome.zarr``, ``.ome.tif``), ``--overwrite`` to replace an output. A user mistake
prints one line (file, field, what was expected) and exits with status 2; ``--verbose`` shows the traceback.
Heavy libraries are imported inside the commands so ``subcell --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from subcell._version import __version__
from subcell.cli import batch, bleach, drift, files, flatfield, measure, segment, track
from subcell.cli.cells import cells_app
from subcell.cli.demo import INTEGRATED_MINUTES, LABELFREE_MINUTES
from subcell.cli.integrated import integrated_app
from subcell.cli.labelfree import labelfree_app
from subcell.cli.options import error_line
from subcell.cli.pixels import pixels_app
from subcell.cli.state import state_app

__all__ = ["Terminated", "app", "run"]

app = typer.Typer(
    name="subcell",
    help="Machine learning and classical analysis for 3D and 3D+time live-cell microscopy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(files.info)
app.command()(files.convert)
app.add_typer(files.manifest_app, name="manifest")
app.command()(files.synth)
app.add_typer(segment.workflows_app, name="workflows")
app.command()(segment.segment)
app.command("evaluate-seg")(segment.evaluate_seg)
app.command()(measure.measure)
app.add_typer(pixels_app, name="pixels")
app.add_typer(labelfree_app, name="labelfree")
app.add_typer(cells_app, name="cells")
app.add_typer(integrated_app, name="integrated")
app.add_typer(state_app, name="state")
app.command()(drift.drift)
app.command()(bleach.bleach)
app.add_typer(flatfield.flatfield_app, name="flatfield")
app.command()(track.track)
app.command("evaluate-tracks")(track.evaluate_tracks)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(batch.batch)

_STATE = {"verbose": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"subcell {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")] = False,
) -> None:
    """subcell: label-free prediction, integrated cell models, segmentation and dynamics for live-cell imaging."""
    _STATE["verbose"] = verbose


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo_output"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs from an earlier run.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the synthetic data.")] = 0,
    labelfree_minutes: Annotated[
        float, typer.Option("--labelfree-minutes", help="CPU fine-tuning budget of the label-free step.", min=0.01)
    ] = LABELFREE_MINUTES,
    integrated_minutes: Annotated[
        float, typer.Option("--integrated-minutes", help="CPU training budget of the integrated-cell step.", min=0.01)
    ] = INTEGRATED_MINUTES,
) -> None:
    """Run the end-to-end pipeline on built-in synthetic data."""
    from subcell.cli.demo import run_demo

    for line in run_demo(out, overwrite=overwrite, seed=seed, labelfree_minutes=labelfree_minutes,
                         integrated_minutes=integrated_minutes):  # fmt: skip
        typer.echo(line)


@app.command()
def report(
    rundir: Annotated[Path, typer.Argument(help="A folder of subcell outputs (the demo's, a model, tracks, ...).")],
    output: Annotated[Path, typer.Argument(help="HTML page to write (self-contained: figures embedded).")],
    title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing page.")] = False,
) -> None:
    """One HTML page of a run: figures, tables and the provenance of each (command, config, version, inputs)."""
    from subcell.report import write_report

    write_report(rundir, output, title=title, overwrite=overwrite)
    typer.echo(f"wrote {output}")


class Terminated(BaseException):
    """SIGTERM arrived (a batch system's time limit or pre-emption, ``kill``): raised where the command is, so every
    writer removes its unfinished output on the way out, as on Ctrl-C; a BaseException, so that nothing takes it
    for an error of the command's own."""


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the command runs (by default it ends the process at once, leaving
    each unfinished output's hidden temporary behind, a whole output's size)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # (handlers belong to the main thread)
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def run(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line on stderr and exit status 2.

    Usage errors are handled by click (usage message, status 2); :class:`~subcell.errors.SubcellError` from the
    Python API becomes ``error: <file>: <field>: <what was expected>``.
    """
    from subcell.errors import SubcellError

    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["verbose"] = False  # nothing carries over from an earlier in-process run
    from subcell.io._atomic import last_output_begun, remove_unfinished, within_output

    last_output_begun(forget=True)
    try:
        with _terminate_cleanly():
            try:
                app(args=args, prog_name="subcell", standalone_mode=True)
            finally:  # what an interrupted writer could not remove itself (Zarr's I/O thread wrote on after it)
                remove_unfinished()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Terminated:
        typer.echo("error: terminated (SIGTERM); its unfinished outputs were removed", err=True)
        return 128 + 15
    except SubcellError as e:
        _traceback_if_verbose(args)
        typer.echo(error_line(e), err=True)
        return 2
    except OSError as e:
        if e.errno not in _STORAGE_ERRNOS:  # (anything else is a bug's: its traceback)
            raise
        _traceback_if_verbose(args)
        output = last_output_begun()
        if output is not None and (not e.filename or within_output(Path(str(e.filename)), output)):
            typer.echo(f"error: {output}: {e.strerror or e} (writing it); nothing unfinished was left", err=True)
        else:  # another file's (an input the storage refuses to read)
            typer.echo(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", err=True)
        return 1
    return 0


def _traceback_if_verbose(args: list[str]) -> None:
    """The traceback of the error being handled, with ``--verbose`` (given before or after the command)."""
    if _STATE["verbose"] or "--verbose" in args or "-v" in args:
        import traceback

        traceback.print_exc()


# what the storage refuses while a command writes (a full disk, a quota, a read-only or foreign folder): said in
# one line as a user's mistake is, not as a traceback through the writer; the writers remove what they began
_STORAGE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM")
                            if hasattr(errno, name))  # fmt: skip


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())
