import ArgumentParser
import HostFS
import Hardware
import Proxy

// Stand-in root command for the hardware branch: the server branch's main.swift
// replaces this file and registers HostInfoCommand among its subcommands.
struct Deckhand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deckhand",
        subcommands: [HostInfoCommand.self]
    )
}

Deckhand.main()
