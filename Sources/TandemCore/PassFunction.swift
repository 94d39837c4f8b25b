import TandemPostgres

/// The whole sync pass of one bound integration as one PL/pgSQL function,
/// `pg_temp.tandem_pass` (with the two merges it calls, for small and large
/// batches), created in the engine's own session when it binds
/// (and replaced when it binds again): a live pass is one call, one round
/// trip, and PL/pgSQL keeps the plan of every statement for the session, so
/// a pass plans nothing. The statements are the module compilers'; this is
/// the one place that decides their order and which of them run (B2–B6,
/// B11, R11).
///
/// `tandem_pass(config_version, prepared, chunk, kind, statistics)` returns bigint[]:
/// a status, then the counts of `PassSummary` (see `Result`).
///  - `prepared` false: a live pass. The function empties the work tables
///    and reads the change log; when a tab runs a background job it returns
///    `.job` at once, and the engine runs the job's pass instead.
///  - `prepared` true: a job's pass. The engine emptied the work tables,
///    queued a chunk of `chunk` records (NULL: no chunk) and runs the
///    function in its own transaction.
///  - `statistics`: what kind of chunk it queued (`Engine.chunkStatistics`);
///    NULL for a live pass. The large merge analyzes a work table only when
///    its statistics were not taken from a chunk of the same kind
///    (`analyze(_:site:rows:)`).
public struct PassFunction: Sendable {
    /// What the call returned in its first element.
    public enum Status: Int64, Sendable {
        /// Nothing to do; nothing was written.
        case quiet = 0
        case worked = 1
        /// A tab runs a background job: run the job's pass.
        case job = 2
        /// The integration's configuration changed since it was bound.
        case configurationChanged = 3
        case removed = 4
        case noCursor = 5
    }

    /// The positions of the counts after the status (1-based, as in SQL).
    public enum Count: Int, CaseIterable, Sendable {
        case changesRead = 2, matched, createdInPipeline, createdInCRM, updatedInPipeline, updatedInCRM,
             conflicts, errors, waiting, deferred
    }

    /// Work tables every pass empties first (the modules' own are emptied
    /// by each module's part).
    public static let passTables = ["_tandem_candidates", "_tandem_new_links", "_tandem_failed", "_tandem_locked", "_tandem_policies"]

    /// Every work table of a pass over these modules.
    public static func workTables(_ compilers: [ModuleCompiler]) -> [String] {
        passTables + compilers.flatMap(\.temporaryTableNames)
    }

    /// A batch of more records goes through the large merge, which analyzes
    /// the work tables and may hash-join them with the apps' tables; up to
    /// this many, key lookups into tables of any size cost less than a
    /// replan, and the small merge's cached plans serve.
    public static let analyzeAbove: Int64 = 5000
    /// Within a large batch, a module's own work table is analyzed above this
    /// many rows.
    static let analyzeModuleAbove: Int64 = 1000
    /// A job's chunk keeps its work tables' statistics when the live changes
    /// read with it are fewer than 1 in this many of its records: they
    /// cannot change what the statistics say of its rows by more than that.
    static let liveShareKeepingStatistics: Int64 = 8

    public let integrationID: Int64
    public let compiled: [CompiledModule]
    /// Batches of more records go through the large merge.
    public let largeAbove: Int64

    public init(integrationID: Int64, compiled: [CompiledModule], largeAbove: Int64 = PassFunction.analyzeAbove) {
        self.integrationID = integrationID
        self.compiled = compiled
        self.largeAbove = largeAbove
    }

    /// The name the engine's session prepares `livePass` under when it binds.
    public static let livePassStatement = "tandem_live_pass"

    /// The call of a live pass, with the version the engine is bound to.
    public static func livePass(configVersion: Int64) -> SQL {
        "SELECT pg_temp.tandem_pass(\(configVersion)::bigint, false, NULL, 'incremental', NULL)"
    }

    /// The call of a job's pass, inside the engine's transaction;
    /// `statistics`: the kind of its chunk (nil: no chunk).
    public static func jobPass(configVersion: Int64, chunk: Int64?, kind: String, statistics: String?) -> SQL {
        "SELECT pg_temp.tandem_pass(\(configVersion)::bigint, true, \(chunk.map(String.init))::bigint, \(kind), \(statistics)::text)"
    }

