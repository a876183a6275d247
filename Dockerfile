# syntax=docker/dockerfile:1
# token-handler image: a static-ish Rust binary on distroless, non-root, no shell.
#   docker build -t registry.example.com/token-handler:0.1.0 .
# The Helm chart (helm/token-handler) mounts the config at /etc/token-handler/token-handler.toml
# and the secrets as files; see its README.md.

FROM rust:1-bookworm AS build
WORKDIR /src
# The binary is built with profile-guided optimisation (scripts/pgo.sh: -12 % CPU per request on
# the data path, BENCHMARKS.md "Profile-guided optimisation"): an instrumented build runs the
# benchmark harness's scenarios against nginx and wrk, and llvm-tools (rustc's own LLVM) merges
# the profile the final build is given. None of these are in the image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx wrk \
 && rm -rf /var/lib/apt/lists/* \
 && rustup component add llvm-tools
# Only what the build needs; .dockerignore keeps target/, node_modules and .git out of the context.
# examples/ and clients/js/dist: the training harness (examples/bench, with the `demo` feature,
# which serves the client library).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY alloc ./alloc
COPY examples ./examples
COPY clients/js/dist ./clients/js/dist
COPY bench/need.sh ./bench/need.sh
COPY scripts/pgo.sh ./scripts/pgo.sh
# Cache mounts (BuildKit) keep the registry and the build directory between builds; the binary is
# copied out of the cache so the next stage can take it. `--no-default-features`: without the
# development demo (`token-handler demo`, its IdP emulator and the emulator's published key).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/pgo.sh --locked --no-default-features \
 && cp target/pgo/token-handler /token-handler

# glibc and libgcc (what a Rust binary links against) and nothing else: no shell, no package
# manager. The kubelet's `sleep` preStop hook needs none.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /token-handler /token-handler
# 65532 is distroless' `nonroot`; numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 8080: browser traffic ([server] listen); 9090: /healthz, /readyz, /metrics ([server] admin_listen).
EXPOSE 8080 9090
ENTRYPOINT ["/token-handler"]
CMD ["--config", "/etc/token-handler/token-handler.toml"]
