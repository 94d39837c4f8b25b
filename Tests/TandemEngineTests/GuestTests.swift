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
}
