import Foundation
import TandemCore
import TandemPostgres

/// Following changes: LISTEN/NOTIFY wakes the engine (B1); one host per
/// integration is the active syncer, the others stand by and take over when
/// its session ends (B9).
extension Engine {
    /// A session-level advisory lock per integration: held while this
    /// connection lives, released by PostgreSQL if the host dies.
    func acquireSyncerLock(_ bound: Bound) throws -> Bool {
        if isActiveSyncer { return true }
        let held = try connection.execute("SELECT pg_try_advisory_lock(1952804196, hashtext(\(bound.integration.name)))").scalar == "t"
        isActiveSyncer = held
        return held
    }

    func releaseSyncerLock(_ bound: Bound) throws {
        _ = try connection.execute("SELECT pg_advisory_unlock(1952804196, hashtext(\(bound.integration.name)))")
        isActiveSyncer = false
    }

    /// The socket to poll; -1 when closed.
    public var socket: Int32 { connection.socket }

    /// Reads what arrived and runs passes while there is work. Never waits for
    /// input. A standby host does nothing. A lost connection is restored
    /// once per call (then the host's next call, after a pause of its own,
    /// tries again); the handle's socket is then a new one.
    @discardableResult
    public func process() throws -> PassSummary {
        do {
            return try processArrived()
        } catch let error where Self.isConnectionLoss(error) && reconnectTimeout > 0 && bound != nil {
            emitConnectionEvent("connection_lost", ["message": Self.message(of: error)])
            try reconnect()
            emitConnectionEvent("connection_restored", ["attempts": 1])
            return try processArrived()
        }
    }

    func processArrived() throws -> PassSummary {
        _ = try requireBound()
        var total = PassSummary()
        // A notification that arrives while a pass runs is buffered by libpq,
        // and the socket will not signal it again: look until none is left.
        var first = true
        while try database({ try !connection.notifications().isEmpty }) || first {
            first = false
            do {
                total.add(try passUntilQuiet())
            } catch let error as TandemError where error.code == .busy {
                return total
            }
        }
        return total
    }

    /// How long a host may wait on the socket before time alone gives it
    /// work, in milliseconds; -1 when only a notification can. Every committed
    /// change notifies (B1), so an idle active host waits with no timeout and
    /// runs no statement at all. Two timers remain: the earliest due retry of
    /// a failed record (B6) or of a record deferred because a user was
    /// writing it (B11), and on a standby host the next attempt to take
    /// over from the active one (B9, B11: every half second, a single
    /// `pg_try_advisory_lock`; PostgreSQL releases the lock when the active
    /// host's session ends).
    public func waitMilliseconds() throws -> Int32 {
        let bound = try requireBound()
        guard isActiveSyncer else { return Self.standbyRetryMilliseconds }
        let due = try database {
            try connection.execute("""
                SELECT ceil(extract(epoch FROM min(due) - clock_timestamp()) * 1000)::bigint
                  FROM (SELECT min(f.retry_at) FROM tandem.record_failures f
                         WHERE f.integration_id = \(bound.id) AND f.resolved_at IS NULL
                        UNION ALL
                        SELECT min(d.retry_at) FROM tandem.deferred_records d WHERE d.integration_id = \(bound.id)) r(due)
                """).scalar
        }
        // A notification that arrived while that query ran was read into
        // libpq's buffer with its result: the socket will not signal it
        // again, so a host waiting on it now would miss the change.
        if try database({ try !connection.notifications().isEmpty }) { return 0 }
        guard let due, let milliseconds = Int64(due) else { return -1 }
        // A little after the retry is due (the pass compares with its start
        // time), and never a busy loop.
        return Int32(clamping: max(milliseconds, 0) + 10)
    }

    /// How often a standby host tries to take over.
    static let standbyRetryMilliseconds: Int32 = 500

    /// Follows changes until `requestStop()`: catches up from the cursor first,
    /// then waits on the socket, for as long as `waitMilliseconds()` says.
    public func run() throws {
        _ = try requireBound()
        // A stop that arrived before run() began still counts (a host may
        // start run() on a thread and stop it at once); it is consumed here.
        // Lost connections are restored (B11); transient failures (a
        // deadlock, a lock not available in time) wait and run again. Both
        // are reported as events; neither ends the follower.
        var transientDelay = 0.1
        while true {
            if stopSignal.drain() { return }
            do {
                _ = try processArrived()
                transientDelay = 0.1
                let timeout = try waitMilliseconds()
                var descriptors = [
                    pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: stopSignal.readEnd, events: Int16(POLLIN), revents: 0),
                ]
                let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
                if ready < 0 && errno != EINTR {
                    throw TandemError(.error, "poll failed: errno \(errno)")
                }
                if stopSignal.drain() { return }
                if descriptors[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                    throw TandemError(.connect, "the connection to PostgreSQL was lost")
                }
            } catch let error where Self.isConnectionLoss(error) && reconnectTimeout > 0 {
                guard try restoreConnection(after: error) else { return }
            } catch let error where Self.isTransient(error) {
                log(.warning, "a transient failure (SQLSTATE \((error as? TandemError)?.sqlstate ?? "")) rolled the pass back; retrying in \(Int(transientDelay * 1000)) ms")
                emit([Self.json(["type": "transient_error", "integration": bound?.integration.name ?? "",
                                 "sqlstate": (error as? TandemError)?.sqlstate ?? "", "message": Self.message(of: error),
                                 "retry_in_ms": Int(transientDelay * 1000)])])
                if waitForStop(seconds: transientDelay) { continue }
                transientDelay = min(transientDelay * 2, 5)
            }
        }
    }

    /// Waits until this host is the integration's active syncer (`tandem sync
    /// --wait`): tries the lock every quarter of a second. Returns false when
    /// a stop was requested first.
    public func waitToBecomeSyncer() throws -> Bool {
        let bound = try requireBound()
        while true {
            if try database({ try acquireSyncerLock(bound) }) { return true }
            if waitForStop(seconds: 0.25) { _ = stopSignal.drain(); return false }
        }
    }

    /// Makes `run()` return. Safe from any thread and from a signal handler.
    public func requestStop() { stopSignal.signal() }
}
