import TandemPostgres

/// A statement that writes to an app table. It runs set-based over the whole
/// batch; if that fails, the engine runs it again record by record on the
/// server (tandem._apply_each) so that one bad record becomes a record error
/// instead of stopping the batch (B6), in its `oneRecord` form.
public struct ApplyStatement: Sendable {
    /// The statement over the whole batch.
    public let sql: SQL
    /// The same statement restricted to one record, whose key is its only
    /// parameter: what `tandem._apply_each` runs when the batch failed. (A
    /// restriction in the batch statement that a NULL turns off,
    /// `key = coalesce($1, key)`, made the planner expect one row in 200 of
    /// the batch and look every record's links up one by one.)
    public let oneRecord: SQL
    /// The work table and its key column, for tandem._apply_each.
    public let workTable: String
    public let workKey: String
    /// The side the data comes from and the operation, for the error record.
    public let source: Side
    public let operation: String
}

/// The compiled SQL of one module pair: every statement a sync pass runs for
/// it, in order. Values are bind parameters or come from `_tandem_session`;
/// identifiers were checked against the catalog and are quoted.
public struct ModuleCompiler: Sendable {
    public let integration: Integration
    public let module: Module
    /// Position of the module; names its temporary tables.
    let index: Int

    public init(integration: Integration, module: Module) {
        self.integration = integration
        self.module = module
        self.index = module.position
    }

    /// The one parameter of an apply statement: NULL for the whole batch, or
    /// the work key of one record (tandem._apply_each binds it as `$1`).
    static let oneRecord = SQL(parameter: nil)

    static let integrationID: SQL = "(SELECT s.integration_id FROM _tandem_session s)"

    /// The policy that decides this module's conflicts in the current pass:
    /// the policy of a reactivation's catch-up while one runs (R16), else the
    /// integration's.
    var policy: SQL {
        "coalesce((SELECT o.policy FROM _tandem_policies o WHERE o.module = \(moduleName)), (SELECT s.policy FROM _tandem_session s))"
    }

    /// Whether the current pass is a reactivation's catch-up for this module.
    var catchingUp: SQL { "EXISTS (SELECT 1 FROM _tandem_policies o WHERE o.module = \(moduleName))" }

    public var pairsTable: String { "_tandem_pairs_\(index)" }
    public var workTable: String { "_tandem_work_\(index)" }
    /// Records of `side` to be created on the other side.
    public func createTable(_ side: Side) -> String { "_tandem_create_\(index)_\(side.rawValue)" }

    var moduleName: SQL { "\(literal: module.name)" }

    func table(_ side: Side) -> SQL {
        let table = module.side(side).table
        return "\(qualified: table.schema, table.name)"
    }

    func key(_ side: Side) -> Column { module.side(side).key }

    /// `text` → the side's key type.
    func keyValue(_ side: Side, _ text: SQL) -> SQL { "(\(text))::\(raw: key(side).baseType)" }

    // MARK: - Session tables

    /// Temporary tables of this module, created once per connection.
    public var temporaryTables: [SQL] {
        var work: [String] = [
            "link_id bigint PRIMARY KEY", "p_id text NOT NULL", "c_id text NOT NULL", "origin text NOT NULL",
            "p_exists boolean", "c_exists boolean", "p_wait boolean", "c_wait boolean",
            "p_mod timestamptz", "c_mod timestamptz", "p_xmin xid", "c_xmin xid",
        ]
        for field in module.fields.indices {
            work += ["ph_f\(field) bigint", "ch_f\(field) bigint", "p_f\(field) jsonb", "c_f\(field) jsonb",
                     "act_f\(field) \"char\"", "conflict_f\(field) boolean"]
        }
        work += ["dirty boolean", "to_pipeline boolean", "to_crm boolean", "has_conflict boolean",
                 "failed boolean NOT NULL DEFAULT false"]
        var statements: [SQL] = [
            "DROP TABLE IF EXISTS \(raw: pairsTable), \(raw: workTable), \(raw: createTable(.pipeline)), \(raw: createTable(.crm))",
            "CREATE TEMP TABLE \(raw: pairsTable) (link_id bigint PRIMARY KEY, p_id text NOT NULL, c_id text NOT NULL, origin text NOT NULL)",
            "CREATE TEMP TABLE \(raw: workTable) (\(raw: work.joined(separator: ", ")))",
        ]
        for side in Side.allCases {
            // `link_id`: the link the copy will have, drawn with its key, so
            // that one statement can create, link and mirror it
            // (`createLinkAndMirror`); `new_id` is unique to find the
            // source of each copy the insert returns.
            statements.append("""
                CREATE TEMP TABLE \(raw: createTable(side)) (src_id text PRIMARY KEY, new_id text NOT NULL UNIQUE, link_id bigint NOT NULL,
                  waiting boolean NOT NULL, failed boolean NOT NULL DEFAULT false)
                """)
        }
        return statements
    }

