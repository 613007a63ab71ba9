"""The live dashboard (SPEC §10): ``GET /`` on the daemon's HTTP API, kept current through
server-sent events, with a chart per watched pair drawn as SVG by the server."""

from __future__ import annotations

from notifier.dashboard.routes import Dashboard
from notifier.dashboard.sections import DashboardView

__all__ = ["Dashboard", "DashboardView"]
