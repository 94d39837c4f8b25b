import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// A guest in a shared production database (issue 7): nothing traps on odd
/// names, record errors keep no personal data, applied migrations are never
/// edited.
final class GuestTests: XCTestCase {
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
