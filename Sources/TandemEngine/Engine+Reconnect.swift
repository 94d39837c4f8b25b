import Foundation
import TandemCore
import TandemPostgres

/// Alive under faults (B11): a lost connection or a server restart slows the
/// follower down, it does not stop it. Nothing is lost meanwhile: the pass
/// that was running rolled back with its session, and the cursor still says
/// where to read from.
extension Engine {
    /// Whether an error means the session is gone (not that a statement failed).
    static func isConnectionLoss(_ error: Error) -> Bool {
        if let error = error as? TandemError { return error.code == .connect }
        if let error = error as? PostgresError { return error.kind == .connection }
        return false
    }

    /// Whether an error passes by itself when the pass runs again later: a
    /// serialization failure, a deadlock, a lock not available in time.
    static func isTransient(_ error: Error) -> Bool {
        guard let sqlstate = (error as? TandemError)?.sqlstate ?? (error as? PostgresError)?.sqlstate else { return false }
        return ["40001", "40P01", "55P03"].contains(sqlstate)
    }

    /// Opens a new session and binds it as the old one was (work tables,
    /// LISTEN). The syncer lock went with the old session: the next pass
    /// takes it again, or this host stands by.
    public func reconnect() throws {
        connection.close()
        isActiveSyncer = false
        followerSession = 0
        connection = try Self.openSession(conninfo)
        cancelState.use(connection)
        routeNotices()
        if let bound { try database { try rebindStored(bound.id) } }
    }

    /// Tries to restore the session on a back-off (0.1 s doubling to 5 s)
    /// until it works, a stop is requested (returns false) or
    /// `reconnectTimeout` has passed (throws `.connect`). Emits
    /// `connection_lost` and `connection_restored`.
    func restoreConnection(after error: Error) throws -> Bool {
        let lostAt = Date()
        log(.warning, "the connection to PostgreSQL was lost; restoring it: \(Self.message(of: error))")
        let name = bound?.integration.name ?? ""
        emit([Self.json(["type": "connection_lost", "integration": name, "message": Self.message(of: error)])])
        var delay = 0.1
        var attempts = 0
        var last = error
        while true {
            attempts += 1
            do {
                try reconnect()
                log(.info, "the connection to PostgreSQL was restored after \(attempts) attempt\(attempts == 1 ? "" : "s")")
                emitConnectionEvent("connection_restored", ["attempts": attempts,
                                                             "seconds": (Date().timeIntervalSince(lostAt) * 1000).rounded() / 1000])
                return true
            } catch where Self.isConnectionLoss(error) {
                last = error
            }
            if Date().addingTimeInterval(delay).timeIntervalSince(lostAt) > reconnectTimeout {
                throw TandemError(.connect, "the connection to PostgreSQL was lost and could not be restored within \(Int(reconnectTimeout)) s (\(attempts) attempts): \(Self.message(of: last))")
            }
            if waitForStop(seconds: delay) { return false }
            delay = min(delay * 2, 5)
        }
    }

    /// Waits up to `seconds` for a stop request without consuming it.
    /// Returns true when one is pending.
    func waitForStop(seconds: Double) -> Bool {
        var descriptor = pollfd(fd: stopSignal.readEnd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(seconds * 1000))
        return ready > 0 && descriptor.revents & Int16(POLLIN) != 0
    }

    /// `connection_lost` / `connection_restored`, for hosts.
    func emitConnectionEvent(_ type: String, _ details: [String: Any]) {
        var event = details
        event["type"] = type
        event["integration"] = bound?.integration.name ?? ""
        emit([Self.json(event)])
    }

    static func message(of error: Error) -> String {
        (error as? TandemError)?.message ?? (error as? PostgresError)?.description ?? String(describing: error)
    }
}
