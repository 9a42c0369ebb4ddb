"""``subcell batch COMMAND MANIFEST OUTDIR [command options]``: any single-item command over a collection.

Each item runs the single-item command itself — the same click command, parsed from the same arguments a user
would type — so a batch output is the output of ``subcell COMMAND`` on that row. The command's options are
validated once on the client before anything is scheduled; per-row values (channel, voxel size, labels, …)
come from the manifest's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from subcell.cli.batch_commands import ALIASES, COMMANDS, RUN_COLUMNS, TORCH_BASE, WORKER_BASE, Gathered

__all__ = ["COMMANDS", "CommandTask", "Gathered", "batch", "build_items"]


def click_command(path: tuple[str, ...]) -> Any:
    """The click command of ``subcell <path…>`` (what the CLI itself runs)."""
    import typer.main

    from subcell.cli.main import app

    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@dataclass(frozen=True)
class CommandTask:
    """Runs ``subcell <path> <args…>`` in the worker process for one item; returns the command's last line.

    Picklable (a command path, not the function), so any Dask worker with subcell installed can run it.
    """

    path: tuple[str, ...]
    gathered: tuple[Gathered, ...] = ()  # also write the item's tables into OUTDIR/<folder>/

    def __call__(self, item: Any) -> str:
        import io

        if self.path[0] == "labelfree":  # a worker loads each model once, not once per item
            from subcell.labelfree.cache import MODEL_CACHE

            MODEL_CACHE.enabled = True
        buffer = io.StringIO()
        with _ThreadStdout.capture(buffer):
            click_command(self.path).main(args=list(item.params["args"]), prog_name="subcell", standalone_mode=False)
        for g in self.gathered:
            _add_to_dataset(item, g)
        lines = [ln for ln in buffer.getvalue().splitlines() if ln.strip()]
        warnings = sorted({ln for ln in lines if ln.startswith(("warning:", "note:"))})
        summary = [ln for ln in lines if not ln.startswith(("warning:", "note:"))]
        return "; ".join([*(summary[-1:] or []), *warnings])


class _ThreadStdout:
    """One ``sys.stdout``/``sys.stderr`` for the worker process that sends each thread's writes to its buffer.

    Why not ``contextlib.redirect_stdout``: click caches a text wrapper per stream object, so swapping in a new
    stream per item mixed up items' output; and items run concurrently in a worker's threads. An item's warnings
    (stderr) end up in its message instead of in the client's terminal.
    """

    def __init__(self, original: Any) -> None:
        import threading

        self._tls = threading.local()
        self._original = original

    @classmethod
    def capture(cls, buffer: Any) -> Any:
        import contextlib
        import sys

        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), _ThreadStdout):
                setattr(sys, name, cls(getattr(sys, name)))
        streams = [sys.stdout, sys.stderr]

        @contextlib.contextmanager
        def scope() -> Any:
            for s in streams:
                s._tls.buffer = buffer  # type: ignore[union-attr]
            try:
                yield buffer
            finally:
                for s in streams:
                    s._tls.buffer = None  # type: ignore[union-attr]

        return scope()

    def _target(self) -> Any:
        return getattr(self._tls, "buffer", None) or self._original

    def write(self, text: str) -> int:
        return int(self._target().write(text))

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _add_to_dataset(item: Any, gathered: Gathered) -> None:
    """One table of the item's output with its id and source (and voxel size), as one file of the dataset folder."""
    from subcell.batch.items import safe_name
    from subcell.io import read, read_table, write_table

    path = item.output / gathered.table if gathered.table else item.output
    if gathered.optional and not path.exists():
        return
    table = read_table(path)
    clash = {"id", "source"} & set(table.columns)  # e.g. a cell table's own source field: the item's get a prefix
    table.insert(0, "batch_id" if clash else "id", item.id)
    table.insert(1, "batch_source" if clash else "source", str(item.inputs[0]))
    # the row's own columns (a plate's well and field, a condition): the collection's tables group by them; a
    # column the table has already keeps the table's values
    extra = {k: v for k, v in item.params.get("columns", {}).items() if k not in table.columns}
    for i, (name, value) in enumerate(extra.items(), start=2):
        table.insert(i, name, value)
    if gathered.voxel_size:
        vs = read(item.inputs[0], voxel_size=item.params.get("voxel_size"), scene=item.params.get("scene")).voxel_size
        for axis, v in zip("zyx", vs.as_tuple(), strict=True):
            table[f"voxel_size_{axis}"] = v
    folder = item.output.parent / gathered.folder
    folder.mkdir(exist_ok=True)
    write_table(table, folder / f"{safe_name(item.id)}.parquet", overwrite=True)  # the output's own name


