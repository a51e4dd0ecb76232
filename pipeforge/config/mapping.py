"""The processed configuration: a ``dict`` of entries that can build them on first read.

A :class:`Config` is what components and scripts get. Being a ``dict`` keeps
Palladium's ``config['model']`` working; what it adds is where it came from
(``sources``, ``here``, ``path_base``), the ``mode`` it was built for, the
``process_store`` its components share, and lazy building: an entry whose
components are not built yet is built (and its components initialized) the
first time it is read, through any of the ``dict`` methods that hand out
values.
"""

from __future__ import annotations

import os
import threading
from collections.abc import ItemsView, Iterable, Iterator, ValuesView
from typing import TYPE_CHECKING, Any

from ..errors import MissingKeyError
from ..process_store import ProcessStore
from .building import DROPPED

if TYPE_CHECKING:
    from ..interfaces import Background
    from .building import Builder

__all__ = ["Config"]


class Config(dict[str, Any]):
    """The processed configuration: a dict of entries and built components.

    Besides the entries it knows where it came from (``sources``, ``here``),
    the ``mode`` it was built for, and owns the ``process_store`` its
    components share.
    """

    #: the folder relative paths resolve against, when not ``here`` (see ``files.path_base``)
    path_base: str | None

    def __init__(
        self,
        *args: Any,
        sources: Iterable[str] = (),
        mode: str | None = None,
        here: str | None = None,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.sources = list(sources)
        if here is None and self.sources:
            here = os.path.dirname(os.path.abspath(self.sources[0]))
        #: the folder of the first config file (``here`` in ``.py`` configs)
        self.here = here
        self.mode = mode
        #: the file each top-level entry came from (see :meth:`source_of`)
        self.origins: dict[str, str | None] = {}
        #: whether the config is in Palladium's form (``PALLADIUM_CONFIG``, ``palladium.`` names)
        self.palladium_form = False
        self.process_store = ProcessStore()
        self.components: list[tuple[str, Any]] = []
        self._unbuilt: set[str] = set()  # entries whose components are not built yet
        self._builder: Builder | None = None
        self._build_lock = threading.RLock()

    def __getitem__(self, key: str) -> Any:
        if key in self._unbuilt:
            self._build_entry(key)
        try:
            return super().__getitem__(key)
        except KeyError:
            raise MissingKeyError(
                f"missing required entry {key!r}; add it to the configuration",
                source=", ".join(self.sources) or None,
            ) from None

    def source_of(self, key: str) -> str | None:
        """The file that defined the top-level entry ``key`` (all the files when not known)."""
        return self.origins.get(key) or (", ".join(self.sources) or None)

    def require(self, key: str) -> Any:
        """Return the entry ``key`` or raise a ConfigError that names the files."""
        return self[key]

    def written(self, key: str) -> Any:
        """The entry ``key`` without building it: as the files wrote it while it is unbuilt.

        For code that only needs to know what an entry asks for (does a
        predict service keep a prediction log?) and must not import what
        building it would (``pf-list`` builds the model store only).
        """
        return super().get(key)

    # Reading an entry builds it; so do the methods that hand out every value.
    def get(self, key: str, default: Any = None) -> Any:
        if key in self._unbuilt:
            self._build_entry(key)
        return super().get(key, default)

    def __iter__(
        self,
    ) -> Iterator[str]:  # also makes dict(config) and {**config} go through __getitem__
        return super().__iter__()

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        self.build()
        return super().values()

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        self.build()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self.build()
        return dict(super().items())

    def pop(self, key: str, *default: Any) -> Any:
        if key in self._unbuilt:
            self._build_entry(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._unbuilt.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._unbuilt.discard(key)
        super().__delitem__(key)

    def update(self, *args: Any, **kw: Any) -> None:
        for key, value in dict(*args, **kw).items():
            self[key] = value

    # -- building ----------------------------------------------------------

    def defer(self, builder: Builder) -> None:
        """Leave every entry to be built by ``builder`` on first read (or by :meth:`build`)."""
        self._builder = builder
        self._unbuilt.update(super().keys())

    def build(self, keys: Iterable[str] | None = None) -> None:
        """Build the entries ``keys`` (all entries when ``None``) not built yet.

        Each entry's components are created and then initialized; the first
        problem raises a :class:`ConfigError` naming file and key. Keys the
        config does not have are skipped: reading them raises later.
        """
        for key in list(self) if keys is None else list(keys):
            if key in self._unbuilt:
                self._build_entry(key)

    def _build_entry(self, key: str) -> None:
        with self._build_lock:
            if key not in self._unbuilt or self._builder is None:
                return
            first = len(self.components)
            try:
                value = self._builder.build(super().__getitem__(key), (key,))
            except BaseException:
                del self.components[first:]
                raise
            self._unbuilt.discard(key)
            if value is DROPPED:
                super().__delitem__(key)
            else:
                super().__setitem__(key, value)
            self._builder.initialize(self.components[first:])

    # -- background work ----------------------------------------------------

    def background(self) -> list[Background]:
        """The components that run periodic work in a thread (see ``interfaces.Background``)."""
        from ..interfaces import Background

        seen, found = set(), []
        for _path, component in self.components:
            if isinstance(component, Background) and id(component) not in seen:
                seen.add(id(component))
                found.append(component)
        return found

    def start(self) -> None:
        """Start every background component; only scripts and the server call this."""
        for component in self.background():
            component.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop every background component, waiting up to ``timeout`` seconds for each."""
        for component in self.background():
            component.stop(timeout)
