"""apprise plugins imported on demand: only the modules a config names, the same channels, errors
and sends as apprise's full load.

Each check runs in a fresh interpreter: which modules a process holds depends on everything it
imported before, and the test process has imported much.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import apprise
from apprise.manager_plugins import NotificationManager

from notifier.dispatch.pluginmap import plugin_map
from tests.receivers import HttpReceiver, SmtpReceiver, wait_until, write_apprise_yaml

# What a process runs first to get apprise's own full load (on-demand import then stands down).
FULL_LOAD = "from apprise.manager_plugins import NotificationManager\nNotificationManager()\n"
FULL_LOAD += "NotificationManager().load_modules()\n"

SEND = """
import json, sys
from pathlib import Path
from notifier.dispatch.channels import Channels, url_secrets
from notifier.dispatch.plugins import on_demand

def report(channels, **extra):
    sent = [
        channels.send(c, title="hello", body="from the child", severity="info", timeout=10).ok
        for c in channels.channels
    ]
    plugins = sorted(m for m in sys.modules if m.startswith("apprise.plugins."))
    print(json.dumps({"labels": [c.label for c in channels.channels], "errors": channels.errors,
                      "sent": sent, "plugins": plugins, "on_demand": on_demand(), **extra}))
"""


async def run_child(code: str, *, full: bool = False) -> Any:
    """Run ``code`` in a fresh interpreter (the event loop keeps serving the receivers) and
    return the JSON its last output line holds."""
    source = (FULL_LOAD if full else "") + textwrap.dedent(code)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        source,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(child.communicate(), 90)
    assert child.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


def native(plugins: list[str]) -> set[str]:
    """The plugin modules (packages counted once) a child reported."""
    return {name.split(".")[2] for name in plugins if name != "apprise.plugins.base"}


async def test_json_and_mailto_load_and_send_with_only_their_plugins(tmp_path: Path) -> None:
    """A config of json:// and mailto:// imports only custom_json and email, and both send."""
    async with HttpReceiver() as http, SmtpReceiver() as smtp:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), ""), (smtp.url(), "")])
        got = await run_child(SEND + f"report(Channels.load(Path({str(config)!r}), url_secrets()))")
        assert got["errors"] == []
        assert got["sent"] == [True, True]
        assert native(got["plugins"]) == {"custom_json", "email"}
        assert got["on_demand"] is True
        await wait_until(lambda: len(http.delivered) == 1 and len(smtp.messages) == 1)


async def test_unknown_schema_and_service_urls_read_as_after_a_full_load(tmp_path: Path) -> None:
    """An unknown schema gives apprise's own error; a service's https:// URL (read by scanning
    every plugin) still loads; custom plugins (console://, bench://) still work."""
    config = tmp_path / "apprise.yml"
    config.write_text(
        "urls:\n"
        "  - nosuch://host/path\n"
        "  - https://discord.com/api/webhooks/4321/abcdef\n"
        "  - console://\n"
        "  - bench://127.0.0.1:9\n"
        "  - json://127.0.0.1:9/x\n",
        encoding="utf-8",
    )
    code = f"""
        import notifier.bench.plugin
        from pathlib import Path
        from notifier.dispatch.channels import Channels, url_secrets
        from notifier.dispatch.probe import check_apprise_config
        from notifier.config import Settings
        channels = Channels.load(Path({str(config)!r}), url_secrets())
        check = check_apprise_config(Settings(apprise_config=Path({str(config)!r})))
        print(json.dumps({{"labels": [c.label for c in channels.channels],
                          "errors": channels.errors, "check": check}}))
    """
    on_demand = await run_child("import json\n" + textwrap.dedent(code))
    full = await run_child("import json\n" + textwrap.dedent(code), full=True)
    assert on_demand == full
    assert len(full["labels"]) == 4
    assert any("nosuch" in error for error in full["errors"])


