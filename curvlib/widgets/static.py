"""Static sliders for the built site: every frame pre-rendered to PNG, switched by a few lines of JavaScript."""
from __future__ import annotations

import base64
import html
import json
import uuid

import torch

from ..measure.views import WALK_KINDS, eps_per_kind, walk_paths
from ..plots.explorer import walk_figure
from ..plots.theme import to_png


def _png(fig, dpi: int = 80, palette: bool = False) -> str:
    """Base64 PNG of a figure; ``palette``: quantised to 256 colours (maximum coverage: class
    colours and the white background kept to within a few levels; the saving is measured in
    ``benchmarks/results/measurements.md``)."""

    png = to_png(fig, dpi=dpi)
    if palette:
        import io

        from PIL import Image

        buf = io.BytesIO()
        rgb = Image.open(io.BytesIO(png)).convert("RGB")
        rgb.quantize(256, method=Image.Quantize.MAXCOVERAGE).save(buf, format="PNG", optimize=True)
        png = buf.getvalue()
    return base64.b64encode(png).decode()


def _uid() -> str:
    """A fresh element id for one self-contained HTML widget."""
    return "cv" + uuid.uuid4().hex[:8]


def _img(key: str, b64: str, alt: str, shown: bool) -> str:
    """One pre-rendered frame (PNG, base64) of a static widget, found by its ``data-k``."""
    display = "block" if shown else "none"
    return (f'<img data-k="{key}" style="display:{display};max-width:100%" '
            f'alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">')


