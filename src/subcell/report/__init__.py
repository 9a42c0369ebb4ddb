"""Reports: one self-contained HTML page for any run folder (``subcell report RUNDIR OUT.html``)."""

from __future__ import annotations

from pathlib import Path

from subcell.report.collect import Section, collect_sections

__all__ = ["Section", "collect_sections", "write_report"]


def write_report(folder: str | Path, output: str | Path, *, title: str | None = None, overwrite: bool = False) -> Path:
    """Write the report of ``folder`` to ``output`` (atomic); one-line error when nothing in it is reportable."""
    from subcell.errors import InputFileError
    from subcell.io._atomic import atomic_output, check_output
    from subcell.report.html import render_html

    folder, output = Path(folder), Path(output)
    if not folder.is_dir():
        raise InputFileError("not a folder (a run folder of subcell outputs is expected)", path=folder)
    check_output(output, overwrite=overwrite)
    sections = collect_sections(folder)
    if not sections:
        raise InputFileError(
            "nothing to report: no figures, models, segmentations, tracks or tables of subcell found", path=folder
        )
    page = render_html(sections, title=title or f"subcell report: {folder.resolve().name}", source=folder)
    with atomic_output(output, overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return output