    // MARK: - Gathering the work

    /// Waiting records of this module whose parent was linked in this pass
    /// come back as candidates: proportional to the new links, not to the
    /// number of records waiting.
    public var retryWaiting: SQL {
        """
        WITH back AS (
          DELETE FROM tandem.waiting_records w
           USING _tandem_new_links nl JOIN tandem.links l ON l.link_id = nl.link_id
           WHERE w.integration_id = \(Self.integrationID) AND w.module = \(moduleName) AND w.parent_module = nl.module
             AND ((w.side = 'pipeline' AND w.parent_id = l.pipeline_id) OR (w.side = 'crm' AND w.parent_id = l.crm_id))
          RETURNING w.side, w.record_id)
        INSERT INTO _tandem_candidates (module, side, record_id)
        SELECT DISTINCT \(moduleName), side, record_id FROM back ON CONFLICT DO NOTHING
        """
    }

    /// Candidates are judged again: what they waited for before is forgotten,
    /// and what they still wait for is remembered anew in this pass.
    public var forgetWaiting: SQL {
        """
        DELETE FROM tandem.waiting_records w USING _tandem_candidates c
         WHERE w.integration_id = \(Self.integrationID) AND w.module = \(moduleName)
           AND c.module = \(moduleName) AND w.side = c.side AND w.record_id = c.record_id
        """
    }

    /// Empties this module's work tables before a pass uses them (cheaper
    /// than emptying every temporary table at every commit).
    public var clearWork: SQL { Self.emptying(temporaryTableNames) }

    /// Empties the session's temporary tables `tables` in one statement:
    /// one executor start instead of one per table, which is most of what
    /// deleting a few rows costs.
    public static func emptying(_ tables: [String]) -> SQL {
        guard let last = tables.last else { return SQL() }
        let others = tables.dropLast().enumerated().map { "e\($0.offset) AS (DELETE FROM \($0.element))" }
        return SQL(raw: (others.isEmpty ? "" : "WITH " + others.joined(separator: ", ") + " ") + "DELETE FROM \(last)")
    }

    public var temporaryTableNames: [String] { [pairsTable, workTable, createTable(.pipeline), createTable(.crm)] }

    /// One chunk of the initial sync: the next `limit` unlinked keys after
    /// `after` (nil: from the start). Records linked earlier in this initial
    /// sync (copies and matches) were handled with their other side already.
    /// CRM records come from the selected view only (R7).
    /// Returns the number read and the last key.
    /// A job's pass queues its chunk first, into no other candidates, and a
    /// chunk's keys are distinct (a view may repeat a key; `DISTINCT` over
    /// keys read in order costs next to nothing): so no `ON CONFLICT`, which
    /// doubled the cost of queuing (0.24 against 0.12 s for 50,000 keys).
    /// `matchedSetWise`: the module's records were matched already
    /// (`matchAll`): the chunk is queued `scanned`, and its records are not
    /// matched again one key at a time.
    public func initialChunk(_ side: Side, after: String?, limit: Int, matchedSetWise: Bool = false) -> SQL {
        let keyColumn: SQL = "r.\(identifier: key(side).name)"
        return """
            WITH chunk AS (
              SELECT DISTINCT \(keyColumn) AS k \(initialScan(side, after: after))
               ORDER BY k LIMIT \(limit)),
            queued AS (
              INSERT INTO _tandem_candidates (module, side, record_id, unlinked, scanned)
              SELECT \(moduleName), \(literal: side.rawValue), k::text, true, \(raw: matchedSetWise ? "true" : "false") FROM chunk)
            SELECT count(*)::bigint, max(k)::text FROM chunk
            """
    }

