"""The web UI in a real browser: Debian's headless Chromium driven by Playwright
against the service running under uvicorn on a loopback port.

Each step saves a screenshot under test-artifacts/ui/. Waits are Playwright's
bounded ``expect`` timeouts; nothing sleeps for a fixed time.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import socket
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("web UI tests need Debian's Chromium at /usr/bin/chromium (scripts/apt-packages.txt)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="web UI tests need the playwright package")
uvicorn = pytest.importorskip("uvicorn", reason="web UI tests serve the app with uvicorn")
expect = sync_api.expect

from copyscope.service.app import create_app  # noqa: E402
from copyscope.service.config import ServiceSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
SAMPLES = ROOT / "src" / "copyscope" / "samples" / "text"
LIMIT = 1 << 20                 # max_upload_bytes of the server under test
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-home")
    app = create_app(ServiceSettings(home=home, max_upload_bytes=LIMIT))
    svc = app.state.service
    _, key = svc.create_tenant("acme")
    admin = svc.auth.authenticate(key, "any")
    _, check_key = svc.create_key(admin, "checker", ["check"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", key=key, check_key=check_key, svc=svc)
    srv.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(base_url=server.url, accept_downloads=True, viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    pg.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    yield pg
    context.close()
    assert not problems, f"the browser reported: {problems}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, key: str) -> None:
    page.goto("/ui/signin")
    page.fill("#key", key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#tenant-name")).to_have_text("acme")


def drop(page, name: str, data: bytes, media_type: str) -> None:
    """Drop a file on the drop area the way a person drags one from the desktop."""
    page.locator("[data-drop]").first.wait_for()
    page.evaluate("""([name, b64, type]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type}));
        const zone = document.querySelector("[data-drop]");
        for (const kind of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(kind, {bubbles: true, cancelable: true, dataTransfer: dt}));
        }
    }""", [name, base64.b64encode(data).decode(), media_type])
    expect(page.locator(".drop-list")).to_contain_text(name)


def create_set(page, name: str, work_ids: str = "", action: str = "block", threshold: str = "0.3") -> None:
    page.goto("/ui/sets")
    page.fill("#name", name)
    page.select_option("#action", action)
    page.fill("#threshold", threshold)
    if work_ids:
        page.fill("#work_ids", work_ids)
    page.get_by_role("button", name="Create the set").click()
    expect(page.locator(".alert.ok")).to_have_text("Protected set created.")


def edited(text: str) -> str:
    """A copy with a few words changed."""
    for old, new in (("the", "a"), ("soil", "earth"), ("and", "plus")):
        text = text.replace(f" {old} ", f" {new} ", 3)
    return text


def test_sign_in_wrong_key_and_sign_out(page, server):
    page.goto("/ui/works")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next=%2Fui%2Fworks$"))
    shot(page, "01-sign-in")
    page.fill("#key", "cs_k000000000000_not-a-real-key-at-all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    shot(page, "02-sign-in-wrong-key")

    page.fill("#key", server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/works$"))
    expect(page.locator("#tenant-name")).to_have_text("acme")
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Works", "Register", "Check", "Sets", "Jobs"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "cs_ui_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""          # neither the key nor the CSRF token is readable
    shot(page, "03-works-empty")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signed-out")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "cs_ui_key"]
    page.goto("/ui/jobs")
    expect(page).to_have_url(re.compile(r"/ui/signin"))
    shot(page, "04-signed-out")


def test_register_browse_check_report_and_protect(page, server):
    sign_in(page, server.key)
    soil = (SAMPLES / "registered" / "en_soil.txt").read_bytes()
    page.goto("/ui/register")
    page.set_input_files("#files", files=[{"name": "en_soil.txt", "mimeType": "text/plain", "buffer": soil}])
    expect(page.locator(".drop-list")).to_contain_text("en_soil.txt")
    page.fill("#owner", "Ann Writer")
    page.fill("#license", "CC-BY-4.0")
    page.fill("#title", "On Soil")
    page.fill("#rec_prompt", "an essay on soil and the farmers who keep it")
    page.fill("#rec_model_name_0", "essay-writer-7b.safetensors")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#result .alert.error")).to_contain_text("models[0].sha256")   # validate_record's message
    shot(page, "05-register-record-error")

    page.fill("#rec_model_sha256_0", hashlib.sha256(b"model weights").hexdigest())
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#registered")).to_have_text("Registered 1 work.")
    work_id = page.locator("#registered-works a").first.inner_text()
    assert re.fullmatch(r"W\d+", work_id)
    shot(page, "06-registered")

    page.get_by_role("link", name="Works").click()
    expect(page.locator("#works-table")).to_contain_text(work_id)
    page.fill("#q", "soil")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#works-table")).to_contain_text("On Soil")
    page.get_by_role("link", name=work_id).click()
    expect(page.locator("#work-owner")).to_have_text("Ann Writer")
    expect(page.locator("#work-record")).to_contain_text("essay-writer-7b.safetensors")
    expect(page.locator("#work-record")).to_contain_text("an essay on soil")
    shot(page, "07-work")
    with page.expect_download() as dl:
        page.locator("#package-link").click()
    assert dl.value.suggested_filename == f"{work_id}.zip"
    with zipfile.ZipFile(dl.value.path()) as z:
        assert z.testzip() is None and z.namelist()

    page.get_by_role("link", name="Check").click()
    page.wait_for_url("**/ui/check")
    copy = edited(soil.decode("utf-8")).encode("utf-8")
    assert copy != soil
    drop(page, "repost.txt", copy, "text/plain")
    page.get_by_role("button", name="Check", exact=True).click()
    decision = page.locator("#result .decision").first
    expect(decision).to_have_attribute("data-decision", re.compile("flag|block"))
    expect(page.locator("#result .matches")).to_contain_text(work_id)
    shot(page, "08-check-flag")
    with page.expect_download() as dl:
        page.locator(".bundle-link").first.click()
    assert json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    page.locator(".report-link").first.click()
    expect(page.locator("body")).to_contain_text(work_id)
    shot(page, "09-evidence-report")

    create_set(page, "Soil essays", work_id)
    expect(page.locator("#members")).to_contain_text(work_id)
    shot(page, "10-protected-set")

    page.get_by_role("link", name="Check").click()
    page.wait_for_url("**/ui/check")
    page.set_input_files("#files", files=[{"name": "repost.txt", "mimeType": "text/plain", "buffer": copy}])
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#result .decision").first).to_have_text("block")
    expect(page.locator("#result .matches")).to_contain_text("Soil essays")
    shot(page, "11-check-block")


def test_image_copy_is_flagged(page, server):
    from PIL import Image, ImageDraw
    rng = random.Random(11)
    img = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randrange(300), rng.randrange(220)
        draw.ellipse([x, y, x + rng.randrange(10, 60), y + rng.randrange(10, 60)],
                     fill=tuple(rng.randrange(256) for _ in range(3)))
    png, jpeg = io.BytesIO(), io.BytesIO()
    img.save(png, "PNG")
    img.crop((12, 10, 300, 226)).save(jpeg, "JPEG", quality=80)

    sign_in(page, server.key)
    page.goto("/ui/register")
    drop(page, "harbour.png", png.getvalue(), "image/png")
    page.fill("#owner", "Mei Lin")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#registered")).to_have_text("Registered 1 work.")
    work_id = page.locator("#registered-works a").first.inner_text()

    page.goto("/ui/check")
    drop(page, "cropped.jpg", jpeg.getvalue(), "image/jpeg")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#result .decision").first).to_have_attribute("data-decision", re.compile("flag|block"))
    expect(page.locator("#result .matches")).to_contain_text(work_id)
    shot(page, "12-image-check")


def test_bulk_registration_runs_as_a_job(page, server):
    rng = random.Random(5)
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pri", "nak", "os", "te", "bu", "gar"]
    files = []
    for i in range(25):
        words = ["".join(rng.choice(syllables) for _ in range(3)) for _ in range(120)]
        files.append({"name": f"note-{i:02d}.txt", "mimeType": "text/plain",
                      "buffer": (f"Note {i}. " + " ".join(words) + ".\n").encode()})
    sign_in(page, server.key)
    page.goto("/ui/register")
    page.set_input_files("#files", files=files)
    expect(page.locator(".drop-list")).to_contain_text("25 files")
    page.fill("#owner", "Bulk Owner")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/j[0-9a-f]{12}$"))
    shot(page, "13-job-started")
    expect(page.locator("#job-percent")).to_have_text("100 %", timeout=45_000)
    expect(page.locator("#job-state")).to_have_text("done")
    bar = page.locator("#job-bar")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "25"
    expect(page.locator("#done-items tbody tr")).to_have_count(25)
    shot(page, "14-job-done")
    job_id = page.locator("#job-id").inner_text()
    page.get_by_role("link", name="Jobs").first.click()
    expect(page.locator("#jobs-table")).to_contain_text(job_id)


def test_scopes_csrf_and_upload_limit(page, server):
    sign_in(page, server.check_key)
    page.goto("/ui/register")
    expect(page.locator("#scope-note")).to_contain_text("register")
    page.goto("/ui/sets")
    expect(page.locator("#scope-note")).to_contain_text("admin")
    shot(page, "15-scope-note")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post("/ui/sets", form={"csrf": csrf, "name": "x", "action": "block", "threshold": "0.5"})
    assert refused.status == 403 and "lacks the &#39;admin&#39; scope" in refused.text()
    forged = page.request.post("/ui/sets", form={"csrf": "A" * 43, "name": "x", "action": "block"})
    assert forged.status == 403 and "CSRF" in forged.text()

    page.goto("/ui/check")
    page.set_input_files("#files", files=[{"name": "big.txt", "mimeType": "text/plain",
                                           "buffer": b"x" * (LIMIT + 500_000)}])
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#flash")).to_contain_text("over the 1.0 MB upload limit")
    shot(page, "16-upload-too-large")
    # without the page's own size check the server's body limit answers (413, or a closed connection):
    # either way the page says why in words, not JSON
    page.goto("/ui/check")
    page.evaluate("document.getElementById('check-form').removeAttribute('data-max-bytes')")
    page.set_input_files("#files", files=[{"name": "bigger.txt", "mimeType": "text/plain",
                                           "buffer": b"z" * (LIMIT + 200_000)}])
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#flash")).to_contain_text(re.compile(r"too large|size limit"))
    expect(page.locator("#flash")).not_to_contain_text("{")
    over = page.request.post("/ui/check", multipart={"csrf": csrf, "files": {
        "name": "big.txt", "mimeType": "text/plain", "buffer": b"y" * (LIMIT + 10_000)}})
    assert over.status == 413 and "upload limit" in over.text() and over.headers["content-type"].startswith("text/html")


def test_cancel_a_queued_job(page, server):
    from copyscope.service.jobs import JobRunner
    server.svc.jobs.stop()            # no runner: the job stays queued until it is cancelled
    try:
        sign_in(page, server.key)
        page.goto("/ui/register")
        page.set_input_files("#files", files=[{"name": f"c{i}.txt", "mimeType": "text/plain",
                                               "buffer": f"cancel me {i} ".encode() * 20} for i in range(21)])
        page.fill("#owner", "Cancel Owner")
        page.get_by_role("button", name="Register", exact=True).click()
        expect(page.locator("#job-state")).to_have_text("queued")
        page.get_by_role("button", name="Cancel the job").click()
        expect(page.locator("#job-progress")).to_contain_text("cancelling")
        expect(page.get_by_role("button", name="Cancel the job")).to_be_disabled()
        shot(page, "17-job-cancelling")
    finally:
        server.svc.jobs = JobRunner(server.svc)
        server.svc.jobs.start()
    expect(page.locator("#job-state")).to_have_text("cancelled")      # the polling page sees the runner stop it
    expect(page.locator("#job-progress")).to_contain_text("21 items left pending")
    shot(page, "18-job-cancelled")


def test_derived_private_work_and_a_check_limited_to_one_set(page, server):
    """The register form carries derived-from and private; the check form can
    apply only the protected sets ticked."""
    sign_in(page, server.key)
    base = b"The lighthouse keeper counted the ships that passed each night and wrote their names in a book.\n" * 6
    page.goto("/ui/register")
    page.set_input_files("#files", files=[{"name": "keeper.txt", "mimeType": "text/plain", "buffer": base}])
    page.fill("#owner", "Lena Lamp")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#registered")).to_have_text("Registered 1 work.")
    parent = page.locator("#registered-works a").first.inner_text()

    page.goto("/ui/register")
    sequel = base.replace(b"counted", b"named") + b"Years later the book was found in the tower.\n"
    page.set_input_files("#files", files=[{"name": "keeper-2.txt", "mimeType": "text/plain", "buffer": sequel}])
    page.fill("#owner", "Lena Lamp")
    page.fill("#derived_from", parent)
    page.check("#private")
    shot(page, "19-register-derived-private")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#registered")).to_have_text("Registered 1 work.")
    child = page.locator("#registered-works a").first.inner_text()
    page.get_by_role("link", name=child).click()
    expect(page.locator("table.list")).to_contain_text("derive")
    expect(page.locator("pre.json").first).to_contain_text("opening", use_inner_text=False)

    create_set(page, "Lighthouse", parent)
    create_set(page, "Unrelated")

    # only the ticked set applies: the copy is outside "Unrelated", inside "Lighthouse"
    for ticked, decision in (("Unrelated", "allow"), ("Lighthouse", "block")):
        page.goto("/ui/check")
        page.get_by_label(re.compile(f"^{ticked}")).check()
        page.set_input_files("#files", files=[{"name": "repost.txt", "mimeType": "text/plain", "buffer": base}])
        page.get_by_role("button", name="Check", exact=True).click()
        expect(page.locator("#result .decision").first).to_have_text(decision)
    shot(page, "20-check-one-set")
