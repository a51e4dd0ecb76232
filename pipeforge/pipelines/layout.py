"""Where the boxes of a DAG go: a small layered ("Sugiyama") layout, top to bottom.

Every node goes to the layer after its deepest input; edges that skip
layers get invisible bend points so they run between the boxes; a few
barycenter sweeps order each layer to cut crossings; then each box moves
under the mean of its inputs (and over its outputs) as far as the spacing
allows. Plenty for the pipelines people write (tens of nodes), and no
dependency on Graphviz. :mod:`~pipeforge.pipelines.svg` draws the result.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Layout", "layout"]

GAP_X = 36.0
GAP_Y = 58.0
_DUMMY_WIDTH = 10.0


class Layout:
    """Box positions (``x`` centre, ``y`` top) and each edge's route, from (0, 0)."""

    def __init__(self) -> None:
        self.x: dict[str, float] = {}
        self.y: dict[str, float] = {}
        self.routes: list[list[tuple[float, float]]] = []
        self.width = 0.0
        self.height = 0.0


def _neighbours(paths) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for path in paths:
        for a, b in zip(path, path[1:], strict=False):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


def _layers(names: Sequence[str], edges) -> dict[str, int]:
    """Longest path from the sources (the graph is known to be acyclic)."""
    preds: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        preds[target].append(source)
    layer: dict[str, int] = {}
    pending = list(names)
    while pending:
        ready = [n for n in pending if all(p in layer for p in preds[n])]
        if not ready:
            raise ValueError(f"the graph has a cycle through {pending}")
        for name in ready:
            layer[name] = max((layer[p] + 1 for p in preds[name]), default=0)
            pending.remove(name)
    return layer


def _order(rows: list[list[str]], up, down) -> None:
    """Barycenter sweeps down and up, a few times."""

    def sweep(indices, neighbours, step):
        for i in indices:
            pos = {name: k for k, name in enumerate(rows[i - step])}
            current = {name: k for k, name in enumerate(rows[i])}

            def key(name, pos=pos, current=current):
                near = [pos[n] for n in neighbours.get(name, []) if n in pos]
                return sum(near) / len(near) if near else current[name]

            rows[i].sort(key=key)

    for _ in range(4):
        sweep(range(1, len(rows)), up, 1)
        sweep(range(len(rows) - 2, -1, -1), down, -1)


def _spread(rows, width: dict[str, float], x: dict[str, float], up, down) -> None:
    """Horizontal centres: under the inputs, over the outputs, never overlapping."""

    def settle(row: list[str], wanted: dict[str, float]) -> None:
        xs: list[float] = []
        for k, name in enumerate(row):
            value = wanted[name]
            if k:
                value = max(value, xs[-1] + (width[row[k - 1]] + width[name]) / 2 + GAP_X)
            xs.append(value)
        shift = sum(wanted[n] for n in row) / len(row) - sum(xs) / len(xs)
        for name, value in zip(row, xs, strict=True):
            x[name] = value + shift

    def mean(names, default):
        return sum(x[n] for n in names) / len(names) if names else default

    cursor = 0.0
    for name in rows[0]:
        x[name] = cursor + width[name] / 2
        cursor += width[name] + GAP_X
    for row in rows[1:]:
        for name in row:
            x.setdefault(name, 0.0)
        settle(row, {n: mean(up.get(n, []), x[n]) for n in row})
    for row in reversed(rows[:-1]):
        settle(row, {n: (x[n] + mean(down.get(n, []), x[n])) / 2 for n in row})
    for row in rows[1:]:
        settle(row, {n: mean(up.get(n, []), x[n]) for n in row})


def _ports(paths, x, width) -> dict[tuple[int, int], float]:
    """Where edge ``k`` leaves its source (``(k, 0)``) and enters its target (``(k, -1)``)."""
    ports: dict[tuple[int, int], float] = {}
    groups: dict[tuple[str, int], list[int]] = {}
    for k, path in enumerate(paths):
        groups.setdefault((path[0], 0), []).append(k)
        groups.setdefault((path[-1], -1), []).append(k)
    for (name, end), ks in groups.items():
        other = 1 if end == 0 else -2
        ks.sort(key=lambda k: x[paths[k][other]])
        for i, k in enumerate(ks):
            fraction = (i + 1) / (len(ks) + 1)
            ports[(k, end)] = x[name] - width[name] * 0.3 + width[name] * 0.6 * fraction
    return ports


def layout(sizes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]]) -> Layout:
    """Lay out boxes of ``sizes`` (``name: (width, height)``) joined by ``edges``."""
    layer = _layers(list(sizes), edges)
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for name in sizes:
        rows[layer[name]].append(name)
    width = {name: w for name, (w, _) in sizes.items()}
    height = {name: h for name, (_, h) in sizes.items()}
    paths = []
    for source, target in edges:
        path = [source]
        for between in range(layer[source] + 1, layer[target]):
            dummy = f"\x00{source}\x00{target}\x00{between}"
            width[dummy], height[dummy] = _DUMMY_WIDTH, 0.0
            rows[between].append(dummy)
            path.append(dummy)
        paths.append([*path, target])
    up, down = _neighbours(paths)
    _order(rows, up, down)
    x: dict[str, float] = {}
    _spread(rows, width, x, up, down)

    result = Layout()
    left = min(x[n] - width[n] / 2 for n in x)
    top = 0.0
    row_of: dict[str, tuple[float, float]] = {}
    for row in rows:
        tallest = max(height[n] for n in row)
        for name in row:
            row_of[name] = (top, tallest)
            if name in sizes:
                result.x[name] = x[name] - left
                result.y[name] = top + (tallest - height[name]) / 2
        top += tallest + GAP_Y
    ports = _ports(paths, x, width)
    for k, path in enumerate(paths):
        source, target = path[0], path[-1]
        route = [(ports[(k, 0)] - left, result.y[source] + height[source])]
        for dummy in path[1:-1]:
            row_top, row_height = row_of[dummy]
            route += [(x[dummy] - left, row_top), (x[dummy] - left, row_top + row_height)]
        route.append((ports[(k, -1)] - left, result.y[target]))
        result.routes.append(route)
    result.width = max(x[n] + width[n] / 2 for n in x) - left
    result.height = top - GAP_Y
    return result
