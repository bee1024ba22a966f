"""The dashboard: `scaletrack ui` (a read-only local web app with a JSON API) and
`scaletrack report` (the same views in one offline HTML file)."""

from scaletrack.ui.report import build_report, write_report
from scaletrack.ui.server import create_app, serve

__all__ = ["build_report", "create_app", "serve", "write_report"]
