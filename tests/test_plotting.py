"""weighting.png: the loss axis fitted to the observed losses, their histogram beneath, the legend clear."""
import numpy as np

from cmwnet.run_folder import plotting
from cmwnet.weighting import CMWNet


def test_weighting_plot_fits_the_observed_losses(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    losses = np.concatenate([rng.exponential(0.3, 900), 2 + rng.exponential(0.5, 100), [np.nan] * 10])
    labels = np.zeros(1010, dtype=int)
    clean = labels.copy()
    clean[900:1000] = 1   # the high-loss samples are mislabelled
    split = plotting.split_losses(losses, labels, clean)
    assert set(split) == {"clean labels", "mislabelled"} and len(split["mislabelled"]) == 100
    assert set(plotting.split_losses(losses, labels, labels)) == {"training samples"}
    seen = {}
    real_save = plotting.save_figure
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path, dpi=110: (seen.update(fig=fig), real_save(fig, path, dpi))[1])
    net = CMWNet.from_counts([500, 400, 50, 40, 5, 4, 3, 2, 1, 1])
    plotting.plot_weighting(net, tmp_path / "w.png", split, title=plotting.run_title("cmwnet", "cifar10", 100, "sym", 0.4))
    ax = seen["fig"].axes[0]
    hi = float(np.quantile(losses[~np.isnan(losses)], 0.995))
    assert abs(ax.get_xlim()[1] - hi) < 1e-6 and hi < 6   # not the old fixed 0-10
    assert ax.get_title().replace("\n", " ") == "cmwnet on cifar10 (imbalance factor 100, 40% sym noise): learned weighting"
    hist = seen["fig"].axes[1]
    assert "samples per loss bin" in hist.get_ylabel() and len(hist.get_yticks()) > 0   # counts, not a weight
    assert len(hist.patches) == 2 * 39   # clean and mislabelled histograms of 39 bins each
    fig = seen["fig"]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0   # below the axes: covers no curve
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "mislabelled (100 samples)" in texts and any(t.startswith("family 0") for t in texts)


def test_titles_give_the_realised_rate_and_legends_name_the_classes(tmp_path):
    title = plotting.run_title("cmwnet", "cifar10", 1, "asym", 0.4, realised_rate=0.061)
    assert title == "cmwnet on cifar10 (40% asym noise, 6.1% of labels wrong): learned weighting"
    net = CMWNet([0, 0, 1, 2, 2, 2, 2, 2], num_families=3)
    names = ["cat", "dog", "fox", "owl", "bee", "ant", "elk", "yak"]
    labels = plotting.curve_labels(net, names)
    assert labels[0] == "family 0 (largest classes: cat, dog)" and labels[1] == "family 1 (middle classes: fox)"
    assert labels[2] == "family 2 (smallest classes: owl, bee, ant, +2 more)"
    assert plotting.curve_labels(net)[1] == "family 1 (middle classes: 2)"   # indices without names


def test_without_losses_the_axis_falls_back(tmp_path):
    assert plotting.loss_range({}, 10.0) == 10.0
    assert plotting.load_final_losses([tmp_path / "missing.npz"]) == {}
    np.savez(tmp_path / "f.npz", weights=np.ones(3), labels=np.array([0, 1, 1]), losses=np.array([0.1, 0.2, 3.0]),
             clean_labels=np.array([0, 1, 0]))
    got = plotting.load_final_losses([tmp_path / "f.npz"])
    assert list(got["mislabelled"]) == [3.0] and len(got["clean labels"]) == 2
