"""Model stores written by Palladium 1.2: finding them and reading them for ``pf-upgrade``.

Palladium's ``Database`` keeps each model as a gzip-compressed pickle split
over rows of ``model_chunks``, its metadata (JSON) in ``models`` and the
store's properties (``active-model``, ``db-version``) in ``properties``;
with a ``table_postfix`` the tables are called ``models_<postfix>`` and so
on. Its ``File`` writes ``<path>.pkl.gz`` per version and one
``<path for version 'metadata'>.json`` holding ``{"models": [...],
"properties": {...}}``.

pipeforge's own layout differs, so the persisters use this module to
notice such models (and refuse to pretend the store is empty) and to read
them when ``pf-upgrade`` imports them into their own layout: same version
numbers, same metadata, the compressed pickles copied byte for byte
(nothing is unpickled), while Palladium's tables and files stay exactly as
they were for a rollback. This module reads Palladium's formats only; each
persister writes its own (``Database.import_palladium``,
``File.import_palladium``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "PalladiumTables",
    "PalladiumFiles",
    "unmigrated_message",
    "import_note",
    "report_import",
    "is_palladium_metadata",
    "import_into_database",
    "import_into_files",
]

logger = logging.getLogger(__name__)


def _versions(versions: Iterable[int]) -> str:
    return ", ".join(str(v) for v in versions) or "none"


def unmigrated_message(store: str, versions: list[int], properties: dict) -> str:
    """The one line every operation on a store with un-imported Palladium models fails with."""
    active = properties.get("active-model")
    made_by = f"Palladium {properties.get('db-version', '')}".rstrip()
    return (
        f"{store} holds models written by {made_by} (versions {_versions(versions)}; "
        f"active: {active or 'none'}) that pipeforge has not imported yet; run pf-upgrade "
        "once to import them (Palladium's own data is left as it is)"
    )


def import_note(
    source: str, imported: list[int], active: str | None, skipped: list[int], properties: dict
) -> str:
    """What ``pf-upgrade`` reports after importing Palladium's models."""
    made_by = f"Palladium {properties.get('db-version', '')}".rstrip()
    parts = []
    if imported:
        parts.append(
            f"imported the models {made_by} wrote in {source}: versions {_versions(imported)}"
            + (f" (active: {active})" if active else "")
            + "; Palladium's data is left as it is"
        )
    if skipped:
        parts.append(
            f"left out {made_by}'s versions {_versions(skipped)}: pipeforge had given "
            "those numbers to models of its own"
        )
    return "; ".join(parts)