    /// The `CREATE OR REPLACE FUNCTION` statements of `pg_temp.tandem_pass`
    /// and of the two merges it calls, or nil when a compiled statement
    /// carries a value (every value a pass uses comes from its session
    /// tables; a statement with one cannot be kept).
    ///
    /// The merge of a batch is planned twice, once for each size: the small
    /// merge (up to `analyzeAbove` records) is planned with hash and merge
    /// joins off, so that its cached plans look records up by key however
    /// the work tables have grown; the large merge analyzes the work tables
    /// (for a job, once for each kind of chunk: `analyze(_:site:rows:)`) and
    /// lets the planner choose.
    public func definitions() -> [String]? {
        guard let small = try? merge(large: false), let large = try? merge(large: true) else { return nil }
        return [small, large, function(
            "tandem_pass(_config_version bigint, _prepared boolean, _chunk bigint, _kind text, _statistics text)", settings: "",
            declarations: """
              _started timestamptz := clock_timestamp();
              _current pg_snapshot;
              _version bigint;
              _removed boolean;
              _job boolean;
              _restored boolean;
              _has_cursor boolean;
              _moves boolean;
              _syncing text[];
              _merged bigint[];
              _failing boolean;
              _deferring boolean;
              _waiting_any boolean;
              _n bigint;
              _read bigint := 0;
              _errors bigint := 0;
            """,
            body: prologue + "\n" + """
            IF _read + coalesce(_chunk, 0) > \(largeAbove) THEN
              -- A chunk read with many live changes is not the kind of rows
              -- its statistics describe: its work tables are analyzed.
              _merged := pg_temp.tandem_merge_large(_syncing, _waiting_any,
                CASE WHEN _read * \(Self.liveShareKeepingStatistics) < coalesce(_chunk, 0) THEN _statistics END);
            ELSE
              _merged := pg_temp.tandem_merge_small(_syncing, _waiting_any);
            END IF;
            _read := _read + _merged[1];
            """ + "\n" + epilogue)]
    }

    /// The merge of every module, for a small or a large batch. Returns the
    /// records it read besides the candidates it was given (waiting records
    /// whose parents it linked), then the counts of `Count` from `matched`.
    func merge(large: Bool) throws -> String {
        var body = Body()
        if large { body.line(Self.analyze("_tandem_candidates", site: "candidates")) }
        // Every module's candidates counted in one statement.
        if !compiled.isEmpty {
            let counts = compiled.flatMap { module -> [String] in
                let name = SQL.quote(literal: module.module.name)
                return ["count(*) FILTER (WHERE module = \(name))", "count(*) FILTER (WHERE module = \(name) AND matched)"]
            }
            let into = compiled.indices.flatMap { ["_candidates_\($0)", "_scan_matched_\($0)"] }
            body.line("SELECT \(counts.joined(separator: ", "))\n  INTO \(into.joined(separator: ", ")) FROM _tandem_candidates;")
        }
        for (index, module) in compiled.enumerated() { body.line(try moduleBody(module, index: index, large: large)) }
        body.line("RETURN ARRAY[_read, _matched, _created_pipeline, _created_crm, _updated_pipeline, _updated_crm, _conflicts, _fallbacks, _waiting, _deferred];")
        return function(
            "tandem_merge_\(large ? "large(_syncing text[], _waiting_any boolean, _statistics text)" : "small(_syncing text[], _waiting_any boolean)")",
            // A large batch sorts and hashes up to a chunk of records (50,000
            // in an initial sync) at a time: with the default 4 MB the sorts of
            // the match spilled to disk. Each statement with a key span is
            // planned with the span's values (`spanned`).
            // Its work tables are analyzed from a sample of 3,000 rows: the
            // plans need their sizes and that the keys are distinct, which
            // a sample of 30,000 tells no better.
            settings: large ? " SET work_mem = '32MB' SET default_statistics_target = 10"
                : " SET enable_hashjoin = off SET enable_mergejoin = off",
            declarations: """
              _linked_modules text[] := '{}';
              _span_lo_pipeline text;
              _span_hi_pipeline text;
              _span_lo_crm text;
              _span_hi_crm text;
              _n bigint;
              _candidates bigint;
              \(compiled.indices.map { "_candidates_\($0) bigint; _scan_matched_\($0) bigint;" }.joined(separator: " "))
              _fallbacks bigint := 0;
              _linked bigint;
              _missing bigint;
              _new_links bigint;
              _fresh bigint;
              _failed bigint;
              _state text;
              _read bigint := 0;
              _matched bigint := 0;
              _created_pipeline bigint := 0;
              _created_crm bigint := 0;
              _updated_pipeline bigint := 0;
              _updated_crm bigint := 0;
              _conflicts bigint := 0;
              _waiting bigint := 0;
              _deferred bigint := 0;
              _w_rows bigint; _w_matched bigint; _w_to_pipeline bigint; _w_to_crm bigint; _w_conflicts bigint;
              _w_unwritten bigint; _w_deleted bigint; _w_wait_pipeline bigint; _w_wait_crm bigint;
            """,
            body: body.text)
    }

