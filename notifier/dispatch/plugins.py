"""Import only the apprise plugins that are asked for.

apprise's plugin manager (a singleton) imports all ~217 plugin modules the first time anything
asks it about a schema; they stay in memory (~14 MB) though a config names two or three.
``install()`` — run before the first question, by whoever registers a custom ``@notify``
plugin (``console://``, ``bench://``) — turns that manager into one that imports on demand:

- asking about a schema (``schema in manager``, ``manager[schema]``) imports only the module
  ``pluginmap`` says serves it, through apprise's own loader; a schema no module names is
  answered from what is registered (custom plugins), exactly as after a full load;
- anything that enumerates plugins (``plugins()``: how apprise reads a service's own https://
  URL, ``details()``, ``enable_only()``…), or a module that did not register what the map
  said, completes apprise's full load first, after which the manager is apprise's own again.

The manager is left alone (apprise's full load on first use) when it has already loaded, when
its layout is not the one this reads, or when the map is in doubt.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import apprise
from apprise.manager_plugins import NotificationManager

from notifier.dispatch.pluginmap import PluginMap, module_entries, plugin_map

__all__ = ["complete", "install", "on_demand"]

_ON_DEMAND = "<notifier: apprise plugins imported on demand>"  # in _loaded: "has loaded"
_LAYOUT = (
    "_module_map",
    "_schema_map",
    "_custom_module_map",
    "_loaded",
    "_lock",
    "module_path",
    "module_name_prefix",
)
_lock = threading.RLock()
_maps: list[PluginMap] = []  # the one map in use, once installed


def _manager() -> Any:
    return NotificationManager()  # type: ignore[no-untyped-call]


def on_demand() -> bool:
    """Whether apprise's plugins are still being imported one at a time."""
    return type(_manager()) is _OnDemand


def _import(manager: Any, modules: Iterable[str]) -> None:
    """Import plugin ``modules`` and register them, by apprise's own ``load_modules`` pointed
    at a directory that lists only those names (it imports ``apprise.plugins.NAME`` for each
    entry; the empty files themselves are never read)."""
    with tempfile.TemporaryDirectory(prefix="notifier-apprise-") as listing:
        for module in modules:
            Path(listing, module).touch()
        try:
            NotificationManager.load_modules(manager, path=listing, name=manager.module_name_prefix)  # type: ignore[no-untyped-call]
        finally:
            manager._loaded.discard(listing)


def _serve(manager: Any, schema: object) -> bool:
    """Import the module that serves ``schema``, if any; whether it is now registered."""
    plan = _maps[0] if _maps else None
    module = plan.schemas.get(schema) if plan and isinstance(schema, str) else None
    if plan and module is not None:
        with _lock:
            if on_demand() and module not in manager._module_map:
                _import_one(manager, module, plan.modules[module])
    return schema in manager._schema_map


def _import_one(manager: Any, module: str, expected: frozenset[str]) -> None:
    """Import ``module``; when that cannot be done, or it registers other schemas than its
    source said, trust apprise: its full load."""
    try:
        _import(manager, [module])
    except OSError:  # no temporary directory
        complete()
        return
    entry = manager._module_map.get(module)
    plugins = entry["plugin"] if entry else ()
    if {schema for plugin in plugins for schema in plugin.schemas(plugin)} != expected:
        complete()


def _in_order(manager: Any) -> None:
    """Both maps in the order apprise's full load gives them (it scans plugins() in order
    when reading a service's own URL): native modules as the directory lists them, then the
    custom ones as they came."""
    rank = {name: at for at, name in enumerate(module_entries(Path(manager.module_path)))}
    modules = manager._module_map
    names = sorted(
        modules, key=lambda n: rank.get(n, len(rank)) if modules[n]["native"] else len(rank)
    )
    manager._module_map = {name: modules[name] for name in names}
    plugins = {p: at for at, name in enumerate(names) for p in modules[name]["plugin"]}
    schemas = manager._schema_map
    order = sorted(schemas, key=lambda s: plugins.get(schemas[s], len(plugins)))
    manager._schema_map = {schema: schemas[schema] for schema in order}


def complete() -> None:
    """Finish apprise's full load and give the manager back its own class."""
    with _lock:
        if not on_demand():
            return
        manager = _manager()
        rest = [
            m for m in module_entries(Path(manager.module_path)) if m not in manager._module_map
        ]
        try:
            _import(manager, rest)
            manager._loaded.add(manager.module_path)
        except OSError:  # the real directory then; apprise warns about what it already has
            NotificationManager.load_modules(manager)  # type: ignore[no-untyped-call]
        manager._loaded.discard(_ON_DEMAND)
        _in_order(manager)
        manager.__class__ = NotificationManager


class _OnDemand(NotificationManager):
    """apprise's plugin manager while plugins are imported one at a time."""

    def __contains__(self, schema: object) -> bool:
        known: Any = self._schema_map
        return schema in known or _serve(self, schema)

    def __getitem__(self, schema: str) -> Any:
        known: Any = self._schema_map
        if schema not in known:
            _serve(self, schema)
        return known[schema]  # a KeyError, as apprise gives

    def load_modules(
        self, path: str | None = None, name: str | None = None, force: bool = False
    ) -> None:
        if path is None and name is None:  # the full load
            complete()
        NotificationManager.load_modules(self, path, name, force)  # type: ignore[no-untyped-call]

    def unload_modules(self, disable_native: bool = False) -> None:
        manager: Any = self
        with _lock:
            manager.__class__ = NotificationManager
            manager._loaded.discard(_ON_DEMAND)
            NotificationManager.unload_modules(manager, disable_native)  # type: ignore[no-untyped-call]


def _completing(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        complete()
        return getattr(NotificationManager, name)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


# Everything that reads or changes more than one schema's entry needs all of them.
for _name in (
    "plugins",
    "schemas",
    "__iter__",
    "__len__",
    "disable",
    "enable_only",
    "remove",
    "__delitem__",
):
    setattr(_OnDemand, _name, _completing(_name))


def install() -> bool:
    """Have apprise import plugins on demand from now on; False: it imports them all, as
    apprise does (already loaded, another layout, or a map in doubt)."""
    with _lock:
        manager = _manager()
        if type(manager) is _OnDemand:
            return True
        if type(manager) is not NotificationManager or not all(
            hasattr(manager, a) for a in _LAYOUT
        ):
            return False
        if manager._loaded or manager._module_map is not None:
            return False  # loaded already: nothing left to save
        plan = plugin_map(str(manager.module_path), str(getattr(apprise, "__version__", "")))
        if plan is None:
            return False
        _maps[:] = [plan]
        with manager._lock:
            manager._module_map, manager._schema_map = {}, {}
            manager._custom_module_map = {}
            manager._loaded = {_ON_DEMAND}
        manager.__class__ = _OnDemand
        return True
