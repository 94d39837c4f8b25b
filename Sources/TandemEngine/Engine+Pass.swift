import Foundation
import TandemCore
import TandemPostgres

/// What one pass did.
public struct PassSummary: Sendable, Equatable {
    public var changesRead: Int64 = 0
    public var matched: Int64 = 0
    public var createdInPipeline: Int64 = 0
    public var createdInCRM: Int64 = 0
    public var updatedInPipeline: Int64 = 0
    public var updatedInCRM: Int64 = 0
    public var conflicts: Int64 = 0
    public var errors: Int64 = 0
    public var waiting: Int64 = 0
    /// An initial-sync chunk was handled.
    public var initialChunk = false

    public init() {}

    /// Records left for a later pass because a user was writing them (B11).
    public var deferred: Int64 = 0

    /// Records written in either app.
    public var written: Int64 { createdInPipeline + createdInCRM + updatedInPipeline + updatedInCRM }

    /// Whether another pass right away could find more to do.
    public var didWork: Bool { changesRead > 0 || initialChunk }
}

extension Engine {
    /// One sync pass, in one transaction (B5): a chunk of a running job,
    /// every change committed since the cursor, waiting records whose parents
    /// were linked, failed records due for a retry, and deferred records.
    /// The pass runs in READ COMMITTED and, once merged, locks the rows it
    /// will write with FOR NO KEY UPDATE SKIP LOCKED at the version it read
    /// (`ModuleCompiler.lockTargets`, else `lockRows` and a second merge):
    /// records users are writing right now are deferred, never waited for,
    /// and the rest of the batch commits (B11).
    /// A transient failure (deadlock, a lock timeout on an insert) rolls the
    /// pass back and it runs again after a short back-off.
    /// tandem_cancel() from another thread interrupts it: it rolls back and
    /// fails with `.canceled`.
    public func pass() throws -> PassSummary {
        let bound = try requireBound()
        cancelState.beginPass()
        defer { cancelState.endPass() }
        return try database {
            guard try acquireSyncerLock(bound) else {
                try requireNotRemoved(bound)
                throw TandemError(.busy, "another host is the active syncer of integration '\(bound.integration.name)'; this one stands by")
            }
            var attempt = 0
            while true {
                var events: [String] = []
                do {
                    let summary = try passOnce(try requireBound(), events: &events)
                    if summary.didWork {
                        log(.info, "pass: \(summary.changesRead) read, \(summary.written) written, \(summary.conflicts) conflicts, \(summary.errors) record errors")
                    }
                    emit(events)
                    return summary
                } catch let rebind as ConfigurationChanged {
                    // Another host edited the sync: bind to what is stored now.
                    try rollbackIfOpen()
                    try rebindStored(rebind.integrationID)
                } catch let error as PostgresError where error.isTransient && attempt < 8 {
                    try rollbackIfOpen()
                    log(.debug, "pass rolled back on a transient failure (SQLSTATE \(error.sqlstate ?? "")); retrying")
                    attempt += 1
                    usleep(useconds_t(1000 * attempt * attempt))
                } catch {
                    // Twice if need be: a cancel that reached the server
                    // late may interrupt the first ROLLBACK.
                    if (try? rollbackIfOpen()) == nil { _ = try? rollbackIfOpen() }
                    throw error
                }
            }
        }
    }

    /// A live pass runs as one statement and leaves no transaction open; a
    /// job's pass runs in a transaction of its own.
    func rollbackIfOpen() throws {
        if connection.inTransaction { try connection.execute("ROLLBACK") }
    }

    /// Passes until one finds nothing to do (catch-up, or a whole initial sync).
    @discardableResult
    public func passUntilQuiet(limit: Int = 100_000) throws -> PassSummary {
        var total = PassSummary()
        for _ in 0..<limit {
            let summary = try pass()
            total.add(summary)
            if !summary.didWork { break }
        }
        return total
    }

