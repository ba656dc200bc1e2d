# A minimal non-root image: the release binary on distroless's C runtime (glibc, CA
# certificates, no shell). Build from the repository root: docker build -t clusterdns .
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin clusterdns \
 && apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 # Port 53 as a non-root user: the file capability, as CoreDNS's image sets it. The
 # Deployment keeps NET_BIND_SERVICE in the bounding set and drops every other capability.
 && setcap cap_net_bind_service=+ep target/release/clusterdns

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/clusterdns /clusterdns
USER 65532:65532
EXPOSE 53/udp 53/tcp 9153/tcp
ENTRYPOINT ["/clusterdns"]
