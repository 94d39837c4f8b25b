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
        // Awake, this follower passes until the log is quiet, and writers
        // skip NOTIFY (migration 0010). Before it returns it is marked not
        // awake and waits out those writers, and reads what they committed.
        // It is marked awake after its first pass, which an edit waits for;
        // writers notify until then. A standby never gets that far.
        do {
            // What woke it is read by the first pass.
            _ = try database { try connection.notifications() }
            total.add(try pass())
            try database { try markAwake() }
            if total.didWork { total.add(try passUntilQuiet()) }
            // A notification that arrives while a pass runs is buffered by
            // libpq, and the socket will not signal it again: look until none
            // is left.
            while try database({ try !connection.notifications().isEmpty }) {
                total.add(try passUntilQuiet())
            }
        } catch let error as TandemError where error.code == .busy {
            // A standby: the active host reads the skipped writers' changes.
            try database { try markAsleep() }
            return total
        } catch {
            // Not awake, and polling: the host's next call (run() makes it
            // after a transient failure) waits out the writers that skipped
            // NOTIFY meanwhile and reads their changes.
            if !Self.isConnectionLoss(error) {
                _ = try? rollbackIfOpen()
                _ = try? markAsleep()
            }
            skippedWritersPending = true
            throw error
        }
        // Until the last pass has read them, the skipped writers' changes are
        // pending: a failure here leaves the host polling for them.
        skippedWritersPending = true
        try database { try markAsleep() }
        total.add(try readSkippedWriters())
        return total
    }

    /// Lists this session in tandem._followers (not awake): from now on a
    /// writer notifies unless this follower is awake. Rows of sessions that
    /// ended are deleted. Writers that skipped NOTIFY before (no follower was
    /// listed, or all were awake) are waited out, so the pass a host runs
    /// when it starts (run() does; a socket host calls process()) reads their
    /// changes; one still running makes the host poll (waitMilliseconds).
    func joinFollowers() throws {
        // Once per session (a rebind within a transaction keeps the row).
        guard followerSession != connection.backendPID else { return }
        try changeFollowers([
            "DELETE FROM tandem._followers f WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = f.backend_pid)",
            """
            INSERT INTO tandem._followers (backend_pid) VALUES (pg_backend_pid())
            ON CONFLICT (backend_pid) DO UPDATE SET awake = false, registered_at = now()
            """,
        ])
        followerSession = connection.backendPID
        skippedWritersPending = !(try waitOutSkippedWriters())
    }

    /// Takes this session out of tandem._followers (on close). A transaction
    /// still open is rolled back first, as closing would.
    func leaveFollowers() {
        _ = try? rollbackIfOpen()
        _ = try? changeFollowers(["DELETE FROM tandem._followers WHERE backend_pid = pg_backend_pid()"])
    }

    /// Marks this follower awake: writers that read the count next skip
    /// NOTIFY while no other follower sleeps.
    func markAwake() throws {
        try changeFollowers(["UPDATE tandem._followers SET awake = true WHERE backend_pid = pg_backend_pid()"])
    }

    /// Marks this follower not awake. Written even if the row went
    /// missing: a follower with no row would let writers skip NOTIFY while
    /// it sleeps.
    func markAsleep() throws {
        try changeFollowers(["""
            INSERT INTO tandem._followers (backend_pid) VALUES (pg_backend_pid())
            ON CONFLICT (backend_pid) DO UPDATE SET awake = false
            """])
    }

    /// Changes tandem._followers and sets the count writers read,
    /// tandem._sleeping_followers, in one transaction that holds the table
    /// in SHARE ROW EXCLUSIVE mode: no other follower counts in between, and
    /// the count sees what they committed (migration 0013). It commits
    /// without waiting for the disk: a crash ends every follower's session,
    /// and a follower that joins after it waits out the writers that skipped
    /// NOTIFY and reads the log before it sleeps, whatever the table and the
    /// count say (two fsyncs fewer per wake-up).
    func changeFollowers(_ changes: [SQL]) throws {
        try transaction(["SET LOCAL lock_timeout = '2s'", "SET LOCAL synchronous_commit = off",
                         "LOCK TABLE tandem._followers IN SHARE ROW EXCLUSIVE MODE"] + changes + ["""
            SELECT setval('tandem._sleeping_followers', (SELECT count(*) FROM tandem._followers WHERE NOT awake), true)
            """])
    }

    /// Waits (at most 100 ms) until no writer that skipped NOTIFY is running:
    /// they hold the lock shared until they end. False if one still is.
    func waitOutSkippedWriters() throws -> Bool {
        do {
            try transaction(["SET LOCAL lock_timeout = '100ms'", "SELECT pg_advisory_xact_lock(tandem._skipped_notify_lock())"])
            return true
        } catch let error as PostgresError where error.sqlstate == "55P03" {
            return false
        }
    }

    /// Runs `statements` in one transaction, one round trip; rolls it back
    /// when one fails.
    func transaction(_ statements: [SQL]) throws {
        do {
            try connection.execute(batch: ["BEGIN"] + statements + ["COMMIT"])
        } catch {
            _ = try? rollbackIfOpen()
            throw error
        }
    }

    /// After this follower was marked not awake: once the writers that
    /// skipped NOTIFY have ended, one more pass reads what they committed.
    /// While one is still running, the host polls (waitMilliseconds).
    func readSkippedWriters() throws -> PassSummary {
        guard try database({ try waitOutSkippedWriters() }) else {
            skippedWritersPending = true
            return PassSummary()
        }
        let summary: PassSummary
        do {
            summary = try passUntilQuiet()
        } catch let error as TandemError where error.code == .busy {
            summary = PassSummary()
        }
        skippedWritersPending = false
        return summary
    }

    /// How long a host may wait on the socket before time alone gives it
    /// work, in milliseconds; -1 when only a notification can. Every committed
    /// change notifies (B1) or was read before process() returned (a writer
    /// that skipped NOTIFY while this host was awake), so an idle active host
    /// waits with no timeout and runs no statement at all. Three timers
    /// remain: the earliest due retry of a failed record (B6) or of a record
    /// deferred because a user was writing it (B11); every 100 ms while a
    /// writer that skipped NOTIFY is still running; and on a standby host the
    /// next attempt to take
    /// over from the active one (B9, B11: every half second, a single
    /// `pg_try_advisory_lock`; PostgreSQL releases the lock when the active
    /// host's session ends).
    public func waitMilliseconds() throws -> Int32 {
        let bound = try requireBound()
        guard isActiveSyncer else { return Self.standbyRetryMilliseconds }
        // Prepared: it runs after every wake-up, and parsing and planning it
        // cost 0.42 ms of the server's time, and running it 0.006 ms.
        let due = try database {
            try connection.execute(prepared: "tandem_next_retry", """
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
        // A writer that skipped NOTIFY while this host was awake is still
        // running: poll until it has ended and its change was read.
        let pending: Int64? = skippedWritersPending ? Self.skippedWritersPollMilliseconds : nil
        guard let milliseconds = [due.flatMap { Int64($0) }, pending].compactMap({ $0 }).min() else { return -1 }
        // A little after the retry is due (the pass compares with its start
        // time), and never a busy loop.
        return Int32(clamping: max(milliseconds, 0) + 10)
    }

    /// How often a host polls while a writer that skipped NOTIFY runs.
    static let skippedWritersPollMilliseconds: Int64 = 100

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
