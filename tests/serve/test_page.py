"""The web page in a real headless Chromium (Debian's ``chromium`` package): ask, see answer/SQL/table, abstention,
history. Screenshots go to ``test-artifacts/serve/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.serve import ServeSettings, create_app
from serve_helpers import TOKEN, StandInSQLTask, live_server, sql_responder

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "serve"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install -y chromium)")


@pytest.fixture()
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_ask_answer_abstain_and_history(browser, ehr_db):
    app = create_app(ServeSettings(tokens={"ward7": TOKEN}), FakeBackend(respond=sql_responder), {"sql": StandInSQLTask(ehr_db)})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with live_server(app) as server:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # Without a token the page asks for one instead of failing silently.
        page.goto(server.url + "/")
        page.wait_for_selector("#status:has-text('access token')")

        # The token arrives in the URL fragment (never sent to the server) and is removed from the address bar.
        page.close()
        errors.clear()  # the tokenless page's 401s were expected
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/#token=" + TOKEN)
        page.wait_for_selector("#task option[value='sql']", state="attached")
        assert "token" not in page.url

        page.fill("#question", "How many patients are in the database?")
        page.click("#ask")
        page.wait_for_selector("#verdict.answered")
        assert page.inner_text("#sql") == "SELECT COUNT(*) AS n FROM patients"
        assert page.inner_text("#result-table thead").strip() == "n"
        assert page.inner_text("#result-table tbody").strip() == "3"
        assert page.is_visible("#confidence-bar")
        page.screenshot(path=str(ARTIFACTS / "answered.png"), full_page=True)

        page.fill("#question", "<img src=x onerror=alert(1)> What is her prognosis?")
        page.click("#ask")
        page.wait_for_selector("#verdict.abstained")
        verdict = page.inner_text("#verdict")
        assert "Abstained" in verdict and "model abstained" in verdict
        assert page.is_hidden("#sql-block") and page.is_hidden("#table-block")
        items = page.locator("#history li")
        assert items.count() == 2
        assert "<img src=x" in items.nth(0).inner_text()  # shown as text, not rendered as HTML
        assert page.locator("#history img").count() == 0
        page.screenshot(path=str(ARTIFACTS / "abstained.png"), full_page=True)

        items.nth(1).click()  # history brings the earlier answer back
        page.wait_for_selector("#verdict.answered")
        assert page.input_value("#question") == "How many patients are in the database?"
        assert errors == []


def test_task_selector_opens_on_the_served_default_not_the_alphabetical_first(browser, ehr_db):
    """With calc and sql served (calc sorts first), a first SQL question typed in the page must go to sql."""
    tasks = {"calc": StandInSQLTask(ehr_db), "sql": StandInSQLTask(ehr_db)}
    app = create_app(ServeSettings(tokens={"ward7": TOKEN}, default_task="sql"), FakeBackend(respond=sql_responder), tasks)
    with live_server(app) as server:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(server.url + "/#token=" + TOKEN)
        page.wait_for_selector("#task option[value='calc']", state="attached")
        assert page.locator("#task option").all_inner_texts()[0].startswith("calc")
        page.wait_for_function("document.getElementById('task').value === 'sql'", timeout=5000)
        page.close()
