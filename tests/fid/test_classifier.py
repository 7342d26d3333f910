import pytest
import torch

from rdvae.fid import (
    FeatureClassifier,
    accuracy,
    feature_classifier,
    frechet_distance_of_images,
    image_statistics,
    train_classifier,
)


def bars(n=400, seed=0):
    """8x8 images: class 0 a bright top half, class 1 a bright bottom half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, 8, 8, generator=g)
    x[labels == 0, :, :4] += 0.7
    x[labels == 1, :, 4:] += 0.7
    return x, labels


def test_classifier_learns_a_separable_task():
    x, labels = bars()
    net = train_classifier(x, labels, epochs=3, batch_size=32, lr=3e-3, progress=False)
    test_x, test_labels = bars(200, seed=1)
    assert accuracy(net, test_x, test_labels) == 1.0
    assert net.features(test_x).shape == (200, 128)


def test_fid_of_images_separates_distributions():
    net = FeatureClassifier((1, 8, 8), classes=2)
    torch.nn.init.normal_(net.hidden[0].weight, std=0.3)
    x, labels = bars(2000)
    top, bottom = x[labels == 0], x[labels == 1]
    reference = image_statistics(net, top[:500])
    same = frechet_distance_of_images(net, top[500:], reference)
    other = frechet_distance_of_images(net, bottom, reference)
    assert other > 20 * same


def test_cached_classifier_of_a_dataset(tmp_path):
    net, meta = feature_classifier("digits", cache_folder=tmp_path, epochs=15, progress=False)
    assert meta["dataset"] == "digits" and meta["epochs"] == 15
    assert 0.8 < meta["test_accuracy"] <= 1.0
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    again, meta_again = feature_classifier("digits", cache_folder=tmp_path, epochs=15, progress=False)
    assert meta_again == meta
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(again.features(x), net.features(x))


def test_unlabelled_data_is_refused(tmp_path, monkeypatch):
    import rdvae.fid.classifier as classifier

    class Unlabelled:
        labels = {"train": None, "test": None}
        event_shape = (1, 8, 8)

    monkeypatch.setattr(classifier, "load_dataset", lambda name, root=None: Unlabelled())
    with pytest.raises(ValueError, match="labelled images"):
        feature_classifier("binarized-mnist", cache_folder=tmp_path)
