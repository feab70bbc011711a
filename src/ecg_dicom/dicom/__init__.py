"""The DICOM edges: the listener (C-ECHO, C-STORE into the spool) and delivery of the
results (C-STORE SCU, DICOMweb STOW-RS).

The public face: code outside ``dicom/`` imports these names from here.
"""

from ecg_dicom.dicom.negotiation import SentObject
from ecg_dicom.dicom.scp import StorageSCP
from ecg_dicom.dicom.scu import destinations_for, send_outputs
from ecg_dicom.dicom.stow import stow_outputs
from ecg_dicom.dicom.tls import check_delivery_tls

__all__ = [
    "SentObject",
    "StorageSCP",
    "check_delivery_tls",
    "destinations_for",
    "send_outputs",
    "stow_outputs",
]
