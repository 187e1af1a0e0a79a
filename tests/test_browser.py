"""What a reader sees in JupyterLab, in a real browser: ``notebooks/main_results.ipynb``
opened in JupyterLab (127.0.0.1, a random token) and driven by headless Chromium through
selenium. Run All must render every figure cell as an image; after a parameter is changed in
the parameters cell and the notebook re-run in the same kernel, and after Restart Kernel and
Run All, every figure must render again (issue 9: a style context that switched matplotlib's
interactive mode off hid them). A bad value then stops the validation cell with one line.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped with
the reason when they are missing. The notebook is a copy of the committed one whose parameters
cell is set to a tiny experiment trained into a temporary cache beforehand.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from pgsom.pipeline import _is_figure_cell

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="real-browser test needs Chromium and its driver (apt-get install chromium "
           "chromium-driver; .ci/run installs them): "
           f"chromium {'found' if CHROMIUM else 'not found'}, "
           f"chromedriver {'found' if CHROMEDRIVER else 'not found'} on PATH")

TINY = {"paper_seeds": 2, "powered_seeds": 2, "episodes": 4, "eval_episodes": 1,
        "variants": ["pg", "rk", "hessian+clip"], "methods": ["pg", "rk"], "max_workers": 1,
        "progress": False}
RUN_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_parameters(source: str, values: dict) -> str:
    """The parameters cell ``source`` with the values of ``values`` (names it assigns only)."""
    lines = source.splitlines()
    for k, line in enumerate(lines):
        node = ast.parse(line).body[0] if line.strip() and not line.lstrip().startswith("#") else None
        if isinstance(node, ast.Assign) and node.targets[0].id in values:
            name = node.targets[0].id
            comment = line[line.index("#"):] if "#" in line else ""
            lines[k] = f"{name} = {values[name]!r}  {comment}".rstrip()
    return "\n".join(lines)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of main_results.ipynb with tiny parameters and a filled cache;
    yields (url of the notebook, the copy's figure cell indices); stops the server by its pid."""
    from pgsom import experiments as ex

    tmp = tmp_path_factory.mktemp("lab")
    cache, figures, root = tmp / "cache", tmp / "figures", tmp / "root"
    root.mkdir()
    ex.load_experiment(["paper", "powered"], n_seeds={"paper": 2, "powered": 2},
                       variants=TINY["variants"], episodes=TINY["episodes"],
                       eval_episodes=TINY["eval_episodes"], cache_dir=cache, max_workers=1, log=None)
    nb = nbformat.read(ROOT / "notebooks" / "main_results.ipynb", as_version=4)
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    nb.cells[1].source = _with_parameters(nb.cells[1].source, {**TINY, "cache_dir": str(cache),
                                                               "figures_dir": str(figures)})
    nbformat.write(nb, root / "main_results.ipynb")
    figure_cells = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and _is_figure_cell(c.source)]
    assert len(figure_cells) == 2

    settings = tmp / "settings"
    for plugin, value in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "config")}
    log = open(tmp / "lab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--KernelManager.transport_encryption=auto",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],  # CI containers
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(tmp / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/main_results.ipynb?token={token}", figure_cells, tmp, f"{base}/api/kernels?token={token}"
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)  # the server stops its kernels on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # its own process group (start_new_session)
            server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (requirements.lock) not installed")
    from selenium.webdriver.chrome.service import Service

    tmp = lab[2]
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1800",
                f"--user-data-dir={tmp / 'chromium-profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _cells(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def _prompts(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [c.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip()
            for c in _cells(driver) if "jp-CodeCell" in c.get_attribute("class")]


