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
    /// The pass runs in READ COMMITTED and locks the rows it merges with
    /// FOR UPDATE SKIP LOCKED: records users are writing right now are
    /// deferred, never waited for, and the rest of the batch commits (B11).
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
                    _ = try? connection.execute("ROLLBACK")
                    try rebindStored(rebind.integrationID)
                } catch let error as PostgresError where error.isTransient && attempt < 8 {
                    _ = try? connection.execute("ROLLBACK")
                    log(.debug, "pass rolled back on a transient failure (SQLSTATE \(error.sqlstate ?? "")); retrying")
                    attempt += 1
                    usleep(useconds_t(1000 * attempt * attempt))
                } catch {
                    // Twice if need be: a cancel that reached the server
                    // late may interrupt the first ROLLBACK.
                    if (try? connection.execute("ROLLBACK")) == nil { _ = try? connection.execute("ROLLBACK") }
                    throw error
                }
            }
        }
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

    func passOnce(_ bound: Bound, events: inout [String]) throws -> PassSummary {
        let started = Date()
        var summary = PassSummary()
        // The compiled statements start from the small set of records at hand
        // and reach the big tables by key: keep the written join order, which
        // also spares the planner a search over a dozen joins per statement.
        try connection.execute(batch: [
            "BEGIN ISOLATION LEVEL READ COMMITTED", "SET LOCAL join_collapse_limit = 1",
            // Only inserts can wait for a lock (a unique key or a parent row
            // a user holds); never for long.
            "SET LOCAL lock_timeout = '2s'",
            "DELETE FROM _tandem_candidates", "DELETE FROM _tandem_new_links", "DELETE FROM _tandem_failed",
            "DELETE FROM _tandem_locked",
            // A reactivation's catch-up decides its modules' conflicts by its own policy (R16).
            "DELETE FROM _tandem_policies",
            """
            INSERT INTO _tandem_policies (module, policy)
            SELECT mp.module, t.job_policy FROM tandem.tabs t
              JOIN tandem.module_pairs mp ON mp.integration_id = t.integration_id AND mp.tab = t.tab
             WHERE t.integration_id = (SELECT s.integration_id FROM _tandem_session s) AND t.job = 'reactivation'
            """,
        ])
        let id = bound.id

        // The cursor is the snapshot of the last pass that read changes: read
        // what is visible now and was not then. A transaction that was running
        // then is read by the first pass after it commits (B1).
        let snapshot = try connection.execute("""
            SELECT pg_current_snapshot()::text, i.config_version, i.removed_at IS NOT NULL,
                   pg_snapshot_xmax(c.snapshot) > pg_snapshot_xmax(pg_current_snapshot())
              FROM tandem.integrations i LEFT JOIN tandem.sync_cursors c ON c.integration_id = i.integration_id
             WHERE i.integration_id = \(id)
            """).rows.first
        guard let snapshot, snapshot[2] == "f" else {
            throw Self.removedError(bound.integration.name)
        }
        if snapshot[1].flatMap({ Int64($0) }) != bound.configVersion { throw ConfigurationChanged(integrationID: id) }
        guard let current = snapshot[0] else {
            throw TandemError(.state, "integration '\(bound.integration.name)' has no sync cursor: configure it again", extended: ExtendedCode.stateNoCursor)
        }
        // A cursor ahead of every transaction id of this cluster: the database
        // was restored from a dump of another cluster, whose ids it carries.
        // Left alone, every change made here would look older than the cursor
        // and never be read.
        let restored = snapshot[3] == "t"
        if restored { try realignAfterRestore() }
        let states = try tabStates(id)
        let syncing = Set(states.filter { TabState(rawValue: $0.value.state)?.isSyncing == true }.keys)

        summary.changesRead += Int64(try connection.execute("""
            INSERT INTO _tandem_candidates (module, side, record_id)
            SELECT DISTINCT mp.module, CASE WHEN cl.table_oid = mp.pipeline_table::oid THEN 'pipeline' ELSE 'crm' END, cl.record_id
              FROM tandem.sync_cursors sc
              JOIN tandem.change_log cl ON cl.xid >= sc.position AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot)
              JOIN tandem.module_pairs mp ON mp.integration_id = sc.integration_id
                   AND cl.table_oid IN (mp.pipeline_table::oid, mp.crm_table::oid)
              JOIN tandem.tabs t ON t.integration_id = mp.integration_id AND t.tab = mp.tab AND t.state IN ('initial_sync', 'active')
             WHERE sc.integration_id = \(id)
            ON CONFLICT DO NOTHING
            """).affected)
        let cursorMoves = summary.changesRead > 0 || restored
        summary.changesRead += Int64(try connection.execute("""
            INSERT INTO _tandem_candidates (module, side, record_id)
            SELECT f.module, f.side, f.record_id FROM tandem.record_failures f
             WHERE f.integration_id = \(id) AND f.resolved_at IS NULL AND f.retry_at <= now()
            UNION
            SELECT d.module, d.side, d.record_id FROM tandem.deferred_records d
             WHERE d.integration_id = \(id) AND d.retry_at <= now()
            ON CONFLICT DO NOTHING
            """).affected)

        // An initial sync grows links and mirrors faster than autovacuum
        // analyzes them; plans made on stale statistics turn anti-joins
        // against the links into nested loops over the whole table.
        if states.values.contains(where: { $0.job != nil }) {
            try connection.execute("ANALYZE tandem.links, tandem.mirrors")
        }
        let chunk = try jobChunk(bound, states: states)
        summary.initialChunk = chunk != nil
        summary.changesRead += chunk?.read ?? 0

        if summary.changesRead == 0 && chunk == nil && !restored {
            // A quiet pass writes nothing (B4): the old cursor is still exact.
            try connection.execute("ROLLBACK")
            return summary
        }

        // From here on the pass writes the apps' tables. Its transaction id in
        // tandem._applying tells the capture triggers to skip these writes (B4);
        // only Tandem's role can write that table, so no app session can hide
        // its own writes that way. The row is deleted before COMMIT: no other
        // session ever sees it.
        // The candidates are new every pass: fresh statistics keep the plans
        // set-based and index-driven.
        try connection.execute(batch: ["INSERT INTO tandem._applying (xid) VALUES (pg_current_xact_id())", "ANALYZE _tandem_candidates"])

        let counts = Dictionary(try connection.execute(
            "SELECT module, count(*)::text FROM _tandem_candidates GROUP BY module").rows.compactMap { row -> (String, Int64)? in
                guard let module = row[0], let count = row[1].flatMap({ Int64($0) }) else { return nil }
                return (module, count)
            }, uniquingKeysWith: +)
        var linkedModules: Set<String> = []
        for compiled in bound.compiled where syncing.contains(compiled.module.tab.rawValue) {
            let compiler = compiled.compiler
            let parents = compiler.module.fields.reduce(into: Set<String>()) { $0.formUnion($1.parentModules) }
            var candidates = counts[compiler.module.name] ?? 0
            if !parents.isDisjoint(with: linkedModules) {
                let retried = Int64(try connection.execute(compiled.retryWaiting).affected)
                candidates += retried
                summary.changesRead += retried
            }
            if candidates == 0 { continue }

            let newLinks = try syncModule(compiled, candidates: candidates, summary: &summary)
            if newLinks > 0 { linkedModules.insert(compiler.module.name) }
        }

        try recordFailures(id, summary: &summary)
        // Deferred records that were candidates and went through are done;
        // those deferred again have a later retry_at.
        try connection.execute("""
            DELETE FROM tandem.deferred_records d USING _tandem_candidates c
             WHERE d.integration_id = \(id) AND d.retry_at <= now()
               AND c.module = d.module AND c.side = d.side AND c.record_id = d.record_id
            """)
        if cursorMoves {
            try connection.execute("UPDATE tandem.sync_cursors SET snapshot = \(current)::pg_snapshot, moved_at = now() WHERE integration_id = \(id)")
            // What every cursor has read is not needed any more.
            try connection.execute("""
                DELETE FROM tandem.change_log cl
                 WHERE cl.xid < (SELECT max(pg_snapshot_xmax(snapshot)) FROM tandem.sync_cursors)
                   AND NOT EXISTS (SELECT 1 FROM tandem.sync_cursors sc WHERE NOT pg_visible_in_snapshot(cl.xid, sc.snapshot))
                """)
        }
        try connection.execute("""
            INSERT INTO tandem.runs (integration_id, kind, started_at, changes_read, matched, created_in_pipeline, created_in_crm,
                                     updated_in_pipeline, updated_in_crm, conflicts, errors, waiting, deferred)
            VALUES (\(id), \(chunk?.job.rawValue ?? "incremental"), \(Self.timestamp(started))::timestamptz,
                    \(summary.changesRead), \(summary.matched), \(summary.createdInPipeline), \(summary.createdInCRM),
                    \(summary.updatedInPipeline), \(summary.updatedInCRM), \(summary.conflicts), \(summary.errors), \(summary.waiting),
                    \(summary.deferred))
            """)
        if let chunk { try finishChunk(bound, chunk, events: &events) }
        try connection.execute(batch: ["DELETE FROM tandem._applying WHERE xid = pg_current_xact_id()", "COMMIT"])
        // Temporary tables are never vacuumed: after a large pass, and every
        // thousand small ones, empty them for real.
        passesSinceTruncate += 1
        if summary.changesRead > 5_000 || passesSinceTruncate >= 1_000 {
            passesSinceTruncate = 0
            let names = ["_tandem_candidates", "_tandem_new_links", "_tandem_failed", "_tandem_policies", "_tandem_locked"] + bound.compilers.flatMap(\.temporaryTableNames)
            try connection.execute("TRUNCATE \(raw: names.joined(separator: ", "))")
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

    /// Runs the compiled statements of one module, skipping those that have
    /// nothing to do. Returns the links made.
    func syncModule(_ compiled: CompiledModule, candidates: Int64, summary: inout PassSummary) throws -> Int64 {
        var newLinks: Int64 = 0
        let compiler = compiled.compiler
        let linked = Int64(try connection.execute(batch: compiled.clearWork + [compiled.forgetWaiting, compiled.linkedPairs]).affected)
        if candidates > linked {
            // Some candidates have no link yet: match them (B3), else copy them.
            for side in Side.allCases {
                if let match = compiled.match[side] {
                    let matched = Int64(try connection.execute(match).affected)
                    summary.matched += matched
                    newLinks += matched
                }
            }
        }
        // What a user is writing right now waits for a later pass (B11).
        summary.deferred += Int64(try connection.execute(batch: Side.allCases.compactMap { compiled.lockRows[$0] } + [compiled.deferContended]).affected)
        if candidates > linked {
            for side in Side.allCases {
                let prepared = try connection.execute(compiled.prepareCreate[side]).affected
                if prepared == 0 { continue }
                try connection.execute("ANALYZE \(raw: compiler.createTable(side))")
                _ = try apply(compiled.create[side], compiler: compiler)
                let created = Int64(try connection.execute(compiled.linkCreated[side]).affected)
                if side == .pipeline { summary.createdInCRM += created } else { summary.createdInPipeline += created }
                newLinks += created
                summary.waiting += Int64(try connection.execute(compiled.rememberWaitingCreates[side]).affected)
            }
        }
        let plan = (try connection.execute(batch: ["ANALYZE \(raw: compiler.pairsTable)", compiled.buildWork, compiled.workPlan])
            .rows.first ?? []).map { $0.flatMap { Int64($0) } ?? 0 }
        guard plan.count == 9, plan[0] > 0 else { return newLinks }
        let (toPipeline, toCRM, conflicts, unwritten, deleted) = (plan[2], plan[3], plan[4], plan[5], plan[6])
        if conflicts > 0 { try connection.execute(compiled.recordConflicts) }
        var failed: Int64 = 0
        if toCRM > 0 { failed += try apply(compiled.update.crm, compiler: compiler) }
        if toPipeline > 0 { failed += try apply(compiled.update.pipeline, compiler: compiler) }
        var bookkeeping: [SQL] = []
        if unwritten > 0 { bookkeeping.append(compiled.mirrorUnwritten) }
        if toCRM + toPipeline > 0 { bookkeeping.append(compiled.mirrorWritten) }
        if deleted > 0 { bookkeeping.append(compiled.markDeleted) }
        if plan[7] > 0 { bookkeeping.append(compiled.rememberWaitingPairs.pipeline) }
        if plan[8] > 0 { bookkeeping.append(compiled.rememberWaitingPairs.crm) }
        if !bookkeeping.isEmpty { try connection.execute(batch: bookkeeping) }
        if failed > 0 {
            let written = try connection.execute("""
                SELECT count(*) FILTER (WHERE to_pipeline AND NOT failed), count(*) FILTER (WHERE to_crm AND NOT failed) FROM \(raw: compiler.workTable)
                """).rows.first ?? []
            summary.updatedInPipeline += written.first.flatMap { $0.flatMap { Int64($0) } } ?? 0
            summary.updatedInCRM += written.count > 1 ? (written[1].flatMap { Int64($0) } ?? 0) : 0
        } else {
            summary.updatedInPipeline += toPipeline
            summary.updatedInCRM += toCRM
        }
        summary.conflicts += conflicts
        summary.waiting += plan[7] + plan[8]
        return newLinks
    }

    /// Runs an apply statement set-based; if it fails, runs it record by record
    /// on the server and keeps the failures as record errors (B6).
    @discardableResult
    func apply(_ statement: ApplyStatement, compiler: ModuleCompiler) throws -> Int64 {
        do {
            try connection.execute(batch: ["SAVEPOINT tandem_apply", statement.sql, "RELEASE SAVEPOINT tandem_apply"])
            return 0
        } catch let error as PostgresError where error.kind == .statement && error.isRecordError {
            try connection.execute("ROLLBACK TO SAVEPOINT tandem_apply")
        }
        let text = statement.sql.render().text
        let recordID: SQL = statement.workKey == "link_id"
            ? "(SELECT \(raw: statement.source == .pipeline ? "p_id" : "c_id") FROM \(raw: statement.workTable) w WHERE w.link_id = e.failed_key::bigint)"
            : "e.failed_key"
        let failed = try connection.execute("""
            WITH failed AS (
              INSERT INTO _tandem_failed (module, side, record_id, operation, sqlstate, message)
              SELECT \(compiler.module.name), \(statement.source.rawValue), \(recordID), \(statement.operation),
                     e.failed_sqlstate, e.failed_message
                FROM tandem._apply_each(\(text), \(statement.workTable)::regclass, \(statement.workKey)) e
              RETURNING record_id)
            SELECT count(*) FROM failed
            """).scalar.flatMap { Int64($0) } ?? 0
        try connection.execute("""
            UPDATE \(raw: statement.workTable) w SET failed = true
              FROM _tandem_failed f
             WHERE f.module = \(compiler.module.name) AND f.side = \(statement.source.rawValue) AND f.operation = \(statement.operation)
               AND f.record_id = \(raw: statement.workKey == "link_id" ? (statement.source == .pipeline ? "w.p_id" : "w.c_id") : "w.src_id")
            """)
        return failed
    }

    /// After a restore into another cluster: every change in the log is read
    /// again by the integrations whose cursors came with the dump (a change
    /// already synced merges to nothing), and their cursors restart before
    /// every transaction id. Changes that a cursor made in this cluster still
    /// has to read keep their ids.
    func realignAfterRestore() throws {
        try connection.execute(batch: ["""
            UPDATE tandem.change_log cl SET xid = '3'
             WHERE NOT EXISTS (SELECT 1 FROM tandem.sync_cursors sc
                                WHERE pg_snapshot_xmax(sc.snapshot) <= pg_snapshot_xmax(pg_current_snapshot())
                                  AND cl.xid >= sc.position AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot))
            """, """
            UPDATE tandem.sync_cursors SET snapshot = '3:3:', moved_at = now()
             WHERE pg_snapshot_xmax(snapshot) > pg_snapshot_xmax(pg_current_snapshot())
            """])
    }

    /// Failures are kept with a growing back-off; records that went through
    /// resolve their earlier failures.
    func recordFailures(_ id: Int64, summary: inout PassSummary) throws {
        summary.errors = Int64(try connection.execute("""
            INSERT INTO tandem.record_failures AS f (integration_id, module, side, record_id, operation, sqlstate, message, retry_at)
            SELECT DISTINCT ON (module, side, record_id) \(id), module, side, record_id, operation, sqlstate, message, now() + interval '5 seconds'
              FROM _tandem_failed WHERE record_id IS NOT NULL
            ON CONFLICT (integration_id, module, side, record_id) DO UPDATE
               SET operation = EXCLUDED.operation, sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message,
                   first_failed_at = CASE WHEN f.resolved_at IS NULL THEN f.first_failed_at ELSE now() END,
                   last_failed_at = now(),
                   attempts = CASE WHEN f.resolved_at IS NULL THEN f.attempts + 1 ELSE 1 END,
                   retry_at = now() + least(interval '1 hour',
                                  interval '5 seconds' * power(2, least(CASE WHEN f.resolved_at IS NULL THEN f.attempts ELSE 0 END, 10))),
                   resolved_at = NULL
            """).affected)
        try connection.execute("""
            UPDATE tandem.record_failures f SET resolved_at = now()
              FROM _tandem_candidates c
             WHERE f.integration_id = \(id) AND f.resolved_at IS NULL
               AND f.module = c.module AND f.side = c.side AND f.record_id = c.record_id
               AND NOT EXISTS (SELECT 1 FROM _tandem_failed x WHERE x.module = c.module AND x.side = c.side AND x.record_id = c.record_id)
            """)
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
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
