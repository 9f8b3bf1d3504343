# syntax=docker/dockerfile:1
#
# osio-bot image: a static Go binary on distroless, running as non-root.
#
#   docker build -t quay.io/app-sre/osio-bot:latest .
#   docker run --rm -e SLACK_APP_TOKEN -e SLACK_BOT_TOKEN \
#     -v $PWD/deploy/config.example.yaml:/etc/osio-bot/config.yaml:ro \
#     quay.io/app-sre/osio-bot:latest check-config --config /etc/osio-bot/config.yaml

# Go version of go.mod's `go` directive.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so they are cached across source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binary (no cgo), no paths or debug info.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/osio-bot ./cmd/osio-bot

# distroless/static: CA certificates and tzdata, no shell, user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/osio-bot /osio-bot
USER 65532:65532
# The embedded store (store.path); mount a persistent volume here.
VOLUME /var/lib/osio-bot
# /metrics and /healthz (metrics.listen).
EXPOSE 9090
ENTRYPOINT ["/osio-bot"]
CMD ["run", "--config", "/etc/osio-bot/config.yaml"]
