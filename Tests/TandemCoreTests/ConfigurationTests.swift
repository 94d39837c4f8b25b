import Foundation
import TandemPostgres
import XCTest

@testable import TandemCore

/// Configuration, validation, SQL compilation and policies: no database.
final class ConfigurationTests: XCTestCase {
    func testBadInputIsNamed() {
        let cases: [(String, String)] = [
            ("", "configuration is empty"),
            ("{", "not valid JSON"),
            ("[]", "configuration must be a JSON object"),
            ("null", "configuration must be a JSON object"),
            (#"{"pipeline":{},"crm":{"acting_user":"a@b"}}"#, "configuration.pipeline.acting_user is required"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"conflict_policy":"newest"}"#, "conflict_policy 'newest' is not one of latest, crm_wins, pipeline_wins, skip"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"tabs":{"deals":{}}}"#, "configuration.tabs.deals: unknown tab"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"colour":"red"}"#, "configuration.colour is not a known setting"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"modules":{"contacts":{"fields":[{}]}}}"#, "names neither a pipeline nor a crm column"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"initial_sync_chunk":0}"#, "initial_sync_chunk must be a whole number"),
            (#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"initial_sync_chunk":true}"#, "initial_sync_chunk must be a whole number"),
        ]
        for (json, expected) in cases {
            XCTAssertThrowsError(try Configuration.parse(json), json) { error in
                let error = error as! TandemError
                XCTAssertEqual(error.code, .config, json)
                XCTAssertTrue(error.message.contains(expected), "«\(expected)» not in «\(error.message)»")
            }
        }
    }

    func testAChunkOfOneRecordIsAChunkNotABoolean() throws {
        XCTAssertEqual(try Configuration.parse(#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"initial_sync_chunk":1}"#).initialSyncChunk, 1)
        XCTAssertEqual(try Configuration.parse(#"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"initial_sync_chunk":2}"#).initialSyncChunk, 2)
    }

    func testDefaultsCoverTheReferenceSchemasAndOverridesReplaceByColumn() throws {
        let configuration = try Configuration.parse(#"""
            {"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},
             "tabs":{"contacts_companies":{"views":{"contacts":"contacts_with_email"}}},
             "modules":{"contacts":{"fields":[{"pipeline":"title","crm":"description"},{"pipeline":null,"crm":"mobile"}]}}}
            """#)
        XCTAssertEqual(configuration.integration, "default")
        XCTAssertEqual(configuration.policy, .latest)
        XCTAssertEqual(configuration.modules.map(\.name), ["companies", "contacts"])
        let contacts = configuration.modules[1]
        XCTAssertEqual(contacts.crmView, "contacts_with_email")
        XCTAssertEqual(configuration.modules[0].crmView, "all_accounts")
        XCTAssertFalse(contacts.fields.contains { $0.crm == "mobile" })
        XCTAssertFalse(contacts.fields.contains { $0.pipeline == "description" }, "description was remapped away")
        XCTAssertTrue(contacts.fields.contains { $0.pipeline == "title" && $0.crm == "description" })
        XCTAssertTrue(contacts.fields.contains { $0.lookup == "companies" })
    }

    func testPolicyEnumMatchesTheCheckConstraint() throws {
        let migration = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sql/tandem/0001_state.sql"), encoding: .utf8)
        let quoted = ConflictPolicy.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        XCTAssertTrue(migration.contains("CHECK (conflict_policy IN (\(quoted)))"), "integrations_conflict_policy_check must list \(quoted)")
    }

    // MARK: - Validation against a catalog

    static func column(_ name: String, _ type: String = "text", category: Character = "S", notNull: Bool = false,
                       defaultExpression: String? = nil) -> Column {
        Column(name: name, baseType: type, displayType: type, category: category, notNull: notNull,
               hasDefault: defaultExpression != nil, isGenerated: false, defaultExpression: defaultExpression)
    }

    static func table(_ columns: [Column], kind: Character = "r") -> Catalog.Relation {
        Catalog.Relation(kind: kind, columns: Dictionary(uniqueKeysWithValues: columns.map { ($0.name, $0) }))
    }

    /// A catalog shaped like the reference apps, small.
    static func catalog() -> Catalog {
        let key = column("id", "bigint", category: "N", notNull: true, defaultExpression: "nextval('x'::regclass)")
        let modified = column("modified_time", "timestamp with time zone", category: "D", notNull: true, defaultExpression: "now()")
        let owner = column("owner_id", "bigint", category: "N", notNull: true)
        let users = table([key, column("email"), column("profile"), column("role")])
        let org = table([column("edition")])
        var relations: [TableName: Catalog.Relation] = [:]
        for schema in ["pipeline", "crm"] {
            relations[TableName(schema: schema, name: "users")] = users
            relations[TableName(schema: schema, name: "org")] = org
        }
        let address = ["street", "city", "state", "code", "country"].map { column("billing_\($0)") }
        relations[TableName(schema: "pipeline", name: "companies")] = table([key, modified, owner, column("company_name", notNull: true), column("phone"), column("website"), column("description")] + address)
        relations[TableName(schema: "crm", name: "accounts")] = table([key, modified, owner, column("account_name", notNull: true), column("phone"), column("website"), column("description")] + address)
        relations[TableName(schema: "crm", name: "all_accounts")] = table([key], kind: "v")
        let contactColumns = ["first_name", "email", "phone", "mobile", "title", "description", "mailing_street", "mailing_city",
                              "mailing_state", "mailing_zip", "mailing_country"].map { column($0) }
            + [key, modified, owner, column("last_name", notNull: true)]
        relations[TableName(schema: "pipeline", name: "contacts")] = table(contactColumns + [column("company_id", "bigint", category: "N")])
        relations[TableName(schema: "crm", name: "contacts")] = table(contactColumns + [column("account_id", "bigint", category: "N")])
        relations[TableName(schema: "crm", name: "all_contacts")] = table([key], kind: "v")
        return Catalog(schemas: ["pipeline", "crm"], relations: relations, declaredFields: [:])
    }

    static let minimal = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"}}"#

    func testTheReferenceShapeValidates() throws {
        let integration = try Validator.validate(try Configuration.parse(Self.minimal), against: Self.catalog())
        XCTAssertEqual(integration.modules.map(\.name), ["companies", "contacts"])
        XCTAssertEqual(integration.modules[1].fields.first { $0.name == "company_id:account_id" }?.kind, .lookup(module: "companies"))
    }

    func testValidationNamesEveryProblemAtOnce() throws {
        var catalog = Self.catalog()
        var contacts = catalog.relations[TableName(schema: "crm", name: "contacts")]!.columns
        contacts["region"] = Self.column("region", notNull: true)
        contacts["phone"] = Self.column("phone", "integer", category: "N")
        catalog.relations[TableName(schema: "crm", name: "contacts")] = Catalog.Relation(kind: "r", columns: contacts)
        catalog.relations[TableName(schema: "crm", name: "all_accounts")] = nil
        catalog.declaredFields[TableName(schema: "crm", name: "contacts")] = ["mobile": .init(mandatory: true, custom: true)]
        let json = #"""
            {"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},
             "modules":{"contacts":{"fields":[{"pipeline":null,"crm":"mobile"}]}}}
            """#
        XCTAssertThrowsError(try Validator.validate(try Configuration.parse(json), against: catalog)) { error in
            let message = (error as! TandemError).message
            for expected in [
                "view crm.all_accounts does not exist",
                "crm.contacts.region is mandatory (NOT NULL without a default) but not mapped",
                "crm.contacts.mobile is mandatory (a required custom field) but not mapped",
                "field phone <-> phone: incompatible types text and integer",
            ] {
                XCTAssertTrue(message.contains(expected), "«\(expected)» not in:\n\(message)")
            }
        }
    }

    // MARK: - SQL compilation

    func testCompiledSQLQuotesIdentifiersAndBindsValues() throws {
        let integration = try Validator.validate(try Configuration.parse(Self.minimal), against: Self.catalog())
        let compiler = ModuleCompiler(integration: integration, module: integration.modules[1])
        let chunk = compiler.initialChunk(.crm, after: "41'; DROP TABLE x; --", limit: 10).render()
        XCTAssertFalse(chunk.text.contains("DROP TABLE"), "values never reach the text")
        XCTAssertEqual(chunk.values, ["41'; DROP TABLE x; --", "41'; DROP TABLE x; --", "10"])
        XCTAssertTrue(chunk.text.contains(#"FROM "crm"."all_contacts" r"#), "the CRM side reads the view (R7)")
        let update = compiler.update(.crm)
        XCTAssertEqual(update.sql.render().values, [], "over the batch, an apply statement has no parameter")
        let rendered = update.oneRecord.render()
        XCTAssertEqual(rendered.values, [nil], "for one record, its only parameter is the record")
        XCTAssertTrue(rendered.text.contains(#"UPDATE "crm"."contacts" t SET "first_name" = CASE WHEN w.act_f0 = 'c'"#), rendered.text)
        XCTAssertEqual(SQL.quote(identifier: #"we"ird"#), #""we""ird""#)
        XCTAssertEqual(SQL.quote(literal: "it's"), "'it''s'")
    }

    func testAScanCountsWhatIsLeftWithTheSamePredicateAsItsChunks() throws {
        let integration = try Validator.validate(try Configuration.parse(Self.minimal), against: Self.catalog())
        let compiler = ModuleCompiler(integration: integration, module: integration.modules[1])
        let chunk = compiler.initialChunk(.crm, after: "41", limit: 10).render()
        let remaining = compiler.initialRemaining(.crm, after: "41").render()
        XCTAssertEqual(remaining.values, ["41", "41"])
        let scan = try XCTUnwrap(remaining.text.range(of: "FROM ")).lowerBound
        XCTAssertTrue(chunk.text.contains(remaining.text[scan...]), "a total the progress display shows counts what the chunks read:\n\(remaining.text)\n\(chunk.text)")
        XCTAssertTrue(compiler.linksRemaining(after: nil).render().text.contains("l.link_id > coalesce($1::bigint, 0)"))
    }

    func testMergeDecisionsCoverEveryCase() throws {
        let integration = try Validator.validate(try Configuration.parse(Self.minimal), against: Self.catalog())
        let text = ModuleCompiler(integration: integration, module: integration.modules[1]).buildWork.render().text
        // One-sided changes travel, two-sided differing changes go to the policy, equal values do nothing.
        // A side changed a field when its value's hash differs from the mirror's (0012).
        XCTAssertTrue(text.contains("WHEN (s.ph_f0 IS DISTINCT FROM s.bp_f0) AND NOT (s.ch_f0 IS DISTINCT FROM s.bc_f0) THEN 'c'"))
        XCTAssertTrue(text.contains("WHEN (s.ch_f0 IS DISTINCT FROM s.bc_f0) AND NOT (s.ph_f0 IS DISTINCT FROM s.bp_f0) THEN 'p'"))
        XCTAssertTrue(text.contains("CASE WHEN NOT s.mergeable OR NOT (s.ph_f0 IS DISTINCT FROM s.ch_f0) THEN NULL"))
        XCTAssertTrue(text.contains("WHEN 'pipeline_wins' THEN 'c' WHEN 'crm_wins' THEN 'p' WHEN 'skip' THEN 'x'"))
        // A text is hashed as it is, without building its jsonb; the jsonb of
        // a value is built only for a write or a conflict.
        XCTAssertTrue(text.contains(#"(hashtextextended((p."first_name")::text COLLATE "C", 0) # -9223372034707292160) AS ph_f0"#))
        XCTAssertTrue(text.contains("CASE WHEN d.act_f0 = 'c' OR d.conflict_f0 THEN to_jsonb(d.p_v0) END"))
        XCTAssertTrue(text.contains("CASE WHEN d.act_f0 = 'p' OR d.conflict_f0 THEN to_jsonb(d.c_v0) END"))
        // The mirrors of a pass that wrote one side read only that side's table.
        let compiler = ModuleCompiler(integration: integration, module: integration.modules[1])
        let crmOnly = compiler.mirrorWritten(only: .crm).render().text, both = compiler.mirrorWritten().render().text
        XCTAssertTrue(both.contains(#""pipeline"."contacts""#) && both.contains(#""crm"."contacts""#))
        XCTAssertFalse(crmOnly.contains(#""pipeline"."contacts""#), crmOnly)
        XCTAssertTrue(crmOnly.contains(#""crm"."contacts""#) && crmOnly.contains("w.ph_f0"), crmOnly)
        // Written and mirrored in one statement, the work table is read once:
        // the mirror takes what it needs from the rows the update returned.
        // Joined back to it, a small batch's cached plan scanned the work
        // table once per written row (0.4 s for 1,000 records).
        let combined = compiler.updateAndMirror(.crm).render().text
        XCTAssertEqual(combined.components(separatedBy: compiler.workTable).count - 1, 1, combined)
        XCTAssertTrue(combined.contains("RETURNING w.link_id, w.to_pipeline, w.to_crm, w.failed, w.ph_f0, w.ch_f0"), combined)
    }

    func testPasswordsNeverReachErrorText() {
        let error = PostgresError(kind: .connection, message: "invalid connection option password=s3cret and postgresql://bob:hunter2@host/db")
        XCTAssertFalse(error.description.contains("s3cret"))
        XCTAssertFalse(error.description.contains("hunter2"))
    }
}

/// Issue 8: validation is linear in the size of the configuration, and a
/// configuration over the documented size is refused. No database.
final class ConfigurationSizeTests: XCTestCase {
    /// The reference-shaped catalog with `extra` more text columns on both
    /// sides of companies and of contacts (x0, x1, ...).
    static func catalog(extra: Int) -> Catalog {
        var catalog = ConfigurationTests.catalog()
        let columns = (0..<extra).map { ConfigurationTests.column("x\($0)") }
        for (schema, table) in [("pipeline", "companies"), ("crm", "accounts"), ("pipeline", "contacts"), ("crm", "contacts")] {
            let name = TableName(schema: schema, name: table)
            var relation = catalog.relations[name]!.columns
            for column in columns { relation[column.name] = column }
            catalog.relations[name] = Catalog.Relation(kind: "r", columns: relation)
        }
        return catalog
    }

    /// A configuration with `entries` field entries, half on companies and
    /// half on contacts, each mapping x<i> to x<i>.
    static func configuration(entries: Int) -> String {
        func fields(_ range: Range<Int>) -> String {
            range.map { #"{"pipeline":"x\#($0)","crm":"x\#($0)"}"# }.joined(separator: ",")
        }
        let half = entries / 2
        return #"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"modules":{"#
            + #""companies":{"fields":[\#(fields(0..<half))]},"contacts":{"fields":[\#(fields(0..<(entries - half)))]}}}"#
    }

    /// CPU seconds of this thread: other work on a busy machine does not
    /// count, as it would in wall-clock time.
    static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Parses and validates; the best of three runs, in CPU seconds.
    func secondsToValidate(entries: Int) throws -> Double {
        let json = Self.configuration(entries: entries)
        let catalog = Self.catalog(extra: entries)
        var best = Double.infinity
        for _ in 0..<3 {
            let started = Self.threadCPUSeconds()
            let integration = try Validator.validate(try Configuration.parse(json), against: catalog)
            best = min(best, Self.threadCPUSeconds() - started)
            XCTAssertEqual(integration.modules.map(\.fields.count).reduce(0, +) >= entries, true)
        }
        return best
    }

    func testValidationTimeGrowsLinearlyWithTheNumberOfFieldEntries() throws {
        let small = try secondsToValidate(entries: 1_000)
        let large = try secondsToValidate(entries: 16_000)
        // 16 times the entries: a linear validator takes about 16 times as
        // long; a quadratic one about 256 times. The bound is generous for a
        // shared machine, and the small run's fixed costs only lower the ratio.
        print("validation: 1,000 entries \(small) s, 16,000 entries \(large) s, ratio \(large / max(small, 0.000_5))")
        XCTAssertLessThan(large / max(small, 0.000_5), 40,
                          "1,000 entries: \(small) s, 16,000 entries: \(large) s")
    }

    func testAConfigurationOverTheDocumentedSizeIsRefusedWithTheLimitNamed() throws {
        // 10 MB of JSON (the size that never finished in issue 8): refused before parsing.
        let padding = String(repeating: "x", count: 10 * 1024 * 1024)
        let started = Date()
        XCTAssertThrowsError(try Configuration.parse(#"{"integration":"\#(padding)"}"#)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .config)
            XCTAssertTrue(error.message.contains("at most 4194304 bytes (4 MiB) are accepted"), error.message)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "refused without parsing")

        // Just over the entries a module takes, well under 4 MiB: refused, and named.
        let json = ConfigurationSizeTests.configuration(entries: 2 * (Configuration.maximumEntriesPerModule + 1))
        XCTAssertLessThan(json.utf8.count, Configuration.maximumBytes)
        XCTAssertThrowsError(try Configuration.parse(json)) { error in
            let error = error as! TandemError
            XCTAssertEqual(error.code, .config)
            XCTAssertTrue(error.message.contains("configuration.modules.contacts.fields has 10001 entries (10001 fields, 0 value pairs); a module takes at most 10000"),
                          error.message)
        }
        // Value pairs count towards the same limit.
        let pairs = (0..<Configuration.maximumEntriesPerModule).map { #""s\#($0)":"Qualification""# }.joined(separator: ",")
        let stages = #"{"pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"},"tabs":{"contacts_companies":{},"pipelines_products":{}},"#
            + #""modules":{"deals":{"fields":[{"pipeline":"stage","crm":"stage","values":{"to_crm":{"Standard":{\#(pairs)}}}}]}}}"#
        XCTAssertThrowsError(try Configuration.parse(stages)) { error in
            XCTAssertTrue((error as! TandemError).message.contains("configuration.modules.deals.fields has 10001 entries (1 fields, 10000 value pairs)"),
                          (error as! TandemError).message)
        }
        // At the limit it is accepted, and the pairs are merged into the defaults.
        let fewer = (0..<(Configuration.maximumEntriesPerModule - 1)).map { #""s\#($0)":"Qualification""# }.joined(separator: ",")
        let accepted = try Configuration.parse(stages.replacingOccurrences(of: pairs, with: fewer))
        let stage = try XCTUnwrap(accepted.modules.first { $0.name == "deals" }?.fields.first { $0.pipeline == "stage" })
        XCTAssertEqual(stage.valueMap?.toCRM["Standard"]?["s9998"], "Qualification")
        XCTAssertEqual(stage.valueMap?.toCRM["Standard"]?["Qualification"], "Qualification", "the defaults are kept")
    }
}
