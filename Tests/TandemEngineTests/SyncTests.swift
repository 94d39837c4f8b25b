import Foundation
import TandemCore
@testable import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// The Contacts & Companies tab against a real PostgreSQL, one database per
/// test. Test names carry the requirement they show (SPEC.md).
final class SyncTests: XCTestCase {
    func testR3_RecordsAddedOrUpdatedOnEitherSideReachTheOther() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let admin = try db.adminID(.crm)

        try db.execute("INSERT INTO pipeline.companies (company_name, owner_id) VALUES ('Tandem Test GmbH', 1)")
        try db.execute("INSERT INTO crm.contacts (first_name, last_name, email, owner_id) VALUES ('Rin', 'Sato', 'rin.sato@example.jp', \(admin)::bigint)")
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 1234 5678' WHERE id = 1")
        let crmOfTwo = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
        try db.execute("UPDATE crm.contacts SET title = 'Head of Ops' WHERE id = \(crmOfTwo)::bigint")
        try engine.passUntilQuiet()

        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.accounts WHERE account_name = 'Tandem Test GmbH'"), 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE email = 'rin.sato@example.jp' AND last_name = 'Sato'"), 1)
        let crmOfOne = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmOfOne)::bigint"), "+81 3 1234 5678")
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = 2"), "Head of Ops")
    }

    func testR4_DeletionsAreNotPropagatedAndTheLinkShowsThem() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "5"))
        try db.execute("DELETE FROM pipeline.contacts WHERE id = 5")
        let pipelineID = try XCTUnwrap(try db.linked("companies", from: .crm, id: "3"))
        try db.execute("UPDATE crm.contacts SET account_id = NULL WHERE account_id = 3")
        try db.execute("DELETE FROM crm.accounts WHERE id = 3")
        try engine.passUntilQuiet()

        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE id = \(crmID)::bigint"), 1, "the CRM copy stays")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.companies WHERE id = \(pipelineID)::bigint"), 1, "the pipeline copy stays")
        XCTAssertEqual(try db.scalar("SELECT status FROM tandem.linked_records WHERE module = 'contacts' AND pipeline_id = '5'"),
                       "deleted in the pipeline app, kept in the CRM app (R4)")
        XCTAssertEqual(try db.scalar("SELECT status FROM tandem.linked_records WHERE module = 'companies' AND crm_id = '3'"),
                       "deleted in the CRM app, kept in the pipeline app (R4)")
    }

    func testR5_ActingUserMustBeAdministratorAndCEOInBothApps() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        // priya.nair is Administrator but Manager.
        let config = #"{"pipeline":{"acting_user":"priya.nair@example.com"},"crm":{"acting_user":"admin@example.com"}}"#
        XCTAssertThrowsError(try engine.configure(config)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            XCTAssertTrue(error.message.contains("priya.nair@example.com is 'Administrator' with role 'Manager' in the pipeline app"), error.message)
        }
        try db.execute("UPDATE crm.users SET role = 'Manager' WHERE email = 'admin@example.com'")
        XCTAssertThrowsError(try engine.configure(TestDatabase.defaultConfig)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            XCTAssertTrue(error.message.contains("in the CRM app"), error.message)
        }
        let unknown = #"{"pipeline":{"acting_user":"nobody@example.com"},"crm":{"acting_user":"admin@example.com"}}"#
        XCTAssertThrowsError(try engine.validate(unknown)) { error in
            XCTAssertTrue((error as! TandemError).message.contains("no user with email nobody@example.com"))
        }
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.integrations"), 0, "nothing is stored when refused")
    }

    func testR6_EditionMustBeExpressPremierOrBigin360() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        for edition in ["Express", "Premier", "Bigin 360"] {
            try db.execute("UPDATE pipeline.org SET edition = \(edition)")
            XCTAssertNoThrow(try engine.validate(TestDatabase.defaultConfig), edition)
        }
        try db.execute("UPDATE pipeline.org SET edition = 'Free'")
        XCTAssertThrowsError(try engine.configure(TestDatabase.defaultConfig)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .permission)
            XCTAssertTrue(error.message.contains("edition is 'Free'"), error.message)
        }
    }

    func testR7_OnlyCRMRecordsInTheSelectedViewReachThePipelineApp() throws {
        let db = try TestDatabase()
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"companies":"all_accounts","contacts":"contacts_with_email"}}}}"#
        let engine = try db.syncedEngine(config: config)
        // No CRM contact without an email reached the pipeline app.
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM crm.contacts c JOIN tandem.links l ON l.module = 'contacts' AND l.crm_id = c.id::text
             WHERE c.email IS NULL AND l.origin = 'crm'
            """), 0)
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM crm.contacts WHERE email IS NULL"), 0, "the sample has such contacts")
        let admin = try db.adminID(.crm)
        try db.execute("INSERT INTO crm.contacts (last_name, owner_id) VALUES ('Outside View', \(admin)::bigint)")
        try db.execute("INSERT INTO crm.contacts (last_name, email, owner_id) VALUES ('Inside View', 'inside@example.org', \(admin)::bigint)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE last_name = 'Outside View'"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE last_name = 'Inside View'"), 1)

        // A linked record that leaves the view keeps syncing (README: the link decides).
        let crmID = try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.contacts WHERE last_name = 'Inside View'"))
        try db.execute("UPDATE crm.contacts SET email = NULL, title = 'Left the view' WHERE id = \(crmID)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE last_name = 'Inside View'"), "Left the view")
    }

    func testR7_AViewThatListsARecordTwiceLinksItOnce() throws {
        let db = try TestDatabase()
        try db.execute("CREATE VIEW crm.contacts_twice AS SELECT * FROM crm.contacts UNION ALL SELECT * FROM crm.contacts")
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"companies":"all_accounts","contacts":"contacts_twice"}}}}"#
        let crmContacts = try db.count("SELECT count(*) FROM crm.contacts")
        _ = try db.syncedEngine(config: config)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts' AND crm_id IS NOT NULL"),
                       try db.count("SELECT count(*) FROM pipeline.contacts"), "one link per contact")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts"),
                       try db.count("SELECT count(*) FROM pipeline.contacts"), "no copy made twice")
        XCTAssertGreaterThanOrEqual(try db.count("SELECT count(*) FROM crm.contacts"), crmContacts)
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM crm.contacts c
             WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.crm_id = c.id::text)
            """), 0, "every CRM contact linked")
    }

    func testR8_UnmappedMandatoryFieldsAndBadMappingsAreNamed() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        try db.execute("ALTER TABLE crm.contacts ADD COLUMN region text NOT NULL DEFAULT 'EU'")
        try db.execute("ALTER TABLE crm.contacts ALTER COLUMN region DROP DEFAULT")
        try db.execute("INSERT INTO crm.field_settings (table_name, column_name, mandatory, custom) VALUES ('contacts', 'customer_tier', true, true) ON CONFLICT (table_name, column_name) DO UPDATE SET mandatory = true, custom = true")
        let config = #"""
            {"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},
             "modules":{"contacts":{"fields":[{"pipeline":null,"crm":"last_name"},
                                              {"pipeline":"phone","crm":"owner_id"},
                                              {"pipeline":"no_such_column","crm":"title"}]}}}
            """#
        XCTAssertThrowsError(try engine.validate(config)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .config)
            for expected in [
                "crm.contacts.region is mandatory (NOT NULL without a default) but not mapped",
                "crm.contacts.customer_tier is mandatory (a required custom field) but not mapped",
                "crm.contacts.last_name is mandatory",
                "pipeline.contacts.last_name is mandatory",
                "incompatible types text and bigint",
                "column pipeline.contacts.no_such_column does not exist",
            ] {
                XCTAssertTrue(error.message.contains(expected), "missing «\(expected)» in:\n\(error.message)")
            }
        }
        // Configuration and permission problems come in one error (R8 with R5/R6).
        try db.execute("UPDATE pipeline.org SET edition = 'Free'")
        XCTAssertThrowsError(try engine.validate(config)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .config)
            XCTAssertTrue(error.message.contains("crm.contacts.region is mandatory"), error.message)
            XCTAssertTrue(error.message.contains("edition is 'Free'"), error.message)
        }
        XCTAssertThrowsError(try engine.validate(#"{"pipeline":{"acting_user":"admin@example.com","schema":"nope"},"crm":{"acting_user":"admin@example.com"}}"#)) { error in
            XCTAssertTrue((error as! TandemError).message.contains("schema nope does not exist"))
        }
        XCTAssertThrowsError(try engine.validate(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"contacts":"no_such_view"}}}}"#)) { error in
            XCTAssertTrue((error as! TandemError).message.contains("view crm.no_such_view does not exist"))
        }
    }

    func testR10_ActivationSyncsExistingDataInChunksAndNotifiesCompletion() throws {
        let db = try TestDatabase(sample: 120)
        let engine = try db.engine()
        var events: [String] = []
        engine.eventHandler = { events.append($0) }
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":50}"#)
        try engine.activate("contacts_companies")
        XCTAssertEqual(try db.scalar("SELECT state FROM tandem.tab_status"), "initial_sync")

        // At most 100 passes: a failed assertion does not end an XCTest
        // loop, so the loop is bounded by its own limit.
        var passes = 0
        var sawProgress = false
        for _ in 0..<100 where try db.scalar("SELECT state FROM tandem.tab_status") == "initial_sync" {
            try engine.pass()
            passes += 1
            if try db.scalar("SELECT initial_sync_progress::text FROM tandem.tab_status") != "{}" { sawProgress = true }
        }
        XCTAssertEqual(try db.scalar("SELECT state FROM tandem.tab_status"), "active", "the initial sync ended within 100 passes (\(passes) ran)")
        XCTAssertTrue(sawProgress, "progress is observable while the initial sync runs")
        XCTAssertGreaterThan(passes, 4, "120 records per side in chunks of 50 take several passes")
        XCTAssertEqual(try db.scalar("SELECT initial_sync_complete::text FROM tandem.tab_status"), "true")
        let complete = try XCTUnwrap(events.first { $0.contains("\"initial_sync_complete\"") })
        XCTAssertTrue(complete.contains("\"contacts\""), complete)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.event_history WHERE type = 'initial_sync_complete'"), 1)
        try assertEveryRecordLinked(db)
    }

    /// Every company and contact of both apps is linked: each app holds as
    /// many records of a module as the module has links (one per record).
    func assertEveryRecordLinked(_ db: TestDatabase, file: StaticString = #filePath, line: UInt = #line) throws {
        for (pipelineTable, crmTable, module) in [("companies", "accounts", "companies"), ("contacts", "contacts", "contacts")] {
            let links = try db.count("SELECT count(*) FROM tandem.links WHERE module = \(module)")
            XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.\(identifier: pipelineTable)"), links, module, file: file, line: line)
            XCTAssertEqual(try db.count("SELECT count(*) FROM crm.\(identifier: crmTable)"), links, module, file: file, line: line)
        }
    }

    /// A large batch joins a chunk with its app table over the span of the
    /// batch's keys: records written meanwhile, with keys on either side of
    /// the chunk's, are in the span too, and every record ends up linked once.
    func testR10_AChunkMergedWithLiveChangesOutsideItsKeysLinksEveryRecord() throws {
        let db = try TestDatabase(sample: 120)
        let engine = try db.engine()
        engine.largeBatchAbove = 0
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":30}"#)
        try engine.activate("contacts_companies")
        let (pipelineAdmin, crmAdmin) = (try db.adminID(.pipeline), try db.adminID(.crm))
        for round in 0..<4 {
            try engine.pass()
            try db.execute("INSERT INTO pipeline.companies (company_name, owner_id) VALUES (\("Span P\(round)"), \(pipelineAdmin)::bigint)")
            try db.execute("INSERT INTO crm.accounts (account_name, owner_id) VALUES (\("Span C\(round)"), \(crmAdmin)::bigint)")
            try db.execute("INSERT INTO pipeline.contacts (id, last_name, owner_id) OVERRIDING SYSTEM VALUE VALUES (\(-(round + 1))::bigint, \("Span low \(round)"), \(pipelineAdmin)::bigint)")
            try db.execute("UPDATE crm.contacts SET title = \("span \(round)") WHERE id = (SELECT max(id) FROM crm.contacts)")
        }
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT state FROM tandem.tab_status"), "active")
        try assertEveryRecordLinked(db)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE last_name LIKE 'Span low %'"), 4)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.companies WHERE company_name LIKE 'Span C%'"), 4)
    }

    func testR13_OwnersKeepThePersonByEmailElseTheSetupUser() throws {
        try checkOwners(largeMerge: false)
    }

    /// A large batch finds owners by one join with the users, not a lookup per record.
    func testR13_TheLargeMergeFindsTheSameOwners() throws {
        try checkOwners(largeMerge: true)
    }

    func checkOwners(largeMerge: Bool) throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        if largeMerge { engine.largeBatchAbove = 0 }
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        // Ana.Lopez@example.com (pipeline id 2) is ana.lopez@example.com in the CRM app; olivia.pipeline has no CRM user.
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, owner_id) VALUES ('OwnedByAna', 'ana.owned@example.org', 2)")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, owner_id) VALUES ('OwnedByOlivia', 'olivia.owned@example.org', 7)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT u.email FROM crm.contacts c JOIN crm.users u ON u.id = c.owner_id WHERE c.last_name = 'OwnedByAna'"), "ana.lopez@example.com")
        XCTAssertEqual(try db.scalar("SELECT u.email FROM crm.contacts c JOIN crm.users u ON u.id = c.owner_id WHERE c.last_name = 'OwnedByOlivia'"), "admin@example.com")
        // The fallback is not taken for a change: the pipeline owner stays Olivia after another pass.
        try db.execute("UPDATE crm.contacts SET title = 'x' WHERE last_name = 'OwnedByOlivia'")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT owner_id::text FROM pipeline.contacts WHERE last_name = 'OwnedByOlivia'"), "7")
        // An owner change travels by email.
        try db.execute("UPDATE crm.contacts SET owner_id = (SELECT id FROM crm.users WHERE email = 'kenji.yamada@example.com') WHERE last_name = 'OwnedByAna'")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT u.email FROM pipeline.contacts c JOIN pipeline.users u ON u.id = c.owner_id WHERE c.last_name = 'OwnedByAna'"), "kenji.yamada@example.com")
    }

    func testB1_ChangesMadeWhileNoHostListenedAreCaughtUpAndNotifyWakesTheSocket() throws {
        let db = try TestDatabase()
        do {
            _ = try db.syncedEngine()
        }
        // No host runs now.
        try db.execute("UPDATE pipeline.contacts SET mobile = 'offline edit' WHERE id = 4")
        let engine = try db.engine()
        try engine.attach("default")
        try engine.process()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "4"))
        XCTAssertEqual(try db.scalar("SELECT mobile FROM crm.contacts WHERE id = \(crmID)::bigint"), "offline edit")

        // A committed change makes the socket readable (LISTEN/NOTIFY).
        try db.execute("UPDATE crm.contacts SET mobile = 'live edit' WHERE id = \(crmID)::bigint")
        var descriptor = pollfd(fd: engine.socket, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&descriptor, 1, 5000), 1, "the socket became readable")
        try engine.process()
        XCTAssertEqual(try db.scalar("SELECT mobile FROM pipeline.contacts WHERE id = 4"), "live edit")
    }

    func testB1_AChangeFromATransactionStillRunningIsReadAfterItCommits() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let writer = try Connection(conninfo: db.conninfo)
        try writer.execute("BEGIN")
        try writer.execute("UPDATE pipeline.contacts SET mobile = 'slow' WHERE id = 6")
        try db.execute("UPDATE pipeline.contacts SET mobile = 'fast' WHERE id = 7")
        try engine.passUntilQuiet()
        try writer.execute("COMMIT")
        try engine.passUntilQuiet()
        for (id, value) in [("6", "slow"), ("7", "fast")] {
            let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: id))
            XCTAssertEqual(try db.scalar("SELECT mobile FROM crm.contacts WHERE id = \(crmID)::bigint"), value)
        }
    }

    func testB2_DifferentFieldsChangedOnBothSidesAreBothKept() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "3"))
        try db.execute("UPDATE pipeline.contacts SET title = 'Pipeline title' WHERE id = 3")
        try db.execute("UPDATE crm.contacts SET mobile = 'CRM mobile' WHERE id = \(crmID)::bigint")
        let conflictsBefore = try db.count("SELECT count(*) FROM tandem.conflicts")
        try engine.passUntilQuiet()
        for table in ["pipeline.contacts WHERE id = 3", "crm.contacts WHERE id = \(crmID)"] {
            XCTAssertEqual(try db.scalar("SELECT title || '/' || mobile FROM \(raw: table)"), "Pipeline title/CRM mobile", table)
        }
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.conflicts"), conflictsBefore, "no conflict: different fields")
    }

    func testB2_AFieldChangedOnBothSidesIsDecidedByEachPolicyAndRecorded() throws {
        let expectations: [(ConflictPolicy, pipeline: String, crm: String, winner: String)] = [
            (.latest, "second", "second", "pipeline"),     // the pipeline edit is later
            (.crmWins, "first", "first", "crm"),
            (.pipelineWins, "second", "second", "pipeline"),
            (.skip, "second", "first", "none"),
        ]
        for (policy, pipelineValue, crmValue, winner) in expectations {
            let db = try TestDatabase(sample: 20)
            let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"conflict_policy":"\#(policy.rawValue)"}"#
            let engine = try db.syncedEngine(config: config)
            let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
            try db.execute("UPDATE crm.contacts SET phone = 'first' WHERE id = \(crmID)::bigint")
            // The pipeline edit must be the later one (modified_time is the
            // transaction time): wait until the server's clock has moved past it.
            try db.waitUntil("the server clock to pass the CRM edit",
                             "SELECT clock_timestamp() > modified_time FROM crm.contacts WHERE id = \(crmID)::bigint")
            try db.execute("UPDATE pipeline.contacts SET phone = 'second' WHERE id = 2")
            try engine.passUntilQuiet()
            XCTAssertEqual(try db.scalar("SELECT phone FROM pipeline.contacts WHERE id = 2"), pipelineValue, policy.rawValue)
            XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), crmValue, policy.rawValue)
            let row = try db.execute("""
                SELECT pipeline_value::text, crm_value::text, winner, policy, reason FROM tandem.conflicts
                 WHERE module = 'contacts' AND pipeline_id = '2' AND field = 'phone' ORDER BY decided_at DESC LIMIT 1
                """).rows.first
            XCTAssertEqual(row?[0], "\"second\"", policy.rawValue)
            XCTAssertEqual(row?[1], "\"first\"", policy.rawValue)
            XCTAssertEqual(row?[2], winner, policy.rawValue)
            XCTAssertEqual(row?[3], policy.rawValue)
            XCTAssertFalse((row?[4] ?? "").isEmpty)
        }
    }

    func testB3_RecordsOnBothSidesAreMatchedCaseAndSpaceInsensitivelyNotCopied() throws {
        let db = try TestDatabase(sample: nil)
        for app in ["pipeline", "crm"] {
            try db.execute("INSERT INTO \(identifier: app).org (org_name, edition) VALUES ('Test Org', 'Premier')")
            try db.execute("INSERT INTO \(identifier: app).users (id, email, full_name, profile, role) VALUES (1, 'admin@example.com', 'Admin', 'Administrator', 'CEO')")
        }
        try db.execute("INSERT INTO pipeline.companies (company_name, owner_id) VALUES ('Acme  Corp ', 1), ('Only Pipeline Ltd', 1)")
        try db.execute("INSERT INTO crm.accounts (account_name, owner_id) VALUES ('acme corp', 1), ('Only CRM Inc', 1)")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, owner_id) VALUES ('Kim', ' Kim@Example.com', 1), ('Twin', 'twin@example.com', 1), ('Twin', 'TWIN@example.com', 1)")
        try db.execute("INSERT INTO crm.contacts (last_name, email, owner_id) VALUES ('Kim', 'kim@example.com', 1), ('Twin', 'twin@example.com', 1)")
        let engine = try db.engine()
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.accounts"), 3, "acme matched, Only Pipeline copied")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.companies"), 3, "acme matched, Only CRM copied")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND origin = 'matched'"), 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE lower(btrim(email)) = 'kim@example.com'"), 1)
        // Spellings of the match key that differ only in case and spacing are
        // one value: each side keeps its own, and no conflict is recorded.
        XCTAssertEqual(try db.scalar("SELECT company_name FROM pipeline.companies WHERE lower(company_name) LIKE 'acme%'"), "Acme  Corp ")
        XCTAssertEqual(try db.scalar("SELECT account_name FROM crm.accounts WHERE lower(account_name) LIKE 'acme%'"), "acme corp")
        XCTAssertEqual(try db.scalar("SELECT email FROM pipeline.contacts WHERE last_name = 'Kim'"), " Kim@Example.com")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.conflicts WHERE field IN ('company_name', 'email')"), 0)
        // A later change of spelling on one side is a change like any other.
        try db.execute("UPDATE pipeline.companies SET company_name = 'ACME Corp' WHERE lower(company_name) LIKE 'acme%'")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT account_name FROM crm.accounts WHERE lower(account_name) LIKE 'acme%'"), "ACME Corp")
        // Two pipeline twins, one CRM twin: one pair is matched, the other twin is copied.
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts' AND origin = 'matched'"), 2)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE lower(email) = 'twin@example.com'"), 2)
        // Matching also works for records created later on one side.
        try db.execute("INSERT INTO crm.contacts (last_name, email, owner_id) VALUES ('Late', 'late@example.com', 1)")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, owner_id) VALUES ('Late', 'LATE@example.com', 1)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE lower(email) = 'late@example.com'"), 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE lower(email) = 'late@example.com'"), 1)
    }

    /// An initial sync matches each module's records in one statement as its
    /// first chunk is queued (`ModuleCompiler.matchAll`), whatever the chunk
    /// size, and merges the pairs in that pass as matched records.
    func testB3_AnInitialSyncMatchesAModuleAtOnceWhateverItsChunkSize() throws {
        let db = try TestDatabase(sample: 60, overlap: 30)
        let engine = try db.engine()
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":1,"tabs":{"contacts_companies":{}}}"#)
        try engine.activate("contacts_companies")
        let first = try engine.pass()
        let matched = try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND origin = 'matched'")
        XCTAssertGreaterThan(matched, 1, "more pairs than the chunk holds")
        XCTAssertEqual(first.matched, Int64(matched))
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.links l JOIN tandem.mirrors m USING (link_id) WHERE l.module = 'companies' AND l.origin = 'matched'
            """), matched, "merged and mirrored in that pass")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.conflict_decisions WHERE module = 'companies' AND reason LIKE '%(first sync of records matched on both sides)'
            """), try db.count("SELECT count(*) FROM tandem.conflict_decisions WHERE module = 'companies'"), "noted as matched records")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND origin = 'matched'"), matched,
                       "no company was matched later")
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts' AND origin = 'matched'"), 1)
        XCTAssertEqual(try db.count("SELECT coalesce(sum(matched), 0) FROM tandem.runs"),
                       try db.count("SELECT count(*) FROM tandem.links WHERE origin = 'matched'"), "every match counted once")
        for (side, table) in [("pipeline", "pipeline.companies"), ("crm", "crm.accounts")] {
            XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND \(raw: side)_id IS NOT NULL"),
                           try db.count("SELECT count(*) FROM \(raw: table)"), "every record of \(side) linked once")
        }
    }

    /// A job whose first chunk an older engine queued has no set-wise match
    /// in its progress: its chunks are matched key by key, and no company
    /// with a twin in the other app is copied.
    func testB3_AnInitialSyncResumedFromAnOlderEngineStillMatchesEveryTwin() throws {
        let db = try TestDatabase(sample: 60, overlap: 30)
        let pairs = try db.count(#"""
            SELECT count(*) FROM
              (SELECT k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
                 FROM (SELECT id, lower(regexp_replace(btrim(company_name), '\s+', ' ', 'g')) AS k FROM pipeline.companies) s WHERE k <> '') p
              JOIN (SELECT k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
                 FROM (SELECT id, lower(regexp_replace(btrim(account_name), '\s+', ' ', 'g')) AS k FROM crm.accounts) s WHERE k <> '') c
              USING (k, n)
            """#)
        XCTAssertGreaterThan(pairs, 1)
        let engine = try db.engine()
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":5,"tabs":{"contacts_companies":{}}}"#)
        try engine.activate("contacts_companies")
        // What an older engine left after queuing a first chunk that read nothing.
        try db.execute("""
            UPDATE tandem.tabs SET initial_sync_progress = '{"companies": {"pipeline": {"after": "0", "read": 0, "done": false}}}'
             WHERE tab = 'contacts_companies'
            """)
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND origin = 'matched'"), pairs)
        XCTAssertEqual(try db.scalar("SELECT (job IS NULL AND initial_sync_completed_at IS NOT NULL)::text FROM tandem.tabs WHERE tab = 'contacts_companies'"),
                       "true", "the job completed")
    }

    func testB4_TheEnginesOwnWritesNeverComeBackAndAQuietPassWritesNothing() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0, "the initial sync logged no changes")
        XCTAssertTrue(try db.count("SELECT count(*) FROM tandem.runs") > 0)
        try db.execute("UPDATE pipeline.contacts SET phone = 'echo?' WHERE id = 1")
        let first = try engine.pass()
        XCTAssertEqual(first.updatedInCRM, 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log WHERE table_oid = 'crm.contacts'::regclass"), 0, "the engine's write to the CRM app was not logged")
        let runs = try db.count("SELECT count(*) FROM tandem.runs")
        let cursor = try db.scalar("SELECT snapshot::text || moved_at::text FROM tandem.sync_cursors")
        let quiet = try engine.pass()
        XCTAssertEqual(quiet, PassSummary())
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.runs"), runs, "a quiet pass records no run")
        XCTAssertEqual(try db.scalar("SELECT snapshot::text || moved_at::text FROM tandem.sync_cursors"), cursor, "nor moves the cursor")
    }

    func testB5_AFailedPassLeavesNothingBehindAndTheNextAppliesExactlyOnce() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("UPDATE pipeline.contacts SET phone = 'once' WHERE id = 1")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, owner_id) VALUES ('Crash', 'crash@example.org', 1)")
        // Simulate a crash at the last statement of the pass, after every app write.
        try db.execute("CREATE FUNCTION public.boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated crash'; END $$")
        try db.execute("CREATE TRIGGER boom BEFORE INSERT ON tandem.runs FOR EACH ROW EXECUTE FUNCTION public.boom()")
        XCTAssertThrowsError(try engine.pass()) { error in
            XCTAssertTrue((error as! TandemError).message.contains("simulated crash"))
        }
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertNotEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "once")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE email = 'crash@example.org'"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.pending_changes WHERE change IN ('update', 'insert')"), 2, "both changes still pending")

        try db.execute("DROP TRIGGER boom ON tandem.runs")
        try engine.passUntilQuiet()
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "once")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE email = 'crash@example.org'"), 1, "created exactly once")
    }

    func testB5_AHostKilledDuringTheInitialSyncResumesWithoutDuplicates() throws {
        let db = try TestDatabase(sample: 3000, overlap: 20)
        let engine = try db.engine()
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":200}"#)
        try engine.activate("contacts_companies")
        engine.close()
        let cli = repositoryRoot.appendingPathComponent(".build/debug/tandem").path
        guard FileManager.default.fileExists(atPath: cli) else { return XCTFail("build the CLI first: \(cli)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = ["sync", "--database", db.conninfo]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Kill it once some chunks committed.
        try waitUntil("the CLI to commit 500 links", timeout: 60) {
            guard process.isRunning else { throw TandemError(.error, "tandem sync exited (\(process.terminationStatus)) before it was killed") }
            return try db.count("SELECT count(*) FROM tandem.links") >= 500
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(try db.scalar("SELECT state FROM tandem.tab_status"), "initial_sync", "killed before the end")

        let resumed = try db.engine()
        try resumed.attach("default")
        try resumed.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT state FROM tandem.tab_status"), "active")
        try assertEveryRecordLinked(db)
        XCTAssertEqual(try db.count("SELECT count(*) FROM (SELECT lower(btrim(email)) FROM crm.contacts WHERE email IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d"), 0, "no duplicate contacts")
    }

    func testB6_ARecordThatCannotBeWrittenIsAnErrorTheRestSyncsAndItIsRetriedOnceFixed() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("ALTER TABLE crm.contacts ADD CONSTRAINT no_bad_phone CHECK (phone IS DISTINCT FROM 'bad phone')")
        try db.execute("UPDATE pipeline.contacts SET phone = 'bad phone' WHERE id = 1")
        try db.execute("UPDATE pipeline.contacts SET phone = 'good phone' WHERE id = 2")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, phone, owner_id) VALUES ('Bad', 'bad@example.org', 'bad phone', 1)")
        let summary = try engine.passUntilQuiet()
        XCTAssertEqual(summary.errors, 2)
        let good = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(good)::bigint"), "good phone", "the rest of the batch synced")
        let errors = try db.execute("SELECT record_id, operation, sqlstate, message FROM tandem.record_errors ORDER BY operation").rows
        XCTAssertEqual(errors.count, 2)
        XCTAssertEqual(errors.map { $0[1] }, ["create", "update"])
        XCTAssertEqual(errors.first?[2], "23514")
        XCTAssertTrue((errors.first?[3] ?? "").contains("no_bad_phone"), errors.first?[3] ?? "")

        // Fixed on the other side: retried when due, and both records go through.
        try db.execute("ALTER TABLE crm.contacts DROP CONSTRAINT no_bad_phone")
        try db.execute("UPDATE tandem.record_failures SET retry_at = now()")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.record_errors"), 0)
        let bad = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(bad)::bigint"), "bad phone")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE email = 'bad@example.org'"), 1)
    }

    /// A synced engine whose CRM contact 'Shopkeeper' waits for its account,
    /// 'Small Shop', which is not in the key accounts that sync; and the
    /// contact's id.
    private func engineWithAWaitingShopkeeper(_ db: TestDatabase) throws -> (Engine, String) {
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"companies":"key_accounts","contacts":"all_contacts"}}}}"#
        let engine = try db.syncedEngine(config: config)
        let admin = try db.adminID(.crm)
        try db.execute("INSERT INTO crm.accounts (account_name, annual_revenue, owner_id) VALUES ('Small Shop', 10, \(admin)::bigint)")
        try db.execute("INSERT INTO crm.contacts (last_name, email, account_id, owner_id) VALUES ('Shopkeeper', 'shop@example.org', currval('crm.accounts_id_seq'), \(admin)::bigint)")
        try engine.passUntilQuiet()
        return (engine, try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.contacts WHERE last_name = 'Shopkeeper'")))
    }

    func testB6_AChildWhoseParentIsNotLinkedWaitsAndFollowsTheParent() throws {
        let db = try TestDatabase()
        let (engine, shopkeeper) = try engineWithAWaitingShopkeeper(db)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts WHERE last_name = 'Shopkeeper'"), 0)
        XCTAssertEqual(try db.scalar("SELECT next_action FROM tandem.pending_changes WHERE change = 'waiting' AND module = 'contacts' AND record_id = \(shopkeeper)"),
                       "sync once its parent record is linked (R11)")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.record_errors"), 0, "waiting is not an error")

        try db.execute("UPDATE crm.accounts SET annual_revenue = 5000000 WHERE account_name = 'Small Shop'")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("""
            SELECT co.company_name FROM pipeline.contacts c JOIN pipeline.companies co ON co.id = c.company_id WHERE c.last_name = 'Shopkeeper'
            """), "Small Shop")
    }

    /// A waiting record that is changed again is judged like any candidate:
    /// what it waited for is forgotten, and without a parent it is copied.
    func testB6_AWaitingRecordThatDropsItsParentIsCopiedAndWaitsNoMore() throws {
        let db = try TestDatabase()
        let (engine, shopkeeper) = try engineWithAWaitingShopkeeper(db)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.waiting_records WHERE module = 'contacts' AND record_id = \(shopkeeper)"), 1)

        try db.execute("UPDATE crm.contacts SET account_id = NULL WHERE id = \(shopkeeper)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.waiting_records WHERE module = 'contacts' AND record_id = \(shopkeeper)"), 0,
                       "it waits for nothing now")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.pending_changes WHERE change = 'waiting' AND module = 'contacts' AND record_id = \(shopkeeper)"), 0)
        let copy = try XCTUnwrap(try db.linked("contacts", from: .crm, id: shopkeeper))
        XCTAssertEqual(try db.scalar("SELECT last_name FROM pipeline.contacts WHERE id = \(copy)::bigint AND company_id IS NULL"), "Shopkeeper")
    }

    func testB9_OneActiveSyncerPerIntegrationTheOtherStandsBy() throws {
        let db = try TestDatabase()
        let first = try db.syncedEngine()
        let second = try db.engine()
        try second.attach("default")
        XCTAssertThrowsError(try second.pass()) { error in
            XCTAssertEqual((error as! TandemError).code, .busy)
        }
        XCTAssertEqual(try second.process(), PassSummary(), "a standby host does nothing")
        first.close()
        try db.execute("UPDATE pipeline.contacts SET phone = 'taken over' WHERE id = 1")
        // The server ends the first session shortly after close(); its
        // advisory lock goes with it.
        try db.waitUntil("the first host's syncer lock to be released", """
            SELECT NOT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                                WHERE l.locktype = 'advisory' AND l.classid = 1952804196 AND l.objid <> 0
                                  AND d.datname = current_database())
            """)
        try second.process()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "taken over")
    }

    func testRunStopsWhenAskedFromAnotherThread() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let done = expectation(description: "run returned")
        let box = UncheckedBox(engine)
        Thread.detachNewThread {
            do { try box.value.run() } catch { XCTFail("run failed: \(error)") }
            done.fulfill()
        }
        defer { engine.requestStop() }
        // Whether run() has begun or not, it catches up from the cursor first.
        try db.execute("UPDATE pipeline.contacts SET phone = 'while running' WHERE id = 1")
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        try db.waitUntil("the edit to reach the CRM app while run() follows",
                         "SELECT phone = 'while running' FROM crm.contacts WHERE id = \(crmID)::bigint")
        engine.requestStop()
        wait(for: [done], timeout: 5)
    }
}

final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Events are written by the engine's own JSON writer: the same JSON as
/// Foundation's, keys sorted.
final class EventJSONTests: XCTestCase {
    func testEventJSONReadsBackAsTheObjectAndEscapesWhatJSONRequires() throws {
        let object: [String: Any] = [
            "type": "sync_pass", "changes_read": Int64(1), "count": 3, "pid": Int32(7), "duration_ms": 2.5,
            "done": true, "failed": false, "after": NSNull(),
            "text": "quote \" backslash \\ newline \n tab \t bell \u{7} 日本 🙂",
            "list": [Int64(1), "two", [String: Any]()], "nested": ["b": 1, "a": [Any]()],
        ]
        let text = Engine.json(object)
        let read = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
        XCTAssertEqual(read, object as NSDictionary)
        XCTAssertTrue(text.hasPrefix(#"{"after":null,"changes_read":1,"count":3,"done":true,"duration_ms":2.5,"#), text)
        XCTAssertTrue(text.contains(#""text":"quote \" backslash \\ newline \n tab \t bell \u0007 日本 🙂""#), text)
        XCTAssertTrue(text.contains(#""nested":{"a":[],"b":1}"#), text)
        // An NSNumber (as read from JSON) goes through Foundation: it is a
        // number, not a boolean.
        XCTAssertEqual(Engine.json(["read": NSNumber(value: 1)]), #"{"read":1}"#)
        XCTAssertEqual(Engine.json(["bad": Double.nan]), "{}", "not JSON: Foundation refuses it too")
    }
}

final class ReportTests: XCTestCase {
    func testStatusAndEveryReportAreJSONFromTheViews() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let status = try JSONSerialization.jsonObject(with: Data(try engine.status().utf8)) as? [String: Any]
        XCTAssertEqual(status?["integration"] as? String, "default")
        let syncer = try XCTUnwrap(status?["active_syncer"] as? [String: Any], "the handle that synced holds the lock")
        XCTAssertEqual((syncer["pid"] as? NSNumber)?.int32Value, engine.backendPID)
        XCTAssertEqual(syncer["application_name"] as? String, "tandem")
        XCTAssertNotNil(syncer["since"] as? String)
        let tabs = try XCTUnwrap(status?["tabs"] as? [[String: Any]])
        XCTAssertEqual(tabs.first?["initial_sync_complete"] as? Bool, true)
        XCTAssertEqual((tabs.first?["job_progress"] as? [Any])?.count, 0, "no job runs")
        for name in Engine.reports.keys.sorted() {
            let rows = try JSONSerialization.jsonObject(with: Data(try engine.report(name, limit: 3).utf8)) as? [Any]
            XCTAssertNotNil(rows, name)
            XCTAssertLessThanOrEqual(rows?.count ?? 99, 3, name)
        }
        XCTAssertThrowsError(try engine.report("nope", limit: 1)) { XCTAssertEqual(($0 as! TandemError).code, .notFound) }
    }

    /// Every view pages in its total order: the pages add up to the whole
    /// report, in the same order, whatever the page size.
    func testEveryReportPagesInItsTotalOrder() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("UPDATE pipeline.contacts SET title = 'x' || coalesce(title, '') WHERE id IN (SELECT id FROM pipeline.contacts ORDER BY id LIMIT 5)")
        for view in Set(Engine.reports.values).sorted() {
            let whole = try JSONSerialization.jsonObject(with: Data(try engine.report(view, limit: 10_000).utf8)) as? [Any] ?? []
            var paged: [Any] = []
            var after: String?
            var pages = 0
            repeat {
                let page = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try engine.reportPage(view, after: after, limit: 3).utf8)) as? [String: Any])
                paged += page["rows"] as? [Any] ?? []
                after = page["next"] as? String
                pages += 1
            } while after != nil && pages < 10_000
            XCTAssertEqual(NSArray(array: paged), NSArray(array: whole), view)
        }
        XCTAssertThrowsError(try engine.reportPage("run_history", after: "p1.e30", limit: 1)) { XCTAssertEqual(($0 as! TandemError).code, .misuse) }
        XCTAssertThrowsError(try engine.reportPage("run_history", after: nil, limit: -1)) { XCTAssertEqual(($0 as! TandemError).code, .misuse) }
    }

    /// "Not installed" is asked of the catalog, not guessed from a message:
    /// a bound handle whose schema was dropped says so; a missing app table
    /// is a database error.
    func testAMissingSchemaIsToldFromTheCatalog() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("DROP SCHEMA tandem CASCADE")
        XCTAssertThrowsError(try engine.status()) {
            let error = $0 as! TandemError
            XCTAssertEqual(error.code, .state)
            XCTAssertEqual(error.extended, ExtendedCode.stateNotInstalled)
        }
        let other = try TestDatabase()
        let bound = try other.syncedEngine()
        try other.execute("ALTER TABLE crm.contacts RENAME TO contacts_elsewhere")
        try other.execute("UPDATE pipeline.contacts SET title = 'x' WHERE id = (SELECT min(id) FROM pipeline.contacts)")
        XCTAssertThrowsError(try bound.pass()) {
            let error = $0 as! TandemError
            XCTAssertNotEqual(error.extended, ExtendedCode.stateNotInstalled, error.message)
        }
    }

    /// The library never prints: the server's warnings reach the log handler.
    func testServerNoticesGoToTheLogHandler() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        var lines: [(LogLevel, String)] = []
        engine.logHandler = { lines.append(($0, $1)) }
        try engine.connection.execute("DO $$ BEGIN RAISE WARNING 'careful'; END $$")
        XCTAssertTrue(lines.contains { $0.0 == .warning && $0.1.contains("careful") }, "\(lines)")
        engine.logHandler = nil
        try engine.connection.execute("DO $$ BEGIN RAISE WARNING 'unheard'; END $$")
        XCTAssertFalse(lines.contains { $0.1.contains("unheard") })
    }

    /// A cancel from another thread interrupts the pass in flight, which
    /// rolls back (B5); a cancel when nothing runs does nothing.
    func testCancelInterruptsThePassWhichRollsBack() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        engine.requestCancel()
        XCTAssertNoThrow(try engine.pass())
        let cursor = try db.scalar("SELECT snapshot::text FROM tandem.sync_cursors")
        let runs = try db.count("SELECT count(*) FROM tandem.runs")
        try db.execute("UPDATE pipeline.contacts SET title = 'x' WHERE id = (SELECT min(id) FROM pipeline.contacts)")
        let locker = try Connection(conninfo: db.conninfo)
        try locker.execute("BEGIN")
        try locker.execute("LOCK TABLE tandem.runs IN ACCESS EXCLUSIVE MODE")
        // requestCancel() is the one call meant for another thread.
        nonisolated(unsafe) let target = engine
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { target.requestCancel() }
        XCTAssertThrowsError(try engine.pass()) {
            let error = $0 as! TandemError
            XCTAssertEqual(error.code, .canceled, error.message)
            XCTAssertEqual(error.sqlstate, "57014")
        }
        try locker.execute("ROLLBACK")
        locker.close()
        XCTAssertEqual(try db.scalar("SELECT snapshot::text FROM tandem.sync_cursors"), cursor)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.runs"), runs)
        let summary = try engine.pass()
        XCTAssertGreaterThanOrEqual(summary.changesRead, 1)
        XCTAssertTrue(summary.didWork)
    }

    func testStatusNamesTheActiveSyncerWhicheverHostItIsAndTabsInSyncOrder() throws {
        let db = try TestDatabase(sample: 300, overlap: 30)
        let engine = try db.engine()
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":100,"tabs":{"contacts_companies":{},"activities":{},"notes":{}}}"#)
        let observer = try db.engine()
        try observer.attach("default")
        func status(_ handle: Engine) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try handle.status().utf8)) as? [String: Any])
        }
        XCTAssertTrue(try status(observer)["active_syncer"] is NSNull, "no host syncs yet")
        XCTAssertEqual((try status(observer)["tabs"] as? [[String: Any]])?.compactMap { $0["tab"] as? String },
                       ["contacts_companies", "activities", "notes"], "tabs in sync order, not by name")

        try engine.activate("contacts_companies")
        try engine.pass()
        let syncer = try XCTUnwrap(try status(observer)["active_syncer"] as? [String: Any], "another host's status names the syncer")
        XCTAssertEqual((syncer["pid"] as? NSNumber)?.int32Value, engine.backendPID)
        XCTAssertNotEqual(engine.backendPID, observer.backendPID)

        // Progress with totals while the initial sync runs: read + what is left.
        let scans = try observer.jobProgress()
        XCTAssertEqual(scans.map { "\($0.module)/\($0.scan)" }, ["companies/pipeline", "companies/crm", "contacts/pipeline", "contacts/crm"])
        // The first chunk read the companies matched set-wise and 100 more.
        let matched = try db.count("SELECT count(*) FROM tandem.links WHERE module = 'companies' AND origin = 'matched'")
        XCTAssertGreaterThan(matched, 0)
        XCTAssertEqual(scans[0].read, 100 + Int64(matched))
        XCTAssertEqual(Int(scans[0].total), try db.count("SELECT count(*) FROM pipeline.companies"))
        XCTAssertFalse(scans[0].done)
        let tab = try XCTUnwrap((try status(observer)["tabs"] as? [[String: Any]])?.first)
        XCTAssertEqual(((tab["job_progress"] as? [[String: Any]])?.first?["total"] as? NSNumber)?.int64Value, scans[0].total)
        // Uncounted, a scan's total is what it read; a display keeps the total it counted.
        try engine.pass()
        let uncounted = try observer.jobProgress(counting: false)
        XCTAssertEqual(uncounted[0].read, 200 + Int64(matched))
        XCTAssertEqual(uncounted[0].total, 200 + Int64(matched), "nothing was counted")
        let kept = uncounted[0].keepingTotal(of: scans[0])
        XCTAssertEqual(kept.read, 200 + Int64(matched))
        XCTAssertEqual(kept.total, scans[0].total, "the records read since the count came out of the remaining ones")
        XCTAssertEqual(kept.total, try observer.jobProgress()[0].total, "and a new count agrees")
        XCTAssertEqual(uncounted[1].keepingTotal(of: scans[0]).total, uncounted[1].total, "another scan's count is not taken")
        try engine.passUntilQuiet()
        XCTAssertEqual(try observer.jobProgress(), [], "the job is complete")
        engine.close()
        // The server ends the session a moment after the client closed it.
        let deadline = Date().addingTimeInterval(5)
        while !(try status(observer)["active_syncer"] is NSNull) && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(try status(observer)["active_syncer"] is NSNull, "the lock went with the session")
    }
}