    /// B3 for the whole module at once, the first step of its initial sync:
    /// every unlinked record of one app paired with an unlinked record of the
    /// other that has the same normalized match value, duplicates one to one
    /// in key order, as `match` pairs them. One hash join of the two apps'
    /// records by value: each record's value is computed once, where a match
    /// per chunk probes the other app's match index once per key. The pairs
    /// are linked, and queued as candidates marked `matched`, so that the
    /// pass merges them as matched records (`matchedByScan`); the chunks of
    /// the initial sync that follow hold only what this left unlinked.
    /// Returns the number of pairs. nil without a match rule.
    public var matchAll: SQL? {
        guard let rule = module.match else { return nil }
        func numbered(_ side: Side) -> SQL {
            let keyName = key(side).name
            return """
                SELECT s.id, s.k, row_number() OVER (PARTITION BY s.k ORDER BY s.id) AS n
                  FROM (SELECT r.\(identifier: keyName) AS id, \(Self.normalized("r.\(identifier: rule.column(side).name)")) AS k
                          FROM \(table(side)) r
                         WHERE \(unlinked(side, id: "r.\(identifier: keyName)::text"))) s
                 WHERE s.k <> ''
                """
        }
        return """
            WITH linked AS (
              INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
              SELECT \(Self.integrationID), \(moduleName), p.id::text, c.id::text, 'matched'
                FROM (\(numbered(.pipeline))) p
                JOIN (\(numbered(.crm))) c ON c.k = p.k AND c.n = p.n
              RETURNING link_id, pipeline_id),
            noted AS (INSERT INTO _tandem_new_links (module, link_id) SELECT \(moduleName), link_id FROM linked),
            queued AS (
              INSERT INTO _tandem_candidates (module, side, record_id, matched)
              SELECT \(moduleName), 'pipeline', pipeline_id, true FROM linked
              RETURNING 1)
            SELECT count(*)::bigint FROM queued
            """
    }

    /// The pairs `matchAll` linked and queued are matched records: merged
    /// as pairs the pass matched itself (B2 against no mirror, and noted as
    /// such in a conflict). Run when the module's candidates hold some.
    public var matchedByScan: SQL {
        """
        UPDATE \(raw: pairsTable) pr SET origin = 'matched'
          FROM _tandem_candidates c
         WHERE c.module = \(moduleName) AND c.side = 'pipeline' AND c.matched AND pr.p_id = c.record_id
        """
    }

    /// How many records the chunks of `initialChunk(side, after:)` have
    /// still to read, counted now: a progress display adds it to what was
    /// read to show a total (records linked meanwhile from the other side
    /// drop out of it).
    public func initialRemaining(_ side: Side, after: String?) -> SQL {
        "SELECT count(*)::bigint \(initialScan(side, after: after))"
    }

    /// The unlinked records of `side` after key `after`; CRM records from
    /// the selected view only (R7).
    func initialScan(_ side: Side, after: String?) -> SQL {
        let source: SQL
        if side == .crm, let view = module.crm.view {
            source = "\(qualified: view.schema, view.name)"
        } else {
            source = table(side)
        }
        let keyColumn: SQL = "r.\(identifier: key(side).name)"
        return """
            FROM \(source) r
             WHERE (\(after)::text IS NULL OR \(keyColumn) > \(keyValue(side, "\(after)")))
               AND \(unlinked(side, id: "\(keyColumn)::text"))
            """
    }

    /// One chunk of a scan over the module's links (an edit sync bringing a
    /// newly mapped field into line, R14; a reactivation's catch-up, R16):
    /// the next `limit` links after link id `after`, queued as candidates so
    /// that the merge diffs each record against its mirror (a pipeline id
    /// is linked once per module: no `ON CONFLICT`, as in `initialChunk`).
    /// Returns the number read and the last link id.
    public func linksChunk(after: String?, limit: Int) -> SQL {
        """
        WITH chunk AS (
          SELECT l.link_id, l.pipeline_id FROM tandem.links l
           WHERE l.integration_id = \(Self.integrationID) AND l.module = \(moduleName)
             AND l.link_id > coalesce(\(after)::bigint, 0)
           ORDER BY l.link_id LIMIT \(limit)),
        queued AS (
          INSERT INTO _tandem_candidates (module, side, record_id)
          SELECT \(moduleName), 'pipeline', pipeline_id FROM chunk)
        SELECT count(*)::bigint, max(link_id)::text FROM chunk
        """
    }

    /// How many links the chunks of `linksChunk(after:)` have still to read.
    public func linksRemaining(after: String?) -> SQL {
        """
        SELECT count(*)::bigint FROM tandem.links l
         WHERE l.integration_id = \(Self.integrationID) AND l.module = \(moduleName)
           AND l.link_id > coalesce(\(after)::bigint, 0)
        """
    }

