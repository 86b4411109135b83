# Runboard's container image: the runboard binary and its built site, nothing else.
# Build: docker build -t runboard .   Run: see README ("Production").

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The build tools first, pinned by the same script the README's commands use,
# so that this layer is cached until the tool versions or Cargo.lock change.
COPY scripts/tools.sh scripts/tools.sh
COPY Cargo.lock Cargo.lock
RUN bash -c 'source scripts/tools.sh && ensure_wasm_target && ensure_cargo_leptos && ensure_wasm_bindgen && ensure_wasm_opt'
COPY . .
RUN bash -c 'source scripts/tools.sh && LEPTOS_OUTPUT_NAME=runboard cargo leptos build --release'

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/runboard --create-home runboard
COPY --from=build /src/target/release/runboard /usr/local/bin/runboard
COPY --from=build /src/target/site /usr/share/runboard/site
ENV RUNBOARD_SITE_ROOT=/usr/share/runboard/site \
    RUNBOARD_LISTEN=0.0.0.0:3000 \
    RUNBOARD_LOG_FORMAT=json
USER 10001
EXPOSE 3000
ENTRYPOINT ["runboard"]
CMD ["serve", "--config", "/etc/runboard/runboard.toml"]
