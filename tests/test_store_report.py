"""``spinfits store show`` and ``spinfits store report`` on a store of the real Human3.6M frames.

The store (tests/h36m_store.py) has two versions (a precompute commit: rows 0-2 fitted, row 3
failed; a training commit: rows 0 and 1 improved). The report is opened in a real headless
Chromium (installed by scripts/test.sh), which must load it without console messages and decode
every picture.
"""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from h36m_store import FAILED_REASON, FAILED_ROW, NAME, make_h36m_store
from PIL import Image

from spinfits.cli import main
from spinfits.fitting.data.dataset import crop_to_image
from spinfits.fitting.evaluation.overlay import FitRenderer
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.report.dataset_overlays import DatasetOverlays
from spinfits.report.summary import dataset_commits, spread

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small meshes: one thread is faster

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def h36m(tmp_path_factory, standin_files, shared_data):
    return make_h36m_store(tmp_path_factory.mktemp("h36m") / "store", standin_files, shared_data)


def show_argv(h36m, standin_dir, out, *extra):
    return [
        "store",
        "show",
        str(h36m.path),
        NAME,
        "--npz",
        str(h36m.npz),
        "--images",
        str(h36m.images),
        "--model-dir",
        str(standin_dir),
        "--out",
        str(out),
        *extra,
    ]


def read_png(path):
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB")), dict(picture.text)


# ------------------------------------------------------------------------------------ store show
def test_show_draws_each_fit_where_it_projects(h36m, standin_files, standin_dir, tmp_path, capsys):
    out = tmp_path / "show"
    assert main(show_argv(h36m, standin_dir, out, "--rows", "0-3", "--side")) == 0
    printed = capsys.readouterr().out
    assert f"row {FAILED_ROW}: no fit (failed: {FAILED_REASON})" in printed
    assert "3 of 4 rows drawn" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        f"{NAME}_{r}{s}.png" for r in range(3) for s in ("", "_side")
    ]

    renderer = FitRenderer(standin_files)
    overlays = DatasetOverlays(renderer, h36m.dataset, h36m.images)
    fits = h36m.store.read(NAME)
    for row in range(3):
        original = np.asarray(Image.open(h36m.images / h36m.dataset.imgname[row]).convert("RGB"))
        front, text = read_png(out / f"{NAME}_{row}.png")
        side, _ = read_png(out / f"{NAME}_{row}_side.png")
        assert front.shape == side.shape == original.shape
        assert "stand-in body model" in text["Description"] and f"row {row}, loss" in text["Description"]

        # where the stored fit's mesh projects: in its 224-px crop (focal 5000), mapped to the image
        vertices = renderer.vertices(fits.pose[row : row + 1], fits.betas[row : row + 1])
        crop = perspective_projection(
            vertices, torch.as_tensor(fits.cam_t[row : row + 1]), 5000.0, torch.tensor([[112.0, 112.0]])
        ).numpy()
        xy = crop_to_image(crop, h36m.dataset.center[row : row + 1], h36m.dataset.scale[row : row + 1])[0]
        keypoints = overlays.image_keypoints(row)
        keypoints = keypoints[keypoints[:, 2] > 0, :2]
        body = front.shape[0] - 60  # above the caption band
        changed = (front[:body] != original[:body]).any(-1)
        rows, cols = np.nonzero(changed)
        centres = np.stack([cols + 0.5, rows + 0.5], -1)
        near_keypoint = (np.linalg.norm(centres[:, None] - keypoints[None], axis=-1) < 12).any(1)
        mesh = centres[~near_keypoint]  # changed pixels no keypoint explains: the mesh's
        assert len(mesh) > 2000
        low, high = xy.min(0) - 1.5, xy.max(0) + 1.5
        assert ((mesh >= low) & (mesh <= high)).all()
        far = np.ones(changed.shape, bool)
        far[int(max(0, low[1] - 15)) : int(high[1] + 15), int(max(0, low[0] - 15)) : int(high[0] + 15)] = (
            False
        )
        assert not changed[far].any()  # away from the body and its keypoints: the image itself