    /// Candidates that already have a link become pairs to merge. An
    /// initial sync's chunk is queued `unlinked` (`initialChunk` reads only
    /// records with no link, and only the pass that queues it links records
    /// of its module), so its records are not looked up: the join with the
    /// module's links, which a chunk of 50,000 hashes whole, is then left
    /// with no candidates, and the hash join stops before it reads the links
    /// (at 1,000,000 records per module 0.27 s per chunk, 9 s in all).
    public var linkedPairs: SQL {
        """
        INSERT INTO \(raw: pairsTable) (link_id, p_id, c_id, origin)
        SELECT l.link_id, l.pipeline_id, l.crm_id, 'linked'
          FROM _tandem_candidates c
          JOIN tandem.links l ON l.integration_id = \(Self.integrationID) AND l.module = c.module AND l.pipeline_id = c.record_id
         WHERE c.module = \(moduleName) AND c.side = 'pipeline' AND NOT c.unlinked
        UNION
        SELECT l.link_id, l.pipeline_id, l.crm_id, 'linked'
          FROM _tandem_candidates c
          JOIN tandem.links l ON l.integration_id = \(Self.integrationID) AND l.module = c.module AND l.crm_id = c.record_id
         WHERE c.module = \(moduleName) AND c.side = 'crm' AND NOT c.unlinked
        ON CONFLICT (link_id) DO NOTHING
        """
    }

    // MARK: - Contention

    /// Locks the rows the pass will write, once the merge has decided which
    /// (`buildWork`): the target record of every pair that writes a side,
    /// and only if it is still the version the merge read (the same `xmin`).
    /// A row some user holds in an open transaction is skipped, never
    /// waited for, and so is one a user changed since the merge read it:
    /// the pass then falls back to `lockRows` and merges again. So the
    /// values a pass writes over are exactly those it merged (B11). A record
    /// the pass only reads, the source of a write or of a copy, is not
    /// locked: a user's write to it that commits after the pass read it is
    /// logged and merged by the next pass against the mirror this one wrote,
    /// and a user writing it neither waits for the pass nor defers it.
    /// FOR NO KEY UPDATE, as the pass's own UPDATE takes: it keeps writers
    /// of these records out, but not the foreign-key checks of writers that
    /// insert or update the records' children (FOR KEY SHARE), which a
    /// stronger lock would make wait for the pass, and the pass skip.
    /// It returns how many of the wanted records it did not lock: when
    /// none, the pass writes.
    public var lockTargets: SQL { missedLocks(lockingTargets) }

    /// A lock of both sides, the pipeline app's records first, built by
    /// `locking` (`lockTargets`, `lockRows`): how many of the records it
    /// wanted it did not lock.
    func missedLocks(_ locking: (Side, String, String) -> SQL) -> SQL {
        """
        WITH \(locking(.pipeline, "p_wanted", "p_locked")),
        \(locking(.crm, "c_wanted", "c_locked"))
        SELECT ((SELECT count(*) FROM p_wanted) - (SELECT count(*) FROM p_locked))
               + ((SELECT count(*) FROM c_wanted) - (SELECT count(*) FROM c_locked))
        """
    }

    /// The target records of `side` the work table writes, with the version
    /// the merge read (`wanted`), and those of them still at that version
    /// this pass locked (`locked`), as two common table expressions.
    func lockingTargets(_ side: Side, _ wanted: String, _ locked: String) -> SQL {
        let keyName = key(side).name
        let (id, version, writes) = side == .pipeline ? ("w.p_id", "w.p_xmin", "w.to_pipeline") : ("w.c_id", "w.c_xmin", "w.to_crm")
        return """
            \(raw: wanted) AS (
              SELECT \(keyValue(side, "\(raw: id)")) AS k, \(raw: version) AS v FROM \(raw: workTable) w WHERE \(raw: writes)),
            \(raw: locked) AS (
              SELECT r.\(identifier: keyName) AS k FROM \(table(side)) r JOIN \(raw: wanted) w ON r.\(identifier: keyName) = w.k
               WHERE r.xmin = w.v
                 FOR NO KEY UPDATE OF r SKIP LOCKED)
            """
    }

    /// The lock a pass falls back to when `lockTargets` missed a record:
    /// both records of every pair (linked or matched), whatever their
    /// version, skipping those a user holds; then `recordLocked` and
    /// `deferContended` take the pairs it could not lock out of the pass,
    /// and the rest are merged again, from rows the pass now holds.
    /// One statement for both sides, the pipeline app's records first. It
    /// returns how many of the wanted records it did not lock (held by a
    /// user, or deleted): when none, nothing needs deferring.
    public var lockRows: SQL { missedLocks(locking) }

