"""A real browser runs the widget notebook in JupyterLab: the slider and the figures must render.

nbval proves the notebooks execute; it cannot tell whether a learner *sees* anything, because
widgets and inline figures are drawn by JupyterLab's front end. This test starts JupyterLab on
127.0.0.1 (free port, random token, settings isolated in a temporary folder), opens notebook
07 in headless Chromium driven by Playwright, runs all cells in quick mode, and checks in the
page that the ipywidgets slider and the matplotlib figures are there, and that moving the
slider redraws its figure (so the widget talks to the kernel). Screenshots go to ``build/``
(a CI artifact).

Needs the Debian ``chromium`` package and the ``playwright`` Python package (never a
``playwright install`` browser download). Without them the test is skipped with the reason, unless
``FEDTUTOR_REQUIRE_SYSTEM=1`` (set in CI; tests/system.py), which turns a missing browser into a failure.
``FEDTUTOR_BROWSER_NOTEBOOK`` points it at another notebook that has an ``interact`` slider.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import psutil
import pytest
from system import require

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(os.environ.get("FEDTUTOR_BROWSER_NOTEBOOK", REPO / "notebooks" / "07-non-iid-data.ipynb"))
CHROMIUM = Path(os.environ.get("FEDTUTOR_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "build" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUICK_ENV = {"CI": "true", "FEDTUTOR_QUICK": "1"}
# JupyterLab settings for the test: render every cell (no virtual scrolling, so all prompts and
# outputs are in the page) and no news or update pop-ups over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
SERVER_START_S = 60
RUN_ALL_S = 120
CODE_PROMPTS = ".jp-CodeCell .jp-InputArea-prompt"
ALL_CELLS_RAN = f"""() => {{
    const prompts = [...document.querySelectorAll("{CODE_PROMPTS}")];
    return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
}}"""


def browser_or_skip():
    """Playwright's sync API module, or a skip (a failure under FEDTUTOR_REQUIRE_SYSTEM=1)."""
    missing = []
    try:
        from playwright import sync_api
    except ModuleNotFoundError:
        missing.append("the playwright package (pip install playwright)")
    if not CHROMIUM.is_file():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    require(not missing, "browser test needs " + " and ".join(missing))
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(folder: Path) -> None:
    for name, values in LAB_SETTINGS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


