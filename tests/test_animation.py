"""The animated walk of one input: path data, frames, the live player and the static player (headless Chromium)."""
import html
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from curvlib import models, widgets
from curvlib.measure.direction import direction
from curvlib.measure.views import walk_paths
from curvlib.plots.explorer import plot_walk, walk_figure


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    return {"resnet": models.build("resnet").eval(), "vit": models.build("vit").eval()}


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(1)
    return torch.rand(1, 32, 32)


def _own_label(model, x) -> int:
    with torch.no_grad():
        return int(model(x[None]).argmax())


@pytest.mark.parametrize("kind", ["fgsm", "random"])
def test_walk_paths_data(pair, image, kind):
    label = _own_label(pair["resnet"], image)
    w = walk_paths(pair, image, label, kind, eps_max=0.5, n=4)
    assert w["kind"] == kind and w["label"] == label and w["num_classes"] == 10
    assert torch.allclose(w["eps"], torch.tensor([0, 0.125, 0.25, 0.375, 0.5]))
    for name, p in w["paths"].items():
        m = pair[name]
        assert p["inputs"].shape == (5, 1, 32, 32) and p["rep"].shape == (5, 2) and p["pred"].shape == (5,)
        assert torch.equal(p["inputs"][0], image)  # k = 0 is x itself
        d = direction(m, image[None], torch.tensor([label]), "fgsm") if kind == "fgsm" else \
            direction(None, image[None], kind="random", seed=0)
        expected = (image + w["eps"].view(-1, 1, 1, 1) * d[0]).clamp(0, 1)
        assert torch.allclose(p["inputs"], expected)
        with torch.no_grad():
            assert torch.equal(p["pred"], m(p["inputs"]).argmax(1))
        assert torch.allclose(p["rep"].mean(0), torch.zeros(2), atol=1e-4)  # PCA of the path: centred
        wrong = [k for k, c in enumerate(p["pred"].tolist()) if c != label]
        assert p["crossing"] == (wrong[0] if wrong else None)
    assert w["paths"]["resnet"]["crossing"] != 0  # the label is resnet's own prediction at x
    shared = torch.equal(w["paths"]["resnet"]["inputs"], w["paths"]["vit"]["inputs"])
    assert shared == (kind == "random")  # FGSM: each model its own direction


def test_walk_paths_crossing_at_zero_when_misclassified(pair, image):
    wrong_label = (_own_label(pair["vit"], image) + 1) % 10
    w = walk_paths({"vit": pair["vit"]}, image[None], torch.tensor([wrong_label]), "random", 0.1, 2)
    assert w["paths"]["vit"]["crossing"] == 0


