import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// Keeping up with a busy CRM (B11): records users are writing right now do
/// not abort or block the batch; they are deferred and follow once free.
final class ContentionTests: XCTestCase {
    /// Passes until `condition` holds or `seconds` pass; returns whether it held.
    func passUntil(_ engine: Engine, seconds: Double = 10, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            try engine.passUntilQuiet()
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    /// One pass, which must not wait for a lock a user holds.
    func passWithoutWaiting(_ engine: Engine, file: StaticString = #filePath, line: UInt = #line) throws -> PassSummary {
        let started = Date()
        let summary = try engine.pass()
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5, "the pass did not wait for the user's lock", file: file, line: line)
        return summary
    }

    func testB11_ARecordAUserHoldsIsDeferredTheRestCommitsAndItFollowsOnceFree() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let held = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        let free = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
        let user = try Connection(conninfo: db.conninfo)
        defer { user.close() }
        try user.execute("BEGIN")
        try user.execute("UPDATE pipeline.contacts SET title = 'Held by a user' WHERE id = 1")
        try db.execute("UPDATE crm.contacts SET phone = '+1 555 0101' WHERE id = \(held)::bigint")
        try db.execute("UPDATE crm.contacts SET phone = '+1 555 0102' WHERE id = \(free)::bigint")

        let summary = try passWithoutWaiting(engine)
        XCTAssertEqual(summary.deferred, 1)
        XCTAssertEqual(try db.scalar("SELECT phone FROM pipeline.contacts WHERE id = 2"), "+1 555 0102", "the rest of the batch committed")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.pending_changes WHERE change = 'deferred'"), 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.run_history WHERE deferred > 0"), 1)

        try user.execute("COMMIT")
        XCTAssertTrue(try passUntil(engine) {
            try db.scalar("SELECT title FROM crm.contacts WHERE id = \(held)::bigint") == "Held by a user"
        })
        XCTAssertEqual(try db.scalar("SELECT phone FROM pipeline.contacts WHERE id = 1"), "+1 555 0101", "both sides' changes kept (B2)")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.deferred_records"), 0)
    }

    /// The source of a write is only read: a user who holds it in an open
    /// transaction neither blocks nor defers the write of its committed
    /// change to the other side, and what the user commits later follows.
    func testB11_ARecordAUserHoldsThatThePassOnlyReadsIsNotDeferred() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "3"))
        try db.execute("UPDATE pipeline.contacts SET phone = '+1 555 0303' WHERE id = 3")
        let user = try Connection(conninfo: db.conninfo)
        defer { user.close() }
        try user.execute("BEGIN")
        try user.execute("UPDATE pipeline.contacts SET title = 'Written while read' WHERE id = 3")

        let summary = try passWithoutWaiting(engine)
        XCTAssertEqual(summary.deferred, 0, "\(summary)")
        XCTAssertEqual(summary.updatedInCRM, 1, "\(summary)")
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "+1 555 0303")

        try user.execute("COMMIT")
        XCTAssertTrue(try passUntil(engine) {
            try db.scalar("SELECT title FROM crm.contacts WHERE id = \(crmID)::bigint") == "Written while read"
        }, "the user's write followed")
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "+1 555 0303")
    }

    /// The lock of the records a merge decided to write takes each one only
    /// at the version the merge read: a record a user changed since, or
    /// holds, is not locked and is counted as missed (the pass then locks
    /// both records of every pair and merges again).
    func testB11_AWriteTargetIsLockedOnlyAtTheVersionTheMergeRead() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let integration = try engine.validate(TestDatabase.defaultConfig).0
        let module = try XCTUnwrap(integration.modules.first { $0.name == "contacts" })
        let compiler = ModuleCompiler(integration: integration, module: module)
        let ids = try ["1", "2", "3"].map { try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: $0)) }
        let pass = try Connection(conninfo: db.conninfo)
        let user = try Connection(conninfo: db.conninfo)
        defer { pass.close(); user.close() }
        for statement in compiler.temporaryTables { try pass.execute(statement) }
        try pass.execute("BEGIN")
        // The merge read three CRM records and decided to write them.
        try pass.execute("""
            INSERT INTO \(raw: compiler.workTable) (link_id, p_id, c_id, origin, to_pipeline, to_crm, c_xmin)
            SELECT l.link_id, l.pipeline_id, l.crm_id, 'linked', false, true, c.xmin
              FROM tandem.links l JOIN crm.contacts c ON c.id = l.crm_id::bigint
             WHERE l.module = 'contacts' AND l.pipeline_id IN ('1', '2', '3')
            """)
        // Since then a user changed the second and holds the third.
        try db.execute("UPDATE crm.contacts SET title = 'Changed since the merge' WHERE id = \(ids[1])::bigint")
        try user.execute("BEGIN")
        try user.execute("SELECT 1 FROM crm.contacts WHERE id = \(ids[2])::bigint FOR UPDATE")

        XCTAssertEqual(try pass.execute(compiler.lockTargets).scalar, "2")
        try user.execute("ROLLBACK")
        // The pass holds the first, and only the first.
        let held: (String) throws -> Bool = { id in
            try user.execute("BEGIN")
            defer { _ = try? user.execute("ROLLBACK") }
            do {
                try user.execute("SELECT 1 FROM crm.contacts WHERE id = \(id)::bigint FOR UPDATE NOWAIT")
                return false
            } catch let error as PostgresError where error.sqlstate == "55P03" {
                return true
            }
        }
        XCTAssertTrue(try held(ids[0]), "the record at the version the merge read is locked")
        XCTAssertFalse(try held(ids[1]), "the record changed since is not")
        XCTAssertFalse(try held(ids[2]), "the record the user held is not")
        try pass.execute("ROLLBACK")
    }

    /// A new record is only read, to be created on the other side: a user
    /// who holds it (or writes it again) in an open transaction neither
    /// blocks nor defers it. Its committed values are copied now, and what
    /// the user commits later follows in the next pass (nothing is lost).
    func testB11_ANewRecordAUserHoldsIsCreatedAtOnceAndItsLaterWriteFollows() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("""
            INSERT INTO pipeline.contacts (first_name, last_name, email, owner_id)
            SELECT 'Held', 'New', 'held.new@example.jp', id FROM pipeline.users WHERE email = 'admin@example.com'
            """)
        let id = try XCTUnwrap(try db.scalar("SELECT id::text FROM pipeline.contacts WHERE email = 'held.new@example.jp'"))
        let user = try Connection(conninfo: db.conninfo)
        defer { user.close() }
        try user.execute("BEGIN")
        try user.execute("UPDATE pipeline.contacts SET title = 'Written while held' WHERE id = \(id)")

        let summary = try passWithoutWaiting(engine)
        XCTAssertEqual(summary.deferred, 0, "\(summary)")
        XCTAssertEqual(summary.createdInCRM, 1, "\(summary)")
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: id))
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(crmID)::bigint"), nil, "the committed values were copied")

        try user.execute("COMMIT")
        XCTAssertTrue(try passUntil(engine) {
            try db.scalar("SELECT title FROM crm.contacts WHERE id = \(crmID)::bigint") == "Written while held"
        }, "the user's write followed")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE email = 'held.new@example.jp'"), 1, "created once")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.deferred_records"), 0)
    }

    /// A lock taken and let go without a write leaves no trace in the change
    /// log: the deferred record itself brings the change back.
    func testB11_ADeferredRecordWhoseLockIsReleasedWithoutAWriteStillSyncs() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "4"))
        let user = try Connection(conninfo: db.conninfo)
        defer { user.close() }
        try user.execute("BEGIN")
        try user.execute("SELECT 1 FROM pipeline.contacts WHERE id = 4 FOR UPDATE")
        try db.execute("UPDATE crm.contacts SET mobile = '+81 90 0000 0004' WHERE id = \(crmID)::bigint")
        XCTAssertEqual(try engine.pass().deferred, 1)
        try user.execute("ROLLBACK")
        XCTAssertTrue(try passUntil(engine) {
            try db.scalar("SELECT mobile FROM pipeline.contacts WHERE id = 4") == "+81 90 0000 0004"
        })
    }

    /// Three writers per side on a few hot records while the engine follows:
    /// it never exits, passes keep committing, and when the writers stop every
    /// linked pair ends with the last value each side wrote (each field is
    /// written from one side only: phone in the pipeline app, title in the CRM app).
    func testB11_BusyWritersOnHotRecordsNeverStopTheFollower() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let pairs = try db.sql.execute("SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'contacts' ORDER BY link_id LIMIT 12").rows
            .compactMap { row -> (String, String)? in row[0].flatMap { p in row[1].map { (p, $0) } } }
        XCTAssertEqual(pairs.count, 12)

        let box = UncheckedBox(engine)
        let outcome = UncheckedBox(OutcomeSlot())
        let followerDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try box.value.run() } catch { outcome.value.error = error }
            followerDone.signal()
        }
        let runsBefore = try db.count("SELECT count(*) FROM tandem.runs")
        let stopAt = Date().addingTimeInterval(4)
        let writers = DispatchGroup()
        let lastWritten = UncheckedBox(LastWritten())
        let failures = UncheckedBox(OutcomeSlot())
        let conninfo = db.conninfo
        for writer in 0..<6 {
            let side: Side = writer < 3 ? .pipeline : .crm
            writers.enter()
            Thread.detachNewThread {
                defer { writers.leave() }
                do {
                    let connection = try Connection(conninfo: conninfo)
                    defer { connection.close() }
                    var round = 0
                    while Date() < stopAt {
                        round += 1
                        // Hot records: writer n writes records n, n+3, n+6 of its side, single- and multi-row.
                        let mine = stride(from: writer % 3, to: pairs.count, by: 3).map { side == .pipeline ? pairs[$0].0 : pairs[$0].1 }
                        let value = "w\(writer)-\(round)"
                        let ids = round % 2 == 0 ? mine : [mine[round % mine.count]]
                        let column = side == .pipeline ? "phone" : "title"
                        try connection.execute("""
                            UPDATE \(identifier: side.rawValue).contacts SET \(identifier: column) = \(value)
                             WHERE id = ANY (string_to_array(\(ids.joined(separator: ",")), ',')::bigint[])
                            """)
                        lastWritten.value.record(side: side, ids: ids, value: value)
                    }
                } catch {
                    failures.value.error = error
                }
            }
        }
        XCTAssertEqual(writers.wait(timeout: .now() + 30), .success, "writers finished")
        XCTAssertNil(failures.value.error)
        let runsDuringLoad = try db.count("SELECT count(*) FROM tandem.runs") - runsBefore
        XCTAssertGreaterThan(runsDuringLoad, 3, "passes kept committing under load")

        // Quiet: everything arrives, with the follower still running.
        let deadline = Date().addingTimeInterval(20)
        var settled = false
        while Date() < deadline {
            let pending = try db.count("SELECT count(*) FROM tandem.pending_changes")
            let mismatched = try db.count("""
                SELECT count(*) FROM tandem.links l JOIN pipeline.contacts p ON p.id = l.pipeline_id::bigint
                  JOIN crm.contacts c ON c.id = l.crm_id::bigint
                 WHERE l.module = 'contacts' AND (p.phone IS DISTINCT FROM c.phone OR p.title IS DISTINCT FROM c.title)
                """)
            if pending == 0 && mismatched == 0 { settled = true; break }
            usleep(50_000)
        }
        engine.requestStop()
        XCTAssertEqual(followerDone.wait(timeout: .now() + 10), .success, "the follower stops when asked")
        XCTAssertNil(outcome.value.error, "the follower never exited under load: \(String(describing: outcome.value.error))")
        XCTAssertTrue(settled, "every linked pair agrees once the writers stop")
        for (pipelineID, crmID) in pairs {
            if let phone = lastWritten.value.values[.pipeline]?[pipelineID] {
                XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), phone, "phone of \(pipelineID)")
            }
            if let title = lastWritten.value.values[.crm]?[crmID] {
                XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = \(pipelineID)::bigint"), title, "title of \(crmID)")
            }
        }
    }
}

