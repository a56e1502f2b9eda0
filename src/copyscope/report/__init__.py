"""Human-readable views of copyscope evidence bundles."""
from copyscope.report.html import render_html, segments

__all__ = ["render_html", "segments"]
