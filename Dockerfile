# syntax=docker/dockerfile:1
# The operator image: `docker build -t campaign-autoscaler:0.1.0 .`
# Runs as uid 10001 on a read-only root filesystem (the Helm chart mounts a writable /tmp).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package build reads: no tests, charts or demo extras in the image.
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip install --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="campaign-autoscaler" \
      org.opencontainers.image.description="Scales Deployments ahead of known sales campaigns and restores them afterwards" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
RUN groupadd --system --gid 10001 campaign \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin campaign
# Numeric, so the kubelet can verify runAsNonRoot without resolving the name.
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["campaign-autoscaler", "run"]
