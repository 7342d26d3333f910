"""FID: Frechet distance between feature statistics of generated and held-out images.

    net, meta = feature_classifier("mnist")            # trained once, cached; meta["test_accuracy"]
    reference = image_statistics(net, ds.test)
    fid = frechet_distance_of_images(net, images, reference)

The default features come from a small classifier rdvae trains on the dataset's training
split (`classifier`); a locally available Inception network plugs in through `inception`.
"""

from .classifier import FeatureClassifier, accuracy, feature_classifier, train_classifier
from .frechet import FeatureStatistics, feature_statistics, frechet_distance
from .inception import TorchScriptFeatures
from .score import DEFAULT_SAMPLES, extract_features, frechet_distance_of_images, image_statistics

__all__ = [
    "DEFAULT_SAMPLES",
    "FeatureClassifier",
    "FeatureStatistics",
    "TorchScriptFeatures",
    "accuracy",
    "extract_features",
    "feature_classifier",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_of_images",
    "image_statistics",
    "train_classifier",
]