    /// A PL/pgSQL function of the session's temporary schema. The session's
    /// temporary tables and Tandem's schema are named in full or found in
    /// pg_temp; nothing else is looked up by name.
    func function(_ signature: String, settings: String, declarations: String, body: String) -> String {
        var tag = "$tandem_pass$"
        var counter = 0
        while body.contains(tag) {
            counter += 1
            tag = "$tandem_pass_\(counter)$"
        }
        return """
            CREATE OR REPLACE FUNCTION pg_temp.\(signature)
            RETURNS bigint[] LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp SET join_collapse_limit = 1 SET lock_timeout = '2s'\(settings)
            AS \(tag)
            #variable_conflict use_column
            DECLARE
            \(declarations)
            BEGIN
            \(body)
            END
            \(tag)
            """
    }

    /// A statement of the large merge that analyzes a work table (when
    /// `rows`, a variable, counts more than `analyzeModuleAbove`), unless
    /// this point of the merge (`site`) analyzed it for a chunk of the same
    /// kind (`_statistics`, `Engine.chunkStatistics`) in this session: the
    /// chunks of one scan hold rows of the same modules, side and flags,
    /// which is what the statistics tell the planner, and the planner counts
    /// the rows from the table's size whatever the statistics say. Emptying
    /// and analyzing the tables empty between passes keeps what they say of
    /// the columns. A session setting remembers the kind: it is the
    /// session's alone, and goes back with the transaction as the
    /// statistics do. A live batch (`_statistics` NULL) is analyzed always.
    static func analyze(_ table: String, site: String, rows: String? = nil) -> String {
        let setting = SQL.quote(literal: "tandem_statistics.\(site)")
        let enough = rows.map { "\($0) > \(analyzeModuleAbove) AND " } ?? ""
        return """
            IF \(enough)(_statistics IS NULL OR pg_catalog.current_setting(\(setting), true) IS DISTINCT FROM _statistics) THEN
              ANALYZE \(table);
              PERFORM pg_catalog.set_config(\(setting), coalesce(_statistics, ''), false);
            END IF;
            """
    }

    struct Body {
        var text = ""
        mutating func line(_ line: String) { text += line + "\n" }
    }

    struct ValueInStatement: Error {}

    /// A compiled statement as PL/pgSQL: its text, with the one-record
    /// parameter of an apply statement as NULL (the whole batch).
    static func statement(_ sql: SQL) throws -> String {
        guard let text = sql.renderWithoutValues() else { throw ValueInStatement() }
        if text.hasPrefix("SELECT") { return "PERFORM" + text.dropFirst("SELECT".count) + ";" }
        return text + ";"
    }

    /// A compiled query, to read its row INTO variables.
    static func query(_ sql: SQL) throws -> String {
        guard let text = sql.renderWithoutValues() else { throw ValueInStatement() }
        return text
    }

    /// A statement of the large merge that reads the key span of its
    /// candidates (`ModuleCompiler.withinSpan`), run by `EXECUTE … USING` the
    /// span variables, which plans it with their values each time: a chunk
    /// of an initial sync is a range of keys, read by the key's index, and a
    /// span over most of a table is read sequentially. `into`: the variables
    /// its row goes into. (A function-level `plan_cache_mode =
    /// force_custom_plan` did the same, and also planned again every query
    /// of every trigger the statement fired: the foreign-key checks of
    /// 35,000 copied contacts took 340 instead of 170 ms, `auto_explain`
    /// timing both.)
    static func spanned(_ sql: SQL, into: String? = nil) throws -> String {
        let text = try query(sql)
        return "EXECUTE \(SQL.quote(literal: text))\(into.map { " INTO \($0)" } ?? "") USING \(ModuleCompiler.spanArguments.joined(separator: ", "));"
    }