/// The last value each writer committed per record (per side, per id).
final class LastWritten: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Side: [String: String]] = [:]

    func record(side: Side, ids: [String], value: String) {
        lock.lock()
        defer { lock.unlock() }
        for id in ids { values[side, default: [:]][id] = value }
    }
}

/// Alive under faults (B11): a follower whose session is terminated, idle or
/// in the middle of a pass, reconnects, catches up and loses nothing.
final class ReconnectTests: XCTestCase {
    /// Events seen by a follower, from its thread.
    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [String] = []
        func append(_ event: String) { lock.lock(); seen.append(event); lock.unlock() }
        func count(_ type: String) -> Int {
            lock.lock(); defer { lock.unlock() }
            return seen.filter { $0.contains("\"type\":\"\(type)\"") }.count
        }
    }

    /// Polls `condition` every 10 ms until it holds or `seconds` pass.
    func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    func testB11_AFollowerWhoseSessionIsTerminatedIdleOrMidPassReconnectsAndLosesNothing() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let events = Events()
        engine.eventHandler = { events.append($0) }
        let box = UncheckedBox(engine)
        let outcome = UncheckedBox(OutcomeSlot())
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try box.value.run() } catch { outcome.value.error = error }
            done.signal()
        }
        defer { engine.requestStop(); _ = done.wait(timeout: .now() + 10) }
        let crmOf = { (id: String) throws -> String in try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: id)) }
        let engineSession: SQL = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tandem'"
        let phone = { (id: String) throws -> String? in try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(try crmOf(id))::bigint") }

        try db.execute("UPDATE pipeline.contacts SET phone = 'before' WHERE id = 1")
        XCTAssertTrue(try eventually(10) { try phone("1") == "before" }, "the follower syncs")

        // Idle: the session ends under it; an edit made while it is gone arrives.
        XCTAssertEqual(try db.count("SELECT count(pg_terminate_backend(pid)) FROM (\(engineSession)) s"), 1)
        try db.execute("UPDATE pipeline.contacts SET phone = 'while idle' WHERE id = 2")
        XCTAssertTrue(try eventually(15) { try phone("2") == "while idle" }, "an edit made after the termination arrives")
        XCTAssertTrue(eventually(5) { events.count("connection_restored") >= 1 })
        XCTAssertGreaterThanOrEqual(events.count("connection_lost"), 1)

        // Mid-pass: the pass waits for a lock the test holds, and its session ends there.
        let blocker = try Connection(conninfo: db.conninfo)
        defer { blocker.close() }
        try blocker.execute("BEGIN")
        try blocker.execute("LOCK TABLE tandem.runs IN ACCESS EXCLUSIVE MODE")
        try db.execute("UPDATE pipeline.contacts SET phone = 'mid pass' WHERE id = 3")
        let waiting = try eventually(5) {
            try db.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tandem' AND wait_event_type = 'Lock'") == 1
        }
        XCTAssertTrue(waiting, "the pass is waiting inside a statement")
        try db.execute("SELECT pg_terminate_backend(pid) FROM (\(engineSession)) s")
        try blocker.execute("ROLLBACK")
        XCTAssertTrue(try eventually(15) { try phone("3") == "mid pass" }, "the edit of the pass that was cut off arrives")
        XCTAssertGreaterThanOrEqual(events.count("connection_restored"), 2)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE phone IN ('before', 'while idle', 'mid pass')"), 3, "each exactly once")
        XCTAssertNil(outcome.value.error, "the follower never exited: \(String(describing: outcome.value.error))")
    }

    func testB11_ProcessRestoresALostConnectionForAHostWithItsOwnLoop() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("SELECT pg_terminate_backend(\(Int(engine.backendPID)))")
        try db.execute("UPDATE pipeline.contacts SET phone = 'own loop' WHERE id = 4")
        _ = try eventually(5) { (try? db.count("SELECT count(*) FROM pg_stat_activity WHERE pid = \(Int(engine.backendPID))")) == 0 }
        try engine.process()
        XCTAssertNotEqual(engine.backendPID, 0)
        XCTAssertGreaterThanOrEqual(engine.socket, 0, "a new socket to poll")
        let crm = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "4"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crm)::bigint"), "own loop")
    }
}
