import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// The lifecycle of a tab and of the integration (R14-R17) against a real
/// PostgreSQL, checking the data in both apps. One database per test.
final class LifecycleTests: XCTestCase {
    static let contactsAndActivities = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{},"activities":{}}}"#

    static func config(views contacts: String = "all_contacts", policy: String = "latest", fields: String = "[]") -> String {
        #"{"conflict_policy":"\#(policy)","pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"companies":"all_accounts","contacts":"\#(contacts)"}}},"modules":{"contacts":{"fields":\#(fields)}}}"#
    }

    /// CRM contacts with no link.
    func unlinkedCRMContacts(_ db: TestDatabase) throws -> Int {
        try db.count("""
            SELECT count(*) FROM crm.contacts c
             WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.crm_id = c.id::text)
            """)
    }

    func tabRow(_ db: TestDatabase, _ tab: String, _ column: String) throws -> String? {
        try db.scalar("SELECT \(identifier: column)::text FROM tandem.tab_status WHERE tab = \(tab)")
    }

    func events(_ db: TestDatabase, _ type: String) throws -> Int {
        try db.count("SELECT count(*) FROM tandem.events WHERE type = \(type)")
    }

    func expectError(_ code: ResultCode, containing text: String, _ work: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try work(), file: file, line: line) { error in
            guard let error = error as? TandemError else { return XCTFail("not a TandemError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.code, code, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "missing «\(text)» in: \(error.message)", file: file, line: line)
        }
    }

    // MARK: - R14 edit sync

    func testR14_AViewChangeKeepsRecordsOfTheOldViewAndRescansTheNewOne() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.config(views: "contacts_with_email"))
        let outside = try db.count("SELECT count(*) FROM crm.contacts WHERE email IS NULL")
        XCTAssertGreaterThan(outside, 0, "the sample has CRM contacts outside the view")
        XCTAssertEqual(try unlinkedCRMContacts(db), outside)
        let linksBefore = try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts'")
        let pipelineBefore = try db.count("SELECT count(*) FROM pipeline.contacts")

        // configure may not change the view of an active tab: edit sync does.
        expectError(.state, containing: "change only through edit sync (R14)") { try engine.configure(Self.config(views: "all_contacts")) }
        let summary = try engine.editSync("contacts_companies", configuration: Self.config(views: "all_contacts"))
        XCTAssertEqual(summary.viewsChanged, ["contacts"])
        XCTAssertTrue(summary.rescanScheduled)
        XCTAssertEqual(try tabRow(db, "contacts_companies", "job"), "edit_sync")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.pending_changes WHERE tab = 'contacts_companies'"), 0,
                       "the re-scan is a job, not a pending change")
        try engine.passUntilQuiet()

        XCTAssertEqual(try unlinkedCRMContacts(db), 0, "every CRM contact of the new view is linked")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts'"), linksBefore + outside)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts"), pipelineBefore + outside, "created, none deleted")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM crm.contacts c JOIN tandem.links l ON l.module = 'contacts' AND l.crm_id = c.id::text
              JOIN pipeline.contacts p ON p.id = l.pipeline_id::bigint
             WHERE c.email IS NULL AND p.last_name = c.last_name
            """), outside)
        XCTAssertNil(try tabRow(db, "contacts_companies", "job"))
        XCTAssertEqual(try events(db, "edit_sync_complete"), 1)

        // Back to the narrower view: the records synced from the wider one stay linked.
        try engine.editSync("contacts_companies", configuration: Self.config(views: "contacts_with_email"))
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts'"), linksBefore + outside)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.contacts"), pipelineBefore + outside)
    }

    func testR14_AViewRedefinedInSQLIsRescannedWhenEditSyncIsAskedFor() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.config(views: "contacts_with_email"))
        let outside = try db.count("SELECT count(*) FROM crm.contacts WHERE email IS NULL")
        try db.execute("CREATE OR REPLACE VIEW crm.contacts_with_email AS SELECT * FROM crm.contacts")
        try engine.passUntilQuiet()
        XCTAssertEqual(try unlinkedCRMContacts(db), outside, "a new definition alone changes nothing")

        let summary = try engine.editSync("contacts_companies", configuration: nil)
        XCTAssertEqual(summary.viewsChanged, [])
        XCTAssertTrue(summary.rescanScheduled)
        try engine.passUntilQuiet()
        XCTAssertEqual(try unlinkedCRMContacts(db), 0)
    }

    func testR14_ANewlyMappedFieldIsBroughtIntoLineAndAnUnmappedOneStopsSyncing() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.config(policy: "crm_wins"))
        let pairs = try db.sql.execute("SELECT pipeline_id, crm_id, link_id FROM tandem.links WHERE module = 'contacts' ORDER BY link_id LIMIT 3").rows
        XCTAssertEqual(pairs.count, 3)
        let (fill, same, differ) = (pairs[0], pairs[1], pairs[2])
        // Before the field is mapped, each app holds what it holds.
        try db.execute("UPDATE pipeline.contacts SET preferred_language = NULL")
        try db.execute("UPDATE crm.contacts SET lead_source = NULL")
        try db.execute("UPDATE pipeline.contacts SET preferred_language = 'ja' WHERE id = \(fill[0]!)::bigint")
        try db.execute("UPDATE pipeline.contacts SET preferred_language = 'en' WHERE id = \(same[0]!)::bigint")
        try db.execute("UPDATE crm.contacts SET lead_source = 'en' WHERE id = \(same[1]!)::bigint")
        try db.execute("UPDATE pipeline.contacts SET preferred_language = 'de' WHERE id = \(differ[0]!)::bigint")
        try db.execute("UPDATE crm.contacts SET lead_source = 'Web' WHERE id = \(differ[1]!)::bigint")
        try engine.passUntilQuiet()
        let conflictsBefore = try db.count("SELECT count(*) FROM tandem.conflict_decisions")

        let fields = #"[{"pipeline":"preferred_language","crm":"lead_source"},{"pipeline":"title","crm":null}]"#
        let summary = try engine.editSync("contacts_companies", configuration: Self.config(policy: "crm_wins", fields: fields))
        XCTAssertEqual(summary.newlyMapped["contacts"]?.count, 1)
        XCTAssertEqual(summary.unmapped["contacts"], ["title"])
        try engine.passUntilQuiet()

        XCTAssertEqual(try db.scalar("SELECT lead_source FROM crm.contacts WHERE id = \(fill[1]!)::bigint"), "ja", "a value on one side fills the other")
        XCTAssertEqual(try db.scalar("SELECT preferred_language FROM pipeline.contacts WHERE id = \(same[0]!)::bigint"), "en")
        XCTAssertEqual(try db.scalar("SELECT preferred_language FROM pipeline.contacts WHERE id = \(differ[0]!)::bigint"), "Web", "crm_wins decides")
        XCTAssertEqual(try db.scalar("SELECT lead_source FROM crm.contacts WHERE id = \(differ[1]!)::bigint"), "Web")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.conflict_decisions") - conflictsBefore, 1, "only the differing pair is a conflict")
        XCTAssertEqual(try db.scalar("SELECT winner || ' ' || policy FROM tandem.conflicts WHERE link_id = \(differ[2]!)::bigint ORDER BY decided_at DESC LIMIT 1"), "crm crm_wins")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pipeline.contacts p JOIN tandem.links l ON l.module = 'contacts' AND l.pipeline_id = p.id::text
              JOIN crm.contacts c ON c.id = l.crm_id::bigint WHERE p.preferred_language IS DISTINCT FROM c.lead_source
            """), 0, "every linked pair agrees on the new field")

        // The unmapped field stops syncing; both sides keep their values.
        let crmTitle = try db.scalar("SELECT title FROM crm.contacts WHERE id = \(fill[1]!)::bigint")
        try db.execute("UPDATE pipeline.contacts SET title = 'Only here', preferred_language = 'fr' WHERE id = \(fill[0]!)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(fill[1]!)::bigint"), crmTitle)
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = \(fill[0]!)::bigint"), "Only here")
        XCTAssertEqual(try db.scalar("SELECT lead_source FROM crm.contacts WHERE id = \(fill[1]!)::bigint"), "fr", "the new field syncs live")
    }

    func testR14_ActivitiesAndNotesHaveNothingToEditAndOtherSettingsNeedConfigure() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.contactsAndActivities)
        expectError(.state, containing: "(R9)") { try engine.editSync("activities", configuration: nil) }
        let otherPolicy = Self.contactsAndActivities.replacingOccurrences(of: #"{"pipeline""#, with: #"{"conflict_policy":"skip","pipeline""#)
        expectError(.config, containing: "conflict_policy") { try engine.editSync("contacts_companies", configuration: otherPolicy) }
        expectError(.config, containing: "is not valid") {
            try engine.editSync("contacts_companies", configuration: Self.config(views: "no_such_view"))
        }
    }

    /// The fault seen in trials: configuring without a tab during its initial
    /// sync, then with it again, left it "active, complete" with nothing linked.
    func testR14_AConfigurationChangeNeverLosesATabsState() throws {
        let db = try TestDatabase()
        let withNotes = #"{"initial_sync_chunk":5,"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{},"notes":{}}}"#
        let withoutNotes = #"{"initial_sync_chunk":5,"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{}}}"#
        let engine = try db.syncedEngine(config: withNotes)
        try engine.activate("notes")
        _ = try engine.pass()
        XCTAssertEqual(try tabRow(db, "notes", "state"), "initial_sync")

        expectError(.state, containing: "leaves out tab notes, which is initial_sync") { try engine.configure(withoutNotes) }
        try engine.configure(withNotes)
        XCTAssertFalse(try engine.activate("notes"), "already syncing: nothing to start")
        try engine.passUntilQuiet()
        XCTAssertEqual(try tabRow(db, "notes", "initial_sync_complete"), "true")
        let syncable = try db.count("""
            SELECT count(*) FROM pipeline.notes n
             WHERE EXISTS (SELECT 1 FROM tandem.links l
                            WHERE (l.module = 'contacts' AND l.pipeline_id = n.contact_id::text)
                               OR (l.module = 'companies' AND l.pipeline_id = n.company_id::text))
            """)
        XCTAssertGreaterThan(syncable, 0)
        XCTAssertGreaterThanOrEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'notes'"), syncable)
    }

    // MARK: - R15 deactivate

    func testR15_ADeactivatedTabStopsSyncingAtOnceCostsWritersNothingAndKeepsItsData() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.contactsAndActivities)
        try engine.activate("activities")
        try engine.passUntilQuiet()
        let links = try db.count("SELECT count(*) FROM tandem.links WHERE module = 'tasks'")
        XCTAssertGreaterThan(links, 0)
        let pair = try XCTUnwrap(try db.sql.execute("SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'tasks' ORDER BY link_id LIMIT 1").rows.first)
        let crmSubject = try db.scalar("SELECT subject FROM crm.tasks WHERE id = \(pair[1]!)::bigint")

        expectError(.state, containing: "(R15)") { try engine.deactivate("contacts_companies") }
        XCTAssertTrue(try engine.deactivate("activities"))
        XCTAssertFalse(try engine.deactivate("activities"), "inactive already")
        XCTAssertEqual(try tabRow(db, "activities", "state"), "inactive")
        XCTAssertNotNil(try tabRow(db, "activities", "inactive_since"))
        XCTAssertEqual(try events(db, "tab_deactivated"), 1)
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_trigger t WHERE t.tgrelid IN ('pipeline.tasks'::regclass, 'crm.tasks'::regclass,
                   'pipeline.events'::regclass, 'crm.events'::regclass, 'pipeline.calls'::regclass, 'crm.calls'::regclass)
               AND t.tgname LIKE '%tandem%'
            """), 0, "no capture on the inactive tab's tables")
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pipeline.contacts'::regclass AND tgname LIKE '%tandem%'"), 0)

        try db.execute("UPDATE pipeline.tasks SET subject = 'Changed while inactive' WHERE id = \(pair[0]!)::bigint")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log WHERE table_oid = 'pipeline.tasks'::regclass::oid"), 0, "nothing is logged")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT subject FROM crm.tasks WHERE id = \(pair[1]!)::bigint"), crmSubject, "nothing syncs")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'tasks'"), links, "links stay")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.mirrors m JOIN tandem.links l USING (link_id) WHERE l.module = 'tasks'"), links, "mirrors stay")
        // The other tab keeps syncing.
        try db.execute("UPDATE pipeline.contacts SET title = 'Still syncing' WHERE id = 1")
        try engine.passUntilQuiet()
        let crmContact = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(crmContact)::bigint"), "Still syncing")
    }

    /// Decided and documented (README "Lifecycle"): activities and notes of a
    /// deal keep syncing while Pipelines & Products is inactive, through the
    /// deal's link; those of a deal created meanwhile wait for it, and follow
    /// when the tab is reactivated and the deal linked.
    func testR15_ActivitiesOfDealsKeepSyncingThroughLinksWhilePipelinesAndProductsIsInactive() throws {
        let db = try TestDatabase()
        let engine = try db.allTabsEngine()
        let task = try XCTUnwrap(try db.sql.execute("""
            SELECT l.pipeline_id, l.crm_id FROM tandem.links l JOIN pipeline.tasks t ON t.id = l.pipeline_id::bigint
             WHERE l.module = 'tasks' AND t.pipeline_record_id IS NOT NULL ORDER BY l.link_id LIMIT 1
            """).rows.first)
        XCTAssertTrue(try engine.deactivate("pipelines_products"))

        try db.execute("UPDATE pipeline.tasks SET subject = 'On a linked deal' WHERE id = \(task[0]!)::bigint")
        let owner = try db.adminID(.pipeline)
        let deal = try XCTUnwrap(try db.scalar("""
            INSERT INTO pipeline.pipeline_records (record_name, team_pipeline, sub_pipeline, stage, owner_id)
            SELECT 'Deal made while inactive', team_pipeline, sub_pipeline, stage, \(owner)::bigint FROM pipeline.pipeline_records ORDER BY id LIMIT 1
            RETURNING id::text
            """))
        try db.execute("INSERT INTO pipeline.tasks (subject, pipeline_record_id, owner_id) VALUES ('On a new deal', \(deal)::bigint, \(owner)::bigint)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT subject FROM crm.tasks WHERE id = \(task[1]!)::bigint"), "On a linked deal")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.deals WHERE deal_name = 'Deal made while inactive'"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.tasks WHERE subject = 'On a new deal'"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.waiting_records WHERE module = 'tasks' AND parent_id = \(deal)"), 1)

        XCTAssertTrue(try engine.reactivate("pipelines_products", policy: .latest))
        try engine.passUntilQuiet()
        let crmDeal = try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.deals WHERE deal_name = 'Deal made while inactive'"))
        XCTAssertEqual(try db.scalar("SELECT what_module || ':' || what_id FROM crm.tasks WHERE subject = 'On a new deal'"), "deals:\(crmDeal)")
    }

    // MARK: - R16 reactivate with a conflict policy

    /// Edits the same task on both sides, others on one side, adds a task on
    /// each side, all while Activities is inactive; reactivates with `policy`
    /// and compares every mapped field of both sides with what the policy means.
    func reactivation(_ policy: ConflictPolicy) throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.contactsAndActivities)
        try engine.activate("activities")
        try engine.passUntilQuiet()
        let rows = try db.sql.execute("""
            SELECT l.pipeline_id, l.crm_id, l.link_id::text FROM tandem.links l WHERE l.module = 'tasks' ORDER BY l.link_id LIMIT 3
            """).rows
        XCTAssertEqual(rows.count, 3)
        let (both, pipelineOnly, crmOnly) = (rows[0], rows[1], rows[2])
        let contact = try XCTUnwrap(try db.sql.execute("SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'contacts' ORDER BY link_id LIMIT 1").rows.first)
        let conflictsBefore = try db.count("SELECT count(*) FROM tandem.conflict_decisions")

        XCTAssertTrue(try engine.deactivate("activities"))
        // CRM first, the pipeline app later: under `latest` the pipeline app wins.
        try db.execute("UPDATE crm.tasks SET subject = 'CRM subject', priority = 'Low' WHERE id = \(both[1]!)::bigint")
        try db.execute("UPDATE pipeline.tasks SET subject = 'Pipeline subject', description = 'Pipeline note' WHERE id = \(both[0]!)::bigint")
        try db.execute("UPDATE pipeline.tasks SET status = 'Deferred' WHERE id = \(pipelineOnly[0]!)::bigint")
        try db.execute("UPDATE crm.tasks SET priority = 'Highest' WHERE id = \(crmOnly[1]!)::bigint")
        let pipelineOwner = try db.adminID(.pipeline), crmOwner = try db.adminID(.crm)
        try db.execute("INSERT INTO pipeline.tasks (subject, contact_id, owner_id) VALUES ('Added in the pipeline app', \(contact[0]!)::bigint, \(pipelineOwner)::bigint)")
        try db.execute("INSERT INTO crm.tasks (subject, who_id, owner_id) VALUES ('Added in the CRM app', \(contact[1]!)::bigint, \(crmOwner)::bigint)")
        let field = { (side: Side, id: String, column: String) throws -> String? in
            try db.scalar("SELECT \(identifier: column)::text FROM \(identifier: side.rawValue).tasks WHERE id = \(id)::bigint")
        }
        let pipelineBoth = try ["subject", "status", "priority", "description", "due_date"].map { try field(.pipeline, both[0]!, $0) }
        let crmBoth = try ["subject", "status", "priority", "description", "due_date"].map { try field(.crm, both[1]!, $0) }

        XCTAssertTrue(try engine.reactivate("activities", policy: policy))
        XCTAssertFalse(try engine.reactivate("activities", policy: policy), "active already")
        XCTAssertEqual(try tabRow(db, "activities", "job"), "reactivation")
        XCTAssertEqual(try tabRow(db, "activities", "job_policy"), policy.rawValue)
        try engine.passUntilQuiet()
        XCTAssertNil(try tabRow(db, "activities", "job"))
        XCTAssertEqual(try events(db, "reactivation_complete"), 1)

        // The record changed on both sides: subject on both (a conflict),
        // priority only in the CRM app, description only in the pipeline app.
        let subject: (pipeline: String, crm: String)
        switch policy {
        case .latest, .pipelineWins: subject = ("Pipeline subject", "Pipeline subject")
        case .crmWins: subject = ("CRM subject", "CRM subject")
        case .skip: subject = ("Pipeline subject", "CRM subject")
        }
        XCTAssertEqual(try field(.pipeline, both[0]!, "subject"), subject.pipeline)
        XCTAssertEqual(try field(.crm, both[1]!, "subject"), subject.crm)
        for (index, column) in ["status", "priority", "description", "due_date"].enumerated() {
            let expected: String?
            switch column {
            case "priority": expected = "Low"
            case "description": expected = "Pipeline note"
            default: expected = pipelineBoth[index + 1] ?? crmBoth[index + 1]
            }
            XCTAssertEqual(try field(.pipeline, both[0]!, column), expected, column)
            XCTAssertEqual(try field(.crm, both[1]!, column), expected, column)
        }
        XCTAssertEqual(try field(.crm, pipelineOnly[1]!, "status"), "Deferred", "one-sided edits sync under every policy")
        XCTAssertEqual(try field(.pipeline, crmOnly[0]!, "priority"), "Highest")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.tasks WHERE subject = 'Added in the pipeline app'"), 1, "added meanwhile: exactly once")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.tasks WHERE subject = 'Added in the CRM app'"), 1)

        let decided = try db.sql.execute("""
            SELECT field, winner, policy, reason FROM tandem.conflicts WHERE link_id = \(both[2]!)::bigint ORDER BY decided_at
            """).rows
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.conflict_decisions") - conflictsBefore, 1, "one field changed on both sides")
        XCTAssertEqual(decided.last?[0], "subject")
        XCTAssertEqual(decided.last?[1], policy == .skip ? "none" : (policy == .crmWins ? "crm" : "pipeline"))
        XCTAssertEqual(decided.last?[2], policy.rawValue)
        XCTAssertTrue(decided.last?[3]?.contains("changed on both sides while inactive") == true, decided.last?[3] ?? "")

        // Afterwards live conflicts use the integration's policy (latest).
        try db.execute("UPDATE crm.tasks SET subject = 'Live CRM' WHERE id = \(both[1]!)::bigint")
        try db.execute("UPDATE pipeline.tasks SET subject = 'Live pipeline' WHERE id = \(both[0]!)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try field(.crm, both[1]!, "subject"), "Live pipeline")
        XCTAssertEqual(try db.scalar("SELECT policy FROM tandem.conflicts WHERE link_id = \(both[2]!)::bigint ORDER BY decided_at DESC LIMIT 1"), "latest")
    }

    func testR16_ReactivationWithLatest() throws { try reactivation(.latest) }
    func testR16_ReactivationWithCRMWins() throws { try reactivation(.crmWins) }
    func testR16_ReactivationWithPipelineWins() throws { try reactivation(.pipelineWins) }
    func testR16_ReactivationWithSkip() throws { try reactivation(.skip) }

    // MARK: - R17 remove

    /// md5 of every app table's rows, by table.
    func appFingerprint(_ db: TestDatabase) throws -> [String: String] {
        var fingerprint: [String: String] = [:]
        let tables = try db.sql.execute("""
            SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('pipeline', 'crm') ORDER BY 1, 2
            """).rows
        for table in tables {
            guard let schema = table[0], let name = table[1] else { continue }
            fingerprint["\(schema).\(name)"] = try db.scalar("""
                SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM \(qualified: schema, name) t
                """)
        }
        return fingerprint
    }

    func testR17_RemovalStopsARunningHostDropsEveryTriggerAndIndexAndDeletesNothing() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.contactsAndActivities)
        try engine.activate("activities")
        try engine.passUntilQuiet()
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM pg_indexes WHERE schemaname IN ('pipeline', 'crm') AND indexname LIKE 'tandem%'"), 0)

        // A host following the integration in another thread.
        let host = try Engine(conninfo: db.conninfo)
        try host.attach("default")
        let box = UncheckedBox(host)
        let outcome = UncheckedBox(OutcomeSlot())
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try box.value.run() } catch { outcome.value.error = error }
            finished.signal()
        }
        let before = try appFingerprint(db)

        XCTAssertTrue(try engine.remove(purge: false))
        if finished.wait(timeout: .now() + 15) == .timedOut {
            host.requestStop()
            _ = finished.wait(timeout: .now() + 5)
            XCTFail("the host did not return within 15 s of the removal")
        }
        XCTAssertEqual((outcome.value.error as? TandemError)?.code, .removed, String(describing: outcome.value.error))

        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('pipeline', 'crm') AND t.tgname LIKE '%tandem%'
            """), 0, "no trigger of Tandem's on the app tables")
        XCTAssertEqual(try db.count("SELECT count(*) FROM pg_indexes WHERE schemaname IN ('pipeline', 'crm') AND indexname LIKE 'tandem%'"), 0)
        // The schema's own two (the check of tandem._applying, shared by every
        // watched table, and the trigger on tandem._applying) stay with it.
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_proc WHERE pronamespace = 'tandem'::regnamespace AND prorettype = 'trigger'::regtype
               AND proname NOT IN ('_verify_applying', '_announce_applying')
            """), 0, "no capture function is left")
        XCTAssertEqual(try appFingerprint(db), before, "every app row is unchanged")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.tab_status WHERE state <> 'removed'"), 0)
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.linked_records"), 0, "history stays for reporting")
        XCTAssertEqual(try events(db, "integration_removed"), 1)

        // Nothing syncs or is logged any more; a second call is harmless.
        try db.execute("UPDATE pipeline.contacts SET title = 'After removal' WHERE id = 1")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 0)
        XCTAssertFalse(try engine.remove(purge: false))
        expectError(.removed, containing: "was removed") { try engine.pass() }
        expectError(.state, containing: "was removed (R17)") { try engine.configure(Self.contactsAndActivities) }

        // Purging takes the history too; then the name is free again.
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.mirrors"), 0)
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.runs"), 0)
        XCTAssertTrue(try engine.remove(purge: true))
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.integrations"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.links"), 0)
        for table in ["mirrors", "conflict_decisions", "runs", "tabs", "events"] {
            XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.\(raw: table)"), 0, "purge leaves nothing in tandem.\(table)")
        }
        XCTAssertFalse(try engine.remove(purge: true))
    }

    func testR17_UninstallRefusesWhileAnIntegrationIsInPlace() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        expectError(.state, containing: "'default'") { try engine.uninstall() }
        XCTAssertEqual(try db.scalar("SELECT to_regnamespace('tandem') IS NOT NULL"), "t")
        try engine.remove(purge: false)
        try engine.uninstall()
        XCTAssertEqual(try db.scalar("SELECT to_regnamespace('tandem') IS NULL"), "t")
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('pipeline', 'crm') AND t.tgname LIKE '%tandem%'
            """), 0)
        try engine.uninstall() // harmless when nothing is installed
    }

    func testAHostFollowingTheIntegrationBindsAgainAfterAnEditSyncElsewhere() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine(config: Self.config())
        let other = try Engine(conninfo: db.conninfo)
        try other.attach("default")
        let fields = #"[{"pipeline":"preferred_language","crm":"lead_source"}]"#
        try other.editSync("contacts_companies", configuration: Self.config(fields: fields))
        try db.execute("UPDATE pipeline.contacts SET preferred_language = 'sv' WHERE id = 1")
        try engine.passUntilQuiet()
        let crmContact = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT lead_source FROM crm.contacts WHERE id = \(crmContact)::bigint"), "sv")
        XCTAssertEqual(engine.integration?.module(named: "contacts")?.fields.contains { $0.crm.name == "lead_source" }, true)
    }
}

/// Where a thread leaves what it ended with; read after it signalled.
final class OutcomeSlot {
    var error: Error?
}
