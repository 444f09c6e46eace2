# syntax=docker/dockerfile:1
# The kmseal binary in a small image: glibc and libgcc only (distroless "cc"), no shell, no
# package manager, running as a non-root user. Use it directly (`docker run ... kmseal
# inspect`), or copy the binary into an application image and make `kmseal exec` the
# entrypoint (examples/kubernetes):
#
#   docker build -t kmseal .
#   # in the application's Dockerfile:
#   COPY --from=kmseal /usr/local/bin/kmseal /usr/local/bin/kmseal
#   ENTRYPOINT ["/usr/local/bin/kmseal", "exec", "--unsealed", "/etc/app/app.yaml", "--", "/app/server"]
#
# The build needs only what the rust image has (aws-lc-sys builds with its C compiler).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kmseal-cli \
 && install -D -m 0755 target/release/kmseal /out/kmseal \
 && strip /out/kmseal

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kmseal /usr/local/bin/kmseal
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kmseal"]
