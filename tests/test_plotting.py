from common import plotting

import numpy as np


def test_curves_draw_the_mean_of_repeated_runs_and_a_band_from_lowest_to_highest(
    tmp_path, monkeypatch
):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    plotting.curves(
        tmp_path / "runs.png",
        [100, 1000],
        {"repeated": [[20.0, 24.0, 22.0], [5.0, 6.0, 7.0]], "single": [30.0, 8.0]},
        xlabel="labels",
        ylabel="error",
    )
    ax = figures[0].axes[0]
    repeated, single = ax.get_lines()
    assert repeated.get_ydata().tolist() == [22.0, 6.0] and single.get_ydata().tolist() == [
        30.0,
        8.0,
    ]
    (band,) = ax.collections  # only the repeated series has one
    corners = band.get_paths()[0].vertices
    assert np.isclose(corners[:, 1].min(), 5.0) and np.isclose(corners[:, 1].max(), 24.0)
    at_100 = corners[np.isclose(corners[:, 0], 100), 1]
    assert np.isclose(at_100.min(), 20.0) and np.isclose(at_100.max(), 24.0)


def test_image_grids_put_every_image_in_its_row_and_column_and_mark_the_axes(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    grid = np.random.default_rng(0).uniform(0, 1, (3, 4, 5, 6))  # 3 rows, 4 columns of 5x6 images
    plotting.image_grids(
        tmp_path / "g.png",
        {"left": grid, "right": grid[::-1]},
        axis_values=([1, 2, 3, 4], [9, 8, 7]),
        axis_labels=("a", "b"),
    )
    left, right = figures[0].axes
    shown = left.get_images()[0].get_array()
    assert shown.shape == (3 * 6 - 1, 4 * 7 - 1)
    for r in range(3):
        for c in range(4):
            assert np.allclose(shown[r * 6 : r * 6 + 5, c * 7 : c * 7 + 6], grid[r, c])
    assert np.allclose(right.get_images()[0].get_array()[:5, :6], grid[2, 0])
    assert [t.get_text() for t in left.get_xticklabels()] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in left.get_yticklabels()] == ["9", "8", "7"]
    assert left.get_xlabel() == "a" and left.get_ylabel() == "b" and left.get_title() == "left"


def test_labelled_scatter_names_each_class_in_the_legend_and_keeps_the_axes(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    points = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 1, 2, 0, 1, 2])
    plotting.labelled_scatter(
        tmp_path / "s.png", points, labels, ["cat", "dog", "eel"], xlabel="z1", ylabel="z2"
    )
    plotting.labelled_scatter(tmp_path / "t.png", points, None, xlabel="z1", ylabel="z2")
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cat", "dog", "eel"]
    assert np.allclose(ax.collections[1].get_offsets(), points[[1, 4]])  # the dogs
    assert ax.get_xlabel() == "z1" and ax.get_ylabel() == "z2"
    (unlabelled,) = figures[1].axes[0].collections  # without labels: one set of points, no legend
    assert len(unlabelled.get_offsets()) == 6 and figures[1].axes[0].get_legend() is None


def test_score_histograms_show_each_group_as_fractions_with_the_threshold(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    rng = np.random.default_rng(0)
    normal, anomalies = rng.lognormal(1, 0.5, 300), rng.lognormal(3, 0.5, 1200)
    groups = {"normal": normal, "other": anomalies}
    plotting.score_histograms(tmp_path / "h.png", {"detector": groups}, {"detector": 9.0})
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log"  # scores spread over more than a factor of 10
    heights = {}
    for patch in ax.patches:
        heights.setdefault(patch.get_facecolor(), []).append(patch.get_height())
    # each group sums to 1, whatever its size
    assert sorted(round(sum(h), 6) for h in heights.values()) == [1.0, 1.0]
    assert any(np.allclose(line.get_xdata(), 9.0) for line in ax.get_lines())  # the threshold


def test_roc_curves_and_bars_draw_one_line_or_bar_per_entry(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    plotting.roc_curves(
        tmp_path / "r.png", {"a": ([0, 0.5, 1], [0, 0.9, 1]), "b": ([0, 1], [0, 1])}
    )
    assert len(figures[0].axes[0].get_lines()) == 3  # two curves and the chance diagonal
    plotting.bars(
        tmp_path / "b.png",
        ["0", "1", "2"],
        {"x": [0.9, 0.8, None], "y": [0.7, 0.6, 0.5]},
        ylabel="AUC",
    )
    heights = [p.get_height() for p in figures[1].axes[0].patches]
    # None: a gap
    assert heights[:2] + heights[3:] == [0.9, 0.8, 0.7, 0.6, 0.5] and np.isnan(heights[2])


def test_loss_curves_put_a_long_legend_beside_the_axes_where_it_hides_no_curve(
    tmp_path, monkeypatch
):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    few = {"a": {"loss": [3.0, 2.0], "val_loss": [3.5, 2.5]}}
    many = {f"layer {k}": {"loss": [3.0 - k, 2.0 - k / 2]} for k in range(5)}
    plotting.loss_curves(tmp_path / "few.png", few)
    plotting.loss_curves(tmp_path / "many.png", many)
    for fig, names in zip(
        figures, (["a: training", "a: validation"], [f"layer {k}: training" for k in range(5)])
    ):
        fig.canvas.draw()
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    inside, beside = (fig.axes[0].get_legend().get_window_extent().x0 for fig in figures)
    # two curves: the legend inside the axes
    assert inside < figures[0].axes[0].get_window_extent().x1
    assert beside > figures[1].axes[0].get_window_extent().x1  # five: to the right of them
