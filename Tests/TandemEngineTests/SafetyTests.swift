import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// A guest in a shared production database (issue 7): nothing traps on odd
/// names, record errors keep no personal data, applied migrations are never
/// edited.
final class SafetyTests: XCTestCase {
    /// 21 kanji, 63 bytes: the longest table name PostgreSQL keeps, so the
    /// match index name must be cut, and never inside a character.
    static let longJapaneseName = "顧客連絡先担当者情報管理台帳営業部門東京本"

    func testALongJapaneseTableNameActivatesWithoutTrappingAndItsMatchIndexNameIsWhole() throws {
        let db = try TestDatabase()
        let table = Self.longJapaneseName
        XCTAssertEqual(table.utf8.count, 63)
        try db.execute("ALTER TABLE crm.contacts RENAME TO \(identifier: table)")
        let config = #"""
            {"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},
             "modules":{"contacts":{"crm":{"table":"\#(table)","key":"id","modified":"modified_time"}}}}
            """#
        let engine = try db.syncedEngine(config: config)
        let name = IdentifierName.matchIndex(schema: "crm", table: table, column: "email")
        XCTAssertLessThanOrEqual(name.utf8.count, 63)
        XCTAssertEqual(try db.scalar("SELECT indexname FROM pg_indexes WHERE schemaname = 'crm' AND tablename = \(table) AND indexname LIKE 'tandem_match%'"),
                       name)
        try db.execute("UPDATE pipeline.contacts SET phone = '長い名前' WHERE id = 1")
        try engine.passUntilQuiet()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.\(identifier: table) WHERE id = \(crmID)::bigint"), "長い名前")
    }

    func testRecordErrorsNameTheConstraintAndColumnButKeepNoValueOfTheRecord() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        try db.execute("ALTER TABLE crm.contacts ADD CONSTRAINT contacts_phone_not_listed CHECK (phone IS DISTINCT FROM '+44 20 7946 0999')")
        try db.execute("UPDATE crm.contacts SET title = coalesce(title, 'Staff')")
        try engine.passUntilQuiet()
        try db.execute("ALTER TABLE crm.contacts ALTER COLUMN title SET NOT NULL")

        try db.execute("UPDATE pipeline.contacts SET phone = '+44 20 7946 0999', email = 'ada.lovelace@example.org' WHERE id = 1")
        try db.execute("UPDATE pipeline.contacts SET title = NULL, mobile = '+81 90 1234 5678', email = 'grace.hopper@example.org' WHERE id = 2")
        let summary = try engine.passUntilQuiet()
        XCTAssertEqual(summary.errors, 2)

        let errors = try db.execute("SELECT record_id, sqlstate, message FROM tandem.record_errors ORDER BY record_id::bigint").rows
        XCTAssertEqual(errors.map { $0[1] }, ["23514", "23502"])
        let check = errors.first?[2] ?? "", notNull = errors.last?[2] ?? ""
        XCTAssertTrue(check.contains("contacts_phone_not_listed") && check.contains("crm.contacts"), check)
        XCTAssertTrue(notNull.contains("column title") && notNull.contains("crm.contacts"), notNull)
        for message in [check, notNull] {
            for value in ["ada.lovelace", "grace.hopper", "example.org", "7946", "1234 5678", "Failing row"] {
                XCTAssertFalse(message.contains(value), "«\(value)» in «\(message)»")
            }
        }
    }

    func testAnUnmappedStageKeepsItsNameInTheRecordError() throws {
        // A stage is the organisation's vocabulary, not personal data: the
        // message names it, because adding it to the value map is the fix.
        let db = try TestDatabase()
        let config = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{},"pipelines_products":{}}}"#
        let engine = try db.syncedEngine(config: config)
        try engine.activate("pipelines_products")
        try engine.passUntilQuiet()
        try db.execute("INSERT INTO crm.stages (pipeline, stage, sequence, probability, forecast_category) VALUES ('Standard', 'Legal Review', 99, 80, 'Pipeline')")
        let deal = try XCTUnwrap(try db.scalar("""
            SELECT d.id::text FROM crm.deals d JOIN tandem.links l ON l.module = 'deals' AND l.crm_id = d.id::text
             WHERE d.pipeline = 'Standard' ORDER BY d.id LIMIT 1
            """))
        try db.execute("UPDATE crm.deals SET stage = 'Legal Review', description = 'call +1 555 0100' WHERE id = \(deal)::bigint")
        let summary = try engine.passUntilQuiet()
        XCTAssertEqual(summary.errors, 1)
        let message = try XCTUnwrap(try db.scalar("SELECT message FROM tandem.record_errors WHERE module = 'deals' AND record_id = \(deal)"))
        XCTAssertTrue(message.contains("CRM app value 'Legal Review' (in Standard)") && message.contains("has no mapping"), message)
        XCTAssertFalse(message.contains("555"), message)
    }

    func testMigration6RewritesErrorsRecordedBeforeAndKeepsTheFallbacksSecuritySettings() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let id = try XCTUnwrap(try db.scalar("SELECT integration_id::text FROM tandem.integrations"))
        // As 0002 recorded them: the message, then PostgreSQL's DETAIL.
        try db.execute("""
            INSERT INTO tandem.record_failures (integration_id, module, side, record_id, operation, sqlstate, message)
            VALUES (\(id)::bigint, 'contacts', 'pipeline', '1', 'update', '23514',
                    'new row for relation "contacts" violates check constraint "c" (Failing row contains (1, Ada, ada@example.org))'),
                   (\(id)::bigint, 'contacts', 'pipeline', '2', 'update', '22P02',
                    'invalid input syntax for type integer: "ada@example.org"')
            """)
        // A later migration (privileges) may make the fallback SECURITY
        // DEFINER with a pinned search_path; 0006 must not undo that.
        try db.execute("ALTER FUNCTION tandem._apply_each(text, regclass, text) SECURITY DEFINER SET search_path = tandem, pg_temp")
        try db.execute("DELETE FROM tandem.migrations WHERE version = 6")
        try engine.install()

        let messages = try db.execute("SELECT message FROM tandem.record_failures ORDER BY record_id").rows.map { $0[0] ?? "" }
        XCTAssertEqual(messages.first, #"new row for relation "contacts" violates check constraint "c""#)
        XCTAssertTrue(messages.last?.hasPrefix("invalid input syntax for the column's type (SQLSTATE 22P02)") == true, messages.last ?? "")
        XCTAssertFalse(messages.joined().contains("ada@example.org"), messages.joined())
        XCTAssertEqual(try db.scalar("""
            SELECT prosecdef::text || ' ' || array_to_string(proconfig, ',') FROM pg_proc
             WHERE oid = 'tandem._apply_each(text, regclass, text)'::regprocedure
            """), "true search_path=tandem, pg_temp")
    }

    func testAMigrationWhoseAppliedTextDiffersIsRefusedByName() throws {
        let db = try TestDatabase(apps: false)
        let engine = try db.engine()
        let checksums = try db.execute("SELECT version, checksum FROM tandem.migrations ORDER BY version").rows
        XCTAssertFalse(checksums.isEmpty)
        for row in checksums {
            XCTAssertEqual(row[1]?.count, 64, "a SHA-256 per applied migration")
            XCTAssertEqual(try db.scalar("SELECT \(row[1]) ~ '^[0-9a-f]{64}$'"), "t")
        }
        try engine.install()   // the same library again: nothing to do, nothing refused

        let original = try XCTUnwrap(checksums.first { $0[0] == "2" }?[1])
        try db.execute("UPDATE tandem.migrations SET checksum = repeat('0', 64) WHERE version = 2")
        XCTAssertThrowsError(try engine.install()) { error in
            let error = error as? TandemError
            XCTAssertEqual(error?.code, .state)
            XCTAssertTrue(error?.message.contains("migration 0002_capture_and_apply") == true, error?.message ?? "")
            XCTAssertTrue(error?.message.contains("differs") == true, error?.message ?? "")
        }

        // A database from before checksums were kept: the column is added and
        // filled from the library's text, and the next check passes.
        try db.execute("ALTER TABLE tandem.migrations DROP COLUMN checksum")
        try engine.install()
        XCTAssertEqual(try db.scalar("SELECT checksum FROM tandem.migrations WHERE version = 2"), original)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.migrations WHERE checksum IS NULL"), 0)
    }
}