async def test_reload_naming_another_plugin_imports_it_then(tmp_path: Path) -> None:
    """A later generation of the config that names a new service imports its plugin then."""
    async with HttpReceiver() as http, SmtpReceiver() as smtp:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        grown = tmp_path / "grown.yml"
        write_apprise_yaml(grown, [(http.url(), ""), (smtp.url(), "email")])
        code = f"""
            first = Channels.load(Path({str(config)!r}), url_secrets())
            before = sorted(m for m in sys.modules if m.startswith("apprise.plugins."))
            Path({str(config)!r}).write_text(Path({str(grown)!r}).read_text())
            report(first.load_again(Path({str(config)!r})), before=before)
        """
        got = await run_child(SEND + textwrap.dedent(code))
        assert native(got["before"]) == {"custom_json"}
        assert native(got["plugins"]) == {"custom_json", "email"}
        assert got["errors"] == []
        assert got["sent"] == [True, True]
        assert got["on_demand"] is True
        await wait_until(lambda: len(http.delivered) == 1 and len(smtp.messages) == 1)


FULL_MAP = """
import json
from apprise.manager_plugins import NotificationManager
manager = NotificationManager()
manager.load_modules()
served = {}
for name, entry in manager._module_map.items():
    if entry["native"]:
        for plugin in entry["plugin"]:
            served.update({schema: [name, plugin.__module__, plugin.__qualname__]
                           for schema in plugin.schemas(plugin)})
print(json.dumps(served))
"""

ASK_EACH = """
import json, sys
import notifier.dispatch.channels
from apprise.manager_plugins import NotificationManager
from notifier.dispatch.plugins import on_demand
manager = NotificationManager()
answers = {}
for schema in json.loads(sys.argv[1]):
    plugin = manager[schema] if schema in manager else None
    answers[schema] = plugin and [plugin.__module__, plugin.__qualname__]
print(json.dumps({"answers": answers, "on_demand": on_demand(), "unknown": "nosuch" in manager,
                  "modules": sorted(m for m in sys.modules if m.startswith("apprise.plugins."))}))
"""


async def test_every_schema_apprise_knows_is_mapped_to_the_module_that_serves_it() -> None:
    """The static map agrees with a full load on every schema, and asking the on-demand manager
    for each one gives the very class a full load gives, without falling back."""
    full: dict[str, list[str]] = await run_child(FULL_MAP)
    manager: Any = NotificationManager()  # type: ignore[no-untyped-call]
    plan = plugin_map(str(manager.module_path), apprise.__version__)
    assert plan is not None, "the map is in doubt: every process would load all plugins"
    assert {schema: module for schema, (module, _, _) in full.items()} == plan.schemas
    for module, schemas in plan.modules.items():
        assert schemas == {s for s, (m, _, _) in full.items() if m == module}, module

    child = await run_child(
        ASK_EACH.replace("json.loads(sys.argv[1])", repr(sorted(full))),
    )
    assert child["answers"] == {schema: classes for schema, (_, *classes) in full.items()}
    assert child["on_demand"] is True
    assert child["unknown"] is False


async def test_listing_plugins_completes_the_full_load() -> None:
    """Whatever enumerates plugins (``details()``) gets them all, in the order apprise's own load
    gives them (the order it tries a service's own https:// URL in)."""
    code = """
        import json
        import notifier.dispatch.channels
        import apprise
        from notifier.dispatch.plugins import on_demand
        ready = on_demand()
        details = apprise.Apprise().details()
        print(json.dumps({"ready": ready, "after": on_demand(),
                          "services": [str(s["service_name"]) for s in details["schemas"]]}))
    """
    on_demand = await run_child(code)
    full = await run_child(code, full=True)
    assert on_demand["ready"] is True
    assert on_demand["after"] is False
    assert on_demand["services"] == full["services"]


def write_plugins(directory: Path, sources: dict[str, str]) -> str:
    """A plugins directory in apprise's layout: NAME.py files, or NAME/ packages."""
    for name, source in sources.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(directory)


