# syntax=docker/dockerfile:1
# One image, three binaries: worker, starter, sandbox (plus the health probe).
#   docker build -t offboard .
#   docker run offboard                                  # the worker (default)
#   docker run offboard /usr/local/bin/starter serve     # the HRIS relay and operator API
#   docker run offboard /usr/local/bin/starter status -employee E1001
# Configuration: -config FILE or OFFBOARD_CONFIG (docker-compose.yml mounts deploy/offboard.yaml).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The Makefile's build target, statically linked and stripped.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/ ./worker ./starter ./sandbox
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/ ./deploy/healthcheck
# Writable state for the non-root user (distroless has no shell to mkdir with).
RUN mkdir -p /state/var/lib/offboard/evidence

# Static distroless: CA certificates and tzdata, no shell, runs as nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /state/var/lib/offboard /var/lib/offboard
USER 65532:65532
WORKDIR /var/lib/offboard
ENV OFFBOARD_CONFIG=/etc/offboard/offboard.yaml
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9090/healthz"]
CMD ["/usr/local/bin/worker"]
