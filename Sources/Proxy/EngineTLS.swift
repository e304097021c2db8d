import Glibc

/// TLS to a Docker engine over TCP, from `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`
/// as the docker CLI reads them: `ca.pem`, `cert.pem` and `key.pem` in the folder,
/// each used when it is there (the system's trust roots without `ca.pem`, no client
/// certificate without `cert.pem`), and the engine's certificate checked only with
/// verification on.
public struct EngineTLS: Sendable, Equatable {
    public var directory: String
    public var verify: Bool
    /// `ca.pem`, when the folder has one.
    public var caFile: String?
    /// `cert.pem` and `key.pem`, when the folder has both.
    public var clientCertificate: (certificate: String, key: String)?

    public static func == (a: EngineTLS, b: EngineTLS) -> Bool {
        a.directory == b.directory && a.verify == b.verify && a.caFile == b.caFile
            && a.clientCertificate?.certificate == b.clientCertificate?.certificate && a.clientCertificate?.key == b.clientCertificate?.key
    }

    /// Looks into `directory`; a certificate without its key (or the reverse) is an
    /// error, as it is for the CLI.
    public init(directory: String, verify: Bool) throws(EngineTLSError) {
        self.directory = directory
        self.verify = verify
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        func present(_ name: String) -> String? {
            let path = "\(base)/\(name)"
            return access(path, F_OK) == 0 ? path : nil
        }
        caFile = present("ca.pem")
        switch (present("cert.pem"), present("key.pem")) {
        case (let certificate?, let key?): clientCertificate = (certificate, key)
        case (nil, nil): clientCertificate = nil
        case (let certificate?, nil): throw EngineTLSError(.keyWithoutCertificate(missing: "\(base)/key.pem", given: certificate))
        case (nil, let key?): throw EngineTLSError(.keyWithoutCertificate(missing: "\(base)/cert.pem", given: key))
        }
    }
}

/// Why TLS with the engine cannot work: one line that names the file or the check
/// that failed, for the operator who set `DOCKER_CERT_PATH`.
public struct EngineTLSError: Error, CustomStringConvertible, Sendable {
    public enum Problem: Sendable {
        case unreadableCA(String, String)
        case unreadableCertificate(String, String)
        case unreadableKey(String, String)
        case keyWithoutCertificate(missing: String, given: String)
        case keyDoesNotMatch(certificate: String, key: String)
        /// The engine's certificate did not verify (its CA is not in `ca.pem`, or it
        /// does not name the address).
        case engineNotTrusted(engine: String, caFile: String?, reason: String)
        /// The engine wants a client certificate and none was offered.
        case clientCertificateRequired(engine: String, directory: String)
        /// The engine refused the client certificate that was offered.
        case clientCertificateRefused(engine: String, certificate: String, reason: String)
        /// Any other TLS failure with the engine (TLS on a plain port, say).
        case handshakeFailed(engine: String, reason: String)
    }

    public var problem: Problem

    public init(_ problem: Problem) {
        self.problem = problem
    }

    public var description: String {
        switch problem {
        case .unreadableCA(let path, let error):
            return "\(path) is not a readable PEM certificate: \(error)"
        case .unreadableCertificate(let path, let error):
            return "\(path) is not a readable PEM certificate: \(error)"
        case .unreadableKey(let path, let error):
            return "\(path) is not a readable PEM private key: \(error)"
        case .keyWithoutCertificate(let missing, let given):
            return "\(given) is there but \(missing) is missing: the client certificate needs both"
        case .keyDoesNotMatch(let certificate, let key):
            return "\(key) is not the private key of \(certificate)"
        case .engineNotTrusted(let engine, let caFile, let reason):
            return "the engine at \(engine) is not trusted: its certificate does not verify against \(caFile ?? "the system's trust roots (no ca.pem in DOCKER_CERT_PATH)") (\(reason))"
        case .clientCertificateRequired(let engine, let directory):
            return "the engine at \(engine) requires a client certificate, and DOCKER_CERT_PATH \(directory) has no cert.pem and key.pem"
        case .clientCertificateRefused(let engine, let certificate, let reason):
            return "the engine at \(engine) refused the client certificate \(certificate): not signed by a CA it trusts (\(reason))"
        case .handshakeFailed(let engine, let reason):
            return "TLS with the engine at \(engine) failed: \(reason)"
        }
    }
}
