"""Send stream.csv to a running pipeforge server, one patient at a time.

For each row: ask for a prediction (keeping the features under an id), then
tell the server what really happened (learn by id). At the end, print the
model's progressive-validation metrics as the server computed them.

    python client.py [http://127.0.0.1:8000] [model]
"""

import csv
import os
import sys

import requests


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    model = sys.argv[2] if len(sys.argv) > 2 else None
    here = os.path.dirname(os.path.abspath(__file__))
    session = requests.Session()
    with open(os.path.join(here, "stream.csv")) as file:
        rows = list(csv.DictReader(file))
    for number, row in enumerate(rows):
        target = float(row.pop("target"))
        features = {name: float(value) for name, value in row.items()}
        body = {"id": f"patient-{number}", "features": features}
        if model:
            body["model"] = model
        answer = session.post(f"{url}/api/predict", json=body)
        answer.raise_for_status()
        session.post(
            f"{url}/api/learn", json={"id": f"patient-{number}", "ground_truth": target}
        ).raise_for_status()
    params = {"model": model} if model else {}
    metrics = session.get(f"{url}/api/metrics", params=params).json()
    print(
        f"Sent {len(rows)} patients; metrics: "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    )


if __name__ == "__main__":
    main()
