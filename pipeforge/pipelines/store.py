"""The op store: every op version, its trained state, and who was trained on whom.

Tables (SQLAlchemy Core, created on first use, prefix ``pf_op_``):

* ``pf_op_versions``: one row per (op name, version string), ordered by id
  (the newest version is the highest id, never the oldest or a timestamp);
* ``pf_op_chunks``: a version's pickled, compressed state, in chunks;
* ``pf_op_links``: "version V of op B was trained on version W of op A",
  with W's major part, which is what loading checks;
* ``pf_op_jobs``: background pipeline runs, readable from every process.

A trained version and its links are written in one transaction, so a failed
save leaves nothing half-written.

:class:`OpStore` is one object made of one part per concern: the engine and
tables (:mod:`pipeforge.pipelines.store_tables`), the links
(:mod:`pipeforge.pipelines.store_lineage`), the jobs
(:mod:`pipeforge.pipelines.store_jobs`) and, here, the versions and their
states.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import PersistenceError
from ..persistence.chunks import dump_chunks, load_chunks
from .store_jobs import StoreJobs
from .store_lineage import StoreLineage
from .store_tables import utc_now

__all__ = ["OpStore", "OpRecord"]

logger = logging.getLogger(__name__)


class OpRecord:
    """One op version to save: name, version strings and the state (or ``None``)."""

    def __init__(
        self,
        op_name: str,
        version: str,
        config_version: str,
        state: Any = None,
        has_state: bool = False,
        links: list[tuple[str, str]] | None = None,
    ) -> None:
        self.op_name = op_name
        self.version = version
        self.config_version = config_version
        self.state = state
        self.has_state = has_state
        self.links = links or []  # (upstream op name, upstream version string)


class OpStore(StoreLineage, StoreJobs):
    """Op versions, states and links in a SQL database (SQLite or PostgreSQL).

    ``url`` is an SQLAlchemy URL; ``chunk_size`` (bytes) splits large states;
    ``compress`` is the zlib level (0 = off; fast by default). States are
    pickled and chunked the same streaming way as models.
    """

    def __init__(
        self,
        url: str = "sqlite:///pipeforge-ops.db",
        *,
        chunk_size: int = 4 * 1024 * 1024,
        compress: int = 1,
        table_prefix: str = "pf_op_",
    ) -> None:
        self.url = url
        self.chunk_size = chunk_size
        self.compress = compress
        self.table_prefix = table_prefix

    # -- versions -----------------------------------------------------------------
    def save(self, records: list[OpRecord]) -> None:
        """Store versions (with state and links) that are not stored yet, atomically."""
        import sqlalchemy as sa

        engine, t = self._db()
        payloads = {id(r): self._dump(r.state) for r in records if r.has_state}
        for attempt in range(2):
            try:
                self._save(engine, t, records, payloads)
                return
            except sa.exc.IntegrityError:
                # Another process saved some of the same rows at the same moment;
                # the retry sees them and only adds what is missing.
                if attempt:
                    raise
                logger.info("op versions saved concurrently by another process; retrying")
            except sa.exc.SQLAlchemyError as exc:
                raise PersistenceError(f"cannot save op versions to {engine.url!r}: {exc}") from exc

    def _save(self, engine, t, records, payloads) -> None:
        import sqlalchemy as sa

        with engine.begin() as conn:
            for r in records:
                exists = conn.execute(
                    sa.select(t["versions"].c.id).where(
                        t["versions"].c.op_name == r.op_name, t["versions"].c.version == r.version
                    )
                ).first()
                if exists is None:
                    chunks = payloads.get(id(r), [])
                    version_id = conn.execute(
                        t["versions"]
                        .insert()
                        .values(
                            op_name=r.op_name,
                            version=r.version,
                            config_version=r.config_version,
                            major=r.version.split(".")[0],
                            has_state=r.has_state,
                            n_chunks=len(chunks),
                            size=sum(len(c) for c in chunks),
                            created=utc_now(),
                        )
                    ).inserted_primary_key[0]
                    if chunks:
                        conn.execute(
                            t["chunks"].insert(),
                            [
                                {"version_id": version_id, "idx": i, "data": c}
                                for i, c in enumerate(chunks)
                            ],
                        )
                self._save_links(conn, t, r.op_name, r.version, r.links)

    def _dump(self, state: Any) -> list[bytes]:
        chunks: list[bytes] = []
        try:
            dump_chunks(state, lambda _i, c: chunks.append(c), self.chunk_size, self.compress)
        except Exception as exc:
            raise PersistenceError(
                f"cannot serialize op state {type(state).__name__}: {exc}"
            ) from exc
        return chunks

    def newest(
        self, op_name: str, config_major: str | None = None, *, with_state: bool = False
    ) -> dict | None:
        """The newest stored version of ``op_name``.

        With ``config_major``, only versions trained with a configuration of that
        major version count (minor and patch changes of the config keep them usable).
        """
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["versions"].c
        query = sa.select(t["versions"]).where(c.op_name == op_name)
        if config_major is not None:
            query = query.where(c.config_version.like(f"{config_major}.%"))
        if with_state:
            query = query.where(c.has_state.is_(True))
        with engine.connect() as conn:
            row = conn.execute(query.order_by(c.id.desc()).limit(1)).mappings().first()
        return dict(row) if row is not None else None

    def version_row(self, op_name: str, version: str) -> dict | None:
        """The stored row of ``version`` of ``op_name`` (as :meth:`newest` returns), or ``None``."""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["versions"].c
        query = sa.select(t["versions"]).where(c.op_name == op_name, c.version == version)
        with engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def read_state(self, version_row: dict) -> Any:
        """Load the state stored for ``version_row`` (as returned by :meth:`newest`)."""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["chunks"].c
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.data).where(c.version_id == version_row["id"]).order_by(c.idx)
            ).all()
        if len(rows) != version_row["n_chunks"]:
            raise PersistenceError(
                f"op {version_row['op_name']!r} version {version_row['version']}: expected "
                f"{version_row['n_chunks']} stored chunks; found {len(rows)}"
            )
        chunks = [bytes(r[0]) for r in rows]
        compressed = bool(chunks) and chunks[0][:1] == b"\x78"  # a zlib stream, not a pickle
        try:
            return load_chunks(chunks, compressed)
        except Exception as exc:
            raise PersistenceError(
                f"cannot read op {version_row['op_name']!r} version {version_row['version']}: {exc}"
            ) from exc
