"""`dvc plots show` with the offline template: a real DVC render whose page loads nothing from the network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO
from vbert.tools.plots import build_offline_template


def run(*args: str, cwd: Path) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(
        args,
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"},
    )


def test_offline_template_renders_dvc_plots(tmp_path):
    npm_dir = tmp_path / "vega"
    npm_dir.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(REPO / "plots" / "vega" / name, npm_dir / name)
    run("npm", "ci", "--no-audit", "--no-fund", "--silent", cwd=npm_dir)
    template = tmp_path / "offline.html"
    build_offline_template(npm_dir / "node_modules", template)

    project = tmp_path / "project"
    project.mkdir()
    (project / "scores.csv").write_text("phase,step,f1\nmsl128,0,0.5\nmsl128,10,0.6\nmsl512_from_10,14,0.7\n")
    (project / "seeds.csv").write_text(
        "phase,step,test_f1_mean,test_f1_min,test_f1_max\nreference,0,0.61,0.6,0.62\nmsl128,10,0.68,0.66,0.7\n"
    )
    (project / "dvc.yaml").write_text(
        "plots:\n  - scores.csv:\n      template: phases\n      x: step\n      y: f1\n"
        "  - seeds.csv:\n      template: spread\n      x: step\n      y: test_f1_mean\n"
    )
    run("git", "init", "-q", cwd=project)
    run(sys.executable, "-m", "dvc", "init", "-q", cwd=project)
    (project / ".dvc" / "plots").mkdir()
    for template_file in ("phases.json", "spread.json"):
        shutil.copy(REPO / ".dvc" / "plots" / template_file, project / ".dvc" / "plots" / template_file)
    run(sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template), "-o", "out", cwd=project)
    page = (project / "out" / "index.html").read_text()
    assert "vegaEmbed(" in page and '"f1"' in page
    assert '"pretraining phase"' in page and '"msl512_from_10"' in page  # the repo's template, one line per phase
    assert "range over seeds" in page and "replace('test_f1_mean', '_mean', '_min')" in page  # the spread template
    assert "<script src=" not in page and "cdn.jsdelivr" not in page
    assert page.count("<script>/* vega") == 3
