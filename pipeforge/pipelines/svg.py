"""A pipeline's DAG drawn as a standalone SVG, without external tools.

Input is :func:`~pipeforge.pipelines.describe.describe`'s dict, so the
same picture comes from ``pf-pipeline show --svg`` and the dashboard. The
boxes are placed by :mod:`~pipeforge.pipelines.layout`; text is not
measured, so widths are estimated from character counts (generously).
Nodes carry ``data-node``/``data-op``/``data-version`` attributes and a
tooltip; the ``<desc>`` says the whole picture in words for screen readers.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from .describe import short_version
from .graph import PIPELINE_INPUT, PIPELINE_OUTPUT
from .layout import layout

__all__ = ["render_svg"]

_CHAR = 7.4  # average glyph width at 12px, a little wide on purpose
_LINE = 16
_PAD = 10
_MARGIN = 20
_LINK_BULGE = 54

_STYLE = """
.pf-dag { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  font-size: 12px; }
.pf-dag .pf-title { font-size: 15px; font-weight: 600; fill: #1a1a1a; }
.pf-dag .pf-sub { fill: #444; }
.pf-dag .pf-name { font-weight: 600; font-size: 13px; fill: #1a1a1a; }
.pf-dag .pf-line { fill: #333; }
.pf-dag .pf-mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; fill: #333; }
.pf-dag .pf-box { fill: #fff; stroke: #607d8b; stroke-width: 1.5; }
.pf-dag .pf-current .pf-box { stroke: #2e7d32; stroke-width: 2.5; }
.pf-dag .pf-stale .pf-box { stroke: #e65100; stroke-width: 2.5; fill: #fff8f0; }
.pf-dag .pf-untrained .pf-box { stroke: #9e9e9e; stroke-dasharray: 5 3; }
.pf-dag .pf-data .pf-box { fill: #eef5fc; stroke: #1565c0; }
.pf-dag .pf-function .pf-box { fill: #f6f0fa; stroke: #6a1b9a; }
.pf-dag .pf-pipeline .pf-box { fill: #f4f4f4; stroke-width: 3; }
.pf-dag .pf-io .pf-box { fill: #eceff1; stroke: #78909c; }
.pf-dag .pf-ok { fill: #1b5e20; }
.pf-dag .pf-warn { fill: #bf360c; font-weight: 600; }
.pf-dag .pf-muted { fill: #666; }
.pf-dag .pf-edge { fill: none; stroke: #455a64; stroke-width: 1.6; }
.pf-dag .pf-link { fill: none; stroke: #5c6bc0; stroke-width: 1.4; stroke-dasharray: 6 4; }
.pf-dag .pf-link.pf-broken { stroke: #e65100; }
.pf-dag .pf-label-bg { fill: #fff; opacity: 0.9; }
.pf-dag .pf-label { fill: #37474f; font-size: 11px; }
.pf-dag .pf-link-label { fill: #3949ab; font-size: 11px; }
"""


def _width(text: str, char: float = _CHAR) -> float:
    return len(text) * char


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(name)) or "pipeline"


def _node_lines(node: dict, by_op: dict) -> list[tuple[str, str]]:
    """(css class, text) lines of a node box, the first one its name."""
    lines = [("pf-name", node["name"])]
    kind, runs = node["kind"], node["runs"]
    if kind == "pipeline":
        lines.append(("pf-line", f"pipeline {runs}"))
        loaded = "loaded" if node.get("is_loaded") else "not loaded"
        lines.append(("pf-muted", f"{len(node.get('versions') or {})} op versions, {loaded}"))
        return lines
    what = {"data": "data", "function": "function"}.get(kind, "")
    text = f"{what} {runs}".strip()
    if node.get("trainable") and node.get("mode"):
        text += f" \u00b7 {node['mode']}"
    if node["op"] != node["name"]:
        text += f" (op {node['op']})"
    lines.append(("pf-line", text))
    lines.append(("pf-mono", f"version {short_version(node['version'])}"))
    if node.get("trainable"):
        if node["is_current"] is None:
            lines.append(("pf-warn", "not trained and saved yet"))
        elif node["is_current"]:
            lines.append(("pf-ok", "\u2713 loaded = current"))
        else:
            lines.append(("pf-warn", f"current: {short_version(node['current'])}"))
    for up, version, ok, what in _node_links(node, by_op):
        lines.append(("pf-mono" if ok else "pf-warn", f"{what} {up} {short_version(version, 4)}"))
    return lines


def _node_links(node: dict, by_op: dict) -> list[tuple[str, str, bool, str]]:
    """(upstream op, its version, still valid?, wording) for each "trained on" link.

    The links of the version in use; for a node whose current stored version
    differs, those of the current one (what a load would check), as loading
    needs them on the major version the upstream op would run.
    """
    links, key, what = node.get("trained_on") or {}, "version", "trained on"
    if not links and node.get("is_current") is False:
        links, key, what = node.get("current_trained_on") or {}, "current", "current trained on"
    result = []
    for up, version in sorted(links.items()):
        upstream = by_op.get(up) or {}
        against = upstream.get(key) or upstream.get("version")
        ok = not against or str(version).split(".")[0] == str(against).split(".")[0]
        result.append((up, version, ok, what))
    return result


class _Box:
    """What one node shows: its lines of text, css classes and size."""

    __slots__ = ("id", "lines", "css", "node", "w", "h")

    def __init__(self, id: str, lines: list, css: str, node: dict | None):
        self.id = id
        self.lines = lines
        self.css = css
        self.node = node
        chars = [_width(t, 8.2 if c == "pf-name" else _CHAR) for c, t in lines]
        self.w = max(110.0, max(chars) + 2 * _PAD)
        self.h = len(lines) * _LINE + 2 * _PAD - 4


def _boxes(description: dict) -> dict[str, _Box]:
    by_op: dict[str, dict] = {}
    for node in description["nodes"]:
        by_op.setdefault(node["op"], node)
    boxes: dict[str, _Box] = {}
    if description.get("has_input"):
        boxes[PIPELINE_INPUT] = _Box(PIPELINE_INPUT, [("pf-name", "pipeline input")], "pf-io", None)
    for node in description["nodes"]:
        css = f"pf-{node['kind']}"
        if node.get("trainable"):
            status = node.get("is_current")
            css += " " + {True: "pf-current", False: "pf-stale", None: "pf-untrained"}[status]
        boxes[node["name"]] = _Box(node["name"], _node_lines(node, by_op), css, node)
    if description.get("has_output"):
        boxes[PIPELINE_OUTPUT] = _Box(
            PIPELINE_OUTPUT, [("pf-name", "pipeline output")], "pf-io", None
        )
    return boxes


def _curve(points: list[tuple[float, float]]) -> str:
    """A smooth path through ``points``, vertical at each of them."""
    x0, y0 = points[0]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
        mid = (ya + yb) / 2
        if abs(xa - xb) < 0.5:
            parts.append(f"L{xb:.1f},{yb:.1f}")
        else:
            parts.append(f"C{xa:.1f},{mid:.1f} {xb:.1f},{mid:.1f} {xb:.1f},{yb:.1f}")
    return " ".join(parts)


def _status(description: dict) -> tuple[str, list[str]]:
    """The pipeline's load status, whole and wrapped into a few lines."""
    import textwrap

    if description.get("is_loaded"):
        status = "loaded"
    elif description.get("load_error"):
        status = f"not loaded: {description['load_error']}"
    else:
        status = "not loaded"
    lines = textwrap.wrap(status, 96, break_on_hyphens=False) or [status]
    if len(lines) > 4:
        lines = [*lines[:3], lines[3][:93] + "..."]
    return status, lines


def render_svg(description: dict[str, Any], *, standalone: bool = True) -> str:
    """The SVG text of a described pipeline (``standalone`` adds the XML declaration)."""
    boxes = _boxes(description)
    edges = [(e["source"], e["target"], list(e["values"])) for e in description["edges"]]
    placed = layout({n: (b.w, b.h) for n, b in boxes.items()}, [(s, t) for s, t, _ in edges])
    links = _links(description, boxes)

    name = str(description["pipeline"])
    slug = _slug(name)
    title = f"pipeline {name}"
    status, status_lines = _status(description)
    header = 34 + 16 * len(status_lines)
    legend, legend_width = _legend(bool(links))
    dx, dy = float(_MARGIN), float(header)
    right = placed.width + (_LINK_BULGE + 40 if links else 0)
    text_width = max(_width(line) for line in [*status_lines, title])
    width = max(right, text_width, legend_width) + 2 * _MARGIN
    legend_y = header + placed.height + 34
    height = legend_y + 24

    out: list[str] = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>')
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pf-dag" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-labelledby="pf-t-{slug} pf-d-{slug}" data-pipeline="{escape(name)}">'
    )
    out.append(f'<title id="pf-t-{slug}">{escape(title)}</title>')
    out.append(f'<desc id="pf-d-{slug}">{escape(_summary(description))}</desc>')
    out.append(f"<style>{_STYLE}</style>")
    out.append("<defs>")
    for kind, colour in (("arrow", "#455a64"), ("link", "#5c6bc0"), ("broken", "#e65100")):
        out.append(
            f'<marker id="pf-{kind}-{slug}" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append(f'<text class="pf-title" x="{_MARGIN}" y="22">{escape(title)}</text>')
    css = "pf-ok" if description.get("is_loaded") else "pf-warn"
    out.append(f'<text class="pf-sub {css}" x="{_MARGIN}" y="40"><title>{escape(status)}</title>')
    for k, line in enumerate(status_lines):
        out.append(f'<tspan x="{_MARGIN}" dy="{0 if k == 0 else 16}">{escape(line)}</tspan>')
    out.append("</text>")

    labels = []
    for route, (source, target, values) in zip(placed.routes, edges, strict=True):
        points = [(x + dx, y + dy) for x, y in route]
        points[-1] = (points[-1][0], points[-1][1] - 2)
        out.append(
            f'<path class="pf-edge" data-source="{escape(source)}" data-target="{escape(target)}" '
            f'd="{_curve(points)}" marker-end="url(#pf-arrow-{slug})">'
            f"<title>{escape(source)} \u2192 {escape(target)}: {escape(', '.join(values))}</title>"
            "</path>"
        )
        text = ", ".join(v for v in values if v not in (PIPELINE_INPUT, PIPELINE_OUTPUT))
        if text:
            (xa, ya), (xb, yb) = points[0], points[1]
            labels.append(((xa + xb) / 2, (ya + yb) / 2, text))
    for source, target, ok, version in links:
        out.append(_link_svg(placed, boxes, source, target, ok, version, slug, dx, dy))
    for x, y, text in labels:
        w = _width(text, 6.8) + 8
        out.append(
            f'<rect class="pf-label-bg" x="{x - w / 2:.1f}" y="{y - 9:.1f}" width="{w:.1f}" '
            f'height="16" rx="3"/><text class="pf-label" x="{x:.1f}" y="{y + 3:.1f}" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    for box_name, box in boxes.items():
        out.append(_box_svg(box, placed.x[box_name] + dx, placed.y[box_name] + dy))
    out.append(f'<g class="pf-legend" transform="translate({_MARGIN},{legend_y:.0f})">')
    out.append(legend)
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def _link_svg(placed, boxes, source, target, ok, version, slug, dx, dy) -> str:
    """A dashed curve on the right from the upstream op's node to the one trained on it."""
    a, b = boxes[source], boxes[target]
    x1 = placed.x[source] + a.w / 2 + dx
    y1 = placed.y[source] + a.h / 2 + dy
    x2 = placed.x[target] + b.w / 2 + dx
    y2 = placed.y[target] + b.h / 2 + dy
    bulge = max(x1, x2) + _LINK_BULGE
    kind = "link" if ok else "broken"
    peak = x1 + 0.75 * (bulge - x1) if abs(x1 - x2) < 1 else (x1 + x2 + 6 * bulge) / 8
    return (
        f'<path class="pf-link{"" if ok else " pf-broken"}" data-source="{escape(source)}" '
        f'data-target="{escape(target)}" d="M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} '
        f'{bulge:.1f},{y2:.1f} {x2 + 2:.1f},{y2:.1f}" marker-end="url(#pf-{kind}-{slug})">'
        f"<title>{escape(target)} was trained on {escape(source)} {escape(version)}</title>"
        f'</path><text class="pf-link-label" x="{peak + 6:.1f}" y="{(y1 + y2) / 2 + 4:.1f}">'
        "trained on</text>"
    )


def _links(description, boxes) -> list[tuple[str, str, bool, str]]:
    """Dashed "trained on" links between nodes of this pipeline: (up, down, ok, version)."""
    by_op: dict[str, dict] = {}
    for node in description["nodes"]:
        by_op.setdefault(node["op"], node)
    links = []
    for node in description["nodes"]:
        for up, version, ok, _ in _node_links(node, by_op):
            upstream = by_op.get(up)
            if upstream is not None and upstream["name"] in boxes:
                links.append((upstream["name"], node["name"], ok, version))
    return links


def _box_svg(box: _Box, centre: float, top: float) -> str:
    x, y = centre - box.w / 2, top
    node = box.node or {}
    attrs = f'class="pf-node {box.css}" data-node="{escape(box.id)}"'
    if node:
        attrs += f' data-op="{escape(node["op"])}" data-kind="{escape(node["kind"])}"'
        if node.get("version"):
            attrs += f' data-version="{escape(node["version"])}"'
    radius = 16 if box.css == "pf-io" else 6
    parts = [
        f"<g {attrs}>",
        f"<title>{escape(_tooltip(box))}</title>",
        f'<rect class="pf-box" x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" '
        f'height="{box.h:.1f}" rx="{radius}"/>',
    ]
    for k, (css, text) in enumerate(box.lines):
        ty = y + _PAD + 12 + k * _LINE
        parts.append(f'<text class="{css}" x="{x + _PAD:.1f}" y="{ty:.1f}">{escape(text)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _tooltip(box: _Box) -> str:
    node = box.node
    if not node:
        return box.lines[0][1]
    text = f"node {node['name']}: op {node['op']} ({node['kind']} {node['runs']})"
    if node.get("version"):
        text += f"\nversion {node['version']}"
    if node.get("current") and node.get("trainable"):
        text += f"\ncurrent {node['current']}"
    for up, version, _ok, what in _node_links(node, {}):
        text += f"\n{what} {up} {version}"
    return text


def _legend(links: bool) -> tuple[str, float]:
    """The legend's SVG (drawn at the origin) and its width."""
    items = [
        ("pf-current", "current version loaded"),
        ("pf-stale", "a newer version is stored"),
        ("pf-untrained", "not trained yet"),
    ]
    parts = []
    x = 0.0
    for css, text in items:
        parts.append(
            f'<g class="{css}"><rect class="pf-box" x="{x:.0f}" y="-10" width="18" height="12" '
            f'rx="3"/></g><text class="pf-muted" x="{x + 24:.0f}" y="0">{escape(text)}</text>'
        )
        x += 24 + _width(text, 6.8) + 18
    if links:
        parts.append(
            f'<path class="pf-link" d="M{x:.0f},-4 h26"/>'
            f'<text class="pf-muted" x="{x + 32:.0f}" y="0">trained on</text>'
        )
        x += 32 + _width("trained on", 6.8)
    return "".join(parts), x


def _summary(description: dict) -> str:
    """The picture in words, for screen readers."""
    parts = []
    for node in description["nodes"]:
        text = f"{node['name']} ({node['kind']} {node['runs']}"
        if node.get("version"):
            text += f", version {short_version(node['version'])}"
        if node.get("trainable"):
            text += {True: ", current", False: ", a newer version is stored", None: ", untrained"}[
                node.get("is_current")
            ]
        parts.append(text + ")")
    flows = [
        f"{e['source']} to {e['target']}".replace(PIPELINE_INPUT, "input").replace(
            PIPELINE_OUTPUT, "output"
        )
        for e in description["edges"]
    ]
    return f"Nodes: {'; '.join(parts)}. Data flows: {'; '.join(flows)}."
