import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Bounds the connections served at once. Past the bound a new connection is closed
/// on arrival, and the operator learns why from the log (at most once a second).
/// It knows every connection it admitted, so that shutdown can close what is left.
final class ConnectionLimit: Sendable {
    let maximum: Int
    private let state = NIOLockedValueBox(State())
    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var lastWarning = NIODeadline.uptimeNanoseconds(0)
        /// The most connections open at once since `takePeak`.
        var peak = 0
    }
    private let logger: Logger

    init(maximum: Int, logger: Logger) {
        self.maximum = maximum
        self.logger = logger
    }

    /// Connections admitted and not yet closed.
    var openCount: Int {
        state.withLockedValue { $0.open.count }
    }

    /// Counts `channel` in, or closes it when the limit is reached.
    func admit(_ channel: Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let (admitted, warn) = state.withLockedValue { state -> (Bool, Bool) in
            guard state.open.count < maximum else {
                let now = NIODeadline.now()
                let warn = now - state.lastWarning >= .seconds(1)
                if warn { state.lastWarning = now }
                return (false, warn)
            }
            state.open[id] = channel
            state.peak = max(state.peak, state.open.count)
            return (true, false)
        }
        if admitted {
            channel.closeFuture.whenComplete { [state] _ in state.withLockedValue { _ = $0.open.removeValue(forKey: id) } }
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

    /// The most connections open at once since the last call, and how many are open now.
    func takePeak() -> (peak: Int, open: Int) {
        state.withLockedValue { state in
            defer { state.peak = state.open.count }
            return (state.peak, state.open.count)
        }
    }

    /// Closes every connection still open (TLS close_notify first); returns how many.
    func closeAll() -> Int {
        let channels = state.withLockedValue { Array($0.open.values) }
        for channel in channels { channel.close(promise: nil) }
        return channels.count
    }
}
