"""What an outsider would try on the dashboard: unknown ids, a rule broken, replayed cookies, injected HTML.

Each refusal is a page with its status and a reason a person can act on (never
a traceback), and the hub keeps serving.
"""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Page, expect

from .conftest import Hub, login


def test_unknown_pump_and_model_are_404_pages_with_the_reason(page: Page, hub: Hub) -> None:
    login(page, hub, "viewer")
    response = page.goto(f"{hub.base}/ui/pumps/pump-99")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("pump-99")
    assert "Traceback" not in page.content()
    response = page.goto(f"{hub.base}/ui/models/nope/3")
    assert response is not None
    assert response.status == 404
    assert page.request.get(f"{hub.base}/ui/?offset=-1").status == 422
    forged = page.request.get(f"{hub.base}/ui/alarms?after=1;DROP TABLE")
    assert forged.status == 400
    assert "next" in forged.text()  # the reason: give the previous page's 'next'


def test_actions_on_unknown_ids_and_broken_rules_are_refused_with_the_reason(page: Page, hub: Hub) -> None:
    login(page, hub, "admin")
    page.goto(f"{hub.base}/ui/alarms")
    csrf = str(page.locator("input[name=csrf]").first.get_attribute("value"))

    def post(path: str) -> tuple[int, str]:
        response = page.request.post(f"{hub.base}/ui{path}", form={"csrf": csrf}, max_redirects=0)
        return response.status, response.text()

    assert post("/alarms/pump-01:123/ack")[0] == 404  # never raised
    assert post(f"/alarms/{hub.alarms[1]}/maybe")[0] == 404  # no such verdict
    assert post("/rollouts/r-nope/pause")[0] == 404
    assert post(f"/rollouts/{hub.rollout_id}/explode")[0] == 404
    assert post("/alarms/no-colon/ack")[0] == 422
    assert post(f"/rollouts/{hub.rollout_id}/pause")[0] == 303
    status, text = post(f"/rollouts/{hub.rollout_id}/pause")  # a paused rollout cannot be paused
    assert status == 400
    assert "paused" in text
    assert "Traceback" not in text
    assert post(f"/rollouts/{hub.rollout_id}/resume")[0] == 303
    assert hub.api("GET", f"/api/rollouts/{hub.rollout_id}", "viewer").json()["status"] == "running"


def test_a_refused_action_shows_its_reason_in_the_page(page: Page, hub: Hub) -> None:
    page.route("**/ui/events", lambda route: route.abort())  # no live update: the page goes stale
    login(page, hub, "operator")
    page.goto(f"{hub.base}/ui/rollouts")
    expect(page.locator("button[data-action=pause]")).to_have_count(1)
    hub.api("POST", f"/api/rollouts/{hub.rollout_id}/pause", "operator", {"reason": "someone else"})
    page.click("button[data-action=pause]")  # the stale page still shows the button: the service refuses
    expect(page.get_by_role("alert")).to_contain_text("paused")
    hub.api("POST", f"/api/rollouts/{hub.rollout_id}/resume", "operator", {"reason": "back"})


def test_the_rollouts_page_follows_a_pause_made_elsewhere_without_reload(page: Page, hub: Hub) -> None:
    login(page, hub, "viewer")
    page.goto(f"{hub.base}/ui/rollouts")
    expect(page.locator("#live")).to_have_text("live", timeout=10_000)
    page.evaluate("window.__not_reloaded = true")
    status = page.locator("#table-rollouts tbody tr").first.locator("td[data-col=status]")
    expect(status).to_have_text("running")
    hub.api("POST", f"/api/rollouts/{hub.rollout_id}/pause", "operator", {"reason": "from the CLI"})
    expect(status).to_have_text("paused", timeout=10_000)
    hub.api("POST", f"/api/rollouts/{hub.rollout_id}/resume", "operator", {"reason": "back"})
    expect(status).to_have_text("running", timeout=10_000)
    assert page.evaluate("window.__not_reloaded") is True


def test_a_cookie_replayed_after_logout_opens_nothing(page: Page, hub: Hub) -> None:
    login(page, hub, "operator")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "pumpops_session")
    page.click("header button:text-is('log out')")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    replay = httpx.get(f"{hub.base}/ui/alarms", cookies={"pumpops_session": cookie}, follow_redirects=False)
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/ui/login")
    assert httpx.get(f"{hub.base}/ui/events", cookies={"pumpops_session": cookie}).status_code == 401
    guessed = httpx.get(f"{hub.base}/ui/", cookies={"pumpops_session": "A" * 43}, follow_redirects=False)
    assert guessed.status_code == 303
    # a login posted from another site's page (login CSRF) opens no session
    foreign = httpx.post(f"{hub.base}/ui/login", data={"token": hub.tokens["viewer"]},
                         headers={"Origin": "http://evil.example"}, follow_redirects=False)  # fmt: skip
    assert foreign.status_code == 403
    assert "pumpops_session" not in foreign.cookies


def test_html_in_an_agents_message_is_shown_as_text_not_run(page: Page, hub: Hub) -> None:
    started_ms = int(time.time() * 1000) - 5_000
    payload = "<img src=x onerror=\"document.body.dataset.owned='yes'\">"
    topic, message = hub.message(
        "pump-04",
        "alarm",
        {"event": "raised", "alarm_id": f"pump-04:{started_ms}", "started_ms": started_ms, "ended_ms": None,
         "peak_score": 4.0, "threshold": 3.0, "model_name": payload, "model_version": 1},
        started_ms,
    )  # fmt: skip
    formula = hub.message(
        "pump-04",
        "alarm",
        {"event": "raised", "alarm_id": f"pump-04:{started_ms + 1}", "started_ms": started_ms + 1,
         "ended_ms": None, "peak_score": 4.0, "threshold": 3.0, "model_name": "=HYPERLINK(\"http://x\")",
         "model_version": 1},
        started_ms + 1,
    )  # fmt: skip
    hub.ingest([(topic, message), formula])
    login(page, hub, "viewer")
    page.goto(f"{hub.base}/ui/alarms?device_id=pump-04")
    expect(page.locator("#table-alarms td[data-col=model]", has_text="<img src=x")).to_have_count(1)
    assert page.evaluate("document.body.dataset.owned") is None
    assert page.locator("#table-alarms img").count() == 0
    # a cell a spreadsheet would run as a formula is quoted in the CSV
    csv_text = page.request.get(f"{hub.base}/ui/alarms?device_id=pump-04&format=csv").text()
    assert "<img src=x" in csv_text
    assert "'=HYPERLINK" in csv_text
    assert ",=HYPERLINK" not in csv_text