def test_show_reads_the_version_asked_for(h36m, standin_dir, tmp_path, capsys):
    first, _ = h36m.versions
    assert main(show_argv(h36m, standin_dir, tmp_path / "v1", "--rows", "0,2", "--version", first)) == 0
    assert main(show_argv(h36m, standin_dir, tmp_path / "tip", "--rows", "0,2")) == 0
    assert "offline step 0" in read_png(tmp_path / "v1" / f"{NAME}_0.png")[1]["Description"]
    assert "in_loop step 40" in read_png(tmp_path / "tip" / f"{NAME}_0.png")[1]["Description"]
    old, new = (read_png(tmp_path / v / f"{NAME}_0.png")[0] for v in ("v1", "tip"))
    assert (old != new).any(-1).sum() > 100  # row 0 was refined in version 2
    unchanged = [read_png(tmp_path / v / f"{NAME}_2.png")[0] for v in ("v1", "tip")]
    np.testing.assert_array_equal(*unchanged)


def test_show_refuses_what_does_not_belong_to_the_store(
    h36m, standin_dir, other_model_copy, tmp_path, capsys
):
    assert main(show_argv(h36m, other_model_copy(standin_dir), tmp_path / "a")) == 2
    assert "the store's fits are of" in capsys.readouterr().err

    arrays = dict(np.load(h36m.npz))
    arrays["center"] = arrays["center"] + 5.0
    other = tmp_path / "other.npz"
    np.savez(other, **arrays)
    argv = show_argv(h36m, standin_dir, tmp_path / "b")
    argv[argv.index(str(h36m.npz))] = str(other)
    assert main(argv) == 2
    assert f"store dataset '{NAME}' was made from another file" in capsys.readouterr().err
    argv[argv.index("--npz")] = "--dataset"  # the old name of the file: still read, with a warning
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"warning: `spinfits store show --dataset {other}` is deprecated: the file is --npz {other}" in err
    assert f"store dataset '{NAME}' was made from another file" in err
    argv.remove("--dataset")
    argv.remove(str(other))
    assert main(argv) == 2
    assert "`spinfits store show` needs --npz DATA.npz" in capsys.readouterr().err

    assert main(show_argv(h36m, standin_dir, tmp_path / "c", "--rows", "1,2-9")) == 2
    assert "rows [4, 5, 6, 7, 8, 9] are outside the dataset's 0..3" in capsys.readouterr().err
    assert main(show_argv(h36m, standin_dir, tmp_path / "c", "--rows", "one")) == 2
    assert "expected rows and ranges like 0,5,10-19" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------- store report
def test_history_of_a_dataset_names_its_jobs(h36m):
    points = dataset_commits(NAME, h36m.store.history.log())
    assert [p.version.snapshot_id for p in points] == list(h36m.versions)
    assert [(p.source, p.rows_improved, p.rows_failed) for p in points] == [
        ("precompute", 3, 1),
        ("training", 2, 0),
    ]
    assert spread(10, 4) == [0, 3, 6, 9] and spread(3, 8) == [0, 1, 2] and spread(5, 1) == [4]


def find_browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip(f"no Chromium here ({', '.join(BROWSERS)}); scripts/test.sh installs chromium-headless-shell")


