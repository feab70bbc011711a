"""ecg-dicom: a DICOM node that reads ECGs with a YOLOv8m detector.

Results are AI output, not for diagnostic use.
"""

import logging

__version__ = "0.1.0"

# A library logs through a NullHandler; the application (cli.py) configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())
