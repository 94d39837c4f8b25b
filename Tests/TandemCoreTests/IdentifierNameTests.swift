import XCTest

@testable import TandemCore

/// Names of the indexes Tandem creates on the apps' tables: PostgreSQL's 63
/// bytes, whole characters only, and never one name for two indexes.
final class IdentifierNameTests: XCTestCase {
    func testMatchIndexNames() {
        let longJapanese = String(repeating: "取引先責任者", count: 6)   // 108 bytes of 3-byte characters
        let cases: [(schema: String, table: String, column: String, readable: String)] = [
            ("pipeline", "contacts", "email", "tandem_match_contacts_email_"),
            ("crm", "accounts", "account_name", "tandem_match_accounts_account_name_"),
            ("crm", String(repeating: "a", count: 80), "email", "tandem_match_" + String(repeating: "a", count: 37) + "_"),
            ("crm", longJapanese, "email", "tandem_match_" + String(repeating: "取引先責任者", count: 2) + "_"),
            ("crm", "会社", "メール", "tandem_match_会社_メール_"),
            // A family emoji is one Character of 25 bytes: never cut in two.
            ("crm", String(repeating: "👨‍👩‍👧‍👦", count: 3), "email", "tandem_match_👨‍👩‍👧‍👦_"),
        ]
        for item in cases {
            let name = IdentifierName.matchIndex(schema: item.schema, table: item.table, column: item.column)
            XCTAssertLessThanOrEqual(name.utf8.count, 63, name)
            XCTAssertTrue(name.hasPrefix(item.readable), "«\(name)» does not start with «\(item.readable)»")
            let hash = name.dropFirst(item.readable.count)
            XCTAssertEqual(hash.count, 12, name)
            XCTAssertTrue(hash.allSatisfy { $0.isHexDigit }, name)
            // Valid UTF-8 that survives a round trip through bytes.
            XCTAssertEqual(String(validating: Array(name.utf8), as: UTF8.self), name)
        }
    }

    func testNamesThatShareTheirFirst63BytesDiffer() {
        let table = String(repeating: "x", count: 70)
        let pairs: [((String, String, String), (String, String, String))] = [
            (("crm", table + "_one", "email"), ("crm", table + "_two", "email")),
            (("crm", table, "email_address_one"), ("crm", table, "email_address_two")),
            (("crm", String(repeating: "取引先", count: 10) + "A", "email"), ("crm", String(repeating: "取引先", count: 10) + "B", "email")),
            // "_" joins table and column: a_b + c and a + b_c must not meet.
            (("crm", "a_b", "c"), ("crm", "a", "b_c")),
            // Same table and column in two schemas.
            (("pipeline", "contacts", "email"), ("crm", "contacts", "email")),
        ]
        for (first, second) in pairs {
            let one = IdentifierName.matchIndex(schema: first.0, table: first.1, column: first.2)
            let two = IdentifierName.matchIndex(schema: second.0, table: second.1, column: second.2)
            XCTAssertNotEqual(one, two)
        }
    }

    func testTheHashIsStable() {
        // A name computed today must find the index made by an earlier version.
        XCTAssertEqual(IdentifierName.hash([]), "cbf29ce48422")
        XCTAssertEqual(IdentifierName.matchIndex(schema: "pipeline", table: "contacts", column: "email"),
                       IdentifierName.matchIndex(schema: "pipeline", table: "contacts", column: "email"))
        XCTAssertNotEqual(IdentifierName.hash(["ab", "c"]), IdentifierName.hash(["a", "bc"]))
    }
}
