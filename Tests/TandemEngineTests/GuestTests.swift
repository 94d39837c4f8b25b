import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// Tandem as a guest in a shared database (B10), and every committed change
/// announced at once (B1). Every wait is bounded and driven by the socket or
/// by the database's state.
final class GuestTests: XCTestCase {
    /// The test database's conninfo, logged in as another role.
    func conninfo(_ db: TestDatabase, user: String) -> String {
        (db.conninfo.split(separator: " ").map(String.init).filter { !$0.hasPrefix("user=") } + ["user=\(user)"]).joined(separator: " ")
    }

    /// The CRM id linked to a pipeline contact.
    func crmContact(_ db: TestDatabase, _ pipelineID: String) throws -> String {
        try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: pipelineID))
    }

    func crmPhone(_ db: TestDatabase, _ pipelineID: String) throws -> String? {
        try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(try crmContact(db, pipelineID))::bigint")
    }

    /// A host that only waits on Tandem's socket, with no timeout-driven
    /// passes: processes only when the socket is readable, until `done` or
    /// the deadline. Returns whether `done` became true.
    func processWhenTheSocketSaysSo(_ engine: Engine, within seconds: Double, until done: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if try done() { return true }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return false }
            var descriptor = pollfd(fd: engine.socket, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, Int32(remaining * 1000) + 1) > 0 { try engine.process() }
        }
    }

    // MARK: - Privileges (B10)

    func testB10_TheWholeSetupRunsAsANonSuperuserAndTheAppsRolesWriteAsBefore() throws {
        let db = try TestDatabase()
        let runner = "tandem_\(db.name)", app = "app_\(db.name)", reporter = "report_\(db.name)"
        for role in [runner, app, reporter] { try db.execute("CREATE ROLE \(identifier: role) LOGIN") }
        var connections: [Connection] = []
        var engine: Engine?
        defer {
            engine?.close()
            connections.forEach { $0.close() }
            _ = try? db.execute("DROP OWNED BY \(identifier: runner), \(identifier: app), \(identifier: reporter) CASCADE")
            _ = try? db.execute("DROP ROLE \(identifier: runner), \(identifier: app), \(identifier: reporter)")
        }
        // The grants of README "Roles" for the Contacts & Companies tab, all but
        // USAGE on schema crm, which comes after its absence was named.
        let tables = "pipeline.companies, pipeline.contacts, crm.accounts, crm.contacts"
        for grant in [
            "GRANT CREATE ON DATABASE \(db.name) TO \(runner)",
            "GRANT USAGE ON SCHEMA pipeline TO \(runner)",
            "GRANT SELECT, INSERT, UPDATE, TRIGGER ON \(tables) TO \(runner)",
            "GRANT USAGE ON SEQUENCE pipeline.companies_id_seq, pipeline.contacts_id_seq, crm.accounts_id_seq, crm.contacts_id_seq TO \(runner)",
            "GRANT SELECT ON pipeline.users, pipeline.org, pipeline.field_settings, crm.users, crm.field_settings, crm.all_accounts, crm.all_contacts TO \(runner)",
            // The app's own role: DML on its tables, nothing on tandem.
            "GRANT USAGE ON SCHEMA pipeline, crm TO \(app)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pipeline, crm TO \(app)",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA pipeline, crm TO \(app)",
        ] {
            try db.execute(SQL(raw: grant))
        }

        let tandem = try Engine(conninfo: conninfo(db, user: runner))
        engine = tandem
        try tandem.install()
        XCTAssertEqual(try db.scalar("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'tandem'"), runner)
        XCTAssertThrowsError(try tandem.validate(TestDatabase.defaultConfig)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            XCTAssertTrue(error.message.contains("USAGE on schema crm"), error.message)
            XCTAssertTrue(error.message.contains("GRANT USAGE ON SCHEMA \"crm\" TO \"\(runner)\""), error.message)
        }
        try db.execute("GRANT USAGE ON SCHEMA crm TO \(identifier: runner)")
        try db.execute("REVOKE TRIGGER ON crm.contacts FROM \(identifier: runner)")
        XCTAssertThrowsError(try tandem.validate(TestDatabase.defaultConfig)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            XCTAssertTrue(error.message.contains("TRIGGER on table \"crm\".\"contacts\""), error.message)
            XCTAssertTrue(error.message.contains("GRANT TRIGGER ON \"crm\".\"contacts\" TO \"\(runner)\""), error.message)
        }
        try db.execute("GRANT TRIGGER ON crm.contacts TO \(identifier: runner)")
        try tandem.configure(TestDatabase.defaultConfig)

        // Match indexes need the tables' owner: the error gives the statements.
        var statements: [String] = []
        XCTAssertThrowsError(try tandem.activate("contacts_companies")) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            statements = error.message.split(separator: "\n").map(String.init).filter { $0.hasPrefix("CREATE INDEX") }
            XCTAssertEqual(statements.count, 4, error.message)
        }
        for statement in statements { try db.execute(SQL(raw: statement)) }
        try tandem.activate("contacts_companies")
        try tandem.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT initial_sync_complete::text FROM tandem.tab_status"), "true")

        // The app's role writes as before, and a setting cannot hide its writes (B4).
        let writer = try Connection(conninfo: conninfo(db, user: app))
        connections.append(writer)
        try writer.execute("SET tandem.applying = 'on'")
        try writer.execute("UPDATE pipeline.contacts SET phone = 'app role' WHERE id = 1")
        try writer.execute("INSERT INTO crm.contacts (first_name, last_name, email, owner_id) SELECT 'Aoi', 'Guest', 'aoi.guest@example.jp', id FROM crm.users WHERE email = 'admin@example.com'")
        try tandem.passUntilQuiet()
        XCTAssertEqual(try crmPhone(db, "1"), "app role")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE email = 'aoi.guest@example.jp'"), 1)

        // ... and reaches nothing of Tandem's, even with USAGE on its schema.
        for statement: SQL in [
            "SELECT count(*) FROM tandem.change_log",
            "INSERT INTO tandem._applying (xid) VALUES (pg_current_xact_id())",
            "SELECT * FROM tandem._apply_each('SELECT 1', 'pipeline.contacts', 'id')",
        ] {
            XCTAssertThrowsError(try writer.execute(statement)) { error in
                XCTAssertEqual((error as? PostgresError)?.sqlstate, "42501", "\(statement)")
            }
        }
        for role in [app, reporter] {
            XCTAssertEqual(try db.count("""
                SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'tandem'::regnamespace AND has_function_privilege(\(role)::name, p.oid, 'EXECUTE')
                """), 0, "\(role) can execute no function of schema tandem")
        }
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'tandem'::regnamespace
               AND NOT (p.prosecdef AND p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] AND p.proowner = \(runner)::regrole)
            """), 0, "every function of schema tandem runs as Tandem's role with a pinned search_path")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'tandem'::regnamespace
               AND has_table_privilege(\(app)::name, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
            """), 0)

        // A reporting role gets the views and nothing else (README, "Roles").
        try db.execute("GRANT USAGE ON SCHEMA tandem TO \(identifier: reporter)")
        try db.execute("GRANT SELECT ON tandem.tab_status, tandem.pending_changes, tandem.linked_records, tandem.conflicts, tandem.record_errors, tandem.run_history, tandem.event_history TO \(identifier: reporter)")
        let report = try Connection(conninfo: conninfo(db, user: reporter))
        connections.append(report)
        XCTAssertEqual(try report.execute("SELECT state FROM tandem.tab_status").scalar, "active")
        XCTAssertTrue(Int(try report.execute("SELECT count(*) FROM tandem.linked_records").scalar ?? "0")! > 0)
        XCTAssertThrowsError(try report.execute("SELECT count(*) FROM tandem.links")) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlstate, "42501")
        }
        XCTAssertThrowsError(try report.execute("SELECT * FROM tandem._apply_each('SELECT 1', 'pipeline.contacts', 'id')")) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlstate, "42501")
        }

        // The lifecycle as the guest (R17): DROP TRIGGER would need the tables'
        // ownership; removal still leaves no trigger, and names the indexes
        // only their owner may drop.
        var leftForOwner: [String] = []
        XCTAssertTrue(try tandem.remove(purge: false, leftForOwner: &leftForOwner))
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('pipeline', 'crm') AND t.tgname LIKE '%tandem%'
            """), 0, "no capture trigger is left, though Tandem's role owns no app table")
        XCTAssertEqual(leftForOwner.count, 4, "\(leftForOwner)")
        XCTAssertTrue(leftForOwner.allSatisfy { $0.hasPrefix("DROP INDEX IF EXISTS ") }, "\(leftForOwner)")
        for statement in leftForOwner { try db.execute(SQL(raw: statement)) }
        XCTAssertEqual(try db.count("SELECT count(*) FROM pg_indexes WHERE schemaname IN ('pipeline', 'crm') AND indexname LIKE 'tandem%'"), 0)
        try tandem.uninstall()
        XCTAssertEqual(try db.scalar("SELECT to_regnamespace('tandem') IS NULL"), "t")
    }

    func testB4_ASessionThatSetsTheOldApplyingSettingStillHasItsChangesSynced() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let writer = try Connection(conninfo: db.conninfo)
        try writer.execute("BEGIN")
        try writer.execute("SET LOCAL tandem.applying = 'on'")
        try writer.execute("UPDATE pipeline.contacts SET phone = 'not hidden' WHERE id = 2")
        try writer.execute("COMMIT")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem._applying"), 0, "no pass left its transaction id behind")
        try engine.passUntilQuiet()
        XCTAssertEqual(try crmPhone(db, "2"), "not hidden")
    }

    // MARK: - Capture that costs writers little (issue 9)

    /// Tandem's triggers on the watched tables that are row-level and keep no
    /// transition table, with their timing and whether they carry the WHEN
    /// clause on tandem.applying_xid: BEFORE UPDATE and BEFORE DELETE without
    /// one (migration 0013), AFTER INSERT with one after the BEFORE INSERT check.
    func rowCaptureTriggers(_ db: TestDatabase) throws -> String? {
        try db.scalar("""
            SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind) FROM (
                SELECT t.tgname || CASE WHEN t.tgtype & 2 = 2 THEN ' before' ELSE ' after' END
                       || CASE WHEN pg_get_triggerdef(t.oid) LIKE '%WHEN%tandem.applying_xid%' THEN ' when' ELSE '' END AS kind,
                       count(*) AS n
                  FROM pg_trigger t JOIN tandem.watched_tables w ON w.table_oid = t.tgrelid
                 WHERE t.tgname LIKE '\\_900\\_tandem\\_capture\\_%' AND t.tgtype & 1 = 1
                   AND t.tgnewtable IS NULL AND t.tgoldtable IS NULL
                 GROUP BY 1) triggers
            """)
    }

    /// What rowCaptureTriggers finds on the four tables of contacts_companies.
    static let captureOnFourTables = """
        _900_tandem_capture_delete before 4, _900_tandem_capture_insert after when 4, \
        _900_tandem_capture_update before 4, _900_tandem_capture_verify before when 4
        """

    func testB4_APassWritesNothingToTheLogAndEveryRowAnAppWritesIsLogged() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        XCTAssertEqual(try rowCaptureTriggers(db), Self.captureOnFourTables)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "the initial sync logged none of its own writes")

        // Every row of a statement is logged, in the writer's transaction.
        try db.execute("UPDATE pipeline.contacts SET phone = 'row ' || id WHERE id BETWEEN 1 AND 5")
        XCTAssertEqual(try db.count("""
            SELECT count(DISTINCT record_id) FROM tandem.change_log WHERE table_oid = 'pipeline.contacts'::regclass AND operation = 'U'
            """), 5)
        let writer = try Connection(conninfo: db.conninfo)
        defer { writer.close() }
        try writer.execute("BEGIN")
        try writer.execute("UPDATE pipeline.contacts SET phone = 'rolled back' WHERE id = 7")
        try writer.execute("ROLLBACK")
        // A session that sets the setting the WHEN clause reads, even to its own
        // transaction id, is captured like any other (B4).
        try writer.execute("BEGIN")
        try writer.execute("SELECT set_config('tandem.applying_xid', pg_current_xact_id()::text, true)")
        try writer.execute("UPDATE pipeline.contacts SET phone = 'set it myself' WHERE id = 6")
        try writer.execute("COMMIT")
        try writer.execute("SET tandem.applying_xid = 'on'")
        try writer.execute("UPDATE pipeline.contacts SET phone = 'for the session' WHERE id = 8")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log WHERE record_id IN ('6', '8')"), 2)
        // An update that changes the key logs the old key and the new one.
        try writer.execute("BEGIN")
        try writer.execute("""
            INSERT INTO pipeline.contacts (id, last_name, owner_id)
            SELECT 9000, 'Renumbered', owner_id FROM pipeline.contacts WHERE id = 1
            """)
        try writer.execute("UPDATE pipeline.contacts SET id = -9000 WHERE id = 9000")
        XCTAssertEqual(try writer.execute("""
            SELECT string_agg(record_id || operation::text, ',' ORDER BY record_id, operation) FROM tandem.change_log WHERE xid = pg_current_xact_id()
            """).scalar, "-9000U,9000I,9000U")
        try writer.execute("ROLLBACK")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log WHERE record_id = '7'"), 0)

        // One pass writes seven CRM contacts and leaves nothing in the log: its
        // own writes were skipped and what it read was pruned.
        let summary = try engine.pass()
        XCTAssertEqual(summary.updatedInCRM, 7, "\(summary)")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "no echo (B4)")
        XCTAssertEqual(try crmPhone(db, "5"), "row 5")
        XCTAssertEqual(try crmPhone(db, "6"), "set it myself")
        XCTAssertEqual(try crmPhone(db, "8"), "for the session")
        XCTAssertEqual(try engine.passUntilQuiet(), PassSummary(), "and then it is quiet")
    }

    // MARK: - Every committed change is announced (B1)

    func testB1_EveryCommittedChangeWakesASocketOnlyHostWhateverTheInterleaving() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try engine.process()
        let a = try Connection(conninfo: db.conninfo), b = try Connection(conninfo: db.conninfo)

        // B commits while A's transaction (which wrote first) is still open.
        try a.execute("BEGIN")
        try a.execute("UPDATE pipeline.contacts SET phone = 'a1' WHERE id = 1")
        try b.execute("BEGIN")
        try b.execute("UPDATE pipeline.contacts SET phone = 'b1' WHERE id = 2")
        try b.execute("COMMIT")
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "2") == "b1" },
                      "B's change was announced while A's transaction was open")
        try a.execute("COMMIT")
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "1") == "a1" })

        // The reverse: A (which wrote first) commits first, B later.
        try a.execute("BEGIN")
        try a.execute("UPDATE pipeline.contacts SET phone = 'a2' WHERE id = 3")
        try b.execute("BEGIN")
        try b.execute("UPDATE pipeline.contacts SET phone = 'b2' WHERE id = 4")
        try a.execute("COMMIT")
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "3") == "a2" })
        try b.execute("COMMIT")
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "4") == "b2" },
                      "B's change, committed after A's, was announced")
    }

    /// A host that waits on the socket and on its timers, as run() does.
    func followLikeRun(_ engine: Engine, within seconds: Double, until done: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if try done() { return true }
            let remaining = Int32(deadline.timeIntervalSinceNow * 1000) + 1
            if remaining <= 0 { return false }
            let timer = try engine.waitMilliseconds()
            var descriptor = pollfd(fd: engine.socket, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, timer < 0 ? remaining : min(timer, remaining))
            try engine.process()
        }
    }

    func testB1_WritersThatSkipNotifyWhileTheFollowerIsAwakeAreReadBeforeItSleeps() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try engine.process()
        XCTAssertEqual(try db.scalar("SELECT awake::text FROM tandem._followers WHERE backend_pid = \(Int(engine.backendPID))"), "false")
        XCTAssertEqual(try db.scalar("SELECT pg_sequence_last_value('tandem._sleeping_followers')"), "1",
                       "the count writers read says one follower sleeps")
        // Another session listens on the channel and sees what writers notify.
        let listener = try Connection(conninfo: db.conninfo)
        defer { listener.close() }
        try listener.execute("LISTEN tandem")
        // As while a process() call passes: the follower is awake (set as the
        // engine sets it), and the writers skip NOTIFY. One commits; the
        // other stays open.
        try db.sql.execute(batch: ["BEGIN", "LOCK TABLE tandem._followers IN SHARE ROW EXCLUSIVE MODE",
                               "UPDATE tandem._followers SET awake = true",
                               "SELECT setval('tandem._sleeping_followers', (SELECT count(*) FROM tandem._followers WHERE NOT awake), true)",
                               "COMMIT"])
        let open = try Connection(conninfo: db.conninfo)
        defer { open.close() }
        try open.execute("BEGIN")
        try open.execute("UPDATE pipeline.contacts SET phone = 'skipped, open' WHERE id = 1")
        try db.execute("UPDATE pipeline.contacts SET phone = 'skipped, committed' WHERE id = 2")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock'"), 1,
                       "the open writer holds the lock the follower waits out")
        try listener.execute("SELECT 1")
        XCTAssertEqual(try listener.notifications().count, 0, "the committed writer skipped NOTIFY")
        // The follower passes, reads the committed change, is marked not awake,
        // and cannot wait out the open writer yet: it polls.
        try engine.process()
        XCTAssertEqual(try crmPhone(db, "2"), "skipped, committed")
        XCTAssertEqual(try db.scalar("SELECT awake::text FROM tandem._followers WHERE backend_pid = \(Int(engine.backendPID))"), "false")
        XCTAssertTrue((0...200).contains(try engine.waitMilliseconds()), "polls while a writer that skipped NOTIFY is open")
        try open.execute("COMMIT")
        XCTAssertTrue(try followLikeRun(engine, within: 10) { try crmPhone(db, "1") == "skipped, open" },
                      "the change of a writer that skipped NOTIFY is read once it commits")
        XCTAssertEqual(try engine.waitMilliseconds(), -1, "then the follower sleeps with no timer")

        // Asleep, the follower is woken by every writer as before.
        try db.execute("UPDATE pipeline.contacts SET phone = 'notified' WHERE id = 3")
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "3") == "notified" })
        XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) {
            try listener.execute("SELECT 1")
            return !(try listener.notifications().isEmpty)
        }, "the writer notified the listening session too")

        // A writer skips NOTIFY when no follower is listed at all. A follower
        // that joins while it is open reads its change once it commits.
        engine.close()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem._followers"), 0, "a closed handle leaves the followers")
        XCTAssertEqual(try db.scalar("SELECT pg_sequence_last_value('tandem._sleeping_followers')"), "0", "and the count")
        try db.execute("UPDATE pipeline.contacts SET phone = 'nobody listening' WHERE id = 4")
        try open.execute("BEGIN")
        try open.execute("UPDATE pipeline.contacts SET phone = 'joined meanwhile' WHERE id = 5")
        let joined = try Engine(conninfo: db.conninfo)
        defer { joined.close() }
        try joined.attach("default")
        try joined.process()
        XCTAssertEqual(try crmPhone(db, "4"), "nobody listening", "a host catches up when it starts")
        try open.execute("COMMIT")
        XCTAssertTrue(try followLikeRun(joined, within: 10) { try crmPhone(db, "5") == "joined meanwhile" })
    }

    func testB1_AnOpenWritingTransactionDelaysNobodysNotification() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try engine.process()
        let open = try Connection(conninfo: db.conninfo)
        try open.execute("BEGIN")
        try open.execute("UPDATE pipeline.contacts SET phone = 'left open' WHERE id = 5")
        for edit in 1...5 {
            try db.execute("UPDATE pipeline.contacts SET phone = \("edit \(edit)") WHERE id = 6")
            let started = Date()
            XCTAssertTrue(try processWhenTheSocketSaysSo(engine, within: 10) { try crmPhone(db, "6") == "edit \(edit)" }, "edit \(edit)")
            XCTAssertLessThan(Date().timeIntervalSince(started), 2, "edit \(edit) did not wait for the open transaction")
        }
        try open.execute("ROLLBACK")
    }

    func testB1_AnIdleFollowerRunsNoStatementAndWakesOnlyForADueRetry() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let done = expectation(description: "run returned")
        let box = UncheckedBox(engine)
        Thread.detachNewThread {
            do { try box.value.run() } catch { XCTFail("run failed: \(error)") }
            done.fulfill()
        }
        defer {
            engine.requestStop()
            wait(for: [done], timeout: 10)
        }
        func waitFor(_ seconds: Double, _ condition: () throws -> Bool) throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return true }
                usleep(10_000)
            }
            return try condition()
        }
        try db.execute("UPDATE pipeline.contacts SET phone = 'followed' WHERE id = 1")
        XCTAssertTrue(try waitFor(10) { try crmPhone(db, "1") == "followed" })

        // Idle: the engine's session runs no statement (the follower used to run
        // an empty pass every second).
        let engineSession: SQL = """
            SELECT query_start::text FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'idle'
            """
        XCTAssertTrue(try waitFor(10) { try db.execute(engineSession).rows.count == 1 })
        // Settled: after the last pass the engine asks once when to wake
        // (waitMilliseconds); its session's last statement then stays the last.
        var before = try db.scalar(engineSession)
        for _ in 0..<50 {
            usleep(200_000)
            let now = try db.scalar(engineSession)
            if now == before { break }
            before = now
        }
        // Watch for longer than the old re-poll interval.
        XCTAssertFalse(try waitFor(1.5) { try db.scalar(engineSession) != before }, "the idle engine ran a statement")

        // A failed record is retried when due, without any notification.
        try db.execute("ALTER TABLE crm.contacts ADD CONSTRAINT no_bad_phone CHECK (phone IS DISTINCT FROM 'bad phone')")
        try db.execute("UPDATE pipeline.contacts SET phone = 'bad phone' WHERE id = 2")
        XCTAssertTrue(try waitFor(10) { try db.count("SELECT count(*) FROM tandem.record_errors") == 1 })
        try db.execute("ALTER TABLE crm.contacts DROP CONSTRAINT no_bad_phone")
        XCTAssertTrue(try waitFor(15) { try crmPhone(db, "2") == "bad phone" }, "retried when due (5 s after the failure)")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.record_errors"), 0)
    }

    func testB9_AStandbyFollowerTakesOverWithNoNotificationWithinASecond() throws {
        let db = try TestDatabase()
        let active = try db.syncedEngine()
        let standby = try db.engine()
        try standby.attach("default")
        let done = expectation(description: "the standby's run returned")
        let box = UncheckedBox(standby)
        Thread.detachNewThread {
            do { try box.value.run() } catch { XCTFail("run failed: \(error)") }
            done.fulfill()
        }
        defer {
            standby.requestStop()
            wait(for: [done], timeout: 10)
        }
        // The change is announced while the active host holds the lock but
        // does not follow: the standby's attempt (almost surely) fails, and no
        // notification comes after the active host goes away; only the
        // standby's own timer can then bring it to take over.
        try db.execute("UPDATE pipeline.contacts SET phone = 'taken over' WHERE id = 1")
        let deadline = Date().addingTimeInterval(10)
        while try db.count("SELECT count(*) FROM tandem.pending_changes WHERE change = 'update'") != 1 && Date() < deadline { usleep(10_000) }
        active.close()
        let closed = Date()
        while try crmPhone(db, "1") != "taken over" && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(try crmPhone(db, "1"), "taken over")
        XCTAssertLessThan(Date().timeIntervalSince(closed), 2, "the standby took over soon after the active host went away")
    }

    // MARK: - Dump and restore (B10)

    func testB10_ADumpRestoredIntoANewDatabaseKeepsSyncing() throws {
        let db = try TestDatabase()
        do {
            let engine = try db.syncedEngine()
            engine.close()
        }
        // A change still pending when the dump is taken travels with it.
        try db.execute("UPDATE pipeline.contacts SET mobile = 'pending at dump' WHERE id = 3")
        let file = NSTemporaryDirectory() + "tandem-dump-\(db.name).sql"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try TestServer.run("/usr/bin/env", ["pg_dump", "--file", file, "--dbname", db.conninfo])
        let restored = try TestDatabase(apps: false, sample: nil)
        try TestServer.run("/usr/bin/env", ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--file", file, "--dbname", restored.conninfo])
        XCTAssertNotEqual(try db.scalar("SELECT 'pipeline.contacts'::regclass::oid::text"),
                          try restored.scalar("SELECT 'pipeline.contacts'::regclass::oid::text"), "the restored tables have new OIDs")
        XCTAssertEqual(try restored.count("""
            SELECT count(*) FROM tandem.watched_tables w JOIN pg_class c ON c.oid = w.table_oid AND c.oid = w.table_name
            """), 4, "watched_tables points at the restored tables")

        let engine = try restored.engine()
        try engine.attach("default")
        try engine.passUntilQuiet()
        let crm3 = try XCTUnwrap(try restored.linked("contacts", from: .pipeline, id: "3"))
        XCTAssertEqual(try restored.scalar("SELECT mobile FROM crm.contacts WHERE id = \(crm3)::bigint"), "pending at dump")

        try restored.execute("UPDATE pipeline.contacts SET mobile = 'after restore' WHERE id = 4")
        let crm5 = try XCTUnwrap(try restored.linked("contacts", from: .pipeline, id: "5"))
        try restored.execute("UPDATE crm.contacts SET title = 'Restored Lead' WHERE id = \(crm5)::bigint")
        try restored.execute("INSERT INTO pipeline.companies (company_name, owner_id) VALUES ('Restored KK', 1)")
        try engine.passUntilQuiet()
        let crm4 = try XCTUnwrap(try restored.linked("contacts", from: .pipeline, id: "4"))
        XCTAssertEqual(try restored.scalar("SELECT mobile FROM crm.contacts WHERE id = \(crm4)::bigint"), "after restore")
        XCTAssertEqual(try restored.scalar("SELECT title FROM pipeline.contacts WHERE id = 5"), "Restored Lead")
        XCTAssertEqual(try restored.count("SELECT count(*) FROM crm.accounts WHERE account_name = 'Restored KK'"), 1)
        XCTAssertEqual(try restored.count("SELECT count(*) FROM tandem.change_log WHERE table_oid::oid NOT IN (SELECT oid FROM pg_class)"), 0,
                       "no change is logged under an OID that matches nothing")
    }

    func testB10_ADumpRestoredIntoAnotherClusterKeepsSyncing() throws {
        let db = try TestDatabase()
        // The other cluster is fresh: its transaction ids are far behind the
        // ones the dump carries in the cursor (made sure of here).
        try db.sql.executeScript("""
            CREATE TEMP TABLE burn (i int);
            DO $$ BEGIN FOR i IN 1..5000 LOOP BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; END $$;
            """)
        do {
            let engine = try db.syncedEngine()
            engine.close()
        }
        try db.execute("UPDATE pipeline.contacts SET mobile = 'pending at dump' WHERE id = 3")
        let file = NSTemporaryDirectory() + "tandem-dump-\(db.name).sql"
        let cluster = NSTemporaryDirectory() + "tandem-other-cluster-\(db.name)"
        let throwaway = repositoryRoot.appendingPathComponent("scripts/pg-throwaway").path
        defer {
            try? FileManager.default.removeItem(atPath: file)
            _ = try? TestServer.run(throwaway, ["stop", cluster])
        }
        try TestServer.run("/usr/bin/env", ["pg_dump", "--file", file, "--dbname", db.conninfo])
        // Not through Foundation's Process: the server it leaves running keeps
        // that call from returning. The shell's output goes to a file.
        let output = cluster + ".out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let started = system("'\(throwaway)' start '\(cluster)' >'\(output)' 2>&1")
        let server = (try? String(contentsOfFile: output, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard started == 0 else { throw TandemError(.error, "pg-throwaway start failed: \(server)") }
        let restoredURL = (server.split(separator: " ").map(String.init).filter { !$0.hasPrefix("dbname=") } + ["dbname=restored"]).joined(separator: " ")
        do {
            let admin = try Connection(conninfo: server)
            try admin.execute("CREATE DATABASE restored")
            admin.close()
        }
        try TestServer.run("/usr/bin/env", ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--file", file, "--dbname", restoredURL])
        let restored = try Connection(conninfo: restoredURL)
        defer { restored.close() }
        func scalar(_ statement: SQL) throws -> String? { try restored.execute(statement).scalar }
        XCTAssertEqual(try scalar("""
            SELECT (pg_snapshot_xmax(snapshot) > pg_current_xact_id())::text FROM tandem.sync_cursors
            """), "true", "the cursor came from ahead of this cluster's transaction ids")

        let engine = try Engine(conninfo: restoredURL)
        defer { engine.close() }
        try engine.install()
        try engine.attach("default")
        try engine.passUntilQuiet()
        func crmOf(_ pipelineID: String) throws -> String {
            try XCTUnwrap(try scalar("SELECT crm_id FROM tandem.links WHERE module = 'contacts' AND pipeline_id = \(pipelineID)"))
        }
        XCTAssertEqual(try scalar("SELECT mobile FROM crm.contacts WHERE id = \(try crmOf("3"))::bigint"), "pending at dump")
        try restored.execute("UPDATE pipeline.contacts SET mobile = 'other cluster' WHERE id = 4")
        try restored.execute("UPDATE crm.contacts SET title = 'Moved Lead' WHERE id = \(try crmOf("5"))::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try scalar("SELECT mobile FROM crm.contacts WHERE id = \(try crmOf("4"))::bigint"), "other cluster")
        XCTAssertEqual(try scalar("SELECT title FROM pipeline.contacts WHERE id = 5"), "Moved Lead")
        XCTAssertEqual(try engine.passUntilQuiet(), PassSummary(), "and then it is quiet")
        XCTAssertEqual(try scalar("SELECT count(*)::text FROM tandem.change_log"), "0", "the log is pruned as usual")
    }

    // MARK: - Upgrade

    /// The tandem schema as migrations 0001 to `last` left it, recorded as
    /// the migrator records them (before it kept checksums).
    func installMigrations(_ db: TestDatabase, through last: Int) throws {
        try db.execute("CREATE SCHEMA tandem")
        try db.execute("CREATE TABLE tandem.migrations (version int CONSTRAINT migrations_pk PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        let folder = repositoryRoot.appendingPathComponent("sql/tandem")
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".sql") {
            let name = String(file.dropLast(4))
            guard let version = Int(name.prefix(4)), version <= last else { continue }
            try db.sql.executeScript(String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8))
            try db.execute("INSERT INTO tandem.migrations (version, name) VALUES (\(version), \(name))")
        }
    }

    func testB10_ADatabaseCapturedByTheOldPerOIDFunctionsUpgradesAndKeepsSyncing() throws {
        let db = try TestDatabase()
        // The tandem schema as migrations 0001-0004 left it, recorded as the
        // migrator records them, and a tab activated with their capture.
        try installMigrations(db, through: 4)
        let perOID: SQL = "SELECT count(*) FROM pg_proc WHERE pronamespace = 'tandem'::regnamespace AND proname ~ '^_capture_[0-9]+$'"
        // What activation did then: the old _install_capture on the tab's tables.
        for table in ["pipeline.companies", "pipeline.contacts", "crm.accounts", "crm.contacts"] {
            try db.execute("SELECT tandem._install_capture(\(table)::regclass, 'id')")
        }
        XCTAssertEqual(try db.count(perOID), 4, "the old capture: one function per table OID")

        let engine = try db.engine()
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count(perOID), 0, "the per-OID functions are gone")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_900\\_tandem\\_capture\\_%' AND tgfoid = 'tandem._capture_key_id()'::regprocedure
            """), 12, "the watched tables use the new capture")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "the initial sync logged no changes")
        try db.execute("UPDATE pipeline.contacts SET phone = 'upgraded' WHERE id = 1")
        try engine.passUntilQuiet()
        XCTAssertEqual(try crmPhone(db, "1"), "upgraded")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log WHERE table_oid = 'crm.contacts'::regclass"), 0, "no echo")
    }
    func testB10_ADatabaseCapturedByStatementTriggersUpgradesToRowTriggers() throws {
        let db = try TestDatabase()
        // The tandem schema as migrations 0001-0008 left it, and capture
        // installed by their _install_capture.
        try installMigrations(db, through: 8)
        for table in ["pipeline.companies", "pipeline.contacts", "crm.accounts", "crm.contacts"] {
            try db.execute("SELECT tandem._install_capture(\(table)::regclass, 'id')")
        }
        let statementLevel: SQL = """
            SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%tandem%' AND (tgnewtable IS NOT NULL OR tgoldtable IS NOT NULL)
            """
        XCTAssertEqual(try db.count(statementLevel), 12, "0007's capture: statement-level triggers with transition tables")

        let engine = try db.engine()
        XCTAssertEqual(try db.count(statementLevel), 0, "the upgrade replaced every statement-level trigger")
        XCTAssertEqual(try rowCaptureTriggers(db), Self.captureOnFourTables)
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "the initial sync logged no changes")
        try db.execute("UPDATE pipeline.contacts SET phone = 'upgraded' WHERE id = 1")
        try engine.passUntilQuiet()
        XCTAssertEqual(try crmPhone(db, "1"), "upgraded")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "no echo")

        var leftForOwner: [String] = []
        XCTAssertTrue(try engine.remove(purge: false, leftForOwner: &leftForOwner))
        XCTAssertEqual(try db.count("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%tandem%'"), 0, "removal drops the new triggers")
    }
}
