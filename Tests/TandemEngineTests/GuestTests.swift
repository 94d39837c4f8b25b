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

    // MARK: - Upgrade

    func testB10_ADatabaseCapturedByTheOldPerOIDFunctionsUpgradesAndKeepsSyncing() throws {
        let db = try TestDatabase()
        // The tandem schema as migrations 0001-0004 left it, recorded as the
        // migrator records them, and a tab activated with their capture.
        try db.execute("CREATE SCHEMA tandem")
        try db.execute("CREATE TABLE tandem.migrations (version int CONSTRAINT migrations_pk PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        let folder = repositoryRoot.appendingPathComponent("sql/tandem")
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".sql") {
            let name = String(file.dropLast(4))
            guard let version = Int(name.prefix(4)), version <= 4 else { continue }
            try db.sql.executeScript(String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8))
            try db.execute("INSERT INTO tandem.migrations (version, name) VALUES (\(version), \(name))")
        }
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
}
