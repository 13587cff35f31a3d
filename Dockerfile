# natter-hub in a container: the widget and the hub are built in the first stage, and the one
# binary (the widget embedded in it) runs in a small Debian image. See docs/deploy.md.
#
#   docker build -t natter-hub .
#   docker run -p 127.0.0.1:8080:8080 -v natter-data:/var/lib/natter natter-hub

FROM rust:1-bookworm AS build
# Node.js and npm run the widget's JS build tools (esbuild, binaryen's wasm-opt).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# `cargo xtask build` adds the wasm32 target and the pinned wasm-bindgen CLI by itself.
RUN cargo xtask build \
 && cargo build --release --locked -p natter-hub \
 && install -m 755 target/release/natter-hub /usr/local/bin/natter-hub

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/natter --create-home natter
COPY --from=build /usr/local/bin/natter-hub /usr/local/bin/natter-hub
USER natter
ENV NATTER_LISTEN=0.0.0.0:8080 \
    NATTER_DB=/var/lib/natter/natter.db
VOLUME /var/lib/natter
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/natter-hub"]