    /// The same lock of one side, which now also writes down in
    /// `_tandem_locked` every record this pass holds, for `deferContended`.
    /// It runs only when some record was not locked: locking again a row
    /// the pass holds returns at once, and a row a user has released since
    /// is locked now. A pass that locked everything writes nothing down (at
    /// 100,000 records per side the record took a third of the lock's time).
    public func recordLocked(_ side: Side) -> SQL {
        """
        WITH \(locking(side, "wanted", "locked"))
        INSERT INTO _tandem_locked (module, side, record_id)
        SELECT \(moduleName), \(literal: side.rawValue), l.k::text FROM locked l
        ON CONFLICT DO NOTHING
        """
    }

    /// The records of `side` the pairs want (`wanted`), and those of them this
    /// pass locked (`locked`), as two common table expressions.
    func locking(_ side: Side, _ wanted: String, _ locked: String) -> SQL {
        let keyName = key(side).name
        let id = side == .pipeline ? "pr.p_id" : "pr.c_id"
        return """
            \(raw: wanted) AS (
              SELECT DISTINCT \(keyValue(side, "\(raw: id)")) AS k FROM \(raw: pairsTable) pr WHERE pr.origin <> 'fresh'),
            \(raw: locked) AS (
              SELECT r.\(identifier: keyName) AS k FROM \(table(side)) r
               WHERE r.\(identifier: keyName) IN (SELECT w.k FROM \(raw: wanted) w)
                 FOR NO KEY UPDATE OF r SKIP LOCKED)
            """
    }

    /// Whether the record `id` of `side` exists and this pass could not lock it.
    func contended(_ side: Side, id: SQL) -> SQL {
        let keyName = key(side).name
        return """
            (NOT EXISTS (SELECT 1 FROM _tandem_locked l WHERE l.module = \(moduleName) AND l.side = \(literal: side.rawValue) AND l.record_id = \(id))
             AND EXISTS (SELECT 1 FROM \(table(side)) x WHERE x.\(identifier: keyName) = \(keyValue(side, id))))
            """
    }

    /// Pairs with a record this pass could not lock leave the pass and wait
    /// in tandem.deferred_records (by their pipeline record) for a retry on
    /// a back-off (20 ms, doubling, at most a second). Nothing else of the
    /// batch waits. Their candidates leave the pass too (a failure they
    /// had is not resolved by it).
    public var deferContended: SQL {
        """
        WITH pairs AS (
          DELETE FROM \(raw: pairsTable) pr
           WHERE pr.origin <> 'fresh' AND (\(contended(.pipeline, id: "pr.p_id")) OR \(contended(.crm, id: "pr.c_id")))
          RETURNING pr.p_id, pr.c_id),
        candidates AS (
          DELETE FROM _tandem_candidates c USING pairs p
           WHERE c.module = \(moduleName)
             AND c.record_id = CASE c.side WHEN 'pipeline' THEN p.p_id ELSE p.c_id END)
        INSERT INTO tandem.deferred_records AS d (integration_id, module, side, record_id, retry_at)
        SELECT DISTINCT \(Self.integrationID), \(moduleName), 'pipeline', p_id, clock_timestamp() + interval '20 milliseconds' FROM pairs
        ON CONFLICT (integration_id, module, side, record_id) DO UPDATE
           SET attempts = d.attempts + 1,
               retry_at = clock_timestamp() + least(interval '1 second', interval '20 milliseconds' * power(2, least(d.attempts, 6)))
        """
    }

    /// Unlinked candidates of the CRM side count only when they are in the view (R7).
    func inView(_ side: Side, alias: String) -> SQL {
        guard side == .crm, let view = module.crm.view else { return "true" }
        let keyName = key(.crm).name
        return "EXISTS (SELECT 1 FROM \(qualified: view.schema, view.name) v WHERE v.\(identifier: keyName) = \(raw: alias).\(identifier: keyName))"
    }

    func unlinked(_ side: Side, id: SQL) -> SQL {
        """
        NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.integration_id = \(Self.integrationID)\
         AND l.module = \(moduleName) AND l.\(raw: side.rawValue)_id = \(id))
        """
    }

    /// Whether candidate `id` of `side` has no link. Once `linkedPairs` has
    /// run, every linked candidate has a pair (and a candidate deferred with
    /// its pair left the pass with it), so a large batch asks the pairs of
    /// this pass, which hold at most a batch, instead of the module's links,
    /// which a hash join would read whole for every chunk of an initial sync
    /// (at 300,000 records per module three times per chunk). A small batch
    /// probes the links' index, one lookup per candidate.
    func unlinkedCandidate(_ side: Side, id: SQL, large: Bool) -> SQL {
        guard large else { return unlinked(side, id: id) }
        let column = side == .pipeline ? "p_id" : "c_id"
        return "NOT EXISTS (SELECT 1 FROM \(raw: pairsTable) pr WHERE pr.\(raw: column) = \(id))"
    }

