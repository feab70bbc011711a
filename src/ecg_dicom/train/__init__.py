"""Model work: datasets, training, evaluation, site calibration of int8, runtime agreement.

``ecg-dicom dataset|train|evaluate|export`` (:mod:`~ecg_dicom.train.commands`).  This
package sits above the model runtime (:mod:`ecg_dicom.model`) and beside the CLI:
nothing the service runs imports it.  Evaluation reads every page through the
service's own :class:`~ecg_dicom.pipeline.Pipeline`.
"""

from ecg_dicom.train.agreement import agreement
from ecg_dicom.train.balance import balanced_data_yaml, oversampled_train_list
from ecg_dicom.train.commands import register
from ecg_dicom.train.dataset import DatasetSummary, build_dataset
from ecg_dicom.train.evaluate import collect_pages, evaluate, score_predictions
from ecg_dicom.train.site_int8 import calibrate_int8_on_site, site_pages
from ecg_dicom.train.training import TrainConfig, hardware_description, train_model

__all__ = [
    "DatasetSummary",
    "TrainConfig",
    "agreement",
    "balanced_data_yaml",
    "build_dataset",
    "calibrate_int8_on_site",
    "collect_pages",
    "evaluate",
    "hardware_description",
    "oversampled_train_list",
    "register",
    "score_predictions",
    "site_pages",
    "train_model",
]
