"""The op store's lineage: which version of an op was trained on which versions of others.

A link says "version V of op B was trained on version W of op A" and keeps
W's major part, which is what loading checks: a downstream version stays
usable while its upstream op changes only in minor or patch parts. Links
are written with the versions they belong to, in the same transaction
(:meth:`~pipeforge.pipelines.store.OpStore.save`), and read when a pipeline
loads its trained versions and when ``pf-pipelines`` shows a history.
"""

from __future__ import annotations

from typing import Any

from .store_tables import StoreTables, utc_now

__all__ = ["StoreLineage"]


class StoreLineage(StoreTables):
    """The links between op versions, the lineage part of :class:`~pipeforge.pipelines.store.OpStore`."""

    def _save_links(
        self, conn: Any, t: dict, op_name: str, version: str, links: list[tuple[str, str]]
    ) -> None:
        """Add the links of ``version`` of ``op_name`` that are not stored yet (in ``conn``'s transaction)."""
        for up_name, up_version in links:
            if not self._link_exists(conn, t, op_name, version, up_name, up_version):
                conn.execute(
                    t["links"]
                    .insert()
                    .values(
                        down_name=op_name,
                        down_version=version,
                        up_name=up_name,
                        up_version=up_version,
                        up_major=up_version.split(".")[0],
                        created=utc_now(),
                    )
                )

    @staticmethod
    def _link_exists(conn, t, down_name, down_version, up_name, up_version) -> bool:
        import sqlalchemy as sa

        c = t["links"].c
        return (
            conn.execute(
                sa.select(c.id).where(
                    c.down_name == down_name,
                    c.down_version == down_version,
                    c.up_name == up_name,
                    c.up_version == up_version,
                )
            ).first()
            is not None
        )

    def has_link(self, down_name: str, down_version: str, up_name: str, up_major: str) -> bool:
        """Was ``down_version`` of ``down_name`` trained on a version of ``up_name`` with ``up_major``?"""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["links"].c
        with engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(c.id)
                    .where(
                        c.down_name == down_name,
                        c.down_version == down_version,
                        c.up_name == up_name,
                        c.up_major == up_major,
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def list_versions(self, op_name: str) -> list[dict]:
        """Every stored version of ``op_name``, newest first, with its upstream links."""
        import sqlalchemy as sa

        engine, t = self._db()
        v, lk = t["versions"].c, t["links"].c
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(v.version, v.config_version, v.has_state, v.size, v.created)
                    .where(v.op_name == op_name)
                    .order_by(v.id.desc())
                )
                .mappings()
                .all()
            )
            links = conn.execute(
                sa.select(lk.down_version, lk.up_name, lk.up_version)
                .where(lk.down_name == op_name)
                .order_by(lk.id)
            ).all()
        result = []
        for row in rows:
            entry = dict(row)
            entry["trained_on"] = {up: upv for down, up, upv in links if down == row["version"]}
            result.append(entry)
        return result
