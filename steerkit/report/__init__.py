"""Run outputs: diagnostics files and the self-contained HTML report."""

from steerkit.report.diagnostics_files import write_diagnostics
from steerkit.report.html import render_report, write_report

__all__ = ["render_report", "write_diagnostics", "write_report"]
