"""Models fitted on a DataFrame: an array where the names are only checked, a frame where used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipeforge.server import PredictService
from tests.test_server import memory_app

NAMES = ["a", "b", "c"]
rng = np.random.default_rng(7)
FRAME = pd.DataFrame(rng.normal(size=(60, 3)), columns=NAMES)
LABELS = np.where(FRAME["a"] + 0.5 * FRAME["b"] - FRAME["c"] > 0, "yes", "no")
SAMPLES = [dict(zip(NAMES, row, strict=True)) for row in rng.normal(size=(12, 3)).tolist()]


def received(model):
    """Record the type of every input ``model.predict`` gets (the class stays scikit-learn's)."""
    kinds = []
    predict = model.predict

    def recording(X, **params):
        kinds.append(type(X))
        return predict(X, **params)

    model.predict = recording
    return kinds


def answers(model):
    service = PredictService(mapping=[(name, "float") for name in NAMES])
    client = memory_app(model, service).test_client()
    posted = client.post("/predict", json=SAMPLES)
    assert posted.status_code == 200, posted.json
    one = client.get("/predict", query_string=SAMPLES[0])
    assert one.status_code == 200, one.json
    return posted.json["result"], one.json["result"]


def expected(model):
    return model.predict(pd.DataFrame(SAMPLES, columns=NAMES)).tolist()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        # these only check the names: the request's float array, no DataFrame
        (lambda: LogisticRegression(), np.ndarray),
        (lambda: make_pipeline(StandardScaler(), LogisticRegression()), np.ndarray),
        # these select or compute by name: a DataFrame with the mapping's columns
        (
            lambda: make_pipeline(
                ColumnTransformer([("scale", StandardScaler(), ["c", "a"])], remainder="drop"),
                LogisticRegression(),
            ),
            pd.DataFrame,
        ),
        (
            lambda: make_pipeline(
                FunctionTransformer(lambda frame: frame[["b", "a"]] * 2.0), LogisticRegression()
            ),
            pd.DataFrame,
        ),
    ],
    ids=["estimator", "pipeline", "column-transformer", "function"],
)
def test_a_dataframe_model_gets_an_array_only_where_names_are_just_checked(make, kind):
    model = make().fit(FRAME, LABELS)
    want = expected(model)
    kinds = received(model)
    posted, one = answers(model)
    assert posted == want and one == want[0]
    assert kinds == [kind, kind]


def test_the_names_warning_is_not_printed_by_the_server(tmp_path):
    """The check is done by pipeforge, so scikit-learn's warning about missing names is noise."""
    script = tmp_path / "serve_once.py"
    script.write_text(
        "import numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from pipeforge.server import PredictService\n"
        "from tests.test_server import memory_app\n"
        "frame = pd.DataFrame(np.eye(4)[:, :3], columns=['a', 'b', 'c'])\n"
        "model = LogisticRegression().fit(frame, [0, 1, 0, 1])\n"
        "service = PredictService(mapping=[('a', 'float'), ('b', 'float'), ('c', 'float')])\n"
        "client = memory_app(model, service).test_client()\n"
        "print(client.get('/predict?a=1&b=0&c=0').status_code)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=120,
    )
    assert done.stdout.strip() == "200", done.stderr
    assert "feature names" not in done.stderr
