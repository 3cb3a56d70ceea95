"""The pages in a real headless Chromium (selenium): each loads and draws without a JavaScript
console error, a preset change and a slider redraw the plot with other data, a click on a point
opens the model view with its layers."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from _serve import (SMALL_MODELS, browser, console_errors, serve_store,  # noqa: F401
                    served, url)
from netfrontier.serve.browser import plot_version, wait_for

PAGES = {"/": "plot", "/whatif": "plot", "/model?name=resnet18": "roofline",
         "/compare": "plot", "/studies": None}


def load(driver, page_url: str, plot: str | None = "plot"):
    driver.get(page_url)
    if plot:
        wait_for(driver, lambda d: plot_version(d, plot) >= 1, f"the plot on {page_url}")
    return driver


def markers(driver, trace_names=("models", "on the frontier")) -> dict[str, float]:
    """model -> x of every model point now on the frontier plot (from Plotly's own data)."""
    data = driver.execute_script(
        "return document.getElementById('plot').data.map(t => [t.name, t.x, t.customdata]);")
    out = {}
    for name, xs, names in data:
        if name in trace_names:
            out.update(zip(names, xs))
    return out


def table_rows(driver) -> list[list[str]]:
    """The table's cells as shown (one script call, not one per cell)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#table tbody tr')].map("
        "tr => [...tr.cells].map(td => td.innerText));")


def test_every_page_loads_without_console_errors(url, browser):
    console_errors(browser)  # drain what earlier tests left
    for page, plot in PAGES.items():
        load(browser, url + page, plot)
        assert not browser.find_element(By.ID, "status").text, page
        assert console_errors(browser) == [], page
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#studies .study .plot svg"),
             "the study's plots")
    assert "No search study exists yet" in browser.find_element(By.ID, "search").text


def test_a_preset_change_redraws_the_frontier(url, browser):
    load(browser, url + "/?hw=img-series4-1core")
    before, version = markers(browser), plot_version(browser)
    assert set(before) == SMALL_MODELS
    Select(browser.find_element(By.ID, "hw")).select_by_value("tpu-v1")
    wait_for(browser, lambda d: plot_version(d) > version, "the redraw")
    after = markers(browser)
    assert set(after) == SMALL_MODELS and after != before
    assert "tpu-v1" in browser.execute_script(
        "return document.getElementById('plot').layout.title.text")
    assert "hw=tpu-v1" in browser.current_url  # the view is a link
    # the family filter: table and plot follow
    version = plot_version(browser)
    Select(browser.find_element(By.ID, "family")).select_by_value("mobilenet")
    wait_for(browser, lambda d: plot_version(d) > version, "the filtered redraw")
    assert {r[0] for r in table_rows(browser)} == {m for m in SMALL_MODELS if "mobilenet" in m}
    assert set(markers(browser)) == {m for m in SMALL_MODELS if "mobilenet" in m}
    assert console_errors(browser) == []


def test_the_table_sorts_by_a_column(url, browser):
    load(browser, url + "/")
    header = browser.find_element(By.CSS_SELECTOR, "#table th[data-key=latency_s]")
    header.click()
    wait_for(browser, lambda d: "▲" in d.find_element(
        By.CSS_SELECTOR, "#table th[data-key=latency_s]").text, "the sort")
    got = [r[0] for r in table_rows(browser)]
    x = markers(browser)
    assert got == sorted(x, key=x.get)
    browser.find_element(By.CSS_SELECTOR, "#table th[data-key=latency_s]").click()
    assert [r[0] for r in table_rows(browser)] == got[::-1]


def test_a_slider_recosts_the_zoo(url, browser):
    load(browser, url + "/whatif?hw=img-series4-1core")
    before, version = markers(browser), plot_version(browser)
    slider = browser.find_element(By.ID, "slider-dram_bytes_per_s")
    slider.send_keys(Keys.END)  # the most bandwidth the slider offers (16x)
    wait_for(browser, lambda d: plot_version(d) > version and "dram bandwidth" in d.find_element(
        By.ID, "notes").text, "the recost")
    after = markers(browser)
    assert set(after) == SMALL_MODELS
    assert all(after[m] <= before[m] for m in before) and after != before
    field = browser.find_element(By.ID, "field-dram_bytes_per_s")
    assert float(field.get_attribute("value")) == pytest.approx(192, rel=1e-3)  # 12 GB/s x 16
    assert "recosted 3 models" in browser.find_element(By.ID, "timing").text
    # the unchanged preset's staircase is drawn for reference
    names = browser.execute_script("return document.getElementById('plot').data.map(t => t.name)")
    assert "frontier on img-series4-1core (unchanged)" in names
    assert console_errors(browser) == []


def test_a_bad_field_value_is_one_message_and_the_page_goes_on(url, browser):
    load(browser, url + "/whatif?hw=img-series4-1core")
    version = plot_version(browser)
    field = browser.find_element(By.ID, "field-cores")
    field.clear()
    field.send_keys("0", Keys.TAB)
    wait_for(browser, lambda d: d.find_element(By.ID, "status").text, "the error message")
    status = browser.find_element(By.ID, "status")
    assert "'cores' = 0 is implausible" in status.text and "error" in status.get_attribute("class")
    assert plot_version(browser) == version
    field.clear()
    field.send_keys("2", Keys.TAB)
    wait_for(browser, lambda d: plot_version(d) > version, "the recost after the fix")
    assert not browser.find_element(By.ID, "status").text
    errors = console_errors(browser, allow=("status of 400",))  # the refused request itself
    assert errors == []


def test_clicking_a_point_opens_the_model_view(url, browser):
    load(browser, url + "/?hw=tpu-v1")
    point = browser.find_element(By.CSS_SELECTOR, "#plot .scatterlayer .trace .points path")
    ActionChains(browser).move_to_element(point).perform()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#plot .hoverlayer .hovertext"),
             "the hover label")
    label = browser.find_element(By.CSS_SELECTOR, "#plot .hoverlayer .hovertext").text
    name = next(m for m in SMALL_MODELS if m in label)
    assert "top-1" in label and "reference" in label and "-bound" in label and "ms" in label
    ActionChains(browser).move_to_element(point).click().perform()
    wait_for(browser, lambda d: "/model?" in d.current_url, "the model view")
    wait_for(browser, lambda d: plot_version(d, "roofline") >= 1 and table_rows(d),
             "the model's layers")
    assert Select(browser.find_element(By.ID, "name")).first_selected_option.text == name
    assert Select(browser.find_element(By.ID, "hw")).first_selected_option.get_attribute(
        "value") == "tpu-v1"
    assert len(table_rows(browser)) > 10
    assert console_errors(browser) == []


def test_model_view_marks_bounds_fusion_and_host_fallback(url, browser):
    load(browser, url + "/model?name=mobilenet_v3_small&hw=tpu-v1", "roofline")
    traces = browser.execute_script(
        "return document.getElementById('roofline').data.map(t => [t.name, t.x.length]);")
    counts = {n.split(" (")[0]: k for n, k in traces}
    assert counts["unsupported"] > 0 and "unknown" in counts and "compute" in counts
    assert [k for n, k in traces if n.startswith("roof:")] == [3]  # bandwidth slope, ridge, peak
    assert browser.find_elements(By.CSS_SELECTOR, "#table tr.bound-unsupported")
    assert browser.find_elements(By.CSS_SELECTOR, "#table tr.fused")
    wait_for(browser, lambda d: plot_version(d, "time") >= 1 and plot_version(d, "dram") >= 1,
             "the waterfalls")
    assert "fall back" in browser.find_element(By.ID, "notes").text
    assert console_errors(browser) == []


def test_compare_highlights_rank_changes(url, browser):
    load(browser, url + "/compare?a=img-series4-1core&b=tpu-v1")
    rows = table_rows(browser)
    assert {r[0] for r in rows} == SMALL_MODELS
    moved = browser.find_elements(By.CSS_SELECTOR, "#table tr.up, #table tr.down")
    changes = [r[7] for r in rows if r[7]]
    assert len(moved) == len(changes)
    version = plot_version(browser)
    Select(browser.find_element(By.ID, "objective")).select_by_value("energy")
    wait_for(browser, lambda d: plot_version(d) > version, "the redraw")
    assert "energy" in browser.execute_script(
        "return document.getElementById('plot').layout.title.text")
    assert console_errors(browser) == []