def _check_into_labels(command: str, name: str, suffix: str | None) -> None:
    """``--into-labels NAME``: a command that writes labels, a plain name, no ``--suffix`` beside it."""
    from subcell.errors import ValueRangeError

    writers = [c for c, spec in COMMANDS.items() if spec.labels_output]
    if not COMMANDS[command].labels_output:
        raise ValueRangeError(f"{command} does not write labels; --into-labels is for {', '.join(writers)}",
                              field="--into-labels")  # fmt: skip
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueRangeError(f"expected a label name (no folders), got {name!r}", field="--into-labels")
    if suffix is not None:
        raise ValueRangeError("--into-labels writes into each source; --suffix names outputs in OUTDIR",
                              field="--suffix")  # fmt: skip


def _row_columns(row: Any) -> dict[str, Any]:
    """A manifest row's scene and the free columns that describe it (``well``, ``condition``, …; not those that
    say how it runs, :data:`RUN_COLUMNS`) that hold a value: the columns its item adds to the gathered tables."""
    import math

    columns = {"scene": row.scene} if row.scene is not None else {}
    for name, value in row.metadata.items():
        if name in RUN_COLUMNS or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        columns[name] = value if isinstance(value, (int, float, bool, str)) else str(value)
    return columns


def _seed_range(text: str) -> range | None:
    """``START:STOP`` (stop excluded, like Python's range) or ``N`` (seeds 0 … N-1); ``None`` if not a range."""
    parts = text.split(":")
    if not all(p.strip().isdigit() for p in parts) or len(parts) > 2:
        return None
    start, stop = (0, int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    return range(start, stop)


def build_items(
    command: str,
    manifest: str,
    outdir: Path,
    options: list[str],
    suffix: str | None = None,
    params: dict[str, Any] | None = None,
    into_labels: str | None = None,
) -> list[Any]:
    """The items of a batch (manifest problems, bad options and clashing names are reported all at once).

    ``params``: the options as the command's parser read them (:func:`validate_options`; parsed here if absent).
    ``into_labels``: each item's output is the NGFF label of that name inside its source OME-Zarr image
    (:mod:`subcell.io.ngff_labels`) instead of ``OUTDIR/<id><suffix>``.
    """  # fmt: skip
    from subcell.batch import Item
    from subcell.batch.chain import batch_manifest
    from subcell.batch.items import row_id, safe_name
    from subcell.batch.runner import is_batch_folder
    from subcell.errors import ManifestError, ValueRangeError
    from subcell.io import read_manifest
    from subcell.io.info import array_nbytes

    spec = COMMANDS[command]
    params = validate_options(command, options) if params is None else params
    ext = suffix or spec.suffix
    if into_labels is not None:
        _check_into_labels(command, into_labels, suffix)
    items: list[Any] = []
    issues: list[str] = []
    if command == "synth":
        seeds = _seed_range(manifest)
        if seeds is None or len(seeds) == 0:
            raise ValueRangeError(f"synth takes a range of seeds START:STOP (e.g. 0:20), got {manifest!r}",
                                  field="MANIFEST")  # fmt: skip
        for s in seeds:
            out = outdir / f"seed{s:05d}{ext}"
            items.append(Item(f"seed{s:05d}", (), out, {"args": [str(out), *options, "--seed", str(s), "--overwrite"]}))
        return items
    if is_batch_folder(manifest):  # a finished batch: its outputs are the sources
        m, left_out = batch_manifest(manifest)
        if left_out:
            typer.echo(f"note: {manifest}: {left_out} items of that batch failed or have no output; left out", err=True)
    else:
        m = read_manifest(manifest, check_files=False, require_files=False)
    base = Path(manifest).resolve().parent
    names: dict[str, int] = {}
    nbytes_cache: dict[tuple[Path, str | None, str | None], int] = {}
    gpu = str(params.get("device", "cpu")).startswith("cuda")
    vs_option = params.get("voxel_size")
    row_args, extra_memory = spec.row_args, 0
    if spec.cells_args is not None and params.get("model") is not None:
        from subcell.labelfree.predict_input import DEPTH_HELD_BYTES
        from subcell.labelfree.pretrained import takes_cells

        if takes_cells(params["model"]):  # an unknown model fails here, before anything is scheduled
            row_args, extra_memory = spec.cells_args, DEPTH_HELD_BYTES  # a frame's cell depth, held up to this
    for row in m:
        item_id = row_id(row)
        name = safe_name(item_id)
        if name in names:
            issues.append(f"row {row.row}, column 'id': value {item_id!r}: output name {name!r} is also row "
                          f"{names[name]}'s; give the rows unique ids")  # fmt: skip
            continue
        names[name] = row.row
        try:
            positional, row_opts, inputs = row_args(row, base)
        except ValueError as e:
            issues.append(f"row {row.row}, {e}")
            continue
        out = outdir / f"{name}{ext}"
        if into_labels is not None:
            from subcell.io._ngff import ngff_kind

            if row.scene is not None or ngff_kind(row.source) != "image":
                issues.append(f"row {row.row}, column 'source': value {str(row.source)!r}: --into-labels needs an "
                              "OME-Zarr image (a plate's field, not a scene of a file) to write the label into")  # fmt: skip
                continue
            out = row.source / "labels" / into_labels
        sized = spec.sized_by(row) if spec.sized_by else row.source
        key = (sized, row.axes, row.scene)  # the row's layout of its source (its own scene, a plain TIFF's axes)
        if key not in nbytes_cache:
            nbytes_cache[key] = array_nbytes(sized, per_frame=spec.per_frame, axes=row.axes, scene=row.scene)
        memory = 0
        if nbytes_cache[key]:  # unknown size (an unreadable header): no estimate, no resource asked
            memory = WORKER_BASE + int(spec.memory_factor * nbytes_cache[key]) + extra_memory
            if spec.path[0] == "labelfree":
                memory += TORCH_BASE + int(float(params.get("memory_limit") or 0) * 2**30)  # + prediction tiles
        if spec.output_option:  # a command that writes a report table on request (replaced as a whole, atomically)
            args = [*positional, *options, *row_opts, spec.output_option, str(out)]
        else:
            args = [*positional, str(out), *options, *row_opts, "--overwrite"]
        if command in ("labelfree-predict", "labelfree-nuclei"):  # no progress bars from the workers
            args.append("--quiet")
        item_params = {"args": args, "voxel_size": row.voxel_size.as_tuple() if row.voxel_size else vs_option,
                       "scene": row.scene, "columns": _row_columns(row)}  # fmt: skip
        items.append(Item(item_id, tuple(inputs), out, item_params, memory, {"GPU": 1.0} if gpu else {}))
    if issues:
        raise ManifestError(m.path, issues)
    return items


def validate_options(command: str, options: list[str]) -> dict[str, Any]:
    """Parse the command's options as the command itself would (before anything is scheduled)."""
    from subcell.errors import ValueRangeError

    spec = COMMANDS[command]
    cmd = click_command(spec.path)
    arguments = {p.name for p in cmd.params if p.param_type_name == "argument"}  # typer vendors its own click
    try:
        ctx = cmd.make_context(" ".join(spec.path), [*(["PLACEHOLDER"] * len(arguments)), *options])
    except Exception as e:  # click's usage errors (a bad value, an unknown option)
        if not hasattr(e, "format_message"):
            raise
        raise ValueRangeError(" ".join(e.format_message().split()), field=f"{command} options") from None
    for name in spec.one_file_options:
        if ctx.params.get(name) is not None:
            raise ValueRangeError(f"--{name} names one file, which every item would write; not available in a batch",
                                  field=f"{command} options")  # fmt: skip
    for name, column in spec.row_options:
        if ctx.params.get(name) is not None:
            raise ValueRangeError(f"--{name.replace('_', '-')} belongs to one field: in a batch each row gives its own "
                                  f"(column {column})", field=f"{command} options")  # fmt: skip
    return {k: v for k, v in ctx.params.items() if k not in arguments}


def _description(command: str, params: dict[str, Any], options: list[str]) -> dict[str, Any]:
    """What decides whether an earlier output is still valid: the command, its options, and the identity of
    files the options name (a model folder, a workflow YAML)."""
    from subcell.batch import fingerprint

    files = {}
    for value in params.values():
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, str | Path) and len(str(v)) < 4096 and Path(v).exists():
                files[str(v)] = fingerprint([Path(v)])
    return {"command": command, "options": options, "files": files}