    /// In a large batch, `AND` the key of record `alias` of `side` within the
    /// span of the side's candidates, which the large merge reads (`span`)
    /// into its variables (`spanVariables`) before it matches: an initial
    /// sync's chunk is a run of consecutive keys, so the join of a chunk with
    /// its app table reads that run, not the whole table (at 300,000 records
    /// per module a chunk of 10,000 contacts hashed all 510,000 of them: 0.4 s
    /// where the key's index reads them in 0.03 s). The statement reads the
    /// span as parameters (`spanParameters`), which the large merge binds to
    /// its variables by `EXECUTE … USING` (`PassFunction.spanned`): planned
    /// with the span's values, a span over much of a table is still read
    /// sequentially. Live changes in the same batch widen the span, never
    /// past the table. Empty for a small batch and for a key type with no
    /// min().
    func withinSpan(_ side: Side, alias: String, large: Bool) -> SQL {
        guard large, hasSpan(side) else { return "" }
        let key = key(side)
        let (lo, hi) = Self.spanParameters(side)
        return " AND \(raw: alias).\(identifier: key.name) BETWEEN (\(raw: lo))::\(raw: key.baseType) AND (\(raw: hi))::\(raw: key.baseType)"
    }

    func hasSpan(_ side: Side) -> Bool { ["N", "S"].contains(key(side).category) }

    /// The large merge's variables that hold the span of `side`.
    public static func spanVariables(_ side: Side) -> (lo: String, hi: String) {
        ("_span_lo_\(side.rawValue)", "_span_hi_\(side.rawValue)")
    }

    /// Every side's span variables, in the order of `spanParameters`: what
    /// the large merge passes to a statement that reads a span.
    public static var spanArguments: [String] {
        [Side.pipeline, .crm].flatMap { side -> [String] in
            let (lo, hi) = spanVariables(side)
            return [lo, hi]
        }
    }

    /// The parameters by which a statement reads the span of `side`.
    static func spanParameters(_ side: Side) -> (lo: String, hi: String) {
        side == .pipeline ? ("$1", "$2") : ("$3", "$4")
    }

    /// The least and greatest key of `side` among the candidates, for
    /// `withinSpan` (the copies a pass prepares are candidates too). nil for
    /// a key type with no min().
    public func span(_ side: Side) -> SQL? {
        guard hasSpan(side) else { return nil }
        let value = keyValue(side, "x.record_id")
        return """
            SELECT min(\(value))::text, max(\(value))::text
              FROM _tandem_candidates x WHERE x.module = \(moduleName) AND x.side = \(literal: side.rawValue)
            """
    }

    /// B3: unlinked candidates of `side` paired with unlinked records of the
    /// other side that have the same normalized match value. Duplicates on a
    /// side pair up in key order, one to one (numbered per key on each side,
    /// then grouped by key and number). The other side is probed once per key
    /// through its match index and nothing else (`OFFSET 0` keeps the probe a
    /// subquery, which no plan can turn into a scan of the whole other side
    /// computing every record's match value: at a million records that scan
    /// ran once per chunk); links are checked once, set-wise, afterwards: no
    /// estimate can make the plan repeat a scan per key.
    public func match(from side: Side, large: Bool = false) -> SQL? {
        guard let rule = module.match else { return nil }
        let other = side.other
        let mine: SQL = Self.normalized("r.\(identifier: rule.column(side).name)")
        let theirs: SQL = Self.normalized("o.\(identifier: rule.column(other).name)")
        let (pipelineID, crmID): (SQL, SQL) = side == .pipeline ? ("mine", "theirs") : ("theirs", "mine")
        let otherKey = key(other).name
        return """
            WITH fresh AS MATERIALIZED (
              SELECT c.record_id, \(mine) AS k, r.\(identifier: key(side).name) AS id
                FROM _tandem_candidates c
                JOIN \(table(side)) r ON r.\(identifier: key(side).name) = \(keyValue(side, "c.record_id"))
               WHERE c.module = \(moduleName) AND c.side = \(literal: side.rawValue) AND NOT c.scanned
                 AND \(unlinkedCandidate(side, id: "c.record_id", large: large)) AND \(inView(side, alias: "r"))\(withinSpan(side, alias: "r", large: large))),
            probed AS MATERIALIZED (
              SELECT keys.k, o.record_id, o.id
                FROM (SELECT DISTINCT k FROM fresh WHERE k IS NOT NULL AND k <> '') keys
               CROSS JOIN LATERAL (
                 SELECT o.\(identifier: otherKey)::text AS record_id, o.\(identifier: otherKey) AS id
                   FROM \(table(other)) o WHERE \(theirs) = keys.k OFFSET 0) o),
            sides AS (
              SELECT k, 0 AS side, record_id, row_number() OVER (PARTITION BY k ORDER BY id) AS n
                FROM fresh WHERE k IS NOT NULL AND k <> ''
              UNION ALL
              SELECT p.k, 1, p.record_id, row_number() OVER (PARTITION BY p.k ORDER BY p.id)
                FROM probed p WHERE \(unlinked(other, id: "p.record_id"))),
            paired AS (
              SELECT max(record_id) FILTER (WHERE side = 0) AS mine, max(record_id) FILTER (WHERE side = 1) AS theirs
                FROM sides GROUP BY k, n HAVING count(*) = 2),
            linked AS (
              INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
              SELECT \(Self.integrationID), \(moduleName), \(pipelineID), \(crmID), 'matched' FROM paired
              RETURNING link_id, pipeline_id, crm_id),
            noted AS (INSERT INTO _tandem_new_links (module, link_id) SELECT \(moduleName), link_id FROM linked)
            INSERT INTO \(raw: pairsTable) (link_id, p_id, c_id, origin)
            SELECT link_id, pipeline_id, crm_id, 'matched' FROM linked
            """
    }

