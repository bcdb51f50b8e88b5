"""The /docs page works in a real browser with no internet: Swagger UI's assets come from the server itself, and
"Try it out" on classify_text returns the model's answer."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.helpers import tiny_pipeline_models
from vbert.serving.launcher import running_server

pytestmark = pytest.mark.xdist_group("heavy")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
OPERATION = "operations-default-classify_text_v1_models__name__classify_text_post"


def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        message = "needs chromium and chromedriver (apt install chromium chromium-driver)"
        if os.environ.get("VBERT_REQUIRE_BROWSER"):  # CI installs them: there, a missing browser is a failure
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def test_try_it_out_classifies_a_text_offline(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    models = tiny_pipeline_models(tmp_path / "m", ["games", "science"])
    driver = browser()
    with running_server(["--model-dir", str(models / "ir/vbert")], tmp_path / "server.log") as server:
        try:
            driver.get(f"{server.url}/docs")
            wait = WebDriverWait(driver, 60)
            operation = wait.until(ready.element_to_be_clickable((By.ID, OPERATION)))
            operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
            wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"#{OPERATION} .try-out__btn"))).click()
            name = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, f"#{OPERATION} input")))
            name.send_keys("vbert")
            driver.find_element(By.CSS_SELECTOR, f"#{OPERATION} .execute").click()
            shown = wait.until(
                ready.visibility_of_element_located(
                    (By.CSS_SELECTOR, f"#{OPERATION} .live-responses-table .microlight")
                )
            )
            answer = json.loads(shown.text)
            scripts = [s.get_attribute("src") for s in driver.find_elements(By.TAG_NAME, "script")]
        finally:
            driver.quit()
    assert set(answer) == {"predictions", "model_version"}, answer
    assert answer["predictions"][0]["label"] in {"games", "science"}
    assert scripts and all(src.startswith(server.url) for src in scripts if src), scripts  # no CDN