    /// One pass: a single call of the session's pass function
    /// (`PassFunction`), which reads every change committed since the cursor,
    /// waiting records whose parents were linked, failed records due for a
    /// retry and deferred records, merges and applies them and moves the
    /// cursor, all in one transaction (B5), locking as `pass()` says. When a
    /// tab runs a background job, the pass also takes the job's next chunk.
    func passOnce(_ bound: Bound, events: inout [String]) throws -> PassSummary {
        let started = Date()
        let result = try connection.execute(prepared: PassFunction.livePassStatement, PassFunction.livePass(configVersion: bound.configVersion)).scalar
        var (status, summary) = try passResult(result, bound)
        var chunk: JobChunk?
        if status == .job {
            (status, summary, chunk) = try jobPass(bound, events: &events)
        }
        guard status == .worked else { return summary }
        // Temporary tables are never vacuumed, and a DELETE leaves their
        // pages behind: every pass after them would scan them all. After a
        // pass large enough to have analyzed them, once the passes since
        // have read as many records as such a pass, and every thousand small
        // passes, empty them for real and analyze them empty, so that the
        // next small pass plans for a small batch again (a plan made for
        // 50,000 rows scans the links).
        passesSinceTruncate += 1
        recordsSinceTruncate += summary.changesRead
        if recordsSinceTruncate > largeBatchAbove || passesSinceTruncate >= 1_000 {
            passesSinceTruncate = 0
            recordsSinceTruncate = 0
            let names = PassFunction.workTables(bound.compilers).joined(separator: ", ")
            try connection.execute(batch: ["TRUNCATE \(raw: names)", "ANALYZE \(raw: names)"])
        }
        events.append(Self.json([
            "type": "sync_pass", "integration": bound.integration.name, "kind": chunk?.job.rawValue ?? "incremental",
            "changes_read": summary.changesRead, "matched": summary.matched,
            "created_in_pipeline": summary.createdInPipeline, "created_in_crm": summary.createdInCRM,
            "updated_in_pipeline": summary.updatedInPipeline, "updated_in_crm": summary.updatedInCRM,
            "conflicts": summary.conflicts, "errors": summary.errors, "waiting": summary.waiting, "deferred": summary.deferred,
            "duration_ms": (Date().timeIntervalSince(started) * 1000 * 10).rounded() / 10,
        ]))
        return summary
    }

    /// The pass of a tab that runs a background job: the job's next chunk is
    /// queued as candidates, merged with the live changes, and its progress
    /// committed with them.
    func jobPass(_ bound: Bound, events: inout [String]) throws -> (PassFunction.Status, PassSummary, JobChunk?) {
        try connection.execute(batch: ["BEGIN ISOLATION LEVEL READ COMMITTED", ModuleCompiler.emptying(PassFunction.passTables),
            // A reactivation's catch-up decides its modules' conflicts by its own policy (R16).
            """
            INSERT INTO _tandem_policies (module, policy)
            SELECT mp.module, t.job_policy FROM tandem.tabs t
              JOIN tandem.module_pairs mp ON mp.integration_id = t.integration_id AND mp.tab = t.tab
             WHERE t.integration_id = \(bound.id) AND t.job = 'reactivation'
            """,
        ])
        try analyzeLinksIfStale()
        let chunk = try jobChunk(bound, states: try tabStates(bound.id))
        var (status, summary) = try passResult(connection.execute(
            PassFunction.jobPass(configVersion: bound.configVersion, chunk: chunk?.read, kind: chunk?.job.rawValue ?? "incremental",
                                 statistics: chunk.flatMap(chunkStatistics))).scalar, bound)
        guard status == .worked else {
            try connection.execute("ROLLBACK")
            return (status, summary, nil)
        }
        summary.initialChunk = chunk != nil
        summary.changesRead += chunk?.read ?? 0
        if let chunk, let module = chunk.module {
            // The links matched before the pass were counted as they were made.
            linksMadeSinceAnalyze[module, default: 0] += summary.matched - (chunk.matchedSetWise ?? 0) + summary.createdInPipeline + summary.createdInCRM
        }
        if let chunk { try finishChunk(bound, chunk, events: &events) }
        try connection.execute("COMMIT")
        return (status, summary, chunk)
    }

