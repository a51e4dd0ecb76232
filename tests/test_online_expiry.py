"""Ids that are predicted with but never learnt expire after ``online.pending_ttl``, on every
store, through real gunicorn workers: learning one afterwards is the usual 404 (saying it may
have expired) and changes nothing, and the store no longer holds them (SQL: swept by the
workers; Redis: key expiry). Fresh ids are kept and learnt as usual."""

from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa

from tests.fixtures.online import online_config

TTL = 3  # seconds: short, and still far longer than one request takes

X = {"a": 1.0, "b": 2.0}


def _kept(store: dict, prefix: str) -> int:
    """How many ids starting with ``prefix`` the store holds, read from the store itself."""
    if store["__factory__"].endswith("RedisStore"):
        import redis

        client = redis.Redis.from_url(store["url"])
        try:
            return len(list(client.scan_iter(match=f"pipeforge:{{online}}:pending:{prefix}*")))
        finally:
            client.close()
    engine = sa.create_engine(store["url"])
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pf_online_pending WHERE id LIKE :p")
            return conn.execute(query, {"p": prefix + "%"}).scalar_one()
    finally:
        engine.dispose()


def _post(url: str, path: str, body: dict) -> requests.Response:
    return requests.post(url + path, json=body, timeout=30)


@pytest.mark.slow
def test_ids_expire_after_pending_ttl(tmp_path, online_store, gunicorn_server):
    path = online_config(tmp_path, online_store, online={"pending_ttl": TTL})
    url = gunicorn_server(path, workers=2)

    for i in range(6):
        assert _post(url, "/api/predict", {"features": X, "id": f"old-{i}"}).status_code == 201
    assert _kept(online_store, "old-") == 6
    time.sleep(TTL + 1)  # past the ttl of every old id

    response = _post(url, "/api/learn", {"id": "old-0", "ground_truth": 3.0})
    assert response.status_code == 404, response.text
    metadata = response.json()["metadata"]
    assert metadata["status"] == "ERROR"
    assert "nothing is stored for id 'old-0'" in metadata["error_message"]
    assert "expired" in metadata["error_message"]
    assert "online.pending_ttl" in metadata["error_message"]
    info = requests.get(url + "/api/models", timeout=30).json()["info"]["reg"]
    assert info["n_learnt"] == 0 and info["n_scored"] == 0

    # The store forgets them: SQL workers sweep while they keep new ids, Redis expires the keys.
    deadline = time.monotonic() + 60  # a bound for the polling, not a measurement
    sent = 0
    while _kept(online_store, "old-"):
        assert time.monotonic() < deadline, _kept(online_store, "old-")
        assert _post(url, "/api/predict", {"features": X, "id": f"new-{sent}"}).status_code == 201
        sent += 1
        time.sleep(0.2)
    for i in range(1, 6):
        answer = _post(url, "/api/learn", {"id": f"old-{i}", "ground_truth": 3.0})
        assert answer.status_code == 404 and "expired" in answer.text

    # a fresh id is kept and learnt as usual
    assert _post(url, "/api/predict", {"features": X, "id": "fresh"}).status_code == 201
    assert _kept(online_store, "fresh") == 1
    if online_store["__factory__"].endswith("RedisStore"):
        import redis

        client = redis.Redis.from_url(online_store["url"])
        expiry = client.pttl("pipeforge:{online}:pending:fresh")
        client.close()
        assert 0 < expiry <= TTL * 1000
    assert _post(url, "/api/learn", {"id": "fresh", "ground_truth": 3.0}).status_code == 201
    assert _kept(online_store, "fresh") == 0
    info = requests.get(url + "/api/models", timeout=30).json()["info"]["reg"]
    assert info["n_learnt"] == 1 and info["n_scored"] == 1


@pytest.mark.parametrize(
    ("online", "expiry"), [({}, (6 * 86_400_000, 7 * 86_400_000)), ({"pending_ttl": None}, -1)]
)
def test_redis_keeps_ids_for_the_configured_time(tmp_path, redis_url, online, expiry):
    """The default keeps an id a week; ``pending_ttl: null`` keeps it until it is learnt."""
    import redis

    from pipeforge.config import load_config
    from pipeforge.online.config import read_settings
    from pipeforge.online.service import OnlineService

    store = {"__factory__": "pipeforge.online.RedisStore", "url": redis_url}
    path = online_config(tmp_path, store, online=online)
    service = OnlineService(read_settings(load_config([str(path)])))
    assert service.predict({"features": X, "id": "kept"})[1] == 201
    client = redis.Redis.from_url(redis_url)
    left = client.pttl("pipeforge:{online}:pending:kept")
    client.close()
    service.store.close()
    if isinstance(expiry, tuple):
        assert expiry[0] < left <= expiry[1]
    else:
        assert left == expiry
