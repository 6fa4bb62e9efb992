# syntax=docker/dockerfile:1
# Siaran: multi-stage build. The runtime image carries the GStreamer 1.22 plugins the media
# pipeline uses (flvdemux, h264parse/aacparse, muxers, the JPEG thumbnailer). The fake Midtrans
# (fake-midtrans/) is a development tool and is not built into the image.

# --- server -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS server
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The SQL queries are checked against the committed .sqlx/ data: no database at build time.
ENV SQLX_OFFLINE=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin siaran \
 && cp target/release/siaran /usr/local/bin/siaran

# --- frontend ---------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS frontend
WORKDIR /frontend
COPY frontend/ ./
RUN if [ -f package.json ]; then npm ci && npm run build; else mkdir -p dist; fi

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
      libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /app siaran
WORKDIR /app
COPY --from=server /usr/local/bin/siaran /usr/local/bin/siaran
COPY --from=frontend /frontend/dist /app/frontend/dist
RUN mkdir -p /app/hls-out /app/.siaran && chown -R siaran:siaran /app
USER siaran
ENV SIARAN_ENV=production \
    SIARAN_HTTP_ADDR=0.0.0.0:8000 \
    SIARAN_RTMP_ADDR=0.0.0.0:1935 \
    SIARAN_HLS_DIR=/app/hls-out \
    SIARAN_FRONTEND_DIR=/app/frontend/dist \
    SIARAN_LOG_FORMAT=json
EXPOSE 8000 1935
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["siaran"]
CMD ["serve"]