    /// A compiled statement as PL/pgSQL, `spanned` when it reads a key span;
    /// `into`: the variables its row goes into.
    static func statement(_ sql: SQL, readsSpan: Bool, into: String? = nil) throws -> String {
        if readsSpan { return try spanned(sql, into: into) }
        guard let into else { return try statement(sql) }
        return "\(try query(sql)) INTO \(into);"
    }

    var id: String { String(integrationID) }

    /// Checks, the read of the change log and of due retries.
    var prologue: String {
        let clear = "\(ModuleCompiler.emptying(Self.passTables));"
        return """
            IF NOT _prepared THEN
              \(clear)
            END IF;
            SELECT pg_current_snapshot(), i.config_version, i.removed_at IS NOT NULL,
                   pg_snapshot_xmax(c.snapshot) > pg_snapshot_xmax(pg_current_snapshot()), c.integration_id IS NOT NULL
              INTO _current, _version, _removed, _restored, _has_cursor
              FROM tandem.integrations i LEFT JOIN tandem.sync_cursors c ON c.integration_id = i.integration_id
             WHERE i.integration_id = \(id);
            IF NOT FOUND OR _removed THEN RETURN ARRAY[\(Status.removed.rawValue)]; END IF;
            IF _version IS DISTINCT FROM _config_version THEN RETURN ARRAY[\(Status.configurationChanged.rawValue)]; END IF;
            IF NOT _has_cursor THEN RETURN ARRAY[\(Status.noCursor.rawValue)]; END IF;
            SELECT coalesce(array_agg(t.tab) FILTER (WHERE t.state IN ('initial_sync', 'active')), '{}'),
                   NOT _prepared AND coalesce(bool_or(t.job IS NOT NULL AND t.state IN ('initial_sync', 'active')), false)
              INTO _syncing, _job
              FROM tandem.tabs t WHERE t.integration_id = \(id);
            IF _job THEN RETURN ARRAY[\(Status.job.rawValue)]; END IF;
            -- A cursor ahead of every transaction id of this cluster: the
            -- database was restored from a dump of another cluster, whose ids
            -- it carries. Every change in the log is read again by the
            -- integrations whose cursors came with the dump (a change already
            -- synced merges to nothing); changes that a cursor made in this
            -- cluster still has to read keep their ids.
            IF _restored THEN
              UPDATE tandem.change_log cl SET xid = '3', xid_order = 3
               WHERE NOT EXISTS (SELECT 1 FROM tandem.sync_cursors sc
                                  WHERE pg_snapshot_xmax(sc.snapshot) <= pg_snapshot_xmax(pg_current_snapshot())
                                    AND cl.xid >= sc.position AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot));
              UPDATE tandem.sync_cursors SET snapshot = '3:3:', moved_at = now()
               WHERE pg_snapshot_xmax(snapshot) > pg_snapshot_xmax(pg_current_snapshot());
            END IF;
            -- The cursor is the snapshot of the last pass that read changes:
            -- read what is visible now and was not then. A transaction that
            -- was running then is read by the first pass after it commits (B1).
            -- The tables the syncing tabs watch are a handful of rows, read
            -- once (the plan, made for a change log analyzed empty, looked
            -- them up again for every change). A record changed twice is
            -- queued once (the conflict). The range on xid_order is the one
            -- the log's block range index answers (migration 0014).
            WITH watched AS MATERIALIZED (
              SELECT mp.module, x.side, x.table_oid
                FROM tandem.module_pairs mp
                JOIN tandem.tabs t ON t.integration_id = mp.integration_id AND t.tab = mp.tab AND t.state IN ('initial_sync', 'active')
               CROSS JOIN LATERAL (VALUES ('pipeline', mp.pipeline_table::oid), ('crm', mp.crm_table::oid)) x(side, table_oid)
               WHERE mp.integration_id = \(id))
            INSERT INTO _tandem_candidates (module, side, record_id)
            SELECT w.module, w.side, cl.record_id
              FROM tandem.sync_cursors sc
              JOIN tandem.change_log cl ON cl.xid_order >= sc.position::text::bigint
                   AND cl.xid >= sc.position AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot)
              JOIN watched w ON w.table_oid = cl.table_oid
             WHERE sc.integration_id = \(id)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS _read = ROW_COUNT;
            _moves := _read > 0 OR _restored;
            -- Failed and deferred records due for a retry are candidates. Which
            -- of the three tables of records held back have any of this
            -- integration's is noted too: the statements that clear them run
            -- only then (one statement each fewer in most passes).
            WITH due AS (
              INSERT INTO _tandem_candidates (module, side, record_id)
              SELECT f.module, f.side, f.record_id FROM tandem.record_failures f
               WHERE f.integration_id = \(id) AND f.resolved_at IS NULL AND f.retry_at <= now()
              UNION
              SELECT d.module, d.side, d.record_id FROM tandem.deferred_records d
               WHERE d.integration_id = \(id) AND d.retry_at <= now()
              ON CONFLICT DO NOTHING
              RETURNING 1)
            SELECT (SELECT count(*) FROM due),
                   EXISTS (SELECT 1 FROM tandem.record_failures f WHERE f.integration_id = \(id) AND f.resolved_at IS NULL),
                   EXISTS (SELECT 1 FROM tandem.deferred_records d WHERE d.integration_id = \(id)),
                   EXISTS (SELECT 1 FROM tandem.waiting_records w WHERE w.integration_id = \(id))
              INTO _n, _failing, _deferring, _waiting_any;
            _read := _read + _n;
            -- A quiet pass writes nothing (B4): the old cursor is still exact.
            IF _read = 0 AND _chunk IS NULL AND NOT _restored THEN RETURN ARRAY[\(Status.quiet.rawValue)]; END IF;
            -- From here on the pass writes the apps' tables. Its transaction id
            -- in tandem._applying tells the capture triggers to skip these
            -- writes (B4); only Tandem's role can write that table. The row is
            -- deleted before the pass returns: no other session ever sees it.
            INSERT INTO tandem._applying (xid) VALUES (pg_current_xact_id());
            -- The pass commits without waiting for its WAL to reach the disk.
            -- Its writes, links, mirrors and cursor are one transaction (B5): a
            -- server crash keeps all of it or none, and what it loses is read
            -- again from the change log, whose entries commit with the apps'
            -- own transactions. A later commit that waits for the disk (any
            -- app's) flushes the pass's WAL with its own.
            PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
            """
    }

