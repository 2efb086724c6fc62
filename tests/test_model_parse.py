"""POST /model/parse answers in Rasa's parse format."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_parse_shape_and_time_entity(client: TestClient) -> None:
    r = client.post("/model/parse", json={"text": "明天下午三点前回复我理赔进度",
                                          "now": "2026-11-23T23:59:00+08:00"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"text", "intent", "intent_ranking", "entities"}
    assert set(body["intent"]) == {"name", "confidence"}
    assert 0 <= body["intent"]["confidence"] <= 1
    assert body["intent_ranking"][0]["name"] == body["intent"]["name"]
    times = [e for e in body["entities"] if e["entity"] == "time"]
    assert times == [{"entity": "time", "value": "2026-11-24T15:00:00+08:00",
                      "start": 0, "end": 7}]


def test_parse_naive_now_is_utc_and_stored_times_carry_an_offset(client: TestClient) -> None:
    r = client.post("/model/parse", json={"text": "明天上午10点", "now": "2026-11-23T15:59:00"})
    times = [e["value"] for e in r.json()["entities"] if e["entity"] == "time"]
    assert times == ["2026-11-24T10:00:00+08:00"]  # 15:59Z is 23:59 in Shanghai


def test_parse_pii_entities(client: TestClient) -> None:
    text = "我电话13812345678 身份证11010519491231002X 卡号6222020200001234562"
    entities = client.post("/model/parse", json={"text": text}).json()["entities"]
    kinds = {e["entity"] for e in entities}
    assert {"phone", "id_card", "bank_card"} <= kinds


def test_parse_rejects_bad_bodies(client: TestClient) -> None:
    assert client.post("/model/parse", json={}).status_code == 422
    assert client.post("/model/parse", json={"text": "x" * 5000}).status_code == 413
    empty = client.post("/model/parse", json={"text": ""})
    assert empty.status_code == 200
    assert empty.json()["intent"]["name"] == "out_of_scope"