    // MARK: - Creating records on the other side

    /// Unlinked, unmatched candidates of `side`: each gets the key its copy
    /// will have on the other side (the other table's own default), or waits
    /// when it refers to a parent not linked yet (R11).
    public func prepareCreate(from side: Side, large: Bool = false) -> SQL {
        let projection = projection(side, alias: "r")
        let target = side.other
        let newKey = key(target).defaultExpression ?? "NULL"
        return """
            INSERT INTO \(raw: createTable(side)) (src_id, new_id, link_id, waiting)
            SELECT c.record_id, (\(raw: newKey))::text, nextval('tandem.links_link_id_seq'::regclass), \(projection.waiting)
              FROM _tandem_candidates c
              JOIN \(table(side)) r ON r.\(identifier: key(side).name) = \(keyValue(side, "c.record_id"))
              \(projection.joins)
             WHERE c.module = \(moduleName) AND c.side = \(literal: side.rawValue)
               AND \(unlinkedCandidate(side, id: "c.record_id", large: large)) AND \(inView(side, alias: "r")) AND \(hasParent(side, alias: "r"))\(withinSpan(side, alias: "r", large: large))
            """
    }

    /// Writes the copies, set-based (its `oneRecord` form: one source key).
    /// `ownersByJoin`: owners (R13) come from one join with the target app's
    /// users by email, which a large batch hashes once, instead of a lookup
    /// per record, which a small batch does in less time than the join's
    /// scan of every user.
    public func create(from side: Side, ownersByJoin: Bool = false) -> ApplyStatement {
        ApplyStatement(sql: insertCopies(from: side, ownersByJoin: ownersByJoin, only: ""),
                       oneRecord: insertCopies(from: side, ownersByJoin: ownersByJoin, only: "AND w.src_id = \(Self.oneRecord)::text"),
                       workTable: createTable(side), workKey: "src_id", source: side, operation: "create")
    }

    /// The copies of the prepared records of `side` (those that do not wait
    /// and did not fail), restricted by `only` (a condition after AND).
    /// `spanned`: within the span of the side's candidates (`withinSpan`;
    /// the large merge's batch statement, never the record-by-record one,
    /// which runs where the merge's variables are not).
    func insertCopies(from side: Side, ownersByJoin: Bool, spanned: Bool = false, only: SQL = "") -> SQL {
        let target = side.other
        let projection = projection(side, alias: "r")
        var ownerJoins: SQL = ""
        let writes = module.fields.indices.flatMap { index -> [(Column, SQL)] in
            guard ownersByJoin, case .owner = module.fields[index].kind else { return converted(target, field: index, alias: "r") }
            let (join, value) = ownerByJoin(target, field: index, alias: "r")
            ownerJoins += join
            return [value]
        }
        let columns: [SQL] = ["\(identifier: key(target).name)"] + writes.map { "\(identifier: $0.0.name)" }
        let values: [SQL] = ["\(keyValue(target, "w.new_id"))"] + writes.map(\.1)
        return """
            INSERT INTO \(table(target)) (\(SQL.join(columns, separator: ", "))) OVERRIDING SYSTEM VALUE
            SELECT \(SQL.join(values, separator: ", "))
              FROM \(raw: createTable(side)) w
              JOIN \(table(side)) r ON r.\(identifier: key(side).name) = \(keyValue(side, "w.src_id"))
              \(projection.joins)\(ownerJoins)
             WHERE NOT w.waiting AND NOT w.failed \(only)\(withinSpan(side, alias: "r", large: spanned))
            """
    }

