"""Stage Versions: every model the studio loads, converts or optimizes, kept as a numbered version.

    registry.py    Registry: record, list and search versions, lineage, aliases and their
                   history, tags, notes, delete, export
    version.py     Version, AliasMove, Lineage: what the registry hands out, and how it reads
    references.py  resolve(text) -> ResolvedModel: a path, `name:3` or `name@alias`
    database.py    the SQLite file (WAL, one writer at a time) and what its failures mean
    store.py       model files and folders kept once, by content hash
"""
