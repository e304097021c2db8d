# Deckhand image for users who build with the official Swift image from Docker Hub:
#
#   docker build -t deckhand:latest .
#   docker build --build-arg SWIFT_IMAGE=swift:6.3-noble -t deckhand:latest .
#
# Stage 1 compiles a release build with the Swift runtime linked statically on the
# official Swift image (Ubuntu); stage 2 is FROM scratch and holds only what
# scripts/image-rootfs collects there: the stripped binary, exactly the shared
# libraries `ldd` lists (libpci, libudev, libblkid, libz, libstdc++, libgcc_s, libc, the
# loader, glibc's NSS modules), pci.ids, /etc (root and the deckhand user 65532,
# nsswitch.conf) and /tmp; it runs as 65532:65532.
# The result is the same image as `scripts/build-image` makes.
#
# NOT TESTED in Deckhand's own CI: its machines reach no registry, so they cannot pull
# the swift base image. They build the image with scripts/build-image (docker import of
# a locally built root filesystem, no base image at all), which is the tested path.
# Needs a Swift 6.0+ image (swift-tools-version 6.0; its toolchain brings lld) on glibc
# 2.36 or newer, since release links pack relative relocations (DT_RELR): noble, not
# jammy. The Swift 6.3 toolchain is what Deckhand is developed with.

ARG SWIFT_IMAGE=swift:6.3-noble

FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
        libpci-dev libudev-dev libblkid-dev pkg-config pciutils binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a source change does not fetch them again (the glob
# copies Package.resolved when there is one and is no error when there is none).
COPY Package.swift Package.resolve[d] ./
RUN swift package resolve
COPY Sources ./Sources
COPY scripts/image-rootfs scripts/link-order.txt ./scripts/
RUN swift build -c release --product deckhand --static-swift-stdlib \
 && scripts/image-rootfs "$(swift build -c release --static-swift-stdlib --show-bin-path)/deckhand" /rootfs

FROM scratch
COPY --from=build /rootfs/ /
EXPOSE 9001
# Not root: the engine socket is reached through its group (README, "Least privilege").
USER 65532:65532
HEALTHCHECK --interval=5s --timeout=10s --start-period=30s --retries=3 CMD ["/usr/local/bin/deckhand", "health", "--timeout", "3"]
ENTRYPOINT ["/usr/local/bin/deckhand"]
CMD ["serve"]
