"""Write the data of the online-learning example: a regression stream from scikit-learn.

scikit-learn ships the diabetes data (442 patients: age, sex, body mass
index, blood pressure and six blood serum measurements; the target is a
measure of disease progression one year later). This script writes them in
their original units, in a fixed shuffled order, as two CSV files next to
itself:

* history.csv: the first 300 rows, the past that ``pf-online replay`` learns from;
* stream.csv: the other 142 rows, which ``client.py`` sends to the server
  one at a time, as if they arrived live.

    python make_data.py
"""

import os

import numpy as np
from sklearn.datasets import load_diabetes

SEED = 0
HISTORY = 300


def main() -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.iloc[np.random.RandomState(SEED).permutation(len(frame))]
    here = os.path.dirname(os.path.abspath(__file__))
    frame.iloc[:HISTORY].to_csv(os.path.join(here, "history.csv"), index=False)
    frame.iloc[HISTORY:].to_csv(os.path.join(here, "stream.csv"), index=False)
    print(f"Wrote history.csv ({HISTORY} rows) and stream.csv ({len(frame) - HISTORY} rows)")


if __name__ == "__main__":
    main()