    /// Creates the copies of the prepared records of `side`, links them and
    /// writes their mirrors, in one statement; returns the number of links.
    /// The mirror of a copy hashes it as the insert returned it (rounding,
    /// owner fallback and the app's BEFORE triggers included), the source
    /// record as the insert read it. If the data of a record makes it fail,
    /// the pass creates the copies record by record instead (`create`), then
    /// links them (`linkCreated`) and mirrors them (`mirrorCreated`).
    public func createLinkAndMirror(from side: Side, ownersByJoin: Bool = false) -> SQL {
        let target = side.other
        let (targetAlias, sourceAlias) = side == .pipeline ? ("c", "p") : ("p", "c")
        return """
            WITH created AS (
            \(insertCopies(from: side, ownersByJoin: ownersByJoin, spanned: ownersByJoin))
            RETURNING *),
            linked AS (
            \(insertLinks(from: side))
              RETURNING link_id),
            noted AS (INSERT INTO _tandem_new_links (module, link_id) SELECT \(moduleName), link_id FROM linked),
            mirrored AS (
            \(mirrorFresh(link: "w.link_id", from: """
                FROM created \(raw: targetAlias)
                  JOIN \(raw: createTable(side)) w ON w.new_id = (\(raw: targetAlias).\(identifier: key(target).name))::text
                  JOIN \(table(side)) \(raw: sourceAlias) ON \(raw: sourceAlias).\(identifier: key(side).name) = \(keyValue(side, "w.src_id"))
                """, condition: "true\(withinSpan(side, alias: sourceAlias, large: ownersByJoin))")))
            SELECT count(*) FROM linked
            """
    }

    /// Links the copies that were written and queues them for their mirrors.
    public func linkCreated(from side: Side) -> SQL {
        """
        WITH linked AS (
        \(insertLinks(from: side))
          RETURNING link_id, pipeline_id, crm_id),
        noted AS (INSERT INTO _tandem_new_links (module, link_id) SELECT \(moduleName), link_id FROM linked)
        INSERT INTO \(raw: pairsTable) (link_id, p_id, c_id, origin)
        SELECT link_id, pipeline_id, crm_id, 'fresh' FROM linked
        """
    }

    /// The links of the copies of `side` that were written, with the ids
    /// `prepareCreate` drew.
    func insertLinks(from side: Side) -> SQL {
        let (pipelineID, crmID): (SQL, SQL) = side == .pipeline ? ("w.src_id", "w.new_id") : ("w.new_id", "w.src_id")
        return """
              INSERT INTO tandem.links (link_id, integration_id, module, pipeline_id, crm_id, origin)
              SELECT w.link_id, \(Self.integrationID), \(moduleName), \(pipelineID), \(crmID), \(literal: side.rawValue)
                FROM \(raw: createTable(side)) w WHERE NOT w.waiting AND NOT w.failed
            """
    }

    /// Candidates that wait for a parent are remembered, with the parent (R11).
    public func rememberWaitingCreates(from side: Side) -> SQL? {
        rememberWaiting(side, from: "\(raw: createTable(side)) w", id: "w.src_id", condition: "w.waiting")
    }

    /// Records of `side` that wait, one row per parent they wait for.
    /// nil when records of `side` refer to no parent.
    func rememberWaiting(_ side: Side, from source: SQL, id: SQL, condition: SQL) -> SQL? {
        let projection = projection(side, alias: "r")
        guard !projection.parents.isEmpty else { return nil }
        let parents = projection.parents.map { "(\(literal: $0.module), \($0.id), \($0.waits))" as SQL }
        return """
            INSERT INTO tandem.waiting_records (integration_id, module, side, record_id, parent_module, parent_id)
            SELECT \(Self.integrationID), \(moduleName), \(literal: side.rawValue), \(id), x.parent_module, x.parent_id
              FROM \(source)
              JOIN \(table(side)) r ON r.\(identifier: key(side).name) = \(keyValue(side, id))
              \(projection.joins)
             CROSS JOIN LATERAL (VALUES \(SQL.join(parents, separator: ", "))) x(parent_module, parent_id, waits)
             WHERE \(condition) AND x.waits
            ON CONFLICT DO NOTHING
            """
    }
}
