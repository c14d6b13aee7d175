"""An operator signs in with their access token and the dashboard draws its
charts from the figures endpoint."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.browser import screenshot


def test_operator_signs_in_and_the_dashboard_renders_its_charts_with_data(page, live):
    figures_token = live.web.operator_token()
    page.goto(live.url("/dashboard"))
    page.wait_for_url("**/dashboard/sign-in")
    screenshot(page, "dashboard-sign-in")
    page.fill("#token", figures_token)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "true")  # "failed: …" if the figures did not load

    charts = {c["id"]: c["total"] for c in page.evaluate("window.vaxhubCharts")}
    assert set(charts) == {"chart-doses", "chart-dose-number", "chart-provinces", "chart-registries", "chart-sites", "chart-backlog"}
    assert charts["chart-doses"] == 7  # every completed dose, day by day
    assert charts["chart-registries"] == 4  # 3 verified + 1 mismatch
    # Each canvas really has something drawn on it.
    painted = page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n; })"""
    )
    assert len(painted) == 6 and all(n > 500 for n in painted), painted
    expect(page.locator("#total-doses")).to_have_text("7")
    expect(page.locator("#mismatch-rate")).to_have_text("25,0 %")
    expect(page.locator("#coverage-table tbody tr")).to_have_count(3)
    screenshot(page, "dashboard-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_timeout(300)  # charts resize with the page
    screenshot(page, "dashboard")

    # The filter narrows every figure.
    page.select_option("#province", "01")
    page.click(".filters button")
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "true")
    expect(page.locator("#total-doses")).to_have_text("3")
