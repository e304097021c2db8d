import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Bounds the connections served at once. Past the bound a new connection is closed
/// on arrival, and the operator learns why from the log (at most once a second).
final class ConnectionLimit: Sendable {
    let maximum: Int
    private let state = NIOLockedValueBox((open: 0, lastWarning: NIODeadline.uptimeNanoseconds(0)))
    private let logger: Logger

    init(maximum: Int, logger: Logger) {
        self.maximum = maximum
        self.logger = logger
    }

    /// Counts `channel` in, or closes it when the limit is reached.
    func admit(_ channel: Channel) -> Bool {
        let (admitted, warn) = state.withLockedValue { state -> (Bool, Bool) in
            guard state.open < maximum else {
                let now = NIODeadline.now()
                let warn = now - state.lastWarning >= .seconds(1)
                if warn { state.lastWarning = now }
                return (false, warn)
            }
            state.open += 1
            return (true, false)
        }
        if admitted {
            channel.closeFuture.whenComplete { [state] _ in state.withLockedValue { $0.open -= 1 } }
        } else {
            if warn {
                logger.warning("connection limit reached: refusing new connections", metadata: [
                    "limit": "\(maximum)", "setting": "DECKHAND_MAX_CONNECTIONS", "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                ])
            }
            channel.close(promise: nil)
        }
        return admitted
    }
}
