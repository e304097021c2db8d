import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Proxy

/// `AGENT_SECRET_FILE`: the shared secrets, one per line (a Docker secret at
/// `/run/secrets/…`). Several lines are several valid secrets, so that a Swarm can
/// rotate: the new one beside the old, then Portainer moves, then the old one goes.
package enum SecretFile {
    /// Why a file cannot be used; the description completes "expected …".
    package enum Problem: Error, Equatable, CustomStringConvertible {
        /// The file itself (unreadable, not a regular file, too large).
        case file(ConfigurationFile.Problem)
        case empty
        case tooMany(Int)

        package var description: String {
            switch self {
            case .file(let problem): return "\(problem)"
            case .empty: return "at least one secret (the file is empty)"
            case .tooMany(let count): return "at most \(PeerKey.maxSecrets) secrets, one per line (it holds \(count))"
            }
        }
    }

    /// Whether `secret` is empty or only spaces and tabs: one anyone could guess.
    package static func isBlank(_ secret: String) -> Bool {
        !secret.contains { $0 != " " && $0 != "\t" }
    }

    static let maxSize = 64 * 1024

    /// The secrets in `path`: its lines, each without its line ending; blank lines
    /// (empty, or only spaces and tabs) are not secrets (a trailing newline, a blank
    /// line between old and new): a line of one space would otherwise be a secret
    /// anyone could guess.
    package static func read(_ path: String) throws(Problem) -> [String] {
        let bytes: [UInt8]
        do {
            bytes = try ConfigurationFile.read(path, limit: maxSize, guarded: true)
        } catch {
            throw .file(error)
        }
        let secrets = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            .map { $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0 }
            .map { String(decoding: $0, as: UTF8.self) }
            .filter { !isBlank($0) }
        guard !secrets.isEmpty else { throw .empty }
        guard secrets.count <= PeerKey.maxSecrets else { throw .tooMany(secrets.count) }
        return secrets
    }

    /// What identifies one version of the file: a replaced file (a rename, a Docker or
    /// Kubernetes secret update) has a new inode, an edited one a new size or time.
    struct Stamp: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int64
        var modifiedNanoseconds: Int64

        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = Int64(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
        }
    }
}

/// Keeps the running agent's secrets in step with `AGENT_SECRET_FILE`: re-read on
/// `SIGHUP` and when the file changes (checked every `interval`), applied to the
/// signature check and the peers' key at once. A connection whose latest request a
/// dropped secret admitted is closed then, with any stream it carries (the holder of
/// a leaked secret keeps no `docker logs -f`, exec session or event stream); the
/// others are not touched. A file that cannot be used is logged and the secrets in
/// force stay.
final class SecretRotation: Sendable {
    let path: String
    private let verifier: SignatureVerifier
    private let peerKey: PeerKey?
    private let connections: ConnectionLimit?
    private let logger: Logger
    private let state: NIOLockedValueBox<(stamp: SecretFile.Stamp?, secrets: [String])>

    init(path: String, secrets: [String], verifier: SignatureVerifier, peerKey: PeerKey?, connections: ConnectionLimit?, logger: Logger) {
        self.path = path
        self.verifier = verifier
        self.peerKey = peerKey
        self.connections = connections
        self.logger = logger
        self.state = NIOLockedValueBox((SecretFile.Stamp(path: path), secrets))
    }

    var activeCount: Int { state.withLockedValue { $0.secrets.count } }

    /// Checks the file every `interval` on `loop`; cancel the task to stop.
    func watch(on loop: EventLoop, every interval: TimeAmount) -> RepeatedTask {
        loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let stamp = SecretFile.Stamp(path: self.path)
            if self.state.withLockedValue({ $0.stamp != stamp }) { self.reload(reason: "file changed") }
        }
    }

    /// Reads the file again and, when its secrets differ, makes them the valid ones.
    func reload(reason: String) {
        let stamp = SecretFile.Stamp(path: path)
        let secrets: [String]
        do {
            secrets = try SecretFile.read(path)
        } catch {
            state.withLockedValue { $0.stamp = stamp }
            logger.error("AGENT_SECRET_FILE cannot be used: the secrets in force stay", metadata: [
                "path": "\(path)", "reason": "\(reason)", "expected": "\(error)", "active_secrets": "\(activeCount)",
            ])
            return
        }
        let changed = state.withLockedValue { state -> Bool in
            state.stamp = stamp
            guard state.secrets != secrets else { return false }
            state.secrets = secrets
            return true
        }
        guard changed else { return }
        verifier.replaceSecrets(secrets)
        peerKey?.replaceSecrets(secrets)
        let closed = connections?.closeRevoked { [verifier, peerKey] credential in
            (credential.signature.map(verifier.accepts) ?? true) && (credential.peerKey.map { peerKey?.holds($0) ?? false } ?? true)
        } ?? 0
        logger.notice("secrets reloaded", metadata: [
            "path": "\(path)", "reason": "\(reason)", "active_secrets": "\(secrets.count)", "connections_closed": "\(closed)",
        ])
    }
}
