"""POST /webhook and GET /actions speak the Rasa action-server protocol."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _call(action: str, slots: dict[str, Any], text: str, candidates: dict[str, Any],
          **extra: Any) -> dict[str, Any]:
    events = [
        {"event": "action", "name": "action_listen", "timestamp": 1772416800.0},
        {"event": "user", "text": text, "timestamp": 1772416800.0,
         "parse_data": {"text": text, "entities": []}},
        *({"event": "slot", "name": k, "value": v} for k, v in candidates.items()),
    ]
    return {
        "next_action": action,
        "sender_id": "rasa-user-1",
        "tracker": {"sender_id": "rasa-user-1", "slots": {**slots, **candidates},
                    "latest_message": {"text": text, "entities": []}, "events": events,
                    "active_loop": {"name": "change_contact_form"},
                    "latest_action_name": "action_listen", "paused": False},
        "version": "3.12.0",
        **extra,
    }


def test_actions_lists_every_dialog_action(make_client: Any) -> None:
    client: TestClient = make_client()
    names = {a["name"] for a in client.get("/actions").json()}
    assert {"validate_change_contact_form", "action_submit_change_contact_form",
            "action_cancel_form"} <= names


def test_webhook_validates_a_slot_and_names_the_next(make_client: Any) -> None:
    client: TestClient = make_client()
    body = _call("validate_change_contact_form", {"requested_slot": "new_phone"},
                 "13812345678", {"new_phone": "13812345678"})
    r = client.post("/webhook", json=body)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert {"event": "slot", "name": "new_phone", "value": "138****5678",
            "timestamp": None} in events
    assert events[-1]["name"] == "requested_slot"
    assert events[-1]["value"] == "new_address"


def test_webhook_renders_the_text_of_our_responses(make_client: Any) -> None:
    client: TestClient = make_client()
    body = _call("action_cancel_form", {}, "算了", {})
    r = client.post("/webhook", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["events"][0] == {"event": "active_loop", "name": None, "timestamp": None}
    assert out["responses"][0]["response"] == "form.cancelled"
    assert "取消" in out["responses"][0]["text"]


def test_webhook_unknown_action_is_404_and_bad_tracker_400(make_client: Any) -> None:
    client: TestClient = make_client()
    r = client.post("/webhook", json=_call("action_nope", {}, "x", {}))
    assert r.status_code == 404
    assert r.json()["action_name"] == "action_nope"
    bad = client.post("/webhook", json={"next_action": "action_cancel_form", "tracker": {}})
    assert bad.status_code in (400, 422)
    body = _call("action_cancel_form", {}, "x", {})
    body["tracker"]["events"] = [{"no": "event"}]
    assert client.post("/webhook", json=body).status_code == 400
