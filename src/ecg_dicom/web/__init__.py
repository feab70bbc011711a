"""The HTTP side: health, Prometheus metrics, jobs, a classify API and the upload page.

:func:`create_app` is given the parts it serves (settings, spool, queue, pipeline)
and imports no service; :class:`HttpServer` runs it in a background thread.
"""

from ecg_dicom.web.app import HttpServer, create_app

__all__ = ["HttpServer", "create_app"]