class Lab:
    """A JupyterLab server of our own, on 127.0.0.1 with a token, serving ``root``."""

    def __init__(self, root: Path, home: Path):
        self.root, self.log_path = root, home / "jupyterlab.log"
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        write_lab_settings(home / "lab-settings")
        env = {
            **os.environ,
            **QUICK_ENV,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        }
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # A session of its own, so stop() can end the server's kernels with it.
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def api(self, path: str, method: str = "GET"):
        """Status code and decoded JSON body of a REST call to the server."""
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        request.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None

    def wait_for_connected_idle_kernel(self, timeout_s: float = 60) -> None:
        """Until the page's kernel has started and its websocket is open: a Run All before
        that moment is silently dropped."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            kernels = self.api("/api/kernels")[1]
            if any(k["connections"] > 0 and k["execution_state"] == "idle" for k in kernels):
                return
            time.sleep(0.3)
        pytest.fail(f"the notebook's kernel was not ready within {timeout_s} s:\n{self.log_tail()}")

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.api("/api/status")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """Shut the server and its kernels down; kill (by pid) whatever of ours outlives that."""
        ours = [psutil.Process(self.process.pid)]
        with contextlib.suppress(psutil.Error):
            ours += ours[0].children(recursive=True)  # the kernels, each in a session of its own
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.api("/api/shutdown", method="POST")  # shuts the kernels down first
            self.process.wait(timeout=10)
        for process in ours:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def playwright():
    return browser_or_skip()


@pytest.fixture
def lab(tmp_path, playwright):
    assert NOTEBOOK.is_file(), f"{NOTEBOOK} is missing: the browser test checks the widget notebook"
    root = tmp_path / "workspace"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)  # a copy: the test saves the notebook it runs
    server = Lab(root, tmp_path)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def saved_errors(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [
        f"cell {number}: {out.ename}: {out.evalue}"
        for number, cell in enumerate(nb.cells, start=1)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]


def save_and_read_errors(page, lab: Lab) -> list[str]:
    """Save from the browser (what the learner would see on disk) and list the error outputs."""
    path = lab.root / NOTEBOOK.name
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 15
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.stat().st_mtime_ns != before, "JupyterLab did not save the notebook"
    return saved_errors(path)


def test_widget_notebook_renders_slider_and_figures_in_a_real_browser(playwright, lab):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{NOTEBOOK.stem}.png"
    expect = playwright.expect  # waits (up to its timeout) for what the front end draws asynchronously
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
            lab.wait_for_connected_idle_kernel()

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator("li[data-command='runmenu:run-all']").click()
            try:
                page.wait_for_function(ALL_CELLS_RAN, timeout=RUN_ALL_S * 1000)
            except Exception:  # noqa: BLE001 - whatever the reason, report what the page shows
                page.screenshot(path=str(shot))
                errors = save_and_read_errors(page, lab)
                pytest.fail(f"not every cell ran within {RUN_ALL_S} s; errors: {errors or 'none'}; see {shot}")
            assert save_and_read_errors(page, lab) == []

            # The slider: an ipywidgets FloatLogSlider inside an `interact`, drawn by the widget manager.
            interact = page.locator(".jp-OutputArea-output .widget-interact").first
            slider = interact.locator(".widget-slider").first
            expect(slider, "the alpha slider is not drawn: is jupyterlab_widgets installed?").to_be_visible()
            slider.scroll_into_view_if_needed()
            assert page.get_by_text("Error displaying widget").count() == 0

            # The figures: matplotlib PNGs that really decoded, inside the widget and elsewhere.
            figure = interact.locator("img").first
            expect(figure, "the slider's figure is not shown").to_be_visible()
            sizes = page.eval_on_selector_all(".jp-OutputArea-output img", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(sizes) >= 2 and all(width > 100 for width in sizes), f"figure widths {sizes}"

            # Moving the slider makes the kernel redraw its figure: the widget is live, not a picture.
            first_png = figure.get_attribute("src")
            readout = interact.locator(".widget-readout").first.inner_text()
            interact.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([el, src]) => el.querySelector('img') && el.querySelector('img').src !== src",
                arg=[interact.element_handle(), first_png],
                timeout=30_000,
            )
            expect(interact.locator(".widget-readout").first).not_to_have_text(readout)
            interact.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_a_wrong_answer_shows_one_short_styled_message_and_no_traceback(playwright, tmp_path):
    """What a learner sees for a wrong answer in JupyterLab: `Wrong` renders itself (no checker traceback)."""
    root = tmp_path / "workspace"
    root.mkdir()
    cell = 'from fedtutor.course import check\n\ncheck("00.2", 12345)  # a typed-in number'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "wrong.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "wrong-answer.png"
    server = Lab(root, tmp_path)
    try:
        server.wait_until_up()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 600})
                page.goto(f"{server.url}/lab/tree/wrong.ipynb?token={server.token}")
                page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
                server.wait_for_connected_idle_kernel()
                page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea").first.click()
                page.keyboard.press("Shift+Enter")
                error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").first
                playwright.expect(error).to_contain_text("Not yet", timeout=60_000)
                page.screenshot(path=str(shot))
                text = error.inner_text()
            finally:
                browser.close()
    finally:
        server.stop()
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Not yet · exercise 00.2" in lines[0] and "12,345 is not the size of the training set" in text
    assert len(lines) <= 6, f"the message should be short, got {len(lines)} lines:\n{text}"
    assert "Traceback" not in text and "_common.py" not in text and "File " not in text
    assert shot.stat().st_size > 5_000
