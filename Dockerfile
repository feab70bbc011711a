# ecg-dicom: DICOM ECG-AI node, CPU only.  Build: docker build -t ecg-dicom .
# Run:   docker run -p 11112:11112 -p 8080:8080 -e ECG_DICOM_HTTP__TOKEN=<a long random secret> \
#          -v $PWD/site.yaml:/etc/ecg-dicom/site.yaml:ro ecg-dicom
# The viewer listens on all addresses in the container, so it shows patient data only after
# sign-in with that token: without ECG_DICOM_HTTP__TOKEN the service refuses to start.
# The whole node (Orthanc, Redis, listener, two workers, Prometheus, Grafana): docker-compose.yml
# and docs/deploy.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with CPU-only torch, and the int8 model derived ------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# fonts-dejavu-core: ultralytics needs a TTF offline; libgl1/libglib2.0-0: OpenCV.
# Not pinned (hadolint DL3008): the base image's Debian release fixes them, with its security
# updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# The CPU wheels of the pinned torch/torchvision first (PyPI's Linux wheels pull ~3.2 GB of
# CUDA libraries a CPU host never uses); `pip install .` then keeps them (they meet the pins).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1
WORKDIR /opt/ecg-dicom
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY config ./config
COPY weights ./weights
# No CUDA wheel may have come in; torch's C++ headers are for building extensions only.
RUN pip install . \
    && ! pip list 2>/dev/null | grep -i -E '^(nvidia-|triton)' \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include
# The model `model.runtime: auto` runs on a CPU (the int8 OpenVINO model NNCF derives from the
# weights, minutes), made here so a container starts ready; keyed by the weights' checksum.
ENV YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics \
    ECG_DICOM_MODEL__WEIGHTS=/opt/ecg-dicom/weights/ecg-yolov8m.pt \
    ECG_DICOM_MODEL__EXPORT_CACHE_DIR=/opt/ecg-dicom/model-cache
RUN ecg-dicom export --format openvino-int8

# --- runtime: the environment, the weights and the derived model; no CUDA, no compiler -------
FROM ${PYTHON_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/ecg-dicom ecgdicom \
    && mkdir -p /etc/ecg-dicom /var/lib/ecg-dicom/spool /var/lib/ecg-dicom/outputs \
        /var/lib/ecg-dicom/audit /var/lib/ecg-dicom/ultralytics \
    && printf 'dicom:\n  ae_title: ECGDICOM\n' > /etc/ecg-dicom/site.yaml \
    && chown -R ecgdicom:ecgdicom /var/lib/ecg-dicom
COPY --from=build /opt/venv /opt/venv
# The cache folder stays writable by the service: its lock file is opened for each load.
COPY --from=build --chown=ecgdicom:ecgdicom /opt/ecg-dicom /opt/ecg-dicom
# No downloads at run time, anywhere.
ENV PATH=/opt/venv/bin:$PATH \
    YOLO_OFFLINE=1 \
    ECG_DICOM_HOME=/var/lib/ecg-dicom \
    YOLO_CONFIG_DIR=/var/lib/ecg-dicom/ultralytics \
    ECG_DICOM_CONFIG=/etc/ecg-dicom/site.yaml \
    ECG_DICOM_HTTP__HOST=0.0.0.0 \
    ECG_DICOM_STORAGE__SPOOL_DIR=/var/lib/ecg-dicom/spool \
    ECG_DICOM_STORAGE__OUTPUT_DIR=/var/lib/ecg-dicom/outputs \
    ECG_DICOM_AUDIT__PATH=/var/lib/ecg-dicom/audit/audit.log \
    ECG_DICOM_MODEL__EXPORT_CACHE_DIR=/opt/ecg-dicom/model-cache \
    ECG_DICOM_MODEL__WEIGHTS=/opt/ecg-dicom/weights/ecg-yolov8m.pt
USER 10001:10001
WORKDIR /var/lib/ecg-dicom
VOLUME ["/var/lib/ecg-dicom/spool", "/var/lib/ecg-dicom/outputs", "/var/lib/ecg-dicom/audit"]
EXPOSE 11112 8080
# `ecg-dicom serve`'s /healthz (answers without the token); `ecg-dicom worker` has no HTTP
# side: docker-compose.yml gives the workers their own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ECG_DICOM_HTTP__PORT', '8080') + '/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["ecg-dicom", "serve"]
