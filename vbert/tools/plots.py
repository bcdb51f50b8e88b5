"""An HTML template for `dvc plots show` that works offline: vega, vega-lite and vega-embed inlined.

DVC's default page loads those three libraries from a CDN, which a closed network cannot reach. The template keeps
DVC's `{plot_divs}` placeholder and leaves out `{scripts}` (the CDN tags). The libraries come from the npm packages
pinned in `plots/vega/package.json` (`make plots` installs them and builds the template).

    python -m vbert.tools.plots plots/vega/node_modules .cache/vega-offline.html
"""

from __future__ import annotations

import sys
from pathlib import Path

from vbert.core.atomic import write_text
from vbert.core.errors import InputError

LIBRARIES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>vbert plots</title>
{libraries}
    <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def build_offline_template(node_modules: Path, out: Path) -> None:
    """Write the template with each library's minified code in a <script> element."""
    scripts = []
    for library in LIBRARIES:
        path = node_modules / library
        if not path.exists():
            raise InputError(f"{path}: missing; run `make plots` (npm ci in plots/vega) first")
        code = path.read_text(encoding="utf-8")
        if "</script" in code:
            raise InputError(f"{path}: contains '</script' and cannot be inlined")
        scripts.append(f"    <script>/* {library} */\n{code}\n    </script>")
    write_text(out, PAGE.format(libraries="\n".join(scripts)))


if __name__ == "__main__":
    build_offline_template(Path(sys.argv[1]), Path(sys.argv[2]))
