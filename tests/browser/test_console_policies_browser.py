"""The console's policy views: an immutability policy added on the repository page makes
the tag delete refused, then the policy is deleted again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Content, sign_in
from tests.images import OCI_MANIFEST, make_image, random_layer

pytestmark = pytest.mark.integration
expect = pytest.importorskip("playwright.sync_api").expect


def test_immutability_policy_added_in_the_console_refuses_a_tag_delete(
    page: Any, content: Content
) -> None:
    image = make_image([random_layer(300, "locked")], architecture="amd64")
    content.alice.push(
        "acme/app", [*image.layers, image.config], [("locked", image.manifest, OCI_MANIFEST)]
    )
    sign_in(page, content, "alice")
    page.goto(f"{content.registry.url}/#/r/acme/app")
    page.wait_for_selector("tr[data-tag='locked']")
    page.fill("#immutable-new-acme-app-pattern", "^locked$")
    page.click("#immutable-new-acme-app button[type=submit]")
    policy = page.locator("#immutable-acme-app tr[data-policy]")
    expect(policy).to_contain_text("^locked$")
    page.locator("#usage-acme-app li").first.wait_for()  # the storage used is shown

    page.click("tr[data-tag='locked'] [data-action='delete']")
    page.click("#confirm-yes")
    expect(page.locator("#toast")).to_contain_text("Not allowed: tag locked is immutable")
    assert page.locator("tr[data-tag='locked']").count() == 1
    answer = content.alice.management("GET", "repository/acme/app/tag/?limit=100")
    assert "locked" in {t["name"] for t in answer.json()["tags"]}

    policy.locator("[data-action='delete-policy']").click()
    page.click("#confirm-yes")
    policy.wait_for(state="detached")
    listed = content.alice.management("GET", "repository/acme/app/immutabilitypolicy/")
    assert listed.json()["policies"] == []
    assert content.alice.management("DELETE", "repository/acme/app/tag/locked").status_code < 300
