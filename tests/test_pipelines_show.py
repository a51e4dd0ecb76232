"""``pf-pipeline show``: a pipeline described and drawn as an SVG of its DAG."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeforge.cli.pipelines import main
from pipeforge.pipelines.layout import layout

IRIS = Path(__file__).resolve().parent.parent / "examples" / "iris"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def iris_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(IRIS / "pipelines.yaml"))
    monkeypatch.setenv("PIPEFORGE_OP_STORE", f"sqlite:///{tmp_path / 'ops.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def nodes(svg_path: Path) -> dict[str, ET.Element]:
    root = ET.parse(svg_path).getroot()  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    return {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def links(svg_path: Path) -> list[ET.Element]:
    root = ET.parse(svg_path).getroot()
    paths = root.iter(f"{SVG}path")
    return [p for p in paths if "pf-link" in classes(p) and p.get("data-source")]


def test_show_before_and_after_training(iris_env, capsys):
    status, out, _ = run(capsys, "show", "predict_iris", "--svg=before.svg")
    assert status == 0
    assert out.startswith("pipeline predict_iris (not loaded: ")
    assert "'pca' has never been trained" in out.splitlines()[0]
    drawn = nodes(iris_env / "before.svg")
    assert set(drawn) == {"__pipeline_input__", "pca", "classifier", "__pipeline_output__"}
    assert all("pf-untrained" in classes(drawn[n]) for n in ("pca", "classifier"))

    assert run(capsys, "run", "train_iris", "--save")[0] == 0
    status, out, _ = run(capsys, "show", "predict_iris", "--svg=after.svg", "--json")
    assert status == 0
    description = json.loads(out.split("\nWrote the picture")[0])
    assert description["is_loaded"] and description["load_error"] is None
    by_name = {n["name"]: n for n in description["nodes"]}
    pca, classifier = by_name["pca"], by_name["classifier"]
    assert pca["is_current"] and classifier["is_current"]
    assert classifier["trained_on"] == {"pca": pca["version"]}
    assert description["edges"] == [
        {"source": "__pipeline_input__", "target": "pca", "values": ["__pipeline_input__"]},
        {"source": "pca", "target": "classifier", "values": ["X_pca"]},
        {
            "source": "classifier",
            "target": "__pipeline_output__",
            "values": ["__pipeline_output__"],
        },
    ]
    drawn = nodes(iris_env / "after.svg")
    assert drawn["pca"].get("data-version") == pca["version"]
    assert {drawn[n].get("data-op") for n in ("pca", "classifier")} == {"pca", "classifier"}
    assert all("pf-current" in classes(drawn[n]) for n in ("pca", "classifier"))
    [link] = links(iris_env / "after.svg")
    assert (link.get("data-source"), link.get("data-target")) == ("pca", "classifier")
    assert "pf-broken" not in classes(link)


def test_show_explains_a_refused_load(iris_env, capsys, screenshots):
    run(capsys, "run", "train_iris", "--save")
    run(capsys, "run", "train_pca", "--save")
    status, out, _ = run(capsys, "show", "predict_iris", "--svg=stale.svg")
    assert status == 0
    assert "not trained on the current major version of op 'pca'" in out.splitlines()[0]
    assert "current trained on" not in out  # the text form lists what is loaded
    drawn = nodes(iris_env / "stale.svg")
    assert "pf-stale" in classes(drawn["classifier"])
    [link] = links(iris_env / "stale.svg")
    assert "pf-broken" in classes(link)
    text = (iris_env / "stale.svg").read_text()
    assert "current trained on pca" in text and "retrain &#x27;classifier&#x27;" in text
    # The picture of docs/pipelines.md (PIPEFORGE_SCREENSHOTS=docs/img regenerates it).
    (screenshots.folder / "pipeline-predict_iris.svg").write_text(text)

    # The training pipeline still loads and shows which data op feeds whom.
    status, out, _ = run(capsys, "show", "train_iris", "--svg=train.svg")
    assert status == 0 and out.startswith("pipeline train_iris (loaded)")
    assert "  iris: data CSV" in out and "    inputs X_pca, y -> outputs -" in out
    drawn = nodes(iris_env / "train.svg")
    assert set(drawn) == {"iris", "pca", "classifier"}
    assert "pf-data" in classes(drawn["iris"])


def test_show_usage_errors(iris_env, capsys):
    status, _, err = run(capsys, "show", "nope")
    assert status == 2 and "unknown pipeline 'nope'" in err
    status, _, err = run(capsys, "show", "predict_iris", f"--svg={iris_env / 'no' / 'x.svg'}")
    assert status == 1 and "No such file or directory" in err
    assert len(err.strip().splitlines()) == 1


def _boxes_overlap(placed, sizes, a, b) -> bool:
    (wa, ha), (wb, hb) = sizes[a], sizes[b]
    return (
        abs(placed.x[a] - placed.x[b]) < (wa + wb) / 2
        and placed.y[a] < placed.y[b] + hb
        and placed.y[b] < placed.y[a] + ha
    )


def test_layout_layers_and_routes():
    sizes = {name: (120.0, 50.0) for name in "abcdef"}
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d"), ("d", "e"), ("a", "f")]
    placed = layout(sizes, edges)
    rows = {name: placed.y[name] for name in sizes}
    assert rows["a"] < rows["b"] == rows["c"] < rows["d"] < rows["e"]
    assert not any(_boxes_overlap(placed, sizes, a, b) for a, b in itertools.combinations(sizes, 2))
    for (source, target), route in zip(edges, placed.routes, strict=True):
        assert route[0][1] == placed.y[source] + sizes[source][1]  # leaves at the bottom
        assert route[-1][1] == placed.y[target]  # enters at the top
    long_edge = placed.routes[edges.index(("a", "d"))]
    assert len(long_edge) == 4  # bends once through the layer it skips
    assert all(0 <= x <= placed.width for route in placed.routes for x, _ in route)
