"""The web console in a real browser: sign-in, browsing, the manifest and referrers views,
expiry, robots, tag deletion, and what a user without rights sees."""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest
import requests

from tests.browser.conftest import (
    MANY_TAGS,
    PASSWORD,
    ROOT,
    SBOM_TYPE,
    SCREENSHOTS,
    Content,
    sign_in,
)

pytestmark = pytest.mark.integration
expect = pytest.importorskip("playwright.sync_api").expect


def session_storage(page: Any) -> dict[str, str]:
    return page.evaluate("() => Object.fromEntries(Object.entries(sessionStorage))")


def test_sign_in_and_sign_out(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    stored = session_storage(page)
    assert list(stored) == ["stratus.console.session"]
    assert PASSWORD not in stored["stratus.console.session"]  # tokens only, never the password
    assert page.evaluate("() => localStorage.length") == 0
    page.wait_for_selector("tr[data-repo='acme/app']")
    assert page.is_visible("#nav-admin")
    page.click("#signout")
    page.wait_for_selector("#signin-open")
    assert session_storage(page) == {}
    assert page.is_hidden("#nav-admin")


def test_wrong_password_is_refused_in_the_dialog(page: Any, content: Content) -> None:
    page.goto(f"{content.registry.url}/")
    page.click("#signin-open")
    page.fill("#signin-user", "alice")
    page.fill("#signin-password", "not-her-password")
    page.click("#signin-submit")
    page.wait_for_selector("#signin-error:text('Wrong username or password')")
    assert session_storage(page) == {}


def test_anonymous_visitor_browses_public_repositories(page: Any, content: Content) -> None:
    page.goto(f"{content.registry.url}/")
    page.wait_for_selector("tr[data-repo='acme/public']")
    assert page.locator("tr[data-repo]").count() == 1  # private ones are not listed
    row = page.locator("tr[data-repo='acme/public']")
    row.locator(".badge.public").wait_for()
    page.goto(f"{content.registry.url}/#/r/acme/public")
    page.wait_for_selector("tr[data-tag='stable']")
    assert page.locator("[data-action]").count() == 0
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.wait_for_selector("[data-state='401']")


def test_repository_list_filters_as_you_type(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.wait_for_selector("tr[data-repo='acme/many']")
    assert page.locator("tr[data-repo]").count() == 3
    page.fill("#repo-filter", "man")
    page.wait_for_function("document.querySelectorAll('tr[data-repo]').length === 1")
    expect(page.locator("tr[data-repo='acme/many'] td.num")).to_have_text(str(MANY_TAGS))
    page.fill("#repo-filter", "nothing-like-this")
    page.wait_for_selector("[data-state='empty']")


def test_multi_arch_image_with_an_sbom_referrer(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    row = page.locator("tr[data-tag='v1']")
    row.wait_for()
    assert row.locator(".platforms").inner_text().split() == ["linux/amd64", "linux/arm64"]
    assert re.search(r"\d+(\.\d)? KiB", row.inner_text())
    assert row.locator("[data-copy]").get_attribute("data-copy") == content.index_digest
    page.wait_for_selector("#pull-command:text('docker pull')")
    shot_for_readme(page)
    row.locator(f"a[href*='{content.index_digest}']").first.click()
    page.wait_for_selector("h1:text('acme/app:v1')")
    page.wait_for_selector("th:text('linux/arm64')")
    sbom = page.locator(f"#referrers li[data-referrer='{content.sbom_digest}']")
    sbom.wait_for()
    assert SBOM_TYPE in sbom.inner_text()
    sbom.locator("a").click()
    page.locator("dd", has_text=SBOM_TYPE).first.wait_for()
    assert content.index_digest in page.locator("#raw-json").text_content()
    page.goto(f"{content.registry.url}/#/m/acme/app@{content.amd64_digest}")
    page.wait_for_selector("#config-facts")
    facts = page.locator("#config-facts").inner_text()
    for shown in ("linux/amd64", "/app/server", "--port 8080", "2026-01-02 03:04:05 UTC"):
        assert shown in facts, facts
    assert page.locator("#config-env").inner_text().split() == ["PATH=/usr/bin", "MODE=production"]
    page.wait_for_selector("td:text('https://example.com/app')")  # a label
    page.wait_for_selector("code:text('COPY app /app')")  # history
    layers = page.locator("table:has(caption:text('Layers')) tbody tr")
    assert layers.count() == 1 and re.search(r"\d\.\d KiB", layers.inner_text())


def shot_for_readme(page: Any) -> None:
    """The repository page, as the README shows it (docs/console.png); refreshed into docs/
    only when asked (STRATUS_UPDATE_SCREENSHOT=1), so test runs leave the tree alone."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "repository-page.png"
    page.evaluate("() => document.getElementById('toast').classList.remove('shown')")
    page.wait_for_timeout(300)  # the toast's fade
    page.screenshot(path=str(shot))
    if os.environ.get("STRATUS_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "console.png")


def test_expiry_countdown_for_a_quay_expires_after_tag(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    countdown = page.locator("tr[data-tag='ci-1'] .countdown")
    countdown.wait_for()
    first = countdown.inner_text()
    assert re.match(r"in (1d 2[0-3]h \d{1,2}m|2d 0h 0m)", first), first
    assert page.locator("tr[data-tag='v1'] .expires").inner_text() == "never"


def test_expiry_set_and_cleared_from_the_console(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.click("tr[data-tag='latest'] [data-action='expiry']")
    page.fill("#expiry-at", "2099-01-02T03:04")
    page.click("dialog[open] button[type=submit]")
    page.wait_for_selector("tr[data-tag='latest'] .countdown")
    page.click("tr[data-tag='latest'] [data-action='expiry']")
    page.click("#expiry-clear")
    page.locator("tr[data-tag='latest'] .expires", has_text="never").wait_for()


def test_robot_created_with_its_token_shown_once(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.click("#nav-admin")
    section = page.locator("section[data-namespace='acme']")
    section.locator("#robot-acme").fill("deployer")
    section.locator("button:text('Create robot')").click()
    token = page.locator("#robot-token-value").inner_text()
    assert len(token) > 30
    answer = requests.get(
        f"{content.registry.url}/v2/auth", auth=("acme+deployer", token), timeout=10
    )
    assert answer.status_code == 200  # the token shown is the robot's password
    page.wait_for_selector("tr[data-robot='acme+deployer']")
    page.click("#token-done")
    page.reload()
    page.wait_for_selector("tr[data-robot='acme+deployer']")
    assert token not in page.content()  # shown once: never again
    assert token not in str(session_storage(page))
    page.click("tr[data-robot='acme+deployer'] button")
    page.click("#confirm-yes")
    page.wait_for_selector("tr[data-robot='acme+deployer']", state="detached")


def test_tag_deleted(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.click("tr[data-tag='to-delete'] [data-action='delete']")
    page.click("#confirm-yes")
    page.wait_for_selector("tr[data-tag='to-delete']", state="detached")
    answer = content.alice.management("GET", "repository/acme/app/tag/?limit=100")
    assert "to-delete" not in {t["name"] for t in answer.json()["tags"]}


def test_tags_are_paged(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/many")
    page.wait_for_selector("tr[data-tag='t0000']")
    assert page.locator("tr[data-tag]").count() == 50
    page.click("#tags-next")
    page.wait_for_selector(f"tr[data-tag='t{MANY_TAGS - 1:04d}']")
    assert page.locator("tr[data-tag]").count() == MANY_TAGS - 50
    assert page.is_disabled("#tags-next")
    page.click("text=Previous")
    page.wait_for_selector("tr[data-tag='t0000']")


def test_user_without_rights_sees_no_admin_actions_and_gets_403(
    page: Any, content: Content
) -> None:
    sign_in(page, content, "bob")
    assert page.is_hidden("#nav-admin")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.wait_for_selector("tr[data-tag='v1']")
    assert page.locator("[data-action]").count() == 0
    assert page.locator("#repo-admin").count() == 0
    page.goto(f"{content.registry.url}/#/r/acme/many")
    page.wait_for_selector("[data-state='403']")
    # The server decides, whatever a page shows: bob's own token is refused.
    token = content.bob.token()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{content.registry.url}/api/v1/repository/acme/app"
    assert requests.delete(f"{url}/tag/v1", headers=headers, timeout=10).status_code == 403
    assert (
        requests.put(
            f"{url}/tag/v1", json={"expiration": 4102444800}, headers=headers, timeout=10
        ).status_code
        == 403
    )
    assert requests.get(f"{url}/permissions/", headers=headers, timeout=10).status_code == 403
    robots = f"{content.registry.url}/api/v1/organization/acme/robots/evil"
    assert requests.put(robots, headers=headers, timeout=10).status_code == 403


def test_unknown_repository_shows_not_found(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/nothing-here")
    page.wait_for_selector("[data-state='404']")


def test_dark_scheme_and_keyboard_navigation(browser: Any, content: Content) -> None:
    context = browser.new_context(color_scheme="dark", viewport={"width": 420, "height": 800})
    try:
        tab = context.new_page()
        tab.goto(f"{content.registry.url}/")
        tab.wait_for_selector("tr[data-repo='acme/public']")
        background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 20, 25)", background
        tab.keyboard.press("Tab")
        assert tab.evaluate("() => document.activeElement.className") == "skip"
        tab.keyboard.press("Enter")
        assert tab.evaluate("() => document.activeElement.id") == "main"
        tab.focus("tr[data-repo='acme/public'] a")
        tab.keyboard.press("Enter")
        tab.wait_for_selector("tr[data-tag='stable']")
        tab.focus("#pull-docker")
        tab.keyboard.press("ArrowRight")
        assert tab.evaluate("() => document.activeElement.id") == "pull-podman"
        assert "podman pull --tls-verify=false" in tab.inner_text("#pull-command")
        tab.screenshot(path=str(SCREENSHOTS / "dark-narrow.png"), full_page=True)
    finally:
        context.close()


def test_superuser_creates_a_user_and_an_organization(page: Any, content: Content) -> None:
    from tests.integration.conftest import ADMIN, ADMIN_PASSWORD

    sign_in(page, content, ADMIN, ADMIN_PASSWORD)
    page.click("#nav-admin")
    page.fill("#user-name", "carol")
    page.fill("#user-password", "carol-password-1")
    page.click("#users button[type=submit]")
    page.wait_for_selector("li[data-user='carol']")
    page.fill("#org-name", "beta")
    page.fill("#org-owner", "carol")
    page.click("#orgs button[type=submit]")
    page.wait_for_selector("li[data-org='beta']")
    page.wait_for_selector("section[data-namespace='beta']")  # now administered (superuser)
    members = content.admin.management("GET", "organization/beta/permissions").json()
    assert members["permissions"] == {"carol": "admin"}


def test_revoked_session_asks_to_sign_in_again(page: Any, content: Content) -> None:
    sign_in(page, content, "alice")
    page.evaluate(
        """() => {
            const key = "stratus.console.session";
            const held = JSON.parse(sessionStorage.getItem(key));
            sessionStorage.setItem(key, JSON.stringify(
                {...held, refresh: "revoked", access: "expired", expires: 0}));
        }"""
    )
    page.reload()
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.locator("[data-state='401']", has_text="Your session ended").wait_for()
    assert session_storage(page) == {}
    assert page.is_visible("#signin-open")
