"""The gathered tables of a batch (``OUTDIR/<folder>/<id>.parquet``) given one schema, so the folder reads as one table.

A Parquet dataset is read with the schema of its first file (pyarrow's default, and so pandas'): a column that the
first item lacks is dropped for every item — the channels of a field measured with other names, the point-track
measures of one movie scored against points among movies scored against masks. After a run the files are given the
union of their columns (a file lacking a column gets it empty; integers that meet floats become floats): whatever
reads the folder sees every column of every item.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["unify_dataset"]


def unify_dataset(folder: str | Path) -> list[str]:
    """Rewrite the files of a gathered dataset ``folder`` whose schema is not the union of all (atomically, one at
    a time); returns the names rewritten. Columns whose types cannot be reconciled (text in one item, numbers in
    another) raise ``ValueError`` naming them, and no file is changed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from subcell.io._atomic import atomic_output

    files = sorted(Path(folder).glob("*.parquet"))
    schemas = [pq.read_schema(f).remove_metadata() for f in files]
    if len(set(map(str, schemas))) <= 1:
        return []
    try:
        union = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"the gathered tables in {folder} disagree on a column's type: {err}") from None
    rewritten = []
    for path, schema in zip(files, schemas, strict=True):
        if schema.equals(union):
            continue
        table = pq.read_table(path)
        columns = [
            table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in union
        ]
        with atomic_output(path, overwrite=True) as tmp:
            pq.write_table(pa.Table.from_arrays(columns, schema=union), tmp)
        rewritten.append(path.name)
    return rewritten