    /// One module: skipped unless its tab syncs and it has candidates.
    func moduleBody(_ module: CompiledModule, index: Int, large: Bool) throws -> String {
        let compiler = module.compiler
        let name = SQL.quote(literal: compiler.module.name)
        let earlier = compiled.prefix { $0.module.name != compiler.module.name }.map(\.module.name)
        let parents = compiler.module.fields.reduce(into: Set<String>()) { $0.formUnion($1.parentModules) }
            .filter { earlier.contains($0) }.sorted()
        var out = Body()
        out.line("-- module \(compiler.module.name.replacingOccurrences(of: "\n", with: " "))")
        out.line("IF \(SQL.quote(literal: compiler.module.tab.rawValue)) = ANY (_syncing) THEN")
        out.line("_candidates := _candidates_\(index);")
        if !parents.isEmpty {
            // Waiting records whose parent was linked in this pass come back.
            let list = parents.map { SQL.quote(literal: $0) }.joined(separator: ", ")
            out.line("IF _linked_modules && ARRAY[\(list)]::text[] THEN")
            out.line(try Self.statement(module.retryWaiting))
            out.line("GET DIAGNOSTICS _n = ROW_COUNT; _candidates := _candidates + _n; _read := _read + _n;")
            out.line("END IF;")
        }
        out.line("IF _candidates > 0 THEN")
        out.line("_new_links := 0; _fresh := 0;")
        out.line(try Self.statement(module.clearWork))
        out.line("IF _waiting_any THEN \(try Self.statement(module.forgetWaiting)) END IF;")
        out.line(try Self.statement(module.linkedPairs))
        out.line("GET DIAGNOSTICS _linked = ROW_COUNT;")
        // Pairs an initial sync matched set-wise before this pass (`matchAll`).
        out.line("IF _scan_matched_\(index) > 0 THEN")
        out.line(try Self.statement(module.matchedByScan))
        out.line("GET DIAGNOSTICS _n = ROW_COUNT; _matched := _matched + _n; _new_links := _new_links + _n;")
        out.line("END IF;")
        // The match and the copies ask the pairs which candidates are linked
        // (`unlinkedCandidate`): planned on the pairs as they are now.
        if large { out.line(Self.analyze(compiler.pairsTable, site: "m\(index)_linked", rows: "_linked")) }
        // A large batch's match, preparation and creation of copies of a
        // side whose key has a span read it (`ModuleCompiler.withinSpan`).
        let readsSpan = { (side: Side) in large && module.span[side] != nil }
        // Some candidates have no link yet: match them (B3), else copy them.
        let matches = try Side.allCases.compactMap { side -> String? in
            guard let match = (large ? module.matchLarge : module.match)[side] else { return nil }
            return try Self.statement(match, readsSpan: readsSpan(side)) + "\nGET DIAGNOSTICS _n = ROW_COUNT; _matched := _matched + _n; _new_links := _new_links + _n;"
        }
        // The spans of the candidates' keys, for the match, the preparation
        // and the creation of copies (`ModuleCompiler.withinSpan`).
        let spans = try Side.allCases.compactMap { side -> String? in
            guard large, let span = module.span[side] else { return nil }
            let (lo, hi) = ModuleCompiler.spanVariables(side)
            return try Self.query(span) + " INTO \(lo), \(hi);"
        }
        if !spans.isEmpty { out.line("IF _candidates > _linked THEN\n\(spans.joined(separator: "\n"))\nEND IF;") }
        if !matches.isEmpty {
            out.line("IF _candidates > _linked THEN")
            for match in matches { out.line(match) }
            out.line("END IF;")
        }
        out.line("IF _candidates > _linked THEN")
        for side in Side.allCases {
            let created = side == .pipeline ? "_created_crm" : "_created_pipeline"
            let prepare = (large ? module.prepareCreateLarge : module.prepareCreate)[side]
            out.line(try Self.statement(prepare, readsSpan: readsSpan(side)))
            out.line("GET DIAGNOSTICS _n = ROW_COUNT;")
            out.line("IF _n > 0 THEN")
            if large { out.line(Self.analyze(compiler.createTable(side), site: "m\(index)_create_\(side.rawValue)", rows: "_n")) }
            // Created, linked and mirrored in one statement; if a record's
            // data fails it, created record by record, then linked, and
            // mirrored with the fresh pairs after both sides.
            let fused = (large ? module.createLinkAndMirrorLarge : module.createLinkAndMirror)[side]
            out.line(try apply(large ? module.createLarge[side] : module.create[side], compiler: compiler,
                               fast: try Self.statement(fused, readsSpan: readsSpan(side), into: "_n"), fallback: """
                                   \(try Self.statement(module.linkCreated[side]))
                                   GET DIAGNOSTICS _n = ROW_COUNT; _fresh := _fresh + _n;
                                   """))
            out.line("\(created) := \(created) + _n; _new_links := _new_links + _n;")
            if let waiting = module.rememberWaitingCreates[side] {
                out.line(try Self.statement(waiting))
                out.line("GET DIAGNOSTICS _n = ROW_COUNT; _waiting := _waiting + _n;")
            }
            out.line("END IF;")
        }
        out.line("END IF;")
        if large { out.line(Self.analyze(compiler.pairsTable, site: "m\(index)_pairs", rows: "_candidates")) }
        // Copies made by this pass need no merge: their mirrors come
        // straight from the two records (made with them, or here for copies
        // made record by record); the work table holds the rest.
        out.line("IF _fresh > 0 THEN \(try Self.statement(module.mirrorCreated)) END IF;")
        let buildWork = """
            \(try Self.query(module.buildWork))
              INTO _w_rows, _w_matched, _w_to_pipeline, _w_to_crm, _w_conflicts, _w_unwritten, _w_deleted, _w_wait_pipeline, _w_wait_crm;
            """
        out.line(buildWork)
        // The records the merge will write are locked at the version it
        // read. If one is held by a user, or changed since, both records of
        // every pair are locked, those a user holds wait for a later pass
        // (B11), and the rest are merged again from rows the pass holds.
        out.line("IF _w_to_pipeline + _w_to_crm > 0 THEN")
        out.line(try Self.query(module.lockTargets) + " INTO _missing;")
        out.line("IF _missing > 0 THEN")
        out.line(try Self.query(module.lockRows) + " INTO _missing;")
        out.line("IF _missing > 0 THEN")
        for side in Side.allCases { out.line(try Self.statement(module.recordLocked[side])) }
        out.line(try Self.statement(module.deferContended))
        out.line("GET DIAGNOSTICS _n = ROW_COUNT; _deferred := _deferred + _n;")
        out.line("END IF;")
        out.line("DELETE FROM \(compiler.workTable);")
        out.line(buildWork)
        out.line("END IF;")
        out.line("END IF;")
        out.line("IF _w_rows > 0 THEN")
        out.line("_failed := 0;")
        if let conflicts = module.recordConflicts { out.line("IF _w_conflicts > 0 THEN \(try Self.statement(conflicts)) END IF;") }
        // A pass that writes one side writes and mirrors it in one
        // statement; if a record's data fails it, the records are written
        // one by one and mirrored after, as when both sides are written.
        for (side, alone) in [(Side.crm, "_w_to_crm > 0 AND _w_to_pipeline = 0"), (.pipeline, "_w_to_pipeline > 0 AND _w_to_crm = 0")] {
            out.line("\(side == .crm ? "IF" : "ELSIF") \(alone) THEN")
            out.line(try apply(module.update[side], compiler: compiler, fast: "\(try Self.query(module.updateAndMirror[side])) INTO _n;",
                               fallback: try Self.statement(module.mirrorWrittenOnly[side])))
        }
        out.line("ELSIF _w_to_crm + _w_to_pipeline > 0 THEN")
        out.line(try apply(module.update.crm, compiler: compiler))
        out.line(try apply(module.update.pipeline, compiler: compiler))
        out.line(try Self.statement(module.mirrorWritten))
        out.line("END IF;")
        out.line("IF _w_unwritten > 0 THEN \(try Self.statement(module.mirrorUnwritten)) END IF;")
        out.line("IF _w_deleted > 0 THEN \(try Self.statement(module.markDeleted)) END IF;")
        for (side, count) in [(Side.pipeline, "_w_wait_pipeline"), (.crm, "_w_wait_crm")] {
            if let waiting = module.rememberWaitingPairs[side] { out.line("IF \(count) > 0 THEN \(try Self.statement(waiting)) END IF;") }
        }
        out.line("""
            IF _failed > 0 THEN
              SELECT _updated_pipeline + count(*) FILTER (WHERE to_pipeline AND NOT failed),
                     _updated_crm + count(*) FILTER (WHERE to_crm AND NOT failed)
                INTO _updated_pipeline, _updated_crm FROM \(compiler.workTable);
            ELSE
              _updated_pipeline := _updated_pipeline + _w_to_pipeline;
              _updated_crm := _updated_crm + _w_to_crm;
            END IF;
            _conflicts := _conflicts + _w_conflicts;
            _waiting := _waiting + _w_wait_pipeline + _w_wait_crm;
            """)
        out.line("END IF;")
        out.line("IF _new_links > 0 THEN _linked_modules := _linked_modules || \(name)::text; END IF;")
        out.line("END IF;")
        out.line("END IF;")
        return out.text
    }