def open_in_browser(page: Path, profile: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: (the DOM after its load event, its console messages)."""
    done = subprocess.run(
        [
            find_browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def decoded_images(dom: str) -> tuple[int, int]:
    total = re.search(r'data-images-total="(\d+)"', dom)
    decoded = re.search(r'data-images-decoded="(\d+)"', dom)
    assert total and decoded, "the page's load script did not run"
    return int(total.group(1)), int(decoded.group(1))


def test_browser_check_catches_errors_and_broken_pictures(tmp_path):
    """The check itself: a script error is a console message, a broken picture is not decoded."""
    from spinfits.report.page import SCRIPT

    page = tmp_path / "broken.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><script>{SCRIPT}</script></head><body>"
        '<img alt="broken" src="data:image/png;base64,AAAA"><script>missing();</script></body></html>'
    )
    dom, console = open_in_browser(page, tmp_path / "profile")
    assert any("missing is not defined" in line for line in console)
    assert decoded_images(dom) == (1, 0)


def test_report_is_one_page_that_shows_everything(h36m, standin_dir, tmp_path, capsys):
    page = tmp_path / "report.html"
    argv = ["store", "report", str(h36m.path), "--out", str(page), "--top", "2"]
    argv += [
        "--npz",
        f"{NAME}={h36m.npz}",
        "--images-root",
        str(h36m.images),
        "--model-dir",
        str(standin_dir),
    ]
    assert main(argv) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    text = page.read_text()

    # self-contained: every picture inline, no address of anything outside the page
    sources = re.findall(r'<img[^>]* src="([^"]*)"', text)
    assert len(sources) == 5  # histogram, timeline, 2 worst and 1 best fit over their images
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    outside_pictures = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text)
    assert not re.search(r"(https?|file|ftp):|//|<link|@import|url\(", outside_pictures, re.IGNORECASE)
    # what it says
    for version in h36m.versions:
        assert version in text
    assert "precompute" in text and "training" in text
    assert FAILED_REASON in text and "stand-in body model" in text
    assert "row 2: loss" in text  # the worst fit (never refined) is shown
    assert text.count('class="gallery"') == 2

    dom, console = open_in_browser(page, tmp_path / "profile")
    assert console == []
    assert decoded_images(dom) == (5, 5)


def test_report_without_images_lists_the_fits(h36m, tmp_path, capsys):
    page = tmp_path / "plain.html"
    assert main(["store", "report", str(h36m.path), "--out", str(page), "--version", h36m.versions[0]]) == 0
    text = page.read_text()
    assert "--npz NAME=DATA.npz --images-root DIR --model-dir DIR" in text
    assert text.count("<img") == 2 and 'class="gallery"' not in text
    assert h36m.versions[1] not in text  # version 1's report knows nothing of version 2
    dom, console = open_in_browser(page, tmp_path / "profile")
    assert console == [] and decoded_images(dom) == (2, 2)


def test_report_input_errors_exit_2(h36m, standin_dir, tmp_path, capsys):
    base = ["store", "report", str(h36m.path), "--out", str(tmp_path / "r.html")]
    assert main([*base, "--npz", str(h36m.npz)]) == 2
    assert (
        f"--npz {NAME}=... needs its images: add --images-root DIR (or {NAME}=DIR)" in capsys.readouterr().err
    )
    assert main([*base, "--images-root", f"{NAME}={h36m.images}"]) == 2
    assert f"--images-root names ['{NAME}'], which no --npz gives" in capsys.readouterr().err
    assert main([*base, "--npz", str(h36m.npz), "--images-root", str(h36m.images)]) == 2
    assert "--npz draws fits with the body model: add --model-dir DIR" in capsys.readouterr().err
    # the old names still work, with a warning that names the new ones
    assert main([*base, "--dataset", str(h36m.npz), "--images", str(h36m.images)]) == 2
    err = capsys.readouterr().err
    assert f"warning: `spinfits store report --dataset {h36m.npz}` is deprecated: the file is --npz" in err
    assert "`spinfits store report --images" in err and "is deprecated: use --images-root DIR" in err
    assert "--npz draws fits with the body model" in err
    assert main([*base, "--npz", f"coco={h36m.npz}"]) == 2
    assert "the store has no dataset 'coco'; it holds ['h36m']" in capsys.readouterr().err
    assert main([*base, "--top", "0"]) == 2
    assert "top must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main([*base[:-1], str(tmp_path / "r.txt")]) == 2
    assert "must end in .html" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