def test_map_reads_literals_constants_key_lists_and_inherited_attributes(tmp_path: Path) -> None:
    """What apprise's sources use to name schemas is read without importing them."""
    directory = write_plugins(
        tmp_path,
        {
            "base.py": "class NotifyBase:\n    protocol = None\n",  # apprise never imports base
            "plain.py": """
                class NotifyPlain(NotifyBase):
                    protocol = "plain"
                    secure_protocol = ("plains", "tls")
            """,
            "kodi.py": """
                class NotifyKodi(NotifyBase):
                    kodi = "kodi"
                    protocol = (kodi, "xbmc")
            """,
            "loops.py": """
                LOOPS = {"qt": 1, "kde": 2}
                class NotifyLoopLevel:
                    protocol = "not-a-plugin"
                class NotifyLoops(NotifyBase):
                    protocol = list(LOOPS.keys())
            """,
            "parent.py": "class NotifyParent(NotifyBase):\n    secure_protocol = 'parent'\n",
            "child.py": """
                from . import parent
                class NotifyChild(parent.NotifyParent):  # protocol: NotifyBase's None
                    secure_protocol = "child"
            """,
            "pkg/__init__.py": "from .impl import NotifyPkg\n",
            "pkg/impl.py": """
                class NotifyPkgCommon(NotifyBase):
                    secure_protocol = "pkgs"
                class NotifyPkg(NotifyPkgCommon):
                    protocol = "pkg"
            """,
            "_private.py": "class NotifyHidden(NotifyBase):\n    protocol = 'hidden'\n",
        },
    )
    plan = plugin_map(directory, "test-1")
    assert plan is not None
    assert plan.schemas == {
        "plain": "plain",
        "plains": "plain",
        "tls": "plain",
        "kodi": "kodi",
        "xbmc": "kodi",
        "qt": "loops",
        "kde": "loops",
        "parent": "parent",
        "child": "child",
        "pkg": "pkg",
        "pkgs": "pkg",
    }
    assert plan.modules["loops"] == {"qt", "kde"}
    assert "base" not in plan.entries
    assert "_private" not in plan.entries


def test_map_is_in_doubt_on_what_it_cannot_read(tmp_path: Path) -> None:
    """A computed value, one schema in two modules (here by inheritance), a base class it does
    not know: None, so apprise loads everything."""
    computed = write_plugins(
        tmp_path / "computed",
        {"odd.py": "class NotifyOdd(NotifyBase):\n    protocol = make_schemas()\n"},
    )
    assert plugin_map(computed, "test-2") is None
    twice = write_plugins(
        tmp_path / "twice",
        {
            "one.py": "class NotifyOne(NotifyBase):\n    protocol = 'same'\n",
            "two.py": "class NotifyTwo(NotifyBase):\n    protocol = 'same'\n",
        },
    )
    assert plugin_map(twice, "test-3") is None
    inherited = write_plugins(
        tmp_path / "inherited",
        {
            "parent.py": "class NotifyParent(NotifyBase):\n    protocol = 'parent'\n",
            "child.py": "class NotifyChild(NotifyParent):\n    secure_protocol = 'child'\n",
        },
    )
    assert plugin_map(inherited, "test-4") is None
    unknown = write_plugins(
        tmp_path / "unknown",
        {"odd.py": "class NotifyOdd(SomethingElse):\n    secure_protocol = 'odd'\n"},
    )
    assert plugin_map(unknown, "test-5") is None


async def test_a_module_that_registers_otherwise_than_its_source_said_gets_the_full_load() -> None:
    """When an imported module's schemas differ from the map's, apprise's full load takes over
    and the schema is still served."""
    code = """
        import dataclasses, json
        import notifier.dispatch.channels
        from apprise.manager_plugins import NotificationManager
        from notifier.dispatch import plugins
        for plan in plugins._maps:  # none after a full load
            wrong = {**plan.modules, "custom_json": frozenset({"json"})}  # jsons left out
            plugins._maps[:] = [dataclasses.replace(plan, modules=wrong)]
        served = "json" in NotificationManager()
        print(json.dumps({"served": served, "on_demand": plugins.on_demand(),
                          "count": len(NotificationManager().schemas())}))
    """
    got = await run_child(code)
    full = await run_child(code, full=True)
    assert got["served"] is True
    assert got["on_demand"] is False
    assert got["count"] == full["count"]
