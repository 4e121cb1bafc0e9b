# syntax=docker/dockerfile:1
# The gdpr-gateway image:   docker build -t gdpr-gateway:0.1.0 .
#
# Stage "build" turns the project and every dependency into wheels (compilers live only
# here); stage "runtime" installs those wheels into a slim Python, without the source tree,
# compilers or a pip cache. The image runs as a fixed non-root UID/GID (10001, the chart's
# securityContext runAsUser/runAsGroup) and writes nothing outside mounted volumes, so the
# root filesystem can be read-only: bytecode is compiled at install time, /tmp is an
# emptyDir in the chart, SQLite (single replica only) lives on a volume at
# /var/lib/gdpr-gateway. No HEALTHCHECK: Kubernetes probes /healthz and /readyz.

FROM python:3.12-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY audit ./audit
COPY policies ./policies
COPY service ./service
COPY vocabulary ./vocabulary
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels gdpr-gateway \
    && groupadd --system --gid 10001 gdpr-gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gdpr-gateway
WORKDIR /etc/gdpr-gateway
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["gdpr-gateway"]
CMD ["serve", "--config", "/etc/gdpr-gateway/config/config.yaml"]
