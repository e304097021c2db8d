// swift-tools-version:6.0
import PackageDescription

/// The folder of this manifest: the release link reads scripts/link-order.txt from it.
let packageRoot = String(#filePath.dropLast("/Package.swift".count))

let package = Package(
    name: "Deckhand",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "deckhand", targets: ["deckhand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The executable: the command line (`serve`, `keygen`, `sign`, `host-info`, `version`)
        // and `@main`, nothing else, so that tests and fuzzers can link the agent itself.
        .executableTarget(
            name: "deckhand",
            dependencies: [
                "Agent", "ASCIIText", "Hardware", "Proxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: [
                // Release links use lld, pack relative relocations (DT_RELR, glibc 2.36+:
                // 0.8 MB less to read at start) and lay out together the functions that
                // run at start and per request (scripts/link-order): the kernel maps code
                // 64 KiB around each page touched, so scattered code is resident memory.
                // No debug information (`--strip-debug`): a crash report, even from Swift's
                // backtracer turned on with SWIFT_BACKTRACE, then names functions but not the
                // build machine's source paths (issue 13). The symbol table stays, for perf.
                .unsafeFlags([
                    "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                    "-Xlinker", "--symbol-ordering-file=\(packageRoot)/scripts/link-order.txt",
                    "-Xlinker", "--no-warn-symbol-ordering", "-Xlinker", "--strip-debug",
                ], .when(configuration: .release)),
            ]
        ),
        // The agent: configuration, TLS server, authentication, routing, HTTP handlers.
        .target(
            name: "Agent",
            dependencies: [
                "Proxy", "HostFS", "Hardware", "ASCIIText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Docker Engine API forwarding: engine transport, relay, hijack.
        .target(
            name: "Proxy",
            dependencies: [
                "ASCIIText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                // scrypt, for the key of the peer certificates' MACs (`PeerKey.certificateKey`);
                // swift-certificates builds it already.
                .product(name: "CryptoExtras", package: "swift-crypto"),
                // Agents' peer certificates in secret mode (`PeerCertificate`).
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                // The metrics API only: its calls are no-ops unless the agent bootstraps a backend.
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Confined file access beneath a root directory descriptor. No HTTP.
        .target(name: "HostFS", dependencies: ["ASCIIText", "COpenat2"]),
        // ASCII text from the wire read byte by byte, and hex: the one copy that Agent,
        // Proxy and HostFS (Docker's name rule) share. No dependencies.
        .target(name: "ASCIIText"),
        .target(name: "COpenat2"),
        // PCI and disk inventory. No HTTP.
        .target(name: "Hardware", dependencies: ["ASCIIText", "CPCIShim", "CLibUdev", "CLibBlkid"]),
        // libpci's variadic name lookup and its must-not-return error callback need C.
        .target(name: "CPCIShim", dependencies: ["CLibPCI"]),
        .systemLibrary(name: "CLibPCI", pkgConfig: "libpci", providers: [.apt(["libpci-dev"])]),
        .systemLibrary(name: "CLibUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CLibBlkid", pkgConfig: "blkid", providers: [.apt(["libblkid-dev"])]),

        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "ASCIIText", "Proxy", "TestCommands",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "HostFSTests", dependencies: ["HostFS"]),
        // Runs `deckhand host-info` under umockdev: `swift build --build-tests` builds it too.
        .testTarget(name: "HardwareTests", dependencies: ["Hardware", "TestCommands"]),
        // What the test suites share: running a real program (posix_spawn, one way for
        // every suite) and finding the `deckhand` that SwiftPM built beside them.
        .target(name: "TestCommands", path: "Tests/TestCommands"),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses (Tests/Fuzz, FUZZING.md), declared only when DECKHAND_FUZZ is set:
// `scripts/fuzz` sets it and builds them with `-sanitize=fuzzer,address`. A plain build
// must not see them, since libFuzzer's runtime (and the main it brings) is linked only
// under that flag. Harnesses of the agent's parsers link the `Agent` library itself.
if Context.environment["DECKHAND_FUZZ"] != nil {
    let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
    let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
    func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
        .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Tests/Fuzz/\(name)")
    }
    package.targets += [
        .target(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], path: "Tests/Fuzz/FuzzSupport"),
        fuzzer("RoutingFuzzer", ["Agent", "Proxy", nioHTTP1]),
        fuzzer("SignatureFuzzer", ["Agent", "ASCIIText", "Proxy", crypto]),
        fuzzer("PathResolutionFuzzer", ["HostFS", "COpenat2", "CLibFuzzer"]),
        fuzzer("MultipartFuzzer", ["Agent"]),
        fuzzer("JSONMergeFuzzer", ["Proxy", .product(name: "NIOCore", package: "swift-nio")]),
        fuzzer("MemberInfoFuzzer", ["Proxy"]),
        fuzzer("HTTPDateFuzzer", ["Agent"]),
        fuzzer("ByteRangeFuzzer", ["Agent", "ASCIIText"]),
        fuzzer("HeaderParametersFuzzer", ["Agent"]),
        fuzzer("ResponseHeadFuzzer", [
            "Proxy", "ASCIIText", nioHTTP1, .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ]
}
