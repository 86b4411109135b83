# Runboard's container image: the runboard binary and its built site, nothing else.
# Build: docker build -t runboard .   Run: see README ("Production").
# It builds exactly as scripts/run-demo does (scripts/tools.sh, then `cargo xtask build
# --release`), so that fixing one fixes both.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash -c 'source scripts/tools.sh && ensure_wasm_target && ensure_wasm_opt && build_release'

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/runboard --create-home runboard
COPY --from=build /src/target/release/runboard /usr/local/bin/runboard
COPY --from=build /src/target/site /usr/share/runboard/site
# mimalloc gives freed memory back at once and commits its arenas as used: every poll's and
# SQLite connection's thread frees what it read, and with mimalloc's defaults 200 services
# polled held twice the memory (#33: measured with 200 services, 563 MB -> 287 MB).
ENV RUNBOARD_SITE_ROOT=/usr/share/runboard/site \
    RUNBOARD_LISTEN=0.0.0.0:3000 \
    RUNBOARD_LOG_FORMAT=json \
    MIMALLOC_PURGE_DELAY=0 \
    MIMALLOC_ARENA_EAGER_COMMIT=0
USER 10001
EXPOSE 3000
ENTRYPOINT ["runboard"]
CMD ["serve", "--config", "/etc/runboard/runboard.toml"]
