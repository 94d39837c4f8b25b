import Foundation
import TandemCore
@testable import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// A live pass is one call of the session's pass function (issue 9.1): one
/// round trip, plans kept by PL/pgSQL for the session, no ANALYZE.
final class PassFunctionTests: XCTestCase {
    func testALivePassIsOneRoundTripAndAnalyzesNothing() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        for edit in 0..<10 {
            try db.execute("UPDATE pipeline.contacts SET phone = \("+81 3 0000 00\(edit)") WHERE id = 1")
            let before = engine.connection.roundTrips
            let summary = try engine.pass()
            XCTAssertEqual(engine.connection.roundTrips - before, 1, "edit \(edit): one round trip")
            XCTAssertEqual(summary.updatedInCRM, 1, "edit \(edit)")
            XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "+81 3 0000 00\(edit)")
        }
        let before = engine.connection.roundTrips
        XCTAssertFalse(try engine.pass().didWork)
        XCTAssertEqual(engine.connection.roundTrips - before, 1, "a quiet pass is one round trip too")
        XCTAssertFalse(engine.connection.inTransaction, "a live pass leaves no transaction open")
        // The call is the statement the session prepared when it bound:
        // parsed once, not at every pass.
        let calls = try engine.connection.execute("""
            SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE name = \(PassFunction.livePassStatement)
            """).scalar
        XCTAssertGreaterThanOrEqual(Int64(calls ?? "") ?? 0, 11, "passes run by the prepared statement")
        // The work tables were analyzed empty when the engine bound; a pass
        // that analyzed them would have counted its rows.
        let analyzed = try engine.connection.execute("""
            SELECT string_agg(c.relname || '=' || c.reltuples, ',' ORDER BY c.relname) FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.reltuples > 0
               AND c.relname <> '_tandem_session'
            """).scalar
        XCTAssertNil(analyzed, "work tables analyzed by a small pass: \(analyzed ?? "")")
    }

    /// An initial sync analyzes each work table of the large merge for the
    /// first chunk of each kind (issue 9.2: no per-chunk ANALYZE): the
    /// chunks of one scan of one module hold the same kind of rows, and the
    /// planner counts their rows from the table's size. A chunk read with
    /// many live changes holds another kind of rows: it is analyzed. Job
    /// passes are run here without the truncation between passes, whose
    /// analysis of the empty tables would count too.
    func testAnInitialSyncAnalyzesItsWorkTablesOncePerKindOfChunkNotPerChunk() throws {
        let db = try TestDatabase(sample: 3000, overlap: 20)
        let engine = try db.engine()
        engine.largeBatchAbove = 0
        try engine.configure(#"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"initial_sync_chunk":1100,"tabs":{"contacts_companies":{}}}"#)
        try engine.activate("contacts_companies")
        XCTAssertEqual(try engine.pass().initialChunk, true, "the first chunk, through passOnce")
        let bound = try engine.requireBound()
        let tables = ["_tandem_candidates"] + bound.compilers.flatMap { [$0.pairsTable, $0.createTable(.pipeline), $0.createTable(.crm)] }
        func analyses() throws -> [String: Int] {
            let rows = try engine.connection.execute("""
                SELECT c.relname::text, pg_stat_get_analyze_count(c.oid)::text FROM pg_class c
                 WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = ANY (string_to_array(\(tables.joined(separator: ",")), ','))
                """).rows
            return Dictionary(uniqueKeysWithValues: rows.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) })
        }
        let before = try analyses()
        var events: [String] = []
        var chunks = 0
        var kinds = Set<String>()
        var recent: [String] = []
        var liveChecked = false
        var afterLive = false
        while true {
            let analyzedBefore = try analyses()["_tandem_candidates"] ?? 0
            // Once two chunks in a row were of one kind, the next chunk is
            // read with live edits of linked companies, more than an eighth of
            // a chunk.
            let live = !liveChecked && recent.count == 2 && recent[0] == recent[1]
            if live {
                try db.execute("""
                    UPDATE pipeline.companies SET phone = 'LIVE ' || id
                     WHERE id IN (SELECT pipeline_id::bigint FROM tandem.links WHERE module = 'companies' ORDER BY link_id LIMIT 300)
                    """)
            }
            let (status, _, chunk) = try engine.jobPass(bound, events: &events)
            guard let chunk, chunk.module != nil else { break }
            XCTAssertEqual(status, .worked)
            chunks += 1
            let kind = try XCTUnwrap(engine.chunkStatistics(chunk))
            kinds.insert(kind)
            let analyzed = (try analyses()["_tandem_candidates"] ?? 0) - analyzedBefore
            if kind == recent.last {
                // The statistics taken with the live edits describe no chunk.
                let expected = live || afterLive ? 1 : 0
                XCTAssertEqual(analyzed, expected, "chunk \(chunks), of the kind before it, \(live ? "with live edits" : afterLive ? "after live edits" : "")")
                if live { liveChecked = true }
            } else {
                XCTAssertEqual(analyzed, 1, "chunk \(chunks), of a new kind")
            }
            recent = Array((recent + [kind]).suffix(2))
            afterLive = live
        }
        XCTAssertTrue(liveChecked, "a chunk of the kind before it was read with live edits")
        XCTAssertGreaterThan(chunks, 2 * kinds.count, "chunks of each kind: \(chunks), kinds \(kinds.count)")
        let after = try analyses()
        for table in tables {
            let analyzed = (after[table] ?? 0) - (before[table] ?? 0)
            // The chunk with live changes, and the next one, which the
            // statistics taken then do not describe.
            XCTAssertLessThanOrEqual(analyzed, kinds.count + 2, "\(table) analyzed \(analyzed) times in \(chunks) chunks of \(kinds.count) kinds")
        }
        XCTAssertGreaterThan((after["_tandem_candidates"] ?? 0) - (before["_tandem_candidates"] ?? 0), 0)
        XCTAssertGreaterThan(try analyses().filter { $0.key != "_tandem_candidates" && $0.value > before[$0.key] ?? 0 }.count, 0,
                             "chunks over 1,000 records analyze the modules' tables too")
        XCTAssertEqual(try db.scalar("SELECT (job IS NULL AND initial_sync_completed_at IS NOT NULL)::text FROM tandem.tabs WHERE tab = 'contacts_companies'"),
                       "true", "the job completed")
        for (module, side, table) in [("companies", "pipeline", "pipeline.companies"), ("companies", "crm", "crm.accounts"),
                                      ("contacts", "pipeline", "pipeline.contacts"), ("contacts", "crm", "crm.contacts")] {
            XCTAssertEqual(try db.count("SELECT count(DISTINCT \(raw: side)_id) FROM tandem.links WHERE module = \(module)"),
                           try db.count("SELECT count(*) FROM \(raw: table)"), "every record of \(table) linked once")
        }
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.accounts WHERE phone LIKE 'LIVE %'"), 300, "the live edits reached the CRM")
    }

    /// A pass that writes commits without waiting for the disk (its writes,
    /// links, mirrors and cursor are one transaction: a crash loses all of it
    /// or none, and the change log still holds what it read); the session
    /// and every other transaction keep the server's setting.
    func testAPassThatWritesCommitsAsynchronouslyAndOnlyItsOwnTransaction() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let bound = try engine.requireBound()
        let connection = engine.connection
        let call = PassFunction.livePass(configVersion: bound.configVersion)
        // The session's own setting, whatever the server's (a throwaway test
        // cluster runs with it off).
        try connection.execute("SET synchronous_commit = on")
        try connection.execute("BEGIN")
        XCTAssertEqual(try connection.execute(call).scalar, "{0}", "quiet")
        XCTAssertEqual(try connection.execute("SHOW synchronous_commit").scalar, "on", "a quiet pass writes nothing and changes nothing")
        try connection.execute("ROLLBACK")
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0001' WHERE id = 1")
        try connection.execute("BEGIN")
        XCTAssertEqual(try connection.execute(call).scalar?.hasPrefix("{1,"), true, "worked")
        XCTAssertEqual(try connection.execute("SHOW synchronous_commit").scalar, "off", "until this transaction ends")
        try connection.execute("COMMIT")
        XCTAssertEqual(try connection.execute("SHOW synchronous_commit").scalar, "on")
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = (SELECT crm_id::bigint FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '1')"), "+81 3 0000 0001")
    }

    /// Writers append to the change log without a btree whose rightmost page
    /// every one of them writes (migration 0014), and a pass still reads
    /// only what is above its cursor: here a second integration, whose
    /// engine is stopped, holds back 300,000 changes its own cursor has not
    /// read, and a pass after one edit reads a small part of the log's pages
    /// to find the edit and to prune.
    func testALongLogHeldBackByAStoppedIntegrationIsNotReadByEveryPass() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        XCTAssertEqual(try db.scalar("""
            SELECT string_agg(am.amname, ',') FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
             WHERE i.indrelid = 'tandem.change_log'::regclass
            """), "brin", "the change log's one index is a block range index")
        try db.execute("""
            WITH stopped AS (
              INSERT INTO tandem.integrations (name, config, pipeline_setup_user_id, crm_setup_user_id)
              VALUES ('stopped', '{}', '1', '1') RETURNING integration_id)
            INSERT INTO tandem.sync_cursors (integration_id, snapshot) SELECT integration_id, pg_current_snapshot() FROM stopped
            """)
        // Changes of a table no tab watches, logged after the stopped cursor.
        try db.execute("""
            INSERT INTO tandem.change_log (table_oid, record_id, operation)
            SELECT 'tandem.integrations'::regclass, g::text, 'U' FROM generate_series(1, 300000) g
            """)
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0313' WHERE id = 1")
        XCTAssertEqual(try engine.pass().updatedInCRM, 1, "the engine's cursor moves past them")
        try db.execute("ANALYZE tandem.change_log")
        try db.execute("SELECT brin_summarize_new_values('tandem.change_log_xid_order_brin')")
        let pages = try db.count("SELECT pg_relation_size('tandem.change_log') / current_setting('block_size')::int")
        XCTAssertGreaterThan(pages, 1000)

        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0314' WHERE id = 1")
        let connection = engine.connection
        // The session's counts of earlier passes go to the server once it is
        // idle after this statement: the transaction's counts are its own.
        try connection.execute("SELECT pg_stat_force_next_flush()")
        try connection.execute("BEGIN")
        XCTAssertEqual(try connection.execute(PassFunction.livePass(configVersion: try engine.requireBound().configVersion)).scalar?
            .hasPrefix("{1,1,"), true, "one change read")
        let fetched = Int(try connection.execute("SELECT pg_stat_get_xact_blocks_fetched('tandem.change_log'::regclass)").scalar ?? "") ?? -1
        try connection.execute("COMMIT")
        XCTAssertGreaterThanOrEqual(fetched, 1)
        XCTAssertLessThan(fetched, pages / 4, "pages of the log read by the pass, of \(pages)")
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = (SELECT crm_id::bigint FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '1')"),
                       "+81 3 0000 0314")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.change_log"), 300_002, "what the stopped integration has not read is kept")
    }

    func testAPassRunsInReadCommittedWhateverTheDatabasesDefault() throws {
        let db = try TestDatabase()
        let name = try XCTUnwrap(try db.scalar("SELECT current_database()::text"))
        try db.execute("ALTER DATABASE \(identifier: name) SET default_transaction_isolation = 'serializable'")
        let engine = try db.syncedEngine()
        XCTAssertEqual(try engine.connection.execute("SHOW default_transaction_isolation").scalar, "read committed")
        try db.execute("UPDATE crm.contacts SET title = 'Head of Sales' WHERE id = (SELECT crm_id::bigint FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '2')")
        XCTAssertEqual(try engine.pass().updatedInPipeline, 1)
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = 2"), "Head of Sales")
    }

    func testTheGeneratedFunctionsMergeEveryModuleSmallBatchesByKeyLargeOnesAnalyzed() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        let bound = try engine.requireBound()
        let definitions = try XCTUnwrap(PassFunction(integrationID: bound.id, compiled: bound.compiled).definitions())
        XCTAssertEqual(definitions.count, 3)
        for module in bound.compiled.map(\.module.name) {
            XCTAssertTrue(definitions[0].contains("-- module \(module)\n"), module)
            XCTAssertTrue(definitions[1].contains("-- module \(module)\n"), module)
        }
        XCTAssertFalse(definitions[0].contains("ANALYZE"), "the small merge never analyzes")
        XCTAssertTrue(definitions[0].contains("SET enable_hashjoin = off"), "the small merge looks records up by key")
        XCTAssertTrue(definitions[1].contains("ANALYZE _tandem_candidates"))
        XCTAssertEqual(try engine.connection.execute("""
            SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE pronamespace = pg_my_temp_schema()
            """).scalar, "tandem_merge_large,tandem_merge_small,tandem_pass")
    }

    /// The large merge plans each statement that reads its candidates' key
    /// spans with their values (`EXECUTE … USING`), not by a setting of the
    /// whole function: the apps' triggers it fires, and the foreign-key
    /// checks of the copies it writes, keep the plans PostgreSQL caches for
    /// them (with `plan_cache_mode = force_custom_plan` on the function, each
    /// foreign-key check of a copy was planned again, which doubled their cost).
    func testTheLargeMergeLeavesTheTriggersItFiresThePlanCacheAsItIs() throws {
        let db = try TestDatabase()
        try db.execute("CREATE TABLE public.trigger_settings (setting text)")
        try db.execute("""
            CREATE FUNCTION public.note_plan_cache_mode() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
            BEGIN INSERT INTO public.trigger_settings VALUES (current_setting('plan_cache_mode')); RETURN NEW; END $$
            """)
        try db.execute("""
            CREATE TRIGGER note_plan_cache_mode BEFORE INSERT ON crm.contacts
               FOR EACH ROW EXECUTE FUNCTION public.note_plan_cache_mode()
            """)
        let engine = try db.engine()
        engine.largeBatchAbove = 0
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM public.trigger_settings"), 0, "the initial sync copied contacts into the CRM app")
        XCTAssertEqual(try db.scalar("SELECT string_agg(DISTINCT setting, ',') FROM public.trigger_settings"), "auto")
        let bound = try engine.requireBound()
        let large = try XCTUnwrap(PassFunction(integrationID: bound.id, compiled: bound.compiled).definitions())[1]
        XCTAssertFalse(large.contains("plan_cache_mode"))
        XCTAssertTrue(large.contains("USING _span_lo_pipeline, _span_hi_pipeline, _span_lo_crm, _span_hi_crm;"),
                      "the statements with spans are planned with their values")
    }

    /// The large merge (batches over 5,000 records; here every batch) syncs
    /// the same, and defers a record a user holds while the rest commits.
    func testTheLargeMergeSyncsAndDefersWhatAUserHolds() throws {
        let db = try TestDatabase()
        let engine = try db.engine()
        engine.largeBatchAbove = 0
        try engine.configure(TestDatabase.defaultConfig)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts'"), 0)
        let held = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        let free = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
        let user = try Connection(conninfo: db.conninfo)
        defer { user.close() }
        try user.execute("BEGIN")
        try user.execute("UPDATE pipeline.contacts SET title = 'Held by a user' WHERE id = 1")
        try db.execute("UPDATE crm.contacts SET phone = '+1 555 0201' WHERE id = \(held)::bigint")
        try db.execute("UPDATE crm.contacts SET phone = '+1 555 0202' WHERE id = \(free)::bigint")
        let summary = try engine.pass()
        XCTAssertEqual(summary.deferred, 1)
        XCTAssertEqual(summary.updatedInPipeline, 1)
        XCTAssertEqual(try db.scalar("SELECT phone FROM pipeline.contacts WHERE id = 2"), "+1 555 0202")
        try user.execute("COMMIT")
        try engine.passUntilQuiet()
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(held)::bigint"), "Held by a user")
        XCTAssertEqual(try db.scalar("SELECT phone FROM pipeline.contacts WHERE id = 1"), "+1 555 0201")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.deferred_records"), 0)
        // Nothing held: the large merge skips the deferral and writes.
        try db.execute("UPDATE pipeline.contacts SET mobile = '+81 90 1111 2222' WHERE id = 2")
        XCTAssertEqual(try engine.pass().deferred, 0)
        XCTAssertEqual(try db.scalar("SELECT mobile FROM crm.contacts WHERE id = \(free)::bigint"), "+81 90 1111 2222")
    }
}
