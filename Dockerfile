# syntax=docker/dockerfile:1
# One image, one binary per process: the compose file runs `api` and `worker` from it.
# The embedded all-in-one (`make run`) is for development and is not built here.

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    for cmd in api:./cmd/api worker:./worker migrate:./cmd/migrate starter:./starter; do \
      go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/${cmd%%:*} ${cmd#*:} || exit 1; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
ENV ENV=production HOST=0.0.0.0 PORT=8090
EXPOSE 8090 9090
# The API answers /health; the worker serves /live and /metrics on METRICS_PORT.
ENTRYPOINT ["/usr/local/bin/api"]