def _wait(what, predicate, timeout):
    """``predicate()``'s first true value, polled; an element re-rendered under us counts as
    not yet; AssertionError after ``timeout`` seconds."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _run_all(driver, menu: str = "Run", item: str = "Run All Cells", confirm: bool = False) -> None:
    """``menu`` > ``item`` (the menu a reader uses; ``confirm``: accept the dialog it opens),
    then wait until every code cell ran, in order."""
    from selenium.webdriver.common.by import By

    before = [p for p in _prompts(driver)]
    driver.find_element(By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and text()='{menu}']").click()
    _wait(f"the {menu} menu", lambda: driver.find_elements(
        By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[starts-with(text(), '{item}')]]"), 10)[0].click()
    if confirm:
        _wait("the dialog", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"), 10)[0].click()

    def finished():
        now = _prompts(driver)
        numbers = [re.fullmatch(r"\[(\d+)\]:", p) for p in now]
        return (all(numbers) and now != before
                and [int(m.group(1)) for m in numbers] == sorted(int(m.group(1)) for m in numbers))

    _wait("Run All to finish", finished, RUN_TIMEOUT_S)


def _images_and_errors(driver, figure_cells, settle_s: float = 10.0):
    """Rendered images per figure cell (waiting up to ``settle_s`` for one in each: outputs
    render asynchronously) and the text of any stderr output, for the message."""
    from selenium.webdriver.common.by import By

    def count():
        cells = _cells(driver)
        return {k: len(cells[k].find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")) for k in figure_cells}

    try:
        _wait("an image in every figure cell", lambda: all(n == 1 for n in count().values()), settle_s)
    except AssertionError:
        pass  # reported by the caller's assertion with the counts
    errors = [c.text[:500] for c in driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr']")]
    return count(), errors


def _append_to_parameters(browser, line: str) -> None:
    """Type ``line`` at the end of the parameters cell (the last assignment wins)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    editor = _cells(browser)[1].find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys(Keys.ENTER, line)
    _wait("the edit", lambda: line in _cells(browser)[1].text, 10)


def test_main_results_figures_render_in_jupyterlab_after_run_all_and_a_parameter_change(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, figure_cells, _, kernels = lab
    n_cells = len(nbformat.read(ROOT / "notebooks" / "main_results.ipynb", as_version=4).cells)
    browser.get(url)
    _wait("the notebook to open", lambda: len(_cells(browser)) == n_cells, 60)
    _wait("the kernel to start", lambda: any(
        k["execution_state"] == "idle" for k in json.loads(urllib.request.urlopen(kernels, timeout=5).read())), 60)

    _run_all(browser)
    images, errors = _images_and_errors(browser, figure_cells)
    assert images == {k: 1 for k in figure_cells}, f"first Run All: images per figure cell {images}; errors {errors}"

    # a reader changes a parameter (the last assignment wins) and runs everything again
    _append_to_parameters(browser, 'figure_protocol = "paper"')
    _run_all(browser)
    images, errors = _images_and_errors(browser, figure_cells)
    assert images == {k: 1 for k in figure_cells}, f"after the change: images per figure cell {images}; errors {errors}"
    shown = _cells(browser)[2].find_element(By.CSS_SELECTOR, ".jp-OutputArea").text  # the validated params
    assert "'figure_protocol': 'paper'" in shown, shown[:1000]

    _run_all(browser, "Kernel", "Restart Kernel and Run All Cells", confirm=True)
    assert _prompts(browser)[0] == "[1]:"  # a fresh kernel
    images, errors = _images_and_errors(browser, figure_cells)
    assert images == {k: 1 for k in figure_cells}, f"after a restart: images per figure cell {images}; errors {errors}"

    # a bad value: the validation cell shows one line, no traceback through the package
    _append_to_parameters(browser, "episodes = -3")
    browser.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
    _wait("the Run menu", lambda: browser.find_elements(
        By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[text()='Run All Cells']]"), 10)[0].click()
    shown = _wait("the parameter error", lambda: [
        e.text for e in _cells(browser)[2].find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        if "ParameterError" in e.text], RUN_TIMEOUT_S)
    assert [t.strip() for t in shown] == [
        "ParameterError: episodes must be an int >= 1 (training episodes per run), got -3"], shown