def static_sliders(render, sliders: dict, start: dict | None = None) -> str:
    """Self-contained HTML: one range slider per entry of ``sliders`` (label → values), swapping
    frames pre-rendered for every combination. ``render(*values)`` returns a matplotlib Figure
    (closed after rendering); ``start``: label → initial value (default: the middle one). No
    <script> element and no network: the sliders' inline handlers only show/hide <img> frames,
    found by ``data-k`` = the sliders' indices joined by "_"."""
    import itertools

    import matplotlib.pyplot as plt

    labels, values = list(sliders), [list(v) for v in sliders.values()]
    if not labels or any(not v for v in values):
        raise ValueError("need at least one slider and at least one value per slider")
    start = start or {}
    unknown = set(start) - set(labels)
    if unknown or any(start[k] not in sliders[k] for k in start):
        raise ValueError(f"start values must be among the sliders' values, got {start}")
    first = [v.index(start[k]) if k in start else len(v) // 2 for k, v in zip(labels, values)]
    text = [[f"{x:g}" if isinstance(x, float) else str(x) for x in v] for v in values]
    uid = _uid()
    n = len(labels)
    handler = (f"var r=document.getElementById('{uid}');var k=[];"
               f"for(var i=1;i<={n};i++){{var s=r.querySelector('.s'+i);k.push(s.value);"
               "r.querySelector('.l'+i).textContent=JSON.parse(s.dataset.v)[s.value];}"
               "k=k.join('_');r.querySelectorAll('img').forEach(function(e){"
               "e.style.display=(e.dataset.k==k)?'block':'none';});")
    h = html.escape(handler, quote=True)
    parts = [f'<div id="{uid}" class="curv-viewer" style="max-width:760px">',
             '<div style="display:flex;gap:2em;align-items:center;font-family:sans-serif;font-size:0.9em">']
    for i, (label, t, f0) in enumerate(zip(labels, text, first), start=1):
        parts.append(f'<label>{html.escape(label)} <input class="s{i}" type="range" min="0" max="{len(t) - 1}" '
                     f'step="1" value="{f0}" data-v="{html.escape(json.dumps(t))}" oninput="{h}"> '
                     f'<b class="l{i}">{html.escape(t[f0])}</b></label>')
    parts.append("</div>")
    for idx in itertools.product(*(range(len(v)) for v in values)):
        fig = render(*(v[i] for v, i in zip(values, idx)))
        alt = ", ".join(f"{label} {t[i]}" for label, t, i in zip(labels, text, idx))
        parts.append(_img("_".join(map(str, idx)), _png(fig), alt, list(idx) == first))
        plt.close(fig)
    parts.append("</div>")
    return "\n".join(parts)


def static_explorer(render, steps, counts, label1: str = "ε step", label2: str = "steps") -> str:
    """:func:`static_sliders` over ``steps`` × ``counts`` (the explorer's two sliders; the step count
    starts at its second value)."""
    counts = list(counts)
    return static_sliders(render, {label1: steps, label2: counts},
                          start={label2: counts[min(1, len(counts) - 1)]} if counts else None)


def static_trajectory_player(models: dict, x: torch.Tensor, y, eps_max, n: int = 16, kinds=WALK_KINDS,
                             names=None, colors: dict | None = None, seed: int = 0, interval: int = 500,
                             dpi: int = 80) -> str:
    """Self-contained HTML: every frame k = 0 … n of :func:`plot_walk` for each direction kind,
    pre-rendered (PNG at ``dpi``), with Play / Pause buttons, a step slider and (for several
    kinds) a direction selector. ``eps_max``: one ε_max or kind → ε_max; ``interval``: ms per
    frame. No <script> element and no network: inline handlers only; Play keeps its timer id in
    the block's ``data-timer`` and stops at the last frame (from there it starts again at 0)."""
    import matplotlib.pyplot as plt

    eps = eps_per_kind(eps_max, kinds)
    uid = _uid()
    frames, values = [], {}
    for kd, e in eps.items():
        walk = walk_paths(models, x, y, kd, e, n, seed)
        values[kd] = [f"{v:.3g}" for v in walk["eps"].tolist()]
        fig, frame = walk_figure(walk, names, colors)
        frames += [(kd, k, _png(frame(k), dpi, palette=True)) for k in range(n + 1)]
        plt.close(fig)
    kd0 = next(iter(eps))
    show = (f"var r=document.getElementById('{uid}'),s=r.querySelector('.sk'),d=r.querySelector('.kd');"
            "var kd=d?d.value:r.dataset.kind,key=kd+'_'+s.value;"
            "r.querySelectorAll('img').forEach(function(e){e.style.display=e.dataset.k==key?'block':'none';});"
            "r.querySelector('.lk').textContent=s.value+'/'+s.max+', ε = '+JSON.parse(r.dataset.eps)[kd][s.value];")
    stop = f"var r=document.getElementById('{uid}');clearInterval(+r.dataset.timer);delete r.dataset.timer;"
    start = (f"var r=document.getElementById('{uid}'),s=r.querySelector('.sk');if(r.dataset.timer)return;"
             "if(s.value==s.max){s.value=0;s.oninput();}"
             "r.dataset.timer=setInterval(function(){s.value=+s.value+1;s.oninput();"
             f"if(s.value==s.max){{clearInterval(+r.dataset.timer);delete r.dataset.timer;}}}},{int(interval)});")
    h = {name: html.escape(code, quote=True) for name, code in (("show", show), ("start", start), ("stop", stop))}
    button = 'style="font-size:0.95em;padding:0.1em 0.8em"'
    parts = [f'<div id="{uid}" class="curv-player" style="max-width:760px" data-kind="{kd0}" '
             f'data-eps="{html.escape(json.dumps(values))}">',
             '<div style="display:flex;gap:1em;align-items:center;flex-wrap:wrap;font-family:sans-serif;'
             'font-size:0.9em">',
             f'<button type="button" class="play" {button} onclick="{h["start"]}">▶ Play</button>',
             f'<button type="button" class="pause" {button} onclick="{h["stop"]}">❚❚ Pause</button>',
             f'<label>step <input class="sk" type="range" min="0" max="{n}" step="1" value="0" '
             f'oninput="{h["show"]}"> <b class="lk">0/{n}, ε = 0</b></label>']
    if len(eps) > 1:
        options = "".join(f'<option value="{kd}">{kd}</option>' for kd in eps)
        parts.append(f'<label>direction <select class="kd" onchange="{h["show"]}">{options}</select></label>')
    parts.append("</div>")
    parts += [_img(f"{kd}_{k}", b64, f"{kd} direction, step {k} of {n}, ε = {values[kd][k]}", (kd, k) == (kd0, 0))
              for kd, k, b64 in frames]
    parts.append("</div>")
    return "\n".join(parts)
