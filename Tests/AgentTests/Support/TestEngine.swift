import Foundation
import Testing
import TestCommands

/// The private, real dockerd that `scripts/test` starts for the suite.
enum TestEngine {
    static var socket: String {
        get throws {
            guard let path = ProcessInfo.processInfo.environment["DECKHAND_TEST_ENGINE_SOCKET"],
                  FileManager.default.fileExists(atPath: path) else {
                throw TestSetupError("DECKHAND_TEST_ENGINE_SOCKET does not name a running engine: run the suite with scripts/test")
            }
            return path
        }
    }
}