def test_walk_paths_rejects_bad_input(pair, image):
    m = {"resnet": pair["resnet"]}
    cases = [
        (dict(kind="perp"), "unknown walk direction"),
        (dict(n=0), "n \\(number of steps\\) must be an integer ≥ 1"),
        (dict(n=2.5), "must be an integer"),
        (dict(eps_max=0.0), "eps_max must be positive"),
        (dict(eps_max=float("inf")), "eps_max must be positive"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            walk_paths(m, image, 3, **kw)
    with pytest.raises(ValueError, match="one image"):
        walk_paths(m, image.repeat(2, 1, 1, 1), 3)
    with pytest.raises(ValueError, match="one integer label"):
        walk_paths(m, image, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="not a class of resnet"):
        walk_paths(m, image, 10, "random")
    with pytest.raises(ValueError, match="models is empty"):
        walk_paths({}, image, 3)
    with pytest.raises(ValueError, match="pixels in \\[0, 1\\]"):
        walk_paths(m, image * 2, 3, "random")


def _synthetic_walk(channels: int, crossing):
    """A walk made by hand (plot functions take data): 2 models, n = 4, 3 classes."""
    pred = torch.tensor([2, 2, 0, 0, 1])
    t = torch.linspace(0, 1, 5)
    rep = torch.stack([t, t ** 2], 1)
    path = {"inputs": torch.rand(5, channels, 8, 8), "rep": rep, "pred": pred, "crossing": crossing}
    return {"eps": torch.linspace(0, 0.2, 5), "kind": "random", "label": 2, "num_classes": 3,
            "paths": {"a": path, "b": dict(path, crossing=None)}}


def _png(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    plt.close(fig)
    return plt.imread(io.BytesIO(buf.getvalue()))


def test_plot_walk_frames():
    names = ("zero", "one", "two")
    walk = _synthetic_walk(3, crossing=2)
    fig = plot_walk(walk, 1, names)
    axes = fig.axes
    assert len(axes) == 4 and fig.get_figwidth() <= 9  # two panels per row, readable at page width
    assert axes[0].images[0].get_array().shape == (8, 8, 3)  # RGB input shown in colour
    assert "ε = 0.05 (step 1/4)" in axes[0].get_title()
    assert "predicted two" in axes[1].get_title() and "label kept so far" in axes[1].get_title()
    plt.close(fig)
    fig = plot_walk(walk, 3, names)
    assert "predicted zero" in fig.axes[1].get_title() and "first ≠ label at ε = 0.1" in fig.axes[1].get_title()
    assert "label kept so far" in fig.axes[3].get_title()  # model b never crosses
    assert len(fig.axes[1].collections) == len(fig.axes[3].collections) + 1  # the ring, only where reached
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["zero", "one", "two", "the image x", "first prediction ≠ label"]
    plt.close(fig)
    gray = plot_walk(_synthetic_walk(1, None), 0)
    assert gray.axes[0].images[0].get_array().shape == (8, 8)
    plt.close(gray)
    for k in (-1, 5, 1.0):
        with pytest.raises(ValueError, match="k must be an integer step in \\[0, 4\\]"):
            plot_walk(walk, k)


def test_redrawn_frame_equals_a_fresh_one():
    """The players redraw one figure in place; a frame drawn after others must look like a fresh one."""
    walk = _synthetic_walk(1, crossing=2)
    fig, frame = walk_figure(walk)
    frame(4)
    frame(1)
    assert np.array_equal(_png(fig), _png(plot_walk(walk, 1)))


def test_live_player_redraws_on_step_kind_and_count(pair, image, monkeypatch):
    computed, shown = [], []
    real_walk, real_figure = walk_paths, walk_figure

    def walk_spy(models_, x, y, kind, eps_max, n, seed):
        computed.append((kind, n, eps_max))
        return real_walk(models_, x, y, kind, eps_max, n, seed)

    def figure_spy(*a, **k):
        fig, frame = real_figure(*a, **k)

        def spy_frame(step):
            out = frame(step)
            shown.append(out.axes[0].get_title())
            return out
        return fig, spy_frame

    monkeypatch.setattr(widgets.live, "walk_paths", walk_spy)  # where the live player looks them up
    monkeypatch.setattr(widgets.live, "walk_figure", figure_spy)
    box = widgets.live_trajectory_player(pair, image, 3, {"fgsm": 0.1, "random": 0.3}, counts=(2, 4))
    assert box.drawn == [("fgsm", 4, 0)] and box.play.max == box.step.max == 4
    box.play.value = 3  # a tick of the Play button moves the step slider, which redraws
    assert box.step.value == 3 and box.drawn[-1] == ("fgsm", 4, 3) and "(step 3/4)" in shown[-1]
    box.step.value = 1  # and dragging the slider moves Play's position
    assert box.play.value == 1 and box.drawn[-1] == ("fgsm", 4, 1)
    assert computed == [("fgsm", 4, 0.1)]  # moving k only redraws
    kind, count = box.children[1].children
    box.step.value = 3
    count.value = 2  # ε_k kept: step 3 of 4 → 2 of 2 (rounded), one redraw
    assert box.drawn[-1] == ("fgsm", 2, 2) and len(box.drawn) == 5 and box.play.max == box.step.max == 2
    kind.value = "random"
    kind.value = "fgsm"
    assert box.drawn[-2:] == [("random", 2, 2), ("fgsm", 2, 2)] and "(step 2/2)" in shown[-1]
    assert computed == [("fgsm", 4, 0.1), ("fgsm", 2, 0.1), ("random", 2, 0.3)]  # once per (kind, n)
    assert set(box.walks) == {("fgsm", 4), ("fgsm", 2), ("random", 2)}
    with pytest.raises(ValueError, match="no value for random"):
        widgets.live_trajectory_player(pair, image, 3, {"fgsm": 0.1})
    with pytest.raises(ValueError, match="counts must be step counts ≥ 1"):
        widgets.live_trajectory_player(pair, image, 3, 0.1, counts=(0, 2))
    with pytest.raises(ValueError, match="kinds must be"):
        widgets.live_trajectory_player(pair, image, 3, 0.1, kinds=("perp",))


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def player_html(pair, image):
    return widgets.static_trajectory_player({"vit": pair["vit"]}, image, 3, {"fgsm": 0.1, "random": 0.3}, n=4,
                                            interval=100, dpi=30)


def test_static_player_markup(player_html, pair, image):
    p = _Tags()
    p.feed(player_html)
    tags = [t for t, _ in p.tags]
    assert "script" not in tags
    imgs = [a for t, a in p.tags if t == "img"]
    assert [i["data-k"] for i in imgs] == [f"{kd}_{k}" for kd in ("fgsm", "random") for k in range(5)]
    assert all(i["src"].startswith("data:image/png;base64,") for i in imgs)
    assert [i["style"].startswith("display:block") for i in imgs] == [True] + [False] * 9
    buttons = [a for t, a in p.tags if t == "button"]
    assert [b["class"] for b in buttons] == ["play", "pause"] and all("onclick" in b for b in buttons)
    (slider,) = [a for t, a in p.tags if t == "input"]
    assert slider["type"] == "range" and slider["max"] == "4" and "oninput" in slider
    (select,) = [a for t, a in p.tags if t == "select"]
    assert "onchange" in select
    root = p.tags[0][1]
    assert json.loads(root["data-eps"])["random"] == ["0", "0.075", "0.15", "0.225", "0.3"]
    single = _Tags()
    single.feed(widgets.static_trajectory_player(pair, image, 3, 0.1, n=1, kinds=("random",), dpi=20))
    assert "select" not in [t for t, _ in single.tags]


# Clicks Play on load, pauses, switches the direction and plays to the end, logging the frame on
# show (and whether a timer runs) into #result for --dump-dom. Test wrapper only: the player
# itself has no <script>.
_DRIVER = """
<pre id="result">pending</pre>
<script>
window.addEventListener('load', function () {
  var r = document.querySelector('.curv-player'), log = [];
  function note() {
    var on = [].filter.call(r.querySelectorAll('img'), function (e) { return e.style.display !== 'none'; });
    log.push(on.map(function (e) { return e.dataset.k; }).join(',') + '|' + r.querySelector('.lk').textContent
             + '|' + (r.dataset.timer ? 'running' : 'stopped'));
  }
  function later(ms, f) { setTimeout(f, ms); }
  note();
  r.querySelector('.play').click();
  later(250, function () {
    note();
    r.querySelector('.pause').click();
    later(300, function () {
      note();
      var d = r.querySelector('.kd'); d.value = 'random'; d.onchange();
      note();
      r.querySelector('.play').click();
      later(600, function () { note(); document.getElementById('result').textContent = JSON.stringify(log); });
    });
  });
});
</script>
"""


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CURVLIB_SKIP_BROWSER") == "1":
            pytest.skip("no chromium and CURVLIB_SKIP_BROWSER=1")
        pytest.fail("the static player is tested in headless Chromium: install it (apt-get install chromium) "
                    "or set CURVLIB_SKIP_BROWSER=1 to skip this test")
    return found


def _browser_log(tmp_path, body: str, driver: str, budget_ms: int):
    """Open ``body`` + ``driver`` (a script that writes JSON into <pre id="result">) in headless
    Chromium and return that JSON, read from the DOM after ``budget_ms`` of virtual time."""
    browser = _chromium()
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><meta charset='utf-8'><body>{body}{driver}</body></html>",
                    encoding="utf-8")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
                          f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert found, f"no result in the dumped DOM (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
def test_static_player_plays_in_a_browser(player_html, tmp_path):
    log = _browser_log(tmp_path, player_html, _DRIVER, 5000)
    assert log == ["fgsm_0|0/4, ε = 0|stopped",  # before Play
                   "fgsm_2|2/4, ε = 0.05|running",  # two ticks of 100 ms after Play
                   "fgsm_2|2/4, ε = 0.05|stopped",  # Pause holds the frame
                   "random_2|2/4, ε = 0.15|stopped",  # the direction selector swaps the frames
                   "random_4|4/4, ε = 0.3|stopped"]  # Play runs to the last frame and stops there


# ---------------------------------------------------------------------------------------------
# Generic sliders with static twins (ε_r in the random-jump chapter, Δ in the curvature chapter)

def _titled(*values):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.set_title(" ".join(map(str, values)))
    return fig


def test_static_sliders_markup_and_bad_input():
    page = widgets.static_sliders(_titled, {"ε_r": [0.01, 0.05, 0.1]}, start={"ε_r": 0.05})
    p = _Tags()
    p.feed(page)
    imgs = [a for t, a in p.tags if t == "img"]
    assert "<script" not in page and [i["data-k"] for i in imgs] == ["0", "1", "2"]
    assert [i["style"].startswith("display:block") for i in imgs] == [False, True, False]
    p = _Tags()
    p.feed(widgets.static_sliders(_titled, {"a": [1, 2], "b": ["x", "y", "z"]}))
    assert sorted(a["data-k"] for t, a in p.tags if t == "img") == [f"{i}_{j}" for i in range(2) for j in range(3)]
    with pytest.raises(ValueError, match="at least one value"):
        widgets.static_sliders(_titled, {"a": []})
    with pytest.raises(ValueError, match="start values"):
        widgets.static_sliders(_titled, {"a": [1, 2]}, start={"a": 3})


def test_live_slider_redraws_the_chosen_value():
    box = widgets.live_slider(_titled, [0.01, 0.05, 0.1], "ε_r")
    assert box.drawn == [0.05]
    box.slider.value = 0.1
    assert box.drawn == [0.05, 0.1]


_SLIDER_DRIVER = """<pre id="result"></pre><script>
window.addEventListener('load', function () {
  var r = document.querySelector('.curv-viewer'), s = r.querySelector('.s1'), log = [];
  function shown() { var v = [].filter.call(r.querySelectorAll('img'), function (e) {
    return e.style.display == 'block'; }); return v.map(function (e) { return e.dataset.k; }).join(',')
    + '|' + r.querySelector('.l1').textContent; }
  log.push(shown());
  s.value = 2; s.dispatchEvent(new Event('input')); log.push(shown());
  s.value = 0; s.dispatchEvent(new Event('input')); log.push(shown());
  document.getElementById('result').textContent = JSON.stringify(log);
});
</script>"""


@pytest.mark.slow
def test_static_sliders_swap_frames_in_a_browser(tmp_path):
    body = widgets.static_sliders(_titled, {"ε_r": [0.01, 0.05, 0.1]})
    assert _browser_log(tmp_path, body, _SLIDER_DRIVER, 3000) == ["1|0.05", "2|0.1", "0|0.01"]
