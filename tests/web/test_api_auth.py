"""Tokens and roles on every /api route: 401 without a valid token, 403 for a role too low, JSON bodies."""

from __future__ import annotations

import time

import pytest

from pumpops.web import hash_token, new_token, parse_bearer, role_allows

from .conftest import Api, make_token

pytestmark = [pytest.mark.mosquitto]

#: Every write endpoint and the least role it needs: the role below it is refused.
WRITES = [
    ("/api/alarms/p-1:1000/ack", "operator", {}),
    ("/api/alarms/p-1:1000/feedback", "operator", {"verdict": "confirmed"}),
    ("/api/rollouts/r-1/pause", "operator", {}),
    ("/api/rollouts/r-1/resume", "operator", {}),
    ("/api/rollouts/r-1/abort", "admin", {}),
    ("/api/rollouts", "admin", {"release": "pumpops-skab/2", "group": "g-web"}),
    ("/api/models/pumpops-skab/2/promote", "admin", {}),
    ("/api/models/pumpops-skab/2/approve", "admin", {}),
]
_BELOW = {"operator": "viewer", "admin": "operator"}


def test_api_without_token_is_401_with_a_json_reason(api: Api) -> None:
    response = api.client.get("/api/fleet")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-token",
        "Bearer pumpops_abcdefabcdef_" + "A" * 42,  # one character short
        "Bearer pumpops_abcdefabcdef_" + "A" * 43 + " extra",
        b"Bearer pumpops_abcdefabcdef_" + b"A" * 42 + b"\xe9",  # latin-1 bytes
    ],
)
def test_api_malformed_authorization_is_401(api: Api, header: str | bytes) -> None:
    response = api.client.get("/api/fleet", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_api_forged_token_of_a_real_id_with_another_secret_is_401(api: Api) -> None:
    real = api.tokens["admin"]
    token_id = real.split("_")[1]
    _, other = new_token()
    forged = f"pumpops_{token_id}_{other.split('_', 2)[2]}"
    response = api.client.get("/api/fleet", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert "unknown token" in response.json()["detail"]


def test_api_token_whose_hash_is_known_under_another_id_is_401(api: Api) -> None:
    # the stored hash matches, but the id in the token is not that row's: refused
    real = api.tokens["viewer"]
    _, secret = real.split("_", 2)[1:]
    swapped = f"pumpops_zzzzzzzzzzzz_{secret}"
    assert api.client.get("/api/fleet", headers={"Authorization": f"Bearer {swapped}"}).status_code == 401


def test_api_revoked_token_is_401_from_the_next_request(api: Api) -> None:
    token = make_token(api.store, "bob", "operator")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/fleet", headers=headers).status_code == 200
    (revoked,) = api.store.revoke_api_tokens(name="bob")
    response = api.client.get("/api/fleet", headers=headers)
    assert response.status_code == 401
    assert f"revoked (token {revoked.token_id})" in response.json()["detail"]


def test_api_expired_token_is_401(api: Api) -> None:
    now_us = time.time_ns() // 1000
    token = make_token(api.store, "carl", "admin", expires_at_us=now_us - 1, time_us=now_us - 10_000_000)
    response = api.client.get("/api/fleet", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize(("path", "role", "body"), WRITES, ids=[w[0] for w in WRITES])
def test_api_write_refused_to_the_role_below_with_403(api: Api, path: str, role: str, body: object) -> None:
    response = api.post(path, _BELOW[role], body)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert f"this needs {role} or above" in response.json()["detail"]
    assert api.store.audit_entries() == []  # refused before anything was done


@pytest.mark.parametrize("path", ["/api/fleet", "/api/devices", "/api/alarms", "/api/audit", "/api/rollouts"])
def test_api_reads_need_a_token_and_any_role_may_read(api: Api, path: str) -> None:
    assert api.client.get(path).status_code == 401
    for role in ("viewer", "operator", "admin"):
        assert api.get(path, role).status_code == 200, (path, role)


def test_api_docs_and_openapi_are_public_and_load_nothing_from_outside(api: Api) -> None:
    document = api.client.get("/api/openapi.json")
    assert document.status_code == 200
    assert document.json()["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert document.json()["security"] == [{"token": []}]
    paths = document.json()["paths"]
    for path in (
        "/api/fleet",
        "/api/devices/{device_id}/telemetry",
        "/api/alarms/{alarm_id}/ack",
        "/api/events",
    ):
        assert path in paths
    page = api.client.get("/api/docs")
    assert page.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"/api/docs/assets/{asset}" in page.text
        assert api.client.get(f"/api/docs/assets/{asset}").status_code == 200


def test_auth_helpers_parse_and_rank() -> None:
    token_id, token = new_token()
    assert parse_bearer(f"bearer {token}") == token
    assert hash_token(token) != hash_token(token + "x")
    assert token_id in token
    assert role_allows("operator", "viewer")
    assert not role_allows("operator", "admin")