    /// An apply statement, set-based over the batch; if the data of a record
    /// makes it fail, it runs again record by record on the server and the
    /// failures become record errors (B6). Failures that are not a record's
    /// fault (the statement, privileges, the server, a lock or a conflict
    /// between transactions) end the pass.
    /// `fast`: what runs over the batch instead of the statement (which
    /// does more in one go); `fallback`: what follows the record-by-record
    /// run to do the rest.
    func apply(_ statement: ApplyStatement, compiler: ModuleCompiler, fast: String? = nil, fallback: String = "") throws -> String {
        guard let text = statement.sql.renderWithoutValues() else { throw ValueInStatement() }
        let one = statement.oneRecord.render().text
        let name = SQL.quote(literal: compiler.module.name)
        let side = SQL.quote(literal: statement.source.rawValue)
        let operation = SQL.quote(literal: statement.operation)
        let recordID = statement.workKey == "link_id"
            ? "(SELECT \(statement.source == .pipeline ? "p_id" : "c_id") FROM \(statement.workTable) w WHERE w.link_id = e.failed_key::bigint)"
            : "e.failed_key"
        let workRecord = statement.workKey == "link_id" ? (statement.source == .pipeline ? "w.p_id" : "w.c_id") : "w.src_id"
        return """
            BEGIN
              \(fast ?? text + ";")
            EXCEPTION WHEN OTHERS THEN
              GET STACKED DIAGNOSTICS _state = RETURNED_SQLSTATE;
              IF left(_state, 2) IN ('42', '40', '08', '53', '55', '57', 'XX') THEN RAISE; END IF;
              _fallbacks := _fallbacks + 1;
              WITH failed AS (
                INSERT INTO _tandem_failed (module, side, record_id, operation, sqlstate, message)
                SELECT \(name), \(side), \(recordID), \(operation), e.failed_sqlstate, e.failed_message
                  FROM tandem._apply_each(\(SQL.quote(literal: one)), \(SQL.quote(literal: statement.workTable))::regclass, \(SQL.quote(literal: statement.workKey))) e
                RETURNING record_id)
              SELECT _failed + count(*) INTO _failed FROM failed;
              UPDATE \(statement.workTable) w SET failed = true
                FROM _tandem_failed f
               WHERE f.module = \(name) AND f.side = \(side) AND f.operation = \(operation) AND f.record_id = \(workRecord);
              \(fallback)
            END;
            """
    }

