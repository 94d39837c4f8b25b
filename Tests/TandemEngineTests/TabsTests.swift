import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// Pipelines & Products, Activities and Notes on the same engine as the first tab.
final class TabsTests: XCTestCase {
    func testR1_FourTabPairsSyncBothWays() throws {
        let db = try TestDatabase()
        let engine = try db.allTabsEngine()
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.tab_status WHERE state = 'active' AND initial_sync_complete"), 4)
        let company = try XCTUnwrap(try db.linked("companies", from: .pipeline, id: "1"))
        let contact = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        // One new record per tab, from alternating sides.
        try db.execute("""
            INSERT INTO crm.deals (deal_name, pipeline, stage, amount, account_id, contact_id, owner_id)
            VALUES ('R1 deal', 'Standard', 'Value Proposition', 1234.50, \(company)::bigint, \(contact)::bigint, 1)
            """)
        try db.execute("INSERT INTO pipeline.products (product_name, product_code, unit_price, owner_id) VALUES ('R1 product', 'R1-PROD', 9.99, 1)")
        try db.execute("INSERT INTO pipeline.tasks (subject, contact_id, owner_id) VALUES ('R1 task', 1, 1)")
        try db.execute("INSERT INTO crm.notes (note_content, parent_module, parent_id, owner_id) VALUES ('R1 note', 'accounts', \(company)::bigint, 1)")
        try engine.passUntilQuiet()

        let deal = try db.execute("""
            SELECT record_name, sub_pipeline, stage, amount::text, company_id::text, contact_id::text FROM pipeline.pipeline_records WHERE record_name = 'R1 deal'
            """).rows.first
        XCTAssertEqual(deal, ["R1 deal", "Standard", "Needs Identified", "1234.50", "1", "1"])
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.products WHERE product_code = 'R1-PROD' AND unit_price = 9.99"), 1)
        XCTAssertEqual(try db.scalar("SELECT who_id::text FROM crm.tasks WHERE subject = 'R1 task'"), contact)
        XCTAssertEqual(try db.scalar("SELECT parent_module || ':' || company_id FROM pipeline.notes WHERE note_content = 'R1 note'"), "companies:1")

        // A product attached to the deal in the pipeline app reaches the deal in the CRM app.
        let pipelineDeal = try XCTUnwrap(try db.scalar("SELECT id::text FROM pipeline.pipeline_records WHERE record_name = 'R1 deal'"))
        let product = try XCTUnwrap(try db.scalar("SELECT id::text FROM pipeline.products WHERE product_code = 'R1-PROD'"))
        try db.execute("INSERT INTO pipeline.pipeline_record_products (pipeline_record_id, product_id, quantity, list_price) VALUES (\(pipelineDeal)::bigint, \(product)::bigint, 3, 9.50)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("""
            SELECT d.deal_name || ' x' || dp.quantity || ' ' || p.product_code FROM crm.deal_products dp
              JOIN crm.deals d ON d.id = dp.deal_id JOIN crm.products p ON p.id = dp.product_id WHERE p.product_code = 'R1-PROD'
            """), "R1 deal x3.00 R1-PROD")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.record_errors"), 0)
    }

    func testR2_OtherTabsAreRefusedUntilContactsAndCompaniesHasSynced() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        try engine.configure(TestDatabase.allTabsConfig)
        for tab in ["pipelines_products", "activities", "notes"] {
            XCTAssertThrowsError(try engine.activate(tab), tab) { error in
                let error = error as! TandemError
                XCTAssertEqual(error.code, .state)
                XCTAssertTrue(error.message.contains("only after contacts_companies is active and its initial sync is complete (R2)"), error.message)
            }
        }
        try engine.activate("contacts_companies")
        XCTAssertThrowsError(try engine.activate("notes"), "still refused while the initial sync runs")
        try engine.passUntilQuiet()
        XCTAssertNoThrow(try engine.activate("notes"))
    }

    func testR9_ActivitiesAndNotesTakeNoViewAndNoMapping() throws {
        let cases: [(String, String)] = [
            (#""tabs":{"contacts_companies":{},"activities":{"views":{"tasks":"all_tasks"}}}"#, "activities has no CRM view; its records are selected by their parents (R9)"),
            (#""tabs":{"contacts_companies":{},"notes":{}},"modules":{"notes":{"fields":[{"pipeline":"note_title","crm":"note_content"}]}}"#, "notes is mapped by the system and takes no field mapping (R9)"),
        ]
        for (fragment, expected) in cases {
            let json = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"# + fragment + "}"
            XCTAssertThrowsError(try Configuration.parse(json)) { error in
                XCTAssertTrue((error as! TandemError).message.contains(expected), (error as! TandemError).message)
            }
        }
        let db = try TestDatabase()
        let engine = try db.engine()
        try engine.configure(TestDatabase.allTabsConfig)
        let tasks = try XCTUnwrap(engine.integration?.module(named: "tasks"))
        XCTAssertEqual(Set(tasks.fields.map(\.name)), ["subject", "due_date", "status", "priority", "description", "contact_id:who_id", "related_to", "owner_id"])
    }

    func testR11_ChildrenWaitForTheirParentAndFollowItOnceLinked() throws {
        let db = try TestDatabase()
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{"views":{"contacts":"contacts_with_email"}},"pipelines_products":{},"activities":{},"notes":{}}}"#
        let engine = try db.allTabsEngine(config: config)
        // A CRM contact outside the view, with a note and a call created before it is synced.
        try db.execute("INSERT INTO crm.contacts (last_name, owner_id) VALUES ('Not Yet', 1)")
        let contact = try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.contacts WHERE last_name = 'Not Yet'"))
        try db.execute("INSERT INTO crm.notes (note_content, parent_module, parent_id, owner_id) VALUES ('Early note', 'contacts', \(contact)::bigint, 1)")
        try db.execute("INSERT INTO crm.calls (subject, call_type, call_start_time, who_id, owner_id) VALUES ('Early call', 'Outbound', now(), \(contact)::bigint, 1)")
        // An activity with no parent at all is never synced.
        try db.execute("INSERT INTO crm.tasks (subject, owner_id) VALUES ('Orphan task', 1)")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.notes WHERE note_content = 'Early note'"), 0)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.calls WHERE subject = 'Early call'"), 0)
        let note = try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.notes WHERE note_content = 'Early note'"))
        let call = try XCTUnwrap(try db.scalar("SELECT id::text FROM crm.calls WHERE subject = 'Early call'"))
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.pending_changes WHERE change = 'waiting' AND side = 'crm'
               AND ((module = 'notes' AND record_id = \(note)) OR (module = 'calls' AND record_id = \(call)))
            """), 2)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.record_errors"), 0, "waiting is not an error")

