# One image for every role of the fleet: deploy-gate (check, enqueue, webhook,
# worker, notify, wait, watch, approve) and the mock model server for demos.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p deploy-gate -p gate-mock-llm

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 gate
COPY --from=build /src/target/release/deploy-gate /src/target/release/deploy-gate-mock-llm /usr/local/bin/
USER gate
ENTRYPOINT ["deploy-gate"]
CMD ["--help"]
