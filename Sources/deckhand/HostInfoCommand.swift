import Agent
import ArgumentParser
import Hardware

/// `deckhand host-info`: the `GET /host/info` answer printed without starting the
/// server, as JSON (what Portainer receives) or, with `--table`, for a person.
struct HostInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host-info",
        abstract: "Print this host's PCI devices and physical disks."
    )

    @Flag(name: .long, help: "Print readable tables instead of JSON.")
    var table = false

    @Option(
        name: .long,
        help: "The host's root as this process sees it (default: /host in a container that has it, else /).")
    var hostRoot: String?

    func run() throws {
        let root = hostRoot.map { HostRoot(path: $0) } ?? HostRoot.detect()
        let hostInfo = try HardwareInventory(hostRoot: root).collect()
        if table {
            print(HostInfoTable(hostInfo).render(), terminator: "")
        } else {
            print(String(decoding: try AgentJSON.encode(hostInfo, pretty: true), as: UTF8.self))
        }
    }
}
