import Agent
import ArgumentParser
import ASCIIText
import Crypto
import FoundationEssentials
import Glibc
import Proxy

/// `deckhand keygen`: a P-256 key of the kind Portainer signs with, for scripts,
/// `curl` and the `docker` CLI.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an ECDSA P-256 signing key (PEM) and print its public key."
    )

    @Option(name: .long, help: "Where to write the private key (PEM, mode 0600).")
    var out: String

    func run() throws {
        let key = P256.Signing.PrivateKey()
        let pem = key.pemRepresentation + "\n"
        let fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw ValidationError("cannot create \(out): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard StandardError.writeAll(Array(pem.utf8), to: fd) else {
            throw ValidationError("cannot write \(out): \(String(cString: strerror(errno)))")
        }
        print("\(AgentHeaderName.publicKey): \(HexEncoding.encode(key.publicKey.derRepresentation))")
    }
}

/// `deckhand sign`: the two signature headers for a key, as headers, as a
/// `docker` CLI config file, or as `curl` arguments.
struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Print the Portainer signature headers for a key made by keygen."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case headers, dockerConfig = "docker-config", curl
    }

    @Option(name: .long, help: "The private key (PEM).")
    var key: String
    @OptionGroup var secrets: ClientSecret
    @Option(name: .long, help: "headers, docker-config (a config.json with HttpHeaders) or curl.")
    var format: Format = .headers

    func run() throws {
        let pem: String
        do {
            pem = try String(contentsOfFile: key, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read \(key): \(error)")
        }
        let privateKey: P256.Signing.PrivateKey
        do {
            privateKey = try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw ValidationError("\(key) is not a P-256 private key in PEM")
        }
        let headers = PortainerSignature.headers(signingWith: privateKey, secret: try secrets.resolved())
        switch format {
        case .headers:
            for (name, value) in headers { print("\(name): \(value)") }
        case .curl:
            print(headers.map { "-H '\($0.0): \($0.1)'" }.joined(separator: " "))
        case .dockerConfig:
            let object = ["HttpHeaders": Dictionary(uniqueKeysWithValues: headers)]
            print(String(decoding: try AgentJSON.encode(object, pretty: true), as: UTF8.self))
        }
    }
}