    /// Analyzes the links when their statistics may mislead a job chunk's
    /// plans (`linksNeedAnalyze`), inside the job's transaction: ANALYZE
    /// counts the links the transaction made itself.
    func analyzeLinksIfStale() throws {
        // An initial sync grows the links faster than autovacuum analyzes
        // them; plans made on stale statistics turn anti-joins against the
        // links into nested loops over the whole table. Worst is a module
        // the statistics saw with no links: its next chunk's anti-join then
        // compares every record with every link (minutes at 100,000 records
        // per module). Analyzed when the links made for a module since
        // outnumber half of what the statistics count for it (the mirrors
        // by their key only: no plan looks at the rest). What the plans need
        // (row counts, each module's share, the ids' distinct ratio) a
        // sample of 3,000 rows tells as well as the default 30,000, in a
        // fifth of the time (0.03 against 0.16 s at 340,000 links).
        guard linksNeedAnalyze() else { return }
        let rows = try connection.execute(batch: [
            "SET LOCAL default_statistics_target = 10",
            "ANALYZE tandem.links, tandem.mirrors (link_id)",
            "RESET default_statistics_target",
            """
            SELECT m.module, (m.share * greatest(c.reltuples, 0))::bigint::text
              FROM pg_stats s
             CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS m(module, share)
             CROSS JOIN pg_class c
             WHERE s.schemaname = 'tandem' AND s.tablename = 'links' AND s.attname = 'module'
               AND c.oid = 'tandem.links'::regclass
            """,
        ]).rows
        linksPlanned = Dictionary(rows.compactMap { row -> (String, Int64)? in
            guard let module = row[0], let count = row.count > 1 ? row[1].flatMap({ Int64($0) }) : nil else { return nil }
            return (module, count)
        }, uniquingKeysWith: max)
        linksMadeSinceAnalyze = [:]
    }

    /// Whether the links' statistics may mislead the next job chunk's plans:
    /// never analyzed in this session, or a module got more links since
    /// than half of what they count for it (and over a hundred: a thousand
    /// links the statistics do not know make each anti-join of a chunk of a
    /// thousand records cost 0.15 s).
    func linksNeedAnalyze() -> Bool {
        guard let planned = linksPlanned else { return true }
        return linksMadeSinceAnalyze.contains { module, made in
            made > max(100, (planned[module] ?? 0) / 2)
        }
    }

    /// The status and counts the pass function returned; the statuses that
    /// stop the pass are thrown.
    func passResult(_ text: String?, _ bound: Bound) throws -> (PassFunction.Status, PassSummary) {
        let values = (text ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map { Int64($0) ?? 0 }
        guard let first = values.first, let status = PassFunction.Status(rawValue: first) else {
            throw TandemError(.error, "the pass function returned no status")
        }
        switch status {
        case .removed: throw Self.removedError(bound.integration.name)
        case .configurationChanged: throw ConfigurationChanged(integrationID: bound.id)
        case .noCursor:
            throw TandemError(.state, "integration '\(bound.integration.name)' has no sync cursor: configure it again", extended: ExtendedCode.stateNoCursor)
        case .quiet, .job, .worked: break
        }
        let count = { (position: PassFunction.Count) -> Int64 in
            position.rawValue - 1 < values.count ? values[position.rawValue - 1] : 0
        }
        var summary = PassSummary()
        summary.changesRead = count(.changesRead)
        summary.matched = count(.matched)
        summary.createdInPipeline = count(.createdInPipeline)
        summary.createdInCRM = count(.createdInCRM)
        summary.updatedInPipeline = count(.updatedInPipeline)
        summary.updatedInCRM = count(.updatedInCRM)
        summary.conflicts = count(.conflicts)
        summary.errors = count(.errors)
        summary.waiting = count(.waiting)
        summary.deferred = count(.deferred)
        return (status, summary)
    }
}

extension PassSummary {
    /// Adds another pass's counts (the summary of several passes).
    public mutating func add(_ other: PassSummary) {
        changesRead += other.changesRead
        matched += other.matched
        createdInPipeline += other.createdInPipeline
        createdInCRM += other.createdInCRM
        updatedInPipeline += other.updatedInPipeline
        updatedInCRM += other.updatedInCRM
        conflicts += other.conflicts
        errors += other.errors
        waiting += other.waiting
        deferred += other.deferred
        initialChunk = initialChunk || other.initialChunk
    }
}
