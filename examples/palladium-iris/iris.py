"""The project's own code, written against Palladium: it imports palladium.* only."""

from functools import wraps

import pandas
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from palladium.interfaces import DatasetLoader
from palladium.server import app
from palladium.util import logger, process_store, timer

NAMES = ["sepal length", "sepal width", "petal length", "petal width", "species"]


def model(**kwargs):
    """The tutorial's pipeline (scaled); 'clf__C' and friends come from the config."""
    pipeline = Pipeline(
        [
            ("poly", PolynomialFeatures()),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    pipeline.set_params(**kwargs)
    return pipeline


class IrisRows(DatasetLoader):
    """Rows of the iris CSV file: `count` rows after skipping `skip`."""

    def __init__(self, path, count=None, skip=0):
        self.path = path
        self.count = count
        self.skip = skip

    def __call__(self):
        with timer(logger.info, "Loading iris rows"):
            data = pandas.read_csv(self.path, names=NAMES, skiprows=self.skip, nrows=self.count)
        return data[NAMES[:4]].values, data["species"].values


def count_predictions(func):
    """A predict decorator that counts the calls in the process store."""

    @wraps(func)
    def counted(*args, **kwargs):
        process_store["predictions"] = process_store.get("predictions", 0) + 1
        return func(*args, **kwargs)

    return counted


@app.route("/model-version")
def model_version():
    """A route of the project's own, on Palladium's Flask app."""
    model = process_store.get("model")
    version = None if model is None else model.__metadata__["version"]
    return {"version": version, "predictions": process_store.get("predictions", 0)}
