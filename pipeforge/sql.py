"""SQLAlchemy engines, made from the URL a config gives.

One place decides how a config's URL becomes an engine, so the model store,
the op store, the online learners (through ``Database.engine()``) and the
``SQL`` dataset loader connect the same way:

- a relative SQLite file is taken from the config's folder (or the current
  directory for Palladium configs; see ``config.files.resolve_sqlite_url``);
- ``postgresql://`` (psycopg2, as Palladium's configs write it) uses psycopg 3
  when only that one is installed, as pipeforge installs it;
- SQLite waits up to 60 s for another process's write lock instead of
  failing at once (``pf-fit`` and a server write the same file);
- an in-memory SQLite database is one connection shared by every thread
  (otherwise each thread would see a database of its own);
- ``poolclass`` may be a dotted name, as configs give it;
- a server database (PostgreSQL, ...) checks a pooled connection before
  handing it out (``pool_pre_ping``), so a restarted server costs no failed
  request, and PostgreSQL gives up connecting after 10 s instead of hanging
  on a host that does not answer;
- a URL SQLAlchemy cannot use is a :class:`~pipeforge.errors.ConfigError`
  naming the parameter (and never showing its password).

:func:`describe_url` and :func:`redact_url` are how every URL is shown in
messages and logs: with its password replaced by ``***``. :func:`create_tables`
is how every room creates its tables in a database several processes share.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config.files import resolve_sqlite_url
from .errors import ConfigError, PersistenceError

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL, Connection, Engine

__all__ = ["create_engine", "create_tables", "usable_driver", "describe_url", "redact_url"]

_CREATE_ATTEMPTS = 3

SQLITE_TIMEOUT = 60  # seconds SQLite waits for another connection's write lock
CONNECT_TIMEOUT = 10  # seconds PostgreSQL may take to accept a connection

# scheme://user:password@ -> the password is group "secret"
_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?P<secret>[^@\s/]*)@")


def create_engine(
    url: str | URL,
    *,
    here: str | None = None,
    poolclass: Any = None,
    engine_options: Mapping[str, Any] | None = None,
    owner: str = "Database",
) -> Engine:
    """An engine for ``url`` (relative SQLite files taken from ``here``); no connection yet.

    ``engine_options`` are ``create_engine`` keyword arguments; ``owner``
    names the component in error messages.
    """
    import sqlalchemy as sa

    options = dict(engine_options or {})
    if isinstance(poolclass, str):
        from .factory import resolve_dotted_name

        poolclass = resolve_dotted_name(poolclass)
    if poolclass is not None:
        options["poolclass"] = poolclass
    try:
        resolved = resolve_sqlite_url(url, here)
        if resolved.get_backend_name() == "sqlite":
            connect_args = dict(options.get("connect_args") or {})
            connect_args.setdefault("timeout", SQLITE_TIMEOUT)
            if resolved.database in (None, "", ":memory:"):
                connect_args.setdefault("check_same_thread", False)
                options.setdefault("poolclass", sa.pool.StaticPool)
            options["connect_args"] = connect_args
        else:
            options.setdefault("pool_pre_ping", True)
            if resolved.get_backend_name() == "postgresql":
                connect_args = dict(options.get("connect_args") or {})
                connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
                options["connect_args"] = connect_args
        return sa.create_engine(usable_driver(resolved), **options)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"parameter 'url' of {owner} must be a usable SQLAlchemy URL; "
            f"got {describe_url(url)!r} instead ({redact_url(str(exc))})"
        ) from exc


def usable_driver(url: str | URL) -> str | URL:
    """``postgresql://`` means psycopg2; use psycopg 3 when only that one is installed.

    Palladium's configs name PostgreSQL that way, and pipeforge installs psycopg 3.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg2"):
        return url
    if not importlib.util.find_spec("psycopg"):
        return url
    return parsed.set(drivername="postgresql+psycopg")


def describe_url(url: str | URL) -> str:
    """``url`` for messages and logs: its password hidden (also when it does not parse)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return redact_url(str(url))


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@``) as ``***``.

    For any URL (HTTP stores, Redis, SQL) and for messages that quote one,
    such as a driver's exception text.
    """
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


def create_tables(
    metadata: MetaData,
    engine: Engine,
    *,
    what: str,
    then: Callable[[Connection], Any] | None = None,
) -> None:
    """Create the tables of ``metadata`` that do not exist yet, then run ``then(conn)``.

    Workers of one server start together and each creates the tables it
    needs: two of them may both find a table missing, and PostgreSQL then
    refuses the second ``CREATE TABLE`` (a unique-key error on its catalog).
    Such a clash is tried again, a few times; what still fails is a
    :class:`~pipeforge.errors.PersistenceError` naming ``what`` (e.g. "the
    prediction log's tables") and the database, without its password.
    """
    import sqlalchemy as sa

    for attempt in range(_CREATE_ATTEMPTS):
        try:
            metadata.create_all(engine, checkfirst=True)
            if then is not None:
                with engine.begin() as conn:
                    then(conn)
            return
        except sa.exc.SQLAlchemyError as exc:
            if attempt == _CREATE_ATTEMPTS - 1:
                cause = getattr(exc, "orig", None) or exc
                first_line = str(cause).strip().splitlines()[:1]
                raise PersistenceError(
                    f"cannot create {what} in {describe_url(engine.url)}: "
                    f"{type(cause).__name__}: {redact_url(''.join(first_line))}"
                ) from exc
            time.sleep(0.05 * (attempt + 1))  # let the other process finish its CREATE
