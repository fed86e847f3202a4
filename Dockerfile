# syntax=docker/dockerfile:1
# deploygraph container image: one binary, many roles (serve, record, gate, migrate, …).
#   docker build -t deploygraph .
#   docker run --rm deploygraph --help
# docker-compose.yaml runs it as `serve` against Neo4j.
#
# Base images are pinned by version (Rust 1.95.0, Debian bookworm's 2025-12-29 image); to pin
# them by digest as well, append `@sha256:…` from `docker buildx imagetools inspect IMAGE`.
# Linted by hadolint in the test suite (tests/e2e/image.rs, .hadolint.yaml).

# ---- build ----------------------------------------------------------------------------------
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and target dir between builds; the binary is copied
# out of the (cached, therefore not persisted) target dir into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p deploygraph \
 && install -D -m 0755 target/release/deploygraph /out/deploygraph

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-20251229-slim
# ca-certificates comes from the pinned release's own updates (see .hadolint.yaml, DL3008).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/deploygraph --create-home \
      --shell /usr/sbin/nologin deploygraph
COPY --from=build /out/deploygraph /usr/local/bin/deploygraph
COPY migrations/ /usr/share/deploygraph/migrations/
ENV DEPLOYGRAPH_MIGRATIONS_DIR=/usr/share/deploygraph/migrations
# The service user (deploygraph, uid 10001), by number so that runtimes can check it is not root.
USER 10001:10001
# The default store (sqlite://deploygraph.db) lands here, writable by the service user.
WORKDIR /var/lib/deploygraph
ENV DEPLOYGRAPH_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Ready when /readyz answers 200 (the store reachable and migrated): probed by the binary itself
# on DEPLOYGRAPH_LISTEN's port, so the image needs no curl. Other roles than `serve` (a one-off
# `record`, `gate`, …) do not listen: run them with `--no-healthcheck`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deploygraph", "healthcheck", "--timeout", "4s"]
ENTRYPOINT ["deploygraph"]
CMD ["--help"]
