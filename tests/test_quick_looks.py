"""Every chapter's quick look (the second command of the `Run:` lines at the top of its file, the
README's "a quick look") run as a newcomer runs it first: offline, on the bundled sample. Each must
show its chapter's lesson the right way up, so that no change of defaults turns it upside down
unnoticed; and the README gives the same commands."""

import re
import shlex

from common import data as data_module
from common.script import run_chapter

import pytest

from conftest import CHAPTERS, ROOT, SCRIPTS, chapter_of

README = (ROOT / "README.md").read_text(encoding="utf-8")


def run_lines(path):
    """The `Run:` field of a chapter's header: its lines, backslash continuations joined."""
    header = path.read_text(encoding="utf-8").split('"""')[1]
    field = header[header.index("Run:") + len("Run:") :]
    return [" ".join(line.split()) for line in field.replace("\\\n", " ").strip().splitlines()]


def script_path(path):
    """How a command names the script: `01_basic_autoencoder.py`, `further/07_better_scores.py`."""
    return path.relative_to(ROOT).as_posix()


def quick_look(path):
    """The quick look's command, as a list of arguments after the script's name."""
    lines = [line for line in run_lines(path) if line.endswith("(a quick look)")]
    assert len(lines) == 1, f"{path.name}: one quick look on its Run: lines"
    command = shlex.split(lines[0].removesuffix("(a quick look)"))
    assert command[:2] == ["python", script_path(path)]
    return command[2:]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_the_readme_gives_each_chapter_its_run_lines_commands(path):
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = [
        " ".join(line.split("#")[0].split())
        for b in blocks
        for line in b.replace("\\\n", " ").splitlines()
    ]
    full = f"python {script_path(path)}"
    quick = shlex.join(["python", script_path(path), *quick_look(path)])
    assert full in commands, f"{path.name}: the README's command for the full run"
    assert any(shlex.join(shlex.split(c)) == quick for c in commands if c), (
        f"{path.name}: the README's quick look"
    )


def lesson_01(m):
    return m["test_mse"] < m[
        "pca_test_mse"
    ], f"autoencoder {m['test_mse']:.5f} against PCA's {m['pca_test_mse']:.5f}"


def lesson_02(m):
    best = m["classical"][m["best_classical"]]["psnr_db"]
    shown = m["dae_psnr_db"] > max(m["plain_ae_psnr_db"], best)
    return (
        shown,
        f"denoising {m['dae_psnr_db']:.2f}, plain {m['plain_ae_psnr_db']:.2f}, classical "
        f"{best:.2f} dB",
    )


def lesson_03(m):
    restored, masked = m["dae_psnr_db"], m["masked_psnr_db"]
    return restored > masked + 5, f"restored {restored:.2f} dB, masked {masked:.2f} dB"


def lesson_04(m):
    gap = m["range_psnr_db"] - m["one_level_psnr_db"]
    return abs(gap) <= 1, f"range model {gap:+.2f} dB from the one-level model at its level"


def lesson_05(m):
    means = {n: r["mean"] for n, r in (m["few_labels"] or {}).items()}
    shown = bool(means) and all(r["sdae"] < min(r["sae"], r["random"]) for r in means.values())
    return shown, f"few-label test errors (%): {means}"


def lesson_06(m):
    deep, pca = m["deep_ae_sq_error_per_image"], m["pca_sq_error_per_image"]
    return deep < pca, f"deep autoencoder {deep:.2f} against PCA's {pca:.2f}"


def lesson_07(m):
    detector, pca = m["mean_auc"][m["detector"]], m["mean_auc"]["PCA"]
    return detector > pca, f"detector ({m['detector']}) {detector:.3f} against PCA's {pca:.3f}"


def lesson_07_better_scores(m):
    combined, distance = m["mean_auc"]["error + code distance"], m["mean_auc"]["code distance"]
    return (
        combined > distance,
        f"error + code distance {combined:.3f}, distance alone {distance:.3f}",
    )


def lesson_08(m):
    return m["binarized"] and m[
        "test_neg_elbo_nats"
    ] <= 120, f"negative ELBO {m['test_neg_elbo_nats']:.1f} nats"


def lesson_08_log_likelihood(m):
    k1, most = m["iw_nll_nats"][0], m["iw_nll_nats"][-1]
    ks = m["importance_samples"]
    return most < k1, f"bound with k = {ks[-1]}: {most:.2f} nats, with k = {ks[0]}: {k1:.2f}"


def lesson_09(m):
    unet, plain = m["unet"]["mean_iou"], m["encoder_decoder"]["mean_iou"]
    return unet > plain, f"U-Net {unet:.3f} against the encoder-decoder's {plain:.3f}"


def lesson_09_few_masks(m):
    means = {n: (r["pretrained"]["mean"], r["random"]["mean"]) for n, r in m["few_masks"].items()}
    shown = bool(means) and all(pretrained > random for pretrained, random in means.values())
    return shown, f"few-mask mean IoU (pretrained, random weights): {means}"


def lesson_10(m):
    topk, pca = m["models"]["topk"]["test_mse"], m["models"]["topk"]["pca_test_mse"]
    return topk < pca, f"top-k autoencoder {topk:.5f} against PCA's {pca:.5f} at as many components"


def lesson_10_sparse_frontier(m):
    ratio = m["l1_error_over_topk_frontier"]
    errors = m["classifier_test_error_pct"]
    shown = ratio > 1 and errors["topk"] < errors["pixels"]
    return shown, (
        f"L1 model {ratio:.2f} x the top-k frontier's error; linear classifier on the top-k codes "
        f"{errors['topk']:.2f} % against the pixels' {errors['pixels']:.2f} %"
    )


def lesson_11(m):
    ours, noise = m["measures"]["diffusion"], m["measures"]["uniform noise"]
    real = m["measures"]["real training digits"]  # what the quick look's classifier names of them
    shown = ours["confident"] >= real["confident"] / 2
    shown = shown and ours["frechet_distance"] < noise["frechet_distance"] / 4
    confident = f"{ours['confident']:.0%} named with confidence >= 0.9"
    distances = (
        f"distance {ours['frechet_distance']:.1f} against noise's {noise['frechet_distance']:.1f}"
    )
    return shown, f"{confident}; {distances}"


def lesson_name(path):
    """The lesson function of a chapter (`lesson_01`) or of a script that goes further (its
    stem)."""
    return f"lesson_{path.name[:2]}" if path.parent == ROOT else f"lesson_{path.stem}"


def test_every_script_has_its_lesson_here():
    """A new chapter (or script that goes further) needs its lesson above: its quick look is run."""
    missing = [path.name for path in SCRIPTS if lesson_name(path) not in globals()]
    assert not missing, f"no lesson function for {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_the_quick_look_shows_the_lesson_offline_on_the_bundled_sample(path, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data_module, "KERAS_CACHE", tmp_path / "no-cache" / "mnist.npz")
    monkeypatch.setattr(data_module, "_online", lambda timeout: False)
    argv = [*quick_look(path), f"--output_dir={tmp_path / 'out'}"]
    if path not in CHAPTERS:  # a script that goes further: after its chapter's quick look
        chapter = chapter_of(path)
        run_chapter(chapter, [*quick_look(chapter), f"--output_dir={tmp_path / 'chapter'}"])
        argv.append(f"--chapter_dir={tmp_path / 'chapter'}")
    metrics = run_chapter(path, argv)
    assert "bundled sample" in metrics["data"]
    assert (tmp_path / "out" / "metrics.json").is_file()
    shown, figures = globals()[lesson_name(path)](metrics)
    assert shown, f"{path.name}'s quick look: {figures}"
