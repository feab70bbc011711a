"""The HTTP side: health, Prometheus metrics, jobs, a classify API and the upload page."""
