# syntax=docker/dockerfile:1
# deploygraph container image: one binary, many roles (serve, record, gate, migrate, …).
#   docker build -t deploygraph .
#   docker run --rm deploygraph --help
# docker-compose.yaml runs it as `serve` against Neo4j.

# ---- build ----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
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
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/deploygraph --create-home \
      --shell /usr/sbin/nologin deploygraph
COPY --from=build /out/deploygraph /usr/local/bin/deploygraph
COPY migrations/ /usr/share/deploygraph/migrations/
ENV DEPLOYGRAPH_MIGRATIONS_DIR=/usr/share/deploygraph/migrations
USER deploygraph
# The default store (sqlite://deploygraph.db) lands here, writable by the service user.
WORKDIR /var/lib/deploygraph
EXPOSE 8080
ENTRYPOINT ["deploygraph"]
CMD ["--help"]
