"""The HTML report of a run: plots present, readable in a real browser."""

import re
import shutil

import gymnasium
import pytest

import selfgym  # noqa: F401  (registers the envs)
from selfgym.agents import RandomAgent, ScriptedAgent
from selfgym.run.evaluate import evaluate
from selfgym.run.report import write_report
from selfgym.store import Store


@pytest.fixture
def run_dir(tmp_path):
    store = Store(tmp_path)
    store.create_run("r", {"env": "selfgym/Guess-v0"})
    env = gymnasium.make("selfgym/Guess-v0")
    for iteration, agent in enumerate([RandomAgent, ScriptedAgent]):  # "before" fails, "after" solves
        result, trajs = evaluate(env, agent, n_tasks=6, k=2, run_id="r", iteration=iteration)
        for traj in trajs:
            store.add_trajectory(traj)
        store.add_eval(run_id="r", env_id="selfgym/Guess-v0", split="heldout", metrics=result.to_dict(),
                       iteration=iteration)
        store.log_metrics("r", iteration, {"train/success": 0.2 + 0.3 * iteration, "time/rollout_s": 3.0,
                                           "curriculum/p/guess@0.00": 0.5, "curriculum/p/guess@1.00": 0.5})
    store.close()
    return tmp_path


def test_report_files_and_before_after_table(run_dir):
    path = write_report(run_dir)
    text = path.read_text()
    for stem in ("heldout", "train_success", "curriculum", "time"):
        assert (run_dir / "report" / f"{stem}.png").stat().st_size > 1000
        assert f"id='plot-{stem}'" in text
    row = re.search(r"<td>selfgym/Guess-v0</td><td>([0-9.]+) \[.*?\]</td><td>1.000 \[1.000, 1.000\]</td>"
                    r"<td>\+([0-9.]+)</td>", text)
    assert row, "before/after row missing"
    assert float(row.group(1)) < 0.5 and abs(1.0 - float(row.group(1)) - float(row.group(2))) < 1e-3
    assert list((run_dir / "report" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.browser
def test_report_renders_in_chromium_with_its_plots(run_dir, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path = write_report(run_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(path.as_uri())
        widths = page.eval_on_selector_all("img[id^=plot-]", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) >= 4 and all(w > 100 for w in widths)
        assert "Before / after" in page.inner_text("body")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()


def test_report_polish_whole_iterations_components_off_config_table(tmp_path):
    """Iteration axes tick at whole iterations, a component the config switched off gets no (empty)
    plot but a line saying so, and the config reads as section.key rows, not a JSON dump."""
    import matplotlib

    matplotlib.use("Agg")
    from selfgym.run import report

    store = Store(tmp_path)
    store.create_run("r", {"reflections": {"enabled": False}, "trainer": {"algorithm": "rft", "window": 2}})
    for iteration in (0, 1):
        store.log_metrics("r", iteration, {"train/success": 0.5, "reflections/total": 0.0, "time/rollout_s": 1.0})
    store.close()
    text = write_report(tmp_path).read_text()
    assert not (tmp_path / "report" / "reflections.png").exists() and "id='plot-reflections'" not in text
    assert "Off in this run (no plot): Reflections (reflections.enabled = false)" in text
    assert "<tr><th>trainer.window</th><td><code>2</code></td></tr>" in text and "<pre>" not in text
    fig = report._panel_plot("t", "y", {"train/success": [(0, 0.5), (1, 0.5)]})
    ticks = [t for t in fig.axes[0].get_xticks() if 0 <= t <= 1]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
