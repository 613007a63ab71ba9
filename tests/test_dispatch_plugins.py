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
