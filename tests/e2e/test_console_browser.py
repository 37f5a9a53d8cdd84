"""The web console (GET /console) in a real browser: Debian's headless Chromium, driven by
Selenium through Debian's chromedriver (the two come as one version from the distribution, so
nothing is downloaded at run time; `make test` installs them when missing).

A person's way through the page: submit from the form, watch the job turn SUCCESS and its
thumbnail load, submit another kind as raw JSON, cancel a job that never ends, and a screenshot
of it all in out/console.png. Then the page's network: every request it makes goes to the
gateway or to the bucket (Chrome's performance log), and its Content-Security-Policy stops a
request to anywhere else.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from local.aws.template import REPO
from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.network

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = REPO / "out" / "console.png"
JOB_SECONDS = 30  # the fake upstream answers PENDING twice, then SUCCESS: a few seconds


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromedriver are needed: make test installs them (Debian)")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    # Every network event of the page, read back by the network test.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit driver and browser: Selenium Manager is never asked to find (or fetch) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(
    browser: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = JOB_SECONDS
) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def open_console(browser: WebDriver, gateway: Gateway, caller: str) -> None:
    """The console, as the local caller `caller` (set through its X-Local-Caller field)."""
    browser.get(f"{gateway.url}/console")
    field = wait_for(browser, lambda b: b.find_element(By.ID, "local-caller"), 15)
    wait_for(browser, lambda b: field.is_displayed(), 15)
    field.clear()
    field.send_keys(caller)
    browser.find_element(By.CSS_SELECTOR, "#caller-form button").click()
    wait_for(browser, lambda b: caller in b.find_element(By.ID, "who").text, 15)


def job_item(browser: WebDriver, job_id: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'li.job[data-job="{job_id}"]')


def submitted_job(browser: WebDriver) -> str:
    """The id of the job the form just submitted (from its answer)."""
    result = browser.find_element(By.ID, "submit-result")
    job_id = wait_for(browser, lambda b: result.get_attribute("data-job"), 15)
    assert "Accepted" in result.text
    return str(job_id)


def status_of(browser: WebDriver, job_id: str) -> str | None:
    """The job's status as the page shows it (read in one go: the page replaces a job's item
    when its status changes)."""
    status: str | None = browser.execute_script(
        "const item = document.querySelector(`li.job[data-job='${arguments[0]}']`);"
        "return item ? item.dataset.status : null;",
        job_id,
    )
    return status


def loaded_widths(browser: WebDriver, job_id: str) -> list[int]:
    """The natural width of each thumbnail of a job once all have loaded, else []."""
    widths: list[int] = browser.execute_script(
        "const item = document.querySelector(`li.job[data-job='${arguments[0]}']`);"
        "const images = item ? [...item.querySelectorAll('.thumbs img')] : [];"
        "return images.length && images.every(i => i.complete && i.naturalWidth > 0)"
        " ? images.map(i => i.naturalWidth) : [];",
        job_id,
    )
    return widths


def fill(browser: WebDriver, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_a_person_submits_follows_cancels_and_sees_their_jobs(
    browser: WebDriver, gateway: Gateway
) -> None:
    # Given the console open as a caller of its own (no jobs yet)
    caller = f"console-{uuid.uuid4().hex[:8]}"
    open_console(browser, gateway, caller)
    wait_for(browser, lambda b: "No jobs yet" in b.find_element(By.ID, "jobs-state").text, 15)

    # When a text2image request is submitted from the form's fields
    prompt = "a lighthouse at dusk, painted by the console test"
    Select(browser.find_element(By.ID, "kind")).select_by_value("text2image")
    fill(browser, "model_id", f"console-{uuid.uuid4().hex[:6]}")
    fill(browser, "prompt", prompt)
    fill(browser, "seed", "7")
    fill(browser, "width", "384")
    browser.find_element(By.ID, "submit-button").click()
    text_job = submitted_job(browser)
    # Then the job shows, PENDING at first (followed live), then SUCCESS with its thumbnail
    # loaded from the bucket: the 384-pixel-wide picture of that request
    wait_for(browser, lambda b: status_of(b, text_job) is not None, 15)
    wait_for(browser, lambda b: status_of(b, text_job) == "SUCCESS")
    assert wait_for(browser, lambda b: loaded_widths(b, text_job), 15) == [384]
    item = job_item(browser, text_job)
    assert prompt in item.text
    assert "text2image" in item.text
    assert "tokens: prompt" in item.text

    # When an image2image request is written as raw JSON and submitted
    Select(browser.find_element(By.ID, "kind")).select_by_value("image2image")
    browser.find_element(By.ID, "raw-mode").click()
    raw = {
        "model_id": f"console-{uuid.uuid4().hex[:6]}",
        "prompt": "the same lighthouse as an oil painting",
        "init_image": "https://example.com/lighthouse.png",
        "strength": 0.6,
        "seed": 11,
    }
    fill(browser, "raw", json.dumps(raw))
    browser.find_element(By.ID, "submit-button").click()
    image_job = submitted_job(browser)
    # Then it succeeds too, with its own thumbnail, above the first (newest first)
    wait_for(browser, lambda b: status_of(b, image_job) == "SUCCESS")
    assert wait_for(browser, lambda b: loaded_widths(b, image_job), 15) == [512]
    order = [e.get_attribute("data-job") for e in browser.find_elements(By.CSS_SELECTOR, "li.job")]
    assert order == [image_job, text_job]
    # And its request and answer are there as JSON
    details = job_item(browser, image_job).find_element(By.TAG_NAME, "details")
    details.find_element(By.TAG_NAME, "summary").click()
    request_shown, answer_shown = details.find_elements(By.TAG_NAME, "pre")
    assert json.loads(request_shown.text) == raw
    assert json.loads(answer_shown.text)["id"] == image_job
    details.find_element(By.TAG_NAME, "summary").click()  # closed again

    # When a job that never ends (the fake upstream's fake-never) is submitted and cancelled
    browser.find_element(By.ID, "raw-mode").click()  # back to the fields
    Select(browser.find_element(By.ID, "kind")).select_by_value("text2image")
    fill(browser, "model_id", "fake-never")
    fill(browser, "prompt", "a job that never ends")
    browser.find_element(By.ID, "submit-button").click()
    never = submitted_job(browser)
    wait_for(browser, lambda b: status_of(b, never) == "PENDING", 15)
    # (a shape the gateway never saw finish: the page says it has no estimate for it)
    assert "no estimate yet" in job_item(browser, never).text
    job_item(browser, never).find_element(By.XPATH, ".//button[text()='Cancel']").click()
    # Then it ends FAILURE, CANCELLED, on the page and for the API
    wait_for(browser, lambda b: status_of(b, never) == "FAILURE", 15)
    assert "CANCELLED" in job_item(browser, never).text
    view = gateway.wait(never, caller=caller)
    assert (view["status"], view["error_code"]) == ("FAILURE", "CANCELLED")

    # And the webhook secret shows only when asked, and is the caller's own
    secret = browser.find_element(By.ID, "secret")
    assert not secret.is_displayed()
    browser.find_element(By.ID, "secret-toggle").click()
    wait_for(browser, lambda b: secret.get_attribute("value"), 15)
    own = gateway.session.get(
        f"{gateway.url}/v1/webhooks/secret", headers={"X-Local-Caller": caller}, timeout=30
    )
    assert secret.get_attribute("value") == own.json()["secret"]
    browser.find_element(By.ID, "secret-toggle").click()
    assert not secret.is_displayed()
    assert "images asked of the upstream" in browser.find_element(By.ID, "usage").text

    # And a screenshot of the whole page shows the console with both kinds' jobs and their
    # pictures (out/console.png)
    browser.execute_script("window.scrollTo(0, 0)")
    width, height = browser.execute_script(
        "const page = document.documentElement; return [page.scrollWidth, page.scrollHeight];"
    )
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert SCREENSHOT.stat().st_size > 10_000


def page_requests(browser: WebDriver) -> list[str]:
    """Every URL the page asked for since the log was last read (Chrome's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_the_page_asks_nothing_of_anyone_but_the_gateway_and_the_bucket(
    browser: WebDriver, gateway: Gateway
) -> None:
    # Given a caller with a finished job, and the browser's log read up to now
    caller = f"console-net-{uuid.uuid4().hex[:8]}"
    answer = gateway.submit(
        {"model_id": "fake-instant", "prompt": "a red door", "seed": 3}, caller=caller
    )
    assert answer.status_code in (200, 202), answer.text
    job_id = answer.json()["id"]
    gateway.wait(job_id, caller=caller)
    page_requests(browser)
    # When the console is opened and shows the job with its picture
    open_console(browser, gateway, caller)
    wait_for(browser, lambda b: status_of(b, job_id) == "SUCCESS", 15)
    wait_for(browser, lambda b: loaded_widths(b, job_id), 15)
    # And the page tries to reach another host (the fake upstream, another local origin)
    blocked = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0] + '/__fake__/stats').then(() => done('sent'), e => done(String(e)));",
        gateway.upstream_url,
    )
    time.sleep(0.2)  # the log's last events
    requests_made = page_requests(browser)
    # Then every request went to the gateway (the page, its API calls) or the bucket (the
    # presigned picture), never elsewhere: the attempt was refused before it left the browser
    gateway_origin, bucket = origin(gateway.url), origin(gateway.moto_url)
    origins = {origin(url) for url in requests_made}
    assert origins == {gateway_origin, bucket}, requests_made
    assert any(url.startswith(f"{gateway_origin}/v1/jobs") for url in requests_made)
    assert blocked != "sent"
    # And the page's policy says so to the browser: its own origin, the bucket, nothing else
    policy = gateway.session.get(f"{gateway.url}/console", timeout=30).headers[
        "Content-Security-Policy"
    ]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == bucket


