"""Model work: dataset building, training, evaluation and export (``ecg-dicom dataset|train|evaluate|export``).

Kept apart from the service stages: the service imports only :mod:`ecg_dicom.model.detector`,
which uses :mod:`ecg_dicom.train.export` to derive runtime models on first use.
"""
