import numpy as np

from common import plotting


def test_curves_draw_the_mean_of_repeated_runs_and_a_band_from_lowest_to_highest(tmp_path, monkeypatch):
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
    assert repeated.get_ydata().tolist() == [22.0, 6.0] and single.get_ydata().tolist() == [30.0, 8.0]
    (band,) = ax.collections  # only the repeated series has one
    corners = band.get_paths()[0].vertices
    assert np.isclose(corners[:, 1].min(), 5.0) and np.isclose(corners[:, 1].max(), 24.0)
    at_100 = corners[np.isclose(corners[:, 0], 100), 1]
    assert np.isclose(at_100.min(), 20.0) and np.isclose(at_100.max(), 24.0)