    /// Failures, deferred records, the cursor, the log, the run.
    var epilogue: String {
        """
        -- Failures are kept with a growing back-off; records that went through
        -- resolve their earlier failures.
        -- Only a merge that fell back to record-by-record writes has failures.
        IF _merged[8] > 0 THEN
        INSERT INTO tandem.record_failures AS f (integration_id, module, side, record_id, operation, sqlstate, message, retry_at)
        SELECT DISTINCT ON (module, side, record_id) \(id), module, side, record_id, operation, sqlstate, message, now() + interval '5 seconds'
          FROM _tandem_failed WHERE record_id IS NOT NULL
        ON CONFLICT (integration_id, module, side, record_id) DO UPDATE
           SET operation = EXCLUDED.operation, sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message,
               first_failed_at = CASE WHEN f.resolved_at IS NULL THEN f.first_failed_at ELSE now() END,
               last_failed_at = now(),
               attempts = CASE WHEN f.resolved_at IS NULL THEN f.attempts + 1 ELSE 1 END,
               retry_at = now() + least(interval '1 hour',
                              interval '5 seconds' * power(2, least(CASE WHEN f.resolved_at IS NULL THEN f.attempts ELSE 0 END, 10))),
               resolved_at = NULL;
        GET DIAGNOSTICS _errors = ROW_COUNT;
        END IF;
        -- Failures of this pass are in _tandem_failed; earlier ones existed
        -- when it began.
        IF _failing THEN
        UPDATE tandem.record_failures f SET resolved_at = now()
          FROM _tandem_candidates c
         WHERE f.integration_id = \(id) AND f.resolved_at IS NULL
           AND f.module = c.module AND f.side = c.side AND f.record_id = c.record_id
           AND NOT EXISTS (SELECT 1 FROM _tandem_failed x WHERE x.module = c.module AND x.side = c.side AND x.record_id = c.record_id);
        END IF;
        -- Deferred records that were candidates and went through are done,
        -- due or not (a change of the record itself may bring it back before
        -- its retry); those deferred again were written by this pass, and
        -- there are others only if there were some when it began.
        IF _deferring THEN
          DELETE FROM tandem.deferred_records d USING _tandem_candidates c
           WHERE d.integration_id = \(id) AND d.xmin <> pg_current_xact_id()::xid
             AND c.module = d.module AND c.side = d.side AND c.record_id = d.record_id;
        END IF;
        IF _moves THEN
          UPDATE tandem.sync_cursors SET snapshot = _current, moved_at = now() WHERE integration_id = \(id);
          -- What every cursor has read is not needed any more. A change at
          -- or above a cursor's xmax is one that cursor has not read: the
          -- least xmax bounds the search, which the log's index answers
          -- (with the greatest, every pass looked through the whole log that
          -- a stopped integration's cursor holds back).
          DELETE FROM tandem.change_log cl
           WHERE cl.xid_order < (SELECT min(pg_snapshot_xmax(snapshot)) FROM tandem.sync_cursors)::text::bigint
             AND NOT EXISTS (SELECT 1 FROM tandem.sync_cursors sc WHERE NOT pg_visible_in_snapshot(cl.xid, sc.snapshot));
        END IF;
        INSERT INTO tandem.runs (integration_id, kind, started_at, changes_read, matched, created_in_pipeline, created_in_crm,
                                 updated_in_pipeline, updated_in_crm, conflicts, errors, waiting, deferred)
        VALUES (\(id), _kind, _started, _read + coalesce(_chunk, 0), _merged[2], _merged[3], _merged[4],
                _merged[5], _merged[6], _merged[7], _errors, _merged[9], _merged[10]);
        DELETE FROM tandem._applying WHERE xid = pg_current_xact_id();
        RETURN ARRAY[\(Status.worked.rawValue), _read, _merged[2], _merged[3], _merged[4], _merged[5], _merged[6],
                     _merged[7], _errors, _merged[9], _merged[10]];
        """
    }
}