# API Gateway's own answers to a call without credentials, played in the page by wrapping its
# fetch (the local stack answers such calls as its local caller): the keyed API's 401 to a call
# without an API-Key header, the IAM API's 403 to an unsigned one.
DEPLOYED_API = """
const answer = %s;
const realFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  const headers = new Headers((init && init.headers) || {});
  if (headers.has("API-Key")) return realFetch(input, init);
  return Promise.resolve(new Response(JSON.stringify({message: answer.message}),
    {status: answer.status, headers: {"Content-Type": "application/json"}}));
};
"""


@pytest.fixture
def as_deployed(browser: WebDriver) -> Iterator[Callable[[int, str], None]]:
    """Makes the next pages answer calls without a key as a deployed API would."""
    added: list[str] = []

    def play(status: int, message: str) -> None:
        script = DEPLOYED_API % json.dumps({"status": status, "message": message})
        found = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
        added.append(found["identifier"])

    yield play
    for identifier in added:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier}
        )


def test_on_the_keyed_api_the_page_asks_for_the_key_and_keeps_it_for_the_tab_only(
    browser: WebDriver, gateway: Gateway, as_deployed: Callable[[int, str], None]
) -> None:
    # Given the console on an API that refuses calls without a key (401), and a valid key
    as_deployed(401, "Unauthorized")
    key = gateway.outputs()["LocalApiKey"]
    browser.get(f"{gateway.url}/console")
    # When it opens / Then it asks for the key, and shows no local-caller field
    field = wait_for(browser, lambda b: b.find_element(By.ID, "api-key"), 15)
    wait_for(browser, lambda b: field.is_displayed(), 15)
    assert not browser.find_element(By.ID, "local-panel").is_displayed()
    # When a wrong key is given / Then it is refused and not kept
    field.send_keys("igw_not-a-key")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda b: "refused" in b.find_element(By.ID, "message").text, 15)
    # When the key is given and a job submitted
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda b: "with the key ending" in b.find_element(By.ID, "who").text, 15)
    fill(browser, "model_id", "fake-instant")
    fill(browser, "prompt", f"a keyed job {uuid.uuid4().hex[:6]}")
    browser.find_element(By.ID, "submit-button").click()
    job_id = submitted_job(browser)
    wait_for(browser, lambda b: status_of(b, job_id) == "SUCCESS", 15)
    # Then the job is the key owner's (another caller cannot see it), and the key is kept in
    # this tab's session storage only
    keyed = gateway.session.get(
        f"{gateway.url}/sd/text2image/v1/status/{job_id}", headers={"API-Key": key}, timeout=30
    )
    assert keyed.status_code == 200
    assert gateway.status(job_id).status_code == 404
    stored = browser.execute_script(
        "return [sessionStorage.getItem('imagegateway.apiKey'), localStorage.length]"
    )
    assert stored == [key, 0]
    # When the key is forgotten / Then it is gone and the page asks again
    browser.find_element(By.ID, "forget").click()
    wait_for(browser, lambda b: b.find_element(By.ID, "api-key").is_displayed(), 15)
    assert browser.execute_script("return sessionStorage.getItem('imagegateway.apiKey')") is None


