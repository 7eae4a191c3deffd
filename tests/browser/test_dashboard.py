"""The dashboard in a real browser (Debian's Chromium via Playwright) against a real ``pumpops hub serve``.

A person logs in with a token, sees the fleet worst first, opens a pump with an
alarm, acknowledges it, pauses and resumes a rollout, exports CSV, and sees a
new alarm arrive on the open console without reloading. A viewer sees no pause
button, and a pause forged as the viewer (with the viewer's own valid CSRF
token) is refused 403 and changes nothing. Each page is saved as a screenshot.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time

import httpx
from playwright.sync_api import Page, expect

from .conftest import Hub, cli, login, screenshot

TIMEOUT_MS = 10_000


def test_login_page_refuses_a_bad_token_with_its_reason(page: Page, hub: Hub) -> None:
    page.goto(f"{hub.base}/ui/alarms")
    expect(page).to_have_url(re.compile(r"/ui/login"))  # not logged in: sent to the login page
    screenshot(page, "login")
    page.fill("input[name=token]", "pumpops_aaaaaaaaaaaa_" + "A" * 43)
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("unknown token")
    page.fill("input[name=token]", "password123")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not a pumpops token")


def test_log_in_and_see_the_fleet_worst_first(page: Page, hub: Hub) -> None:
    login(page, hub, "operator")
    cookie = next(c for c in page.context.cookies() if c["name"] == "pumpops_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"  # never sent to /api, which takes bearer tokens only
    assert hub.tokens["operator"] not in cookie["value"]
    expect(page.locator("header")).to_contain_text("olga (operator)")
    expect(page.locator("[data-condition=alarming] b")).to_have_text("2")
    expect(page.locator("[data-condition=never_seen] b")).to_have_text("1")
    expect(page.locator("[data-condition=unhealthy] b")).to_have_text("1")
    conditions = page.locator("#table-devices td[data-col=condition]").all_inner_texts()
    assert conditions[0] == "unhealthy"  # worst first
    assert conditions.index("alarming") < conditions.index("ok") < conditions.index("never_seen")
    expect(page.locator("#live")).to_have_text("live", timeout=TIMEOUT_MS)  # the event stream is open
    screenshot(page, "fleet")
    page.goto(f"{hub.base}/ui/?condition=alarming")
    assert sorted(page.locator("#table-devices td[data-col=device_id]").all_inner_texts()) == [
        "pump-00",
        "pump-03",
    ]


def test_open_a_pump_with_an_alarm_and_acknowledge_it(page: Page, hub: Hub) -> None:
    login(page, hub, "operator")
    page.click("#table-devices a:text-is('pump-00')")
    expect(page).to_have_url(f"{hub.base}/ui/pumps/pump-00")
    expect(page.locator("h1")).to_contain_text("alarming")
    # the score chart and one chart per sensor, titled with the SI unit
    expect(page.locator(".uplot")).to_have_count(3)
    expect(page.locator(".u-title").nth(1)).to_have_text("suction_pressure [Pa]")
    row = page.locator("#table-alarms tbody tr").first
    expect(row.locator("td[data-col=alarm_id]")).to_have_text(hub.alarms[0])
    screenshot(page, "pump")
    page.evaluate("window.__not_reloaded = true")
    row.locator("button[data-action=acknowledge]").click()
    expect(page.locator("#table-alarms tbody tr").first.locator("td[data-col=acknowledged]")).to_contain_text(
        "olga"
    )
    assert page.evaluate("window.__not_reloaded") is True  # htmx swapped the part, no reload
    audit = hub.api("GET", f"/api/audit?subject={hub.alarms[0]}", "viewer").json()
    assert [(e["action"], e["actor"]) for e in audit] == [("alarm.acknowledged", "olga")]


def test_a_new_alarm_appears_on_the_open_console_without_reload_and_gets_a_verdict(
    page: Page, hub: Hub
) -> None:
    login(page, hub, "operator")
    page.goto(f"{hub.base}/ui/alarms")
    expect(page.locator("#live")).to_have_text("live", timeout=TIMEOUT_MS)
    page.evaluate("window.__not_reloaded = true")
    new_alarm = hub.alarm("pump-05", int(time.time() * 1000), peak=12.0)
    row = page.locator("#table-alarms tr", has=page.locator(f"td:text-is('{new_alarm}')"))
    expect(row).to_have_count(1, timeout=TIMEOUT_MS)
    assert page.evaluate("window.__not_reloaded") is True
    screenshot(page, "alarms")
    row.locator("button[data-action='false alarm']").click()
    expect(row.locator("td[data-col=verdict]")).to_have_text("false_alarm (olga)")
    verdicts = hub.api("GET", "/api/feedback?device_id=pump-05", "viewer").json()
    assert [(v["alarm_id"], v["verdict"], v["actor"]) for v in verdicts] == [
        (new_alarm, "false_alarm", "olga")
    ]


def test_pause_and_resume_a_rollout(page: Page, hub: Hub) -> None:
    login(page, hub, "operator")
    page.goto(f"{hub.base}/ui/rollouts")
    row = page.locator("#table-rollouts tbody tr").first
    expect(row.locator("td[data-col=status]")).to_have_text("running")
    expect(row.locator("button[data-action=abort]")).to_have_count(0)  # abort needs admin
    row.locator("button[data-action=pause]").click()
    expect(row.locator("td[data-col=status]")).to_have_text("paused")
    assert hub.api("GET", f"/api/rollouts/{hub.rollout_id}", "viewer").json()["status"] == "paused"
    row.locator("button[data-action=resume]").click()
    expect(row.locator("td[data-col=status]")).to_have_text("running")
    screenshot(page, "rollouts")
    history = hub.api("GET", f"/api/rollouts/{hub.rollout_id}", "viewer").json()["history"]
    assert "rollout.paused" in json_kinds(history)
    actors = {(e["action"], e["actor"]) for e in hub.api("GET", "/api/audit", "viewer").json()}
    assert {("rollout.paused", "olga"), ("rollout.resumed", "olga")} <= actors


def json_kinds(history: list[dict[str, object]]) -> list[str]:
    return [str(h.get("kind") or h.get("event") or h.get("action")) for h in history]


def test_a_viewer_sees_no_pause_button_and_a_forged_pause_is_refused(page: Page, hub: Hub) -> None:
    login(page, hub, "viewer")
    page.goto(f"{hub.base}/ui/rollouts")
    expect(page.locator("#table-rollouts tbody tr")).to_have_count(1)
    expect(page.locator("button[data-action]")).to_have_count(0)
    page.goto(f"{hub.base}/ui/alarms")
    expect(page.locator("button[data-action]")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    url = f"{hub.base}/ui/rollouts/{hub.rollout_id}/pause"
    forged = page.request.post(url, form={"csrf": csrf, "next": "/ui/rollouts"}, max_redirects=0)
    assert forged.status == 403
    assert "viewer" in forged.text()
    assert "operator" in forged.text()
    ack = page.request.post(f"{hub.base}/ui/alarms/{hub.alarms[1]}/ack", form={"csrf": csrf}, max_redirects=0)
    assert ack.status == 403
    assert hub.api("GET", f"/api/rollouts/{hub.rollout_id}", "viewer").json()["status"] == "running"
    assert hub.api("GET", f"/api/audit?subject={hub.alarms[1]}", "viewer").json() == []


def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(page: Page, hub: Hub) -> None:
    login(page, hub, "admin")
    page.goto(f"{hub.base}/ui/rollouts")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    url = f"{hub.base}/ui/rollouts/{hub.rollout_id}/pause"
    missing = page.request.post(url, form={"next": "/ui/rollouts"}, max_redirects=0)
    assert missing.status == 403
    assert "CSRF" in missing.text()
    wrong = page.request.post(url, form={"csrf": "x" * 43}, max_redirects=0)
    assert wrong.status == 403
    foreign = page.request.post(
        url, form={"csrf": str(csrf)}, headers={"Origin": "http://evil.example"}, max_redirects=0
    )
    assert foreign.status == 403
    assert "another site" in foreign.text()
    assert hub.api("GET", f"/api/rollouts/{hub.rollout_id}", "viewer").json()["status"] == "running"
    # the session cookie is no key to the API, and the session id is no token
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "pumpops_session")
    assert httpx.get(f"{hub.base}/api/fleet", cookies={"pumpops_session": cookie}).status_code == 401
    assert (
        httpx.get(f"{hub.base}/api/fleet", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    )
    # an open redirect is not followed: next= to another site lands on the dashboard
    page.goto(f"{hub.base}/ui/login?next=//evil.example/")
    assert page.locator("input[name=next]").get_attribute("value") == "/ui/"


def test_export_csv_of_the_fleet_and_the_alarms(page: Page, hub: Hub) -> None:
    login(page, hub, "viewer")
    with page.expect_download() as download:
        page.click("#table-devices a.csv")
    text = download.value.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert download.value.suggested_filename == "pumpops-devices.csv"
    assert {r["device"] for r in rows} == {f"pump-{i:02d}" for i in range(9)}  # every device, not one page
    assert rows[0]["condition"] == "unhealthy"
    assert next(r for r in rows if r["device"] == "pump-05")["outbox"] == "5"
    alarms = page.request.get(f"{hub.base}/ui/alarms?format=csv")
    assert alarms.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(alarms.text())))
    assert {r["alarm"] for r in lines} >= set(hub.alarms)
    assert next(r for r in lines if r["alarm"] == hub.alarms[0])["acknowledged"].startswith("olga")
    assert page.request.get(f"{hub.base}/ui/alarms?format=csv&table=nope").status == 404
    assert page.request.get(f"{hub.base}/ui/alarms?format=xml").status == 422


def test_models_drift_and_audit_pages(page: Page, hub: Hub) -> None:
    login(page, hub, "viewer")
    page.goto(f"{hub.base}/ui/models")
    expect(page.locator("#table-releases tbody tr")).to_have_count(2)
    screenshot(page, "models")
    page.goto(f"{hub.base}/ui/drift")
    expect(page.locator("#table-groups tbody tr")).to_have_count(2)
    screenshot(page, "drift")
    page.goto(f"{hub.base}/ui/audit")
    page.fill("input[name=actor]", "olga")
    page.click("button:text-is('filter')")
    actors = set(page.locator("#table-audit td[data-col=actor]").all_inner_texts())
    assert actors == {"olga"}
    page.click("button[name=verify]")
    expect(page.locator("#verify")).to_have_class("ok")
    screenshot(page, "audit")


def test_a_revoked_token_ends_its_session(page: Page, hub: Hub) -> None:
    created = cli(
        "-w", str(hub.workspace), "tokens", "create", "--name", "tess", "--role", "operator", "--json"
    )
    hub.tokens["tess"] = json.loads(created)["token"]
    login(page, hub, "tess")
    page.goto(f"{hub.base}/ui/alarms")
    expect(page.locator("h1")).to_have_text("Alarm console")
    cli("-w", str(hub.workspace), "tokens", "revoke", "--name", "tess")
    page.goto(f"{hub.base}/ui/alarms")
    expect(page).to_have_url(re.compile(r"/ui/login"))  # the next request is refused
    assert page.request.get(f"{hub.base}/ui/events").status == 401
