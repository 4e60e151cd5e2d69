#!/usr/bin/env bash
# Unpack MathJax 3 and the ipywidgets HTML manager from the npm registry into book/_vendor
# (ignored by git, never committed), so the built site works offline. Without npm: say so and
# leave the CDN defaults in place.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/_vendor"
MATHJAX=${MATHJAX_VERSION:-3.2.2}
HTML_MANAGER=${HTML_MANAGER_VERSION:-1.0.13}   # matches ipywidgets 8.1 (__html_manager_version__ ^1.0.1)
if [ -f "$dest/mathjax/es5/tex-chtml.js" ] && [ -f "$dest/html-manager/dist/embed.js" ]; then
  echo "vendor: assets already in $dest"; exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "vendor: npm not found; the site will load MathJax and widgets from CDNs" >&2; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$MATHJAX" "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null)
mkdir -p "$dest/mathjax" "$dest/html-manager"
tar xzf "$tmp"/mathjax-*.tgz -C "$dest/mathjax" --strip-components=1 package/es5 package/LICENSE
tar xzf "$tmp"/jupyter-widgets-html-manager-*.tgz -C "$dest/html-manager" --strip-components=1 package/dist package/LICENSE
rm -f "$dest"/html-manager/dist/*.map
echo "vendor: MathJax $MATHJAX and html-manager $HTML_MANAGER in $dest"