def test_on_the_iam_api_the_page_says_how_to_sign(
    browser: WebDriver, gateway: Gateway, as_deployed: Callable[[int, str], None]
) -> None:
    # Given the console on an API that refuses unsigned calls (403)
    as_deployed(403, "Forbidden")
    # When it opens
    browser.get(f"{gateway.url}/console")
    # Then it says its calls need a SigV4 signature, and shows no data nor key prompt
    panel = wait_for(browser, lambda b: b.find_element(By.ID, "iam-panel"), 15)
    wait_for(browser, lambda b: panel.is_displayed(), 15)
    assert "signing proxy" in panel.text
    assert not browser.find_element(By.ID, "app").is_displayed()
    assert not browser.find_element(By.ID, "key-panel").is_displayed()


# The page's first list answer, for the caller it opened as, held back 3 s (injected before any of
# the page's own scripts): it lands after the answer for the caller switched to meanwhile.
SLOW_FIRST_LIST = """
(() => {
  const fetchFirst = window.fetch.bind(window);
  let held = false;
  window.fetch = async (...args) => {
    const answer = await fetchFirst(...args);
    if (!held && String(args[0]).includes("v1/jobs?")) {
      held = true;
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
    return answer;
  };
})();
"""


def test_a_list_asked_for_the_caller_before_is_never_shown_after_a_switch(
    browser: WebDriver, gateway: Gateway
) -> None:
    # Given the local account has a job, and the page's first list (the local account's) is slow
    gateway.wait(gateway.submit({"model_id": "sd1.5", "prompt": "the account's own"}).json()["id"])
    injected = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": SLOW_FIRST_LIST}
    )
    try:
        # When the person switches to a caller of their own before that list arrives
        caller = f"console-{uuid.uuid4().hex[:8]}"
        open_console(browser, gateway, caller)
        time.sleep(4)  # the held answer has landed
        # Then the page shows the new caller's (empty) list, not the account's jobs
        assert browser.find_elements(By.CSS_SELECTOR, "li.job") == []
        assert "No jobs yet" in browser.find_element(By.ID, "jobs-state").text
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": injected["identifier"]}
        )
