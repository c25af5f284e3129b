# The mtqa image the Kubernetes and KubeRay manifests run (manifests/kubernetes/*.yaml,
# manifests/ray/rayjob.yaml): the repository at /work, mtqa with the train and ray extras.
#
#   docker build -t mtqa:latest .                       # CPU torch
#   docker build -t mtqa:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
#
# Push it to a registry your cluster pulls from and set `image:` in the manifests to that name
# (a single-node kind/minikube cluster can load it directly: kind load docker-image mtqa:latest).
# Models and data are not baked in: they come from volumes (see the manifests).
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
# The Ray version must equal rayVersion in manifests/ray/rayjob.yaml.
ARG RAY_SPEC="ray[default]==2.60.0"
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MTQA_CACHE_DIR=/cache
WORKDIR /work
COPY pyproject.toml setup.cfg README.md ./
COPY mt_qa ./mt_qa
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC" \
 && pip install -e ".[train,ray]" "$RAY_SPEC" \
 && mtqa --version
COPY pipelines ./pipelines
COPY manifests ./manifests
RUN mkdir -p /cache /runs logs
CMD ["mtqa", "--help"]
