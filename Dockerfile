# ecg-dicom: DICOM ECG-AI node.  Build: docker build -t ecg-dicom .
# Run:   docker run -p 11112:11112 -p 8080:8080 -e ECG_DICOM_HTTP__TOKEN=<a long random secret> \
#          -v $PWD/site.yaml:/etc/ecg-dicom/site.yaml -v ecg-dicom-var:/var/lib/ecg-dicom ecg-dicom
# The viewer listens on all addresses in the container, so it shows patient data only after
# sign-in with that token: without ECG_DICOM_HTTP__TOKEN the service refuses to start.
FROM python:3.11-slim-bookworm

# fonts-dejavu-core: ultralytics needs a TTF offline (it would download Arial otherwise).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ecg-dicom
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
COPY weights ./weights
RUN pip install --no-cache-dir .

# No downloads at run time, anywhere.
ENV YOLO_OFFLINE=1 \
    ECG_DICOM_HOME=/var/lib/ecg-dicom \
    YOLO_CONFIG_DIR=/var/lib/ecg-dicom/ultralytics \
    ECG_DICOM_CONFIG=/etc/ecg-dicom/site.yaml \
    ECG_DICOM_HTTP__HOST=0.0.0.0 \
    ECG_DICOM_STORAGE__SPOOL_DIR=/var/lib/ecg-dicom/spool \
    ECG_DICOM_STORAGE__OUTPUT_DIR=/var/lib/ecg-dicom/outputs \
    ECG_DICOM_MODEL__EXPORT_CACHE_DIR=/opt/ecg-dicom/model-cache \
    ECG_DICOM_MODEL__WEIGHTS=/opt/ecg-dicom/weights/ecg-yolov8m.pt
RUN mkdir -p /etc/ecg-dicom /var/lib/ecg-dicom \
    && printf 'dicom:\n  ae_title: ECGDICOM\n' > /etc/ecg-dicom/site.yaml
# The model model.runtime "auto" runs on a CPU (the int8 OpenVINO model NNCF derives
# from the weights, ~2 minutes) is made at build time, so a container starts ready
# (keyed by the weights' checksum, never stale).
RUN ecg-dicom export --format openvino-int8
VOLUME ["/var/lib/ecg-dicom"]
EXPOSE 11112 8080
STOPSIGNAL SIGTERM
CMD ["ecg-dicom", "serve"]
