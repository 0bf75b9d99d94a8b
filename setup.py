"""Build hook only; the package's metadata is in pyproject.toml.

The report notebooks live at the top of the repository (`notebooks/*.ipynb`), and so do the
example keypoint files one of them lifts (`examples/`). A wheel would leave both behind, and an
installed `diffupose report` would find nothing to run: `build_py` copies them into the built
package as `diffupose/_notebooks/` and `diffupose/_examples/`, where
`diffupose.workbench.assets` finds them when no checkout is around. An editable install uses the
checkout's folders directly (nothing is copied). MANIFEST.in puts both folders into the sdist,
so a wheel built from the sdist carries them too.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# top-level folder -> (its copy inside the package, the files to copy)
ASSETS = {"notebooks": ("_notebooks", ("*.ipynb",)), "examples": ("_examples", ("*.json", "*/*.json", "*.md"))}


class build_py_with_assets(build_py):
    """build_py, then the notebooks and examples copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder, (target, patterns) in ASSETS.items():
            source = ROOT / folder
            files = sorted({p for pattern in patterns for p in source.glob(pattern) if p.is_file()})
            if folder == "notebooks" and not files:
                raise FileNotFoundError(f"{source}: no notebooks to package (build from a checkout or an sdist)")
            for path in files:
                dest = Path(self.build_lib) / "diffupose" / target / path.relative_to(source)
                self.mkpath(str(dest.parent))
                self.copy_file(str(path), str(dest))


setup(cmdclass={"build_py": build_py_with_assets})
