# syntax=docker/dockerfile:1
# The quarks-job image: the operator, and `persist-output` for the injected output container
# (which runs this image with `args: ["persist-output"]`, hence the binary as ENTRYPOINT).
#
#   docker build -t cfcontainerization/quarks-job:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) .

FROM rust:1.95-bookworm AS builder
WORKDIR /build
# build.rs records the commit for `quarks-job version`; .git is not in the build context
ARG GIT_COMMIT=unknown
ENV QUARKS_JOB_GIT_COMMIT=${GIT_COMMIT}
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin quarks-job \
    && cp target/release/quarks-job /quarks-job
# the kubectl plugin is the same binary called kubectl-qjob (argv[0] decides): a symlink, copied
# into the final stage as a symlink by the directory COPY below
RUN mkdir /plugin && ln -s quarks-job /plugin/kubectl-qjob

# The image's layout: this stage is its one definition. `make image-local` (hack/image.py, no
# Docker) reads it and builds the same layout (COPY's destination, the symlinks the builder
# stage makes for a directory COPY, USER, ENTRYPOINT, EXPOSE);
# tests/image.rs checks that the two agree.
# glibc and libgcc only (rustls with ring: no OpenSSL); debian12 matches the bookworm builder.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /quarks-job /usr/local/bin/quarks-job
COPY --from=builder /plugin/ /usr/local/bin/
# distroless' nonroot user; manifests/deployment.yaml runs as the same uid
USER 65532:65532
EXPOSE 2999 8081
ENTRYPOINT ["/usr/local/bin/quarks-job"]