class PalladiumTables:
    """Palladium's three tables in one database (read only), or nothing if they are absent."""

    def __init__(self, models: Table, chunks: Table, properties: Table):
        self.models = models
        self.chunks = chunks
        self.properties_table = properties

    @property
    def names(self) -> str:
        """The three tables' names, for messages."""
        return ", ".join(t.name for t in (self.models, self.chunks, self.properties_table))

    @classmethod
    def find(cls, engine: Engine, table_postfix: str = "") -> PalladiumTables | None:
        """Palladium's tables in ``engine``'s database, if all three are there."""
        import sqlalchemy as sa

        def name(base: str) -> str:
            return f"{base}_{table_postfix}" if table_postfix else base

        wanted = {
            "models": {"version", "metadata"},
            "model_chunks": {"id", "model_version", "blob"},
            "properties": {"name", "value"},
        }
        inspector = sa.inspect(engine)
        present = set(inspector.get_table_names())
        if not all(name(base) in present for base in wanted):
            return None
        md = sa.MetaData()
        tables = {}
        for base, columns in wanted.items():
            table = sa.Table(name(base), md, autoload_with=engine)
            if not columns <= {c.name for c in table.columns}:
                return None  # someone else's table of that name
            tables[base] = table
        return cls(tables["models"], tables["model_chunks"], tables["properties"])

    def versions(self, conn: Connection) -> list[int]:
        """The versions Palladium lists, in order."""
        import sqlalchemy as sa

        query = sa.select(self.models.c.version).order_by(self.models.c.version)
        return [int(v) for (v,) in conn.execute(query)]

    def highest(self, conn: Connection) -> int:
        """The highest version number Palladium has used, deleted ones included.

        Palladium's ``delete`` leaves a model's chunks behind, so their
        numbers still count: pipeforge never hands one out again.
        """
        import sqlalchemy as sa

        top = conn.execute(sa.select(sa.func.max(self.models.c.version))).scalar()
        orphans = conn.execute(sa.select(sa.func.max(self.chunks.c.model_version))).scalar()
        return max(int(top or 0), int(orphans or 0))

    def properties(self, conn: Connection) -> dict[str, str]:
        """Palladium's store properties (``active-model``, ``db-version``)."""
        import sqlalchemy as sa

        table = self.properties_table
        rows = conn.execute(sa.select(table.c.name, table.c.value).order_by(table.c.id))
        return {name: value for name, value in rows if name is not None}

    def metadata(self, conn: Connection, version: int) -> str:
        """The model's metadata as Palladium stored it (JSON text)."""
        import sqlalchemy as sa

        query = sa.select(self.models.c.metadata).where(self.models.c.version == version)
        return conn.execute(query).scalar_one()

    def blobs(self, conn: Connection, version: int) -> Iterator[bytes]:
        """The model's gzip-compressed pickle, chunk by chunk (one chunk in memory at a time)."""
        import sqlalchemy as sa

        chunks = self.chunks
        ids = [
            i
            for (i,) in conn.execute(
                sa.select(chunks.c.id)
                .where(chunks.c.model_version == version)
                .order_by(chunks.c.id)
            )
        ]
        for chunk_id in ids:
            yield bytes(
                conn.execute(sa.select(chunks.c.blob).where(chunks.c.id == chunk_id)).scalar_one()
            )


class PalladiumFiles:
    """The files Palladium's ``File`` persister writes for a resolved path template."""

    def __init__(self, template: str):
        self.template = template

    @property
    def metadata_file(self) -> str:
        return self.template.replace("{version}", "metadata") + ".json"

    def model_file(self, version: int) -> str:
        return self.template.replace("{version}", str(version)) + ".pkl.gz"

    def read(self) -> dict | None:
        """``{"models": [...], "properties": {...}}`` if Palladium's metadata file is there."""
        try:
            with open(self.metadata_file, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("cannot read %s: %s", self.metadata_file, exc)
            return None
        if not is_palladium_metadata(data):
            return None
        return data

    def versions(self, data: dict) -> list[int]:
        """The versions listed in ``data`` (what :meth:`read` gave), in order."""
        return sorted(int(m["version"]) for m in data["models"] if "version" in m)


def is_palladium_metadata(data: Any) -> bool:
    """Whether parsed JSON looks like Palladium's File metadata (not pipeforge's list)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("models"), list)
        and isinstance(data.get("properties"), dict)
    )


# -- importing ------------------------------------------------------------------------
# Each persister imports into its own format (``Database.import_palladium``,
# ``File.import_palladium``) from what the classes above read.


def report_import(
    source: str, imported: list[int], active: str | None, skipped: list[int], properties: dict
) -> list[str]:
    """What an import did, as ``pf-upgrade`` reports it (and logs it): one line, or none."""
    if not imported and not skipped:
        return []
    note = import_note(source, imported, active, skipped, properties)
    logger.info("%s", note)
    return [note]


def import_into_database(persister: Any, engine: Any, palladium: PalladiumTables) -> list[str]:
    """Copy Palladium's models into ``persister`` (a pipeforge ``Database`` on ``engine``).

    pipeforge 0.1's name for ``persister.import_palladium(palladium)``.
    """
    return persister.import_palladium(palladium)


def import_into_files(persister: Any, palladium: PalladiumFiles) -> list[str]:
    """Copy the models Palladium's ``File`` wrote into ``persister`` (a pipeforge ``File``).

    pipeforge 0.1's name for ``persister.import_palladium(palladium)``.
    """
    return persister.import_palladium(palladium)