def batch(
    ctx: typer.Context,
    command: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(COMMANDS)} (also `labelfree predict`, `cells extract`).")
    ],
    manifest: Annotated[
        str,
        typer.Argument(
            help="Manifest (.csv/.parquet), or the OUTDIR of an earlier batch (its outputs become the sources); "
            "for synth a seed range START:STOP."
        ),
    ],
    outdir: Annotated[Path, typer.Argument(help="Output folder: one output per row + batch.parquet.")],
    scheduler: Annotated[
        str, typer.Option("--scheduler", help="local, a scheduler address tcp://HOST:PORT, or a queue config .yaml.")
    ] = "local",
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--workers", help="Local worker processes (default: cores).", min=1),
    ] = None,
    threads_per_worker: Annotated[int, typer.Option("--threads-per-worker", min=1)] = 1,
    memory_per_worker: Annotated[
        Optional[float], typer.Option("--memory-per-worker", help="GB per local worker (default: memory / workers).")  # noqa: UP045
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries of an item whose worker died.", min=0)] = 2,
    suffix: Annotated[Optional[str], typer.Option("--suffix", help="Output suffix, e.g. .ome.tif.")] = None,  # noqa: UP045
    into_labels: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--into-labels",
            metavar="NAME",
            help="segment / labelfree-nuclei: write each item's labels "
            "into its source OME-Zarr image as the NGFF label NAME (OUTDIR keeps the records).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and report; run nothing.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Reuse an OUTDIR that holds another batch.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run a command over every row of a manifest on Dask (resumable; a failing row does not stop the rest).

    Command options follow OUTDIR, e.g. `subcell batch segment files.csv out/ --workflow nucleus`. Rerunning
    skips items already done with the same inputs and options, and redoes failed or changed ones.
    """
    import time

    from subcell.batch import connect, plan_batch
    from subcell.errors import ValueRangeError

    options = list(ctx.args)
    if f"{command}-{manifest}" in COMMANDS:  # the CLI's own spelling: `batch labelfree predict MANIFEST OUTDIR`
        if not options or options[0].startswith("-"):
            raise ValueRangeError(f"expected `subcell batch {command} {manifest} MANIFEST OUTDIR`", field="OUTDIR")
        command, manifest, outdir = f"{command}-{manifest}", str(outdir), Path(options.pop(0))
    command = ALIASES.get(command, command)
    if command not in COMMANDS:
        raise ValueRangeError(f"expected one of {list(COMMANDS)}, got {command!r}", field="COMMAND")
    params = validate_options(command, options)
    outdir = outdir.resolve()
    if outdir.exists() and not outdir.is_dir():
        raise ValueRangeError("OUTDIR is a file; expected a folder", field="OUTDIR")
    t0 = time.perf_counter()
    items = build_items(command, manifest, outdir, options, suffix, params=params, into_labels=into_labels)
    description = _description(command, params, options)
    if dry_run:
        plan = plan_batch(items, outdir, description)
        typer.echo(
            f"{len(items)} items planned in {time.perf_counter() - t0:.2f} s: {len(plan.todo)} to run, "
            f"{len(plan.skipped)} already done; largest memory estimate {plan.memory_estimate / 2**30:.2f} GB"
        )
        return
    mem = int(memory_per_worker * 2**30) if memory_per_worker else None
    from subcell.batch.cluster import worker_memory_default

    # local workers declare their memory as a resource and each item asks for its estimate, so a worker never
    # starts more items at once than fit (with --threads-per-worker > 1), and an item that cannot fit anywhere
    # is reported before it runs. Remote workers declare what their own command line says.
    n_local = workers or _default_workers(threads_per_worker)
    declared = {"MEMORY": float(mem or worker_memory_default(n_local))} if scheduler == "local" else None
    with connect(scheduler, workers=n_local, threads_per_worker=threads_per_worker, memory_per_worker=mem,
                 retries=retries, resources=declared) as client:  # fmt: skip
        from subcell.batch.cluster import dashboard_link

        typer.echo(f"{len(items)} items on {scheduler}; {dashboard_link(client)}")
        task = CommandTask(COMMANDS[command].path, COMMANDS[command].gathered)
        source = None if command == "synth" else manifest
        summary = _run_with_progress(items, task, outdir, client, description, overwrite, quiet, source)
    _unify_gathered(outdir, COMMANDS[command].gathered)
    typer.echo(summary.line())
    if summary.counts.get("failed"):
        raise typer.Exit(1)


def _unify_gathered(outdir: Path, gathered: tuple[Gathered, ...]) -> None:
    """Give each gathered dataset one schema (:func:`subcell.io.files.unify_parquet_folder`); a column whose types
    cannot be reconciled is a warning (the items' files are left as they are)."""
    from subcell.errors import InputFileError
    from subcell.io.files import unify_parquet_folder

    for g in gathered:
        if (outdir / g.folder).is_dir():
            try:
                unify_parquet_folder(outdir / g.folder)
            except InputFileError as err:
                typer.echo(f"warning: {err}", err=True)


def _default_workers(threads_per_worker: int) -> int:
    import os

    return max(1, (os.cpu_count() or 1) // threads_per_worker)


def _run_with_progress(items: list[Any], task: Any, outdir: Path, client: Any, description: dict[str, Any],
                       overwrite: bool, quiet: bool, manifest: str | None) -> Any:  # fmt: skip
    from subcell.batch import run_batch

    if quiet:
        return run_batch(items, task, outdir, client, description=description, overwrite=overwrite,
                         manifest=manifest)  # fmt: skip
    from subcell.cli.labelfree import _progress_bar

    with _progress_bar("items") as bar:
        tid = bar.add_task("items", total=len(items), status="")

        def show(c: dict[str, int]) -> None:
            finished = c["done"] + c["failed"] + c["skipped"]
            bar.update(tid, completed=finished,
                       status=f"{c['done']} done, {c['failed']} failed, {c['skipped']} skipped, {c['running']} running")  # fmt: skip

        return run_batch(items, task, outdir, client, description=description, overwrite=overwrite, progress=show,
                         manifest=manifest)  # fmt: skip
