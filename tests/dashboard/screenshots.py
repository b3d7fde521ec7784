"""Shrink the browser test's screenshots for the documentation: `make screenshots` runs the
browser test with its pictures going to docs/img/dashboard/, then this module over that folder.

    python -m tests.dashboard.screenshots docs/img/dashboard [--width 1200]

Each PNG is scaled down to at most ``width`` pixels wide and stored with a 256-colour palette
(a dashboard is flat colours and text, so the palette loses nothing a reader sees and the
files are several times smaller than the browser's true-colour PNGs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def shrink(folder: Path, width: int = 1200) -> list[tuple[Path, int, int]]:
    """Rewrite every ``*.png`` in ``folder`` at most ``width`` wide with a palette; returns
    (path, bytes before, bytes after) per file."""
    from PIL import Image

    done = []
    for path in sorted(folder.glob("*.png")):
        before = path.stat().st_size
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.width > width:
                image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        done.append((path, before, path.stat().st_size))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args(argv)
    rows = shrink(args.folder, args.width)
    if not rows:
        print(
            f"error: no screenshots in {args.folder}; run the browser test with DISPUTE_CLASSIFIER_SCREENSHOTS={args.folder}",
            file=sys.stderr,
        )
        return 1
    for path, before, after in rows:
        print(f"{path}: {before / 1024:.0f} KB -> {after / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
