# syntax=docker/dockerfile:1
# The grader image: `python -m grader` and what it imports, nothing else (no Django, no database driver, no
# secrets). The Docker sandbox starts one container of it per evaluation with network "none", a read-only root, a
# tmpfs /tmp, no capabilities and the sandbox user (uid 10002, the same on every node), and mounts only the submission, the hidden dataset, the output folder
# and (Lab 3) the base model at /job/base-model.
#
#   GPU nodes:  docker build -f platform/grader.Dockerfile -t course-platform-grader .
#   CPU nodes:  docker build -f platform/grader.Dockerfile \
#                 --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t course-platform-grader .

FROM python:3.11-slim
# The wheel index of the CUDA build of the pinned torch; the CPU index for nodes without a GPU.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
# Nothing is ever fetched while grading: the hub libraries must fail rather than try the (absent) network.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/course \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    MPLCONFIGDIR=/tmp/matplotlib

RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY platform/grader-requirements.txt /tmp/grader-requirements.txt
RUN pip install -r /tmp/grader-requirements.txt && rm /tmp/grader-requirements.txt

# Lab 3's base models are not in the image: staff provision them once on each GPU node (BASE_MODELS_DIR), and the
# worker mounts the lab's base model folder read-only at the fixed path /job/base-model of every Lab 3 evaluation.
COPY grader /opt/course/grader
# The root file system is read-only at run time, so byte code is compiled now.
RUN python -m compileall -q /opt/course/grader \
    && chmod -R a+rX /opt/course

# The dedicated sandbox user, with the uid the worker image gives it: the Docker backend starts every container as
# it (never root, never the worker's user), so the uid must be the same in both images and on every node.
RUN useradd --system --uid 10002 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin grader-sandbox
USER 10002:10002
WORKDIR /tmp
ENTRYPOINT []
CMD ["python", "-m", "grader", "--help"]
