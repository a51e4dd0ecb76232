"""Write iris.data, the dataset of the iris example.

The 150 samples of scikit-learn's bundled copy of Fisher's iris data,
shuffled with a fixed seed (so the first 100 rows, used for training, hold
all three species), one decimal per measurement, no header, comma-separated:

    sepal length,sepal width,petal length,petal width,species

Run it from anywhere; it writes iris.data next to itself:

    python examples/iris/make_data.py
"""

import os

import numpy as np
from sklearn.datasets import load_iris

SEED = 0
SPECIES = np.array(["Iris-setosa", "Iris-versicolor", "Iris-virginica"])


def main() -> None:
    iris = load_iris()
    order = np.random.RandomState(SEED).permutation(len(iris.target))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iris.data")
    with open(path, "w") as out:
        for features, target in zip(iris.data[order], iris.target[order], strict=True):
            values = ",".join(f"{value:.1f}" for value in features)
            out.write(f"{values},{SPECIES[target]}\n")
    print(f"wrote {len(order)} samples to {path}")


if __name__ == "__main__":
    main()
