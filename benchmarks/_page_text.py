"""Visible text of a built Jupyter Book page (the article only), one line per block (paragraph, list
item, table row, output block, heading), for diffing two builds: scripts, styles, images and code-cell
inputs are dropped; pandas Styler ids and progress bars are normalised (they differ between any two runs).
--numbers: print only the numbers, in order, one per line.

Used for issue #28's "must not change" check: build the book before and after a refactor (empty results
caches, the same thread settings), run this on each page of both builds and diff:
``python benchmarks/_page_text.py book/_build/html/calibration.html > after.txt``."""
import re
import sys

from bs4 import BeautifulSoup

soup = BeautifulSoup(open(sys.argv[1], encoding="utf-8").read(), "html.parser")
art = soup.find("article") or soup
for t in art.find_all(["script", "style", "img", "svg"]):
    t.decompose()
for t in art.select("div.cell_input"):
    t.decompose()
blocks = art.find_all(["p", "li", "tr", "pre", "h1", "h2", "h3", "h4", "dt", "dd", "caption"])
lines = []
for b in blocks:
    if b.find(["p", "li", "tr", "pre"]):  # a container: its children are blocks of their own
        continue
    ln = re.sub(r"\s+", " ", b.get_text(" ")).strip()
    ln = re.sub(r"T_[0-9a-f]{5}", "T_id", ln)
    if not ln or "it/s]" in ln or "s/it]" in ln or re.search(r"\d+/\d+ \[\d", ln):
        continue
    lines.append(ln)
if "--numbers" in sys.argv:
    for ln in lines:
        for n in re.findall(r"[-−+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", ln):
            print(n)
else:
    print("\n".join(lines))
