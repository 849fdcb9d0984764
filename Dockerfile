# The default GPU session image: CUDA PyTorch, transformers, pandas, scikit-learn, and the `nsml` module.
#
#   docker build -t nsml-harness/session:latest .            # on a GPU machine with registry access
#   harness image build                                      # the same through the harness
#   harness image build --base-image local/bookworm-py --wheel /opt/wheels/torch-...-cpu.whl   # offline CPU image
#
# Participant requirements (requirements.txt, setup.py, nsml_package.txt) are installed on top of this image per
# session, cached by their hash; this image holds what nearly every NSML submission needs.
ARG BASE_IMAGE=pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime
FROM ${BASE_IMAGE}
ARG PIP_PACKAGES="transformers>=4.40 tokenizers pandas scikit-learn pillow"
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
USER root
COPY docker/ /tmp/harness-build/
RUN set -e; \
    if [ -f /tmp/harness-build/ca-certificates.crt ]; then export PIP_CERT=/tmp/harness-build/ca-certificates.crt; fi; \
    if ls /tmp/harness-build/wheels/*.whl >/dev/null 2>&1; then python3 -m pip install /tmp/harness-build/wheels/*.whl; fi; \
    python3 -m pip install $PIP_PACKAGES; \
    rm -rf /tmp/harness-build
COPY harness/session_sdk /opt/nsml-sdk
ENV PYTHONPATH=/opt/nsml-sdk
WORKDIR /app