        // The contact enters the view: it syncs, and its note and call follow in the same pass.
        try db.execute("UPDATE crm.contacts SET email = 'now.synced@example.org' WHERE id = \(contact)::bigint")
        try engine.passUntilQuiet()
        let pipelineContact = try XCTUnwrap(try db.linked("contacts", from: .crm, id: contact))
        XCTAssertEqual(try db.scalar("SELECT contact_id::text FROM pipeline.notes WHERE note_content = 'Early note'"), pipelineContact)
        XCTAssertEqual(try db.scalar("SELECT contact_id::text FROM pipeline.calls WHERE subject = 'Early call'"), pipelineContact)
        XCTAssertEqual(try db.count("SELECT count(*) FROM pipeline.tasks WHERE subject = 'Orphan task'"), 0)
    }

    func testR12_ActivityRemindersAndRecurrenceAreNeverSynced() throws {
        let db = try TestDatabase()
        let engine = try db.allTabsEngine()
        try db.execute("INSERT INTO pipeline.tasks (subject, contact_id, owner_id, reminder_at, recurrence) VALUES ('Remind me', 2, 1, now() + interval '1 day', 'RRULE:FREQ=WEEKLY')")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.execute("SELECT reminder_at IS NULL, recurrence IS NULL FROM crm.tasks WHERE subject = 'Remind me'").rows.first, ["t", "t"])
        // A reminder set on the CRM side stays there, and is not a change for the other side.
        try db.execute("UPDATE crm.tasks SET reminder_at = now() + interval '2 hours' WHERE subject = 'Remind me'")
        let summary = try engine.passUntilQuiet()
        XCTAssertEqual(summary.written, 0)
        XCTAssertEqual(try db.scalar("SELECT recurrence FROM pipeline.tasks WHERE subject = 'Remind me'"), "RRULE:FREQ=WEEKLY")
        // A configuration that tries to map them is refused, naming R12.
        let json = #"{"pipeline":{"acting_user":"a"},"crm":{"acting_user":"a"},"tabs":{"contacts_companies":{},"activities":{}},"modules":{"tasks":{"fields":[{"pipeline":"reminder_at","crm":"reminder_at"}]}}}"#
        XCTAssertThrowsError(try Configuration.parse(json)) { error in
            XCTAssertTrue((error as! TandemError).message.contains("reminder_at holds a reminder or recurrence, which is never synced (R12)"))
        }
    }

    func testAStageChangedInTheCRMAppLandsInTheRightStageOfThePipelineApp() throws {
        let db = try TestDatabase()
        let engine = try db.allTabsEngine()
        let crmDeal = try XCTUnwrap(try db.linked("deals", from: .pipeline, id: "1"))
        for (crmStage, pipelineStage) in [("Value Proposition", "Needs Identified"), ("Closed Lost to Competition", "Closed Lost"), ("Negotiation/Review", "Negotiation/Review")] {
            try db.execute("UPDATE crm.deals SET stage = \(crmStage) WHERE id = \(crmDeal)::bigint")
            try engine.passUntilQuiet()
            XCTAssertEqual(try db.scalar("SELECT stage FROM pipeline.pipeline_records WHERE id = 1"), pipelineStage, crmStage)
        }
        // And back: the pipeline app's stage maps to the CRM app's.
        try db.execute("UPDATE pipeline.pipeline_records SET stage = 'Needs Identified' WHERE id = 1")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT stage FROM crm.deals WHERE id = \(crmDeal)::bigint"), "Needs Analysis")
        // A pipeline move carries its stage into the other pipeline.
        try db.execute("UPDATE crm.deals SET pipeline = 'Renewals', stage = 'Id. Decision Makers' WHERE id = \(crmDeal)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT sub_pipeline || '/' || stage FROM pipeline.pipeline_records WHERE id = 1"), "Renewals/Needs Identified")
    }

    func testALargeValueMapIsStoredWholeAndStillMapsStages() throws {
        // 9,000 value pairs (under the 10,000 a module takes): configure
        // stores them in one statement, not one round trip each (issue 8).
        let db = try TestDatabase()
        let pairs = (0..<9_000).map { #""Legacy \#($0)":"Qualification""# }.joined(separator: ",")
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"#
            + #""tabs":{"contacts_companies":{},"pipelines_products":{},"activities":{},"notes":{}},"#
            + #""modules":{"deals":{"fields":[{"pipeline":"stage","crm":"stage","values":{"to_crm":{"Standard":{\#(pairs)}}}}]}}}"#
        let engine = try db.allTabsEngine(config: config)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.value_maps WHERE source_value LIKE 'Legacy %'"), 9_000)
        XCTAssertEqual(try db.scalar("SELECT target_value FROM tandem.value_maps WHERE direction = 'to_crm' AND context = 'Standard' AND source_value = 'Legacy 8999'"),
                       "Qualification")
        // Configuring the same JSON again replaces the rows rather than adding to them.
        try engine.configure(config)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.value_maps WHERE source_value LIKE 'Legacy %'"), 9_000)
        let crmDeal = try XCTUnwrap(try db.linked("deals", from: .pipeline, id: "1"))
        try db.execute("UPDATE crm.deals SET stage = 'Value Proposition' WHERE id = \(crmDeal)::bigint")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT stage FROM pipeline.pipeline_records WHERE id = 1"), "Needs Identified")
    }

    func testAStageWithoutAMappingIsAValidationErrorNamingIt() throws {
        let db = try TestDatabase()
        try db.execute("INSERT INTO crm.stages (pipeline, stage, sequence, probability, forecast_category) VALUES ('Standard', 'Legal Review', 99, 80, 'Pipeline')")
        let engine = try db.engine()
        XCTAssertThrowsError(try engine.validate(TestDatabase.allTabsConfig)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .config)
            XCTAssertTrue(error.message.contains("module deals field stage: CRM app value 'Legal Review' (Standard) has no mapping to the pipeline app"), error.message)
        }
        // Mapping it in the configuration fixes it.
        let fixed = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{},"pipelines_products":{}},"modules":{"deals":{"fields":[{"pipeline":"stage","crm":"stage","values":{"to_pipeline":{"Standard":{"Legal Review":"Negotiation/Review"}}}}]}}}"#
        XCTAssertNoThrow(try engine.validate(fixed))
    }

    func testB3_ProductsAreMatchedByCodeOnFirstSync() throws {
        let db = try TestDatabase(sample: 100, overlap: 30)
        let shared = try db.count("""
            SELECT count(*) FROM pipeline.products p JOIN crm.products c ON lower(btrim(p.product_code)) = lower(btrim(c.product_code))
             WHERE btrim(p.product_code) <> ''
            """)
        XCTAssertGreaterThan(shared, 0, "the sample has products in both apps")
        _ = try db.allTabsEngine()
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.links l JOIN pipeline.products p ON l.pipeline_id = p.id::text JOIN crm.products c ON l.crm_id = c.id::text
             WHERE l.module = 'products' AND l.origin = 'matched' AND p.product_code = c.product_code
            """), shared)
        XCTAssertEqual(try db.count("SELECT count(*) FROM (SELECT product_code FROM crm.products WHERE btrim(product_code) <> '' GROUP BY 1 HAVING count(*) > 1) d"), 0, "no duplicate products")
    }
}
