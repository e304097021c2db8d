import Foundation
import TestCommands

/// A second real dockerd of the test's own, listening on `tcp://127.0.0.1:<port>` with
/// `--tlsverify` (and on a unix socket, for set-up that is not under test), started by
/// `scripts/engine` under a temp folder, with certificates made here by openssl: a CA,
/// a server certificate for IP 127.0.0.1, a client certificate, and the wrong ones.
final class TLSEngine {
    /// Client folders in `DOCKER_CERT_PATH` form (ca.pem, cert.pem, key.pem).
    enum ClientFiles: String, CaseIterable {
        /// The engine's CA and a client certificate it signed.
        case good
        /// A CA that did not sign the engine's certificate.
        case untrustedCA
        /// The engine's CA, and no client certificate at all.
        case noClientCertificate
        /// A client certificate with a key that is not its own.
        case wrongKey
        /// A client certificate the engine's CA did not sign.
        case foreignClient
    }

    let directory: URL
    let port: Int
    var address: String { "tcp://127.0.0.1:\(port)" }
    var socket: String { directory.appendingPathComponent("docker.sock").path }

    func certificatePath(_ files: ClientFiles) -> String {
        directory.appendingPathComponent("client-\(files.rawValue)").path
    }

    static var engineScript: String { LabSwarm.repositoryRoot.appendingPathComponent("scripts/engine").path }

    private init() throws {
        // Under /tmp with a short name: the engine's unix sockets must fit in 108 bytes.
        directory = URL(fileURLWithPath: "/tmp/tcp-engine-\(UInt32.random(in: 0...UInt32.max))")
        port = try AgentProcess.freePort()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try makeCertificates()
        let certs = directory.appendingPathComponent("certs").path
        let started = try Command.run(Self.engineScript, [
            "start", directory.path, "--tlsverify", "--tlscacert", "\(certs)/ca.pem",
            "--tlscert", "\(certs)/server-cert.pem", "--tlskey", "\(certs)/server-key.pem", "-H", address,
        ], timeout: 60)
        guard started.status == 0 else { throw TestSetupError("TLS engine did not start: \(started.errorOutput)") }
        let image = try Command.run(Self.engineScript, ["image", directory.path], timeout: 60)
        guard image.status == 0 else { throw TestSetupError("busybox:local on the TLS engine: \(image.errorOutput)") }
    }

    private func makeCertificates() throws {
        let script = #"""
        set -e
        cd "$1/certs"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        authority() { openssl req -x509 $ec -days 2 -subj "/CN=$1" -keyout "$1-key.pem" -out "$1.pem" 2>/dev/null; }
        signed() { # name, CA, extensions
            openssl req $ec -subj "/CN=$1" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
            printf "$3" > "$1.ext"
            openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -set_serial "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" \
                -days 2 -extfile "$1.ext" -out "$1-cert.pem" 2>/dev/null
        }
        authority ca; authority rogue
        signed server ca "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        signed client ca "extendedKeyUsage=clientAuth\n"
        signed foreign rogue "extendedKeyUsage=clientAuth\n"
        folder() { mkdir -p "$1/client-$2"; cp "$3" "$1/client-$2/ca.pem"; [ -z "$4" ] || { cp "$4" "$1/client-$2/cert.pem"; cp "$5" "$1/client-$2/key.pem"; }; }
        folder "$1" good ca.pem client-cert.pem client-key.pem
        folder "$1" untrustedCA rogue.pem client-cert.pem client-key.pem
        folder "$1" noClientCertificate ca.pem
        folder "$1" wrongKey ca.pem client-cert.pem foreign-key.pem
        folder "$1" foreignClient ca.pem foreign-cert.pem foreign-key.pem
        """#
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("certs"), withIntermediateDirectories: true)
        let made = try Command.run("sh", ["-c", script, "sh", directory.path])
        guard made.status == 0 else { throw TestSetupError("openssl: \(made.errorOutput)") }
    }

    /// The docker CLI straight to this engine's unix socket, for set-up.
    func docker(_ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try Command.run("docker", ["-H", "unix://" + socket] + arguments, input: input)
    }

    /// Stops the engine (and waits for it to exit).
    func stop() {
        _ = try? Command.run(Self.engineScript, ["stop", directory.path], timeout: 60)
    }

    /// Runs `body` with a fresh TLS engine, stopped and removed afterwards, whatever happens.
    static func with<T>(_ body: (TLSEngine) async throws -> T) async throws -> T {
        let engine = try TLSEngine()
        defer {
            engine.stop()
            _ = try? Command.run("rm", ["-rf", engine.directory.path], timeout: 60)
        }
        return try await body(engine)
    }
}
