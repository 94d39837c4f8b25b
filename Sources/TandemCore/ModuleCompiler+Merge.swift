import TandemPostgres

/// The field-level three-way merge (B2), set-based: for every pair in the
/// work table and every field, the current canonical value of each side is
/// compared with that side's mirror.
///  - changed on one side only: that side's value is written to the other;
///  - changed on both sides to different values: the conflict policy decides,
///    and the decision is recorded;
///  - changed on both sides to the same value, or on neither: nothing is written.
/// Fresh pairs (just created) are not merged (`createLinkAndMirror` mirrors
/// them, or `mirrorCreated` for copies made record by record);
/// matched pairs have no mirror yet,
/// so every field that differs between them is a conflict decided by the policy.
/// (`OFFSET 0` keeps each level a subquery: every hash and decision is
/// computed once instead of being pasted into each expression that uses it.
/// A live pass sets up every level of the statement for its one record, so
/// it has as few levels as that allows.)
extension ModuleCompiler {
    /// Fills the work table from the pairs: the hash of each side's canonical
    /// value of every field, their mirrors, what to do with each field, and
    /// the canonical values a write or a conflict needs (the rest stay NULL:
    /// building a jsonb value costs more than all of a field's merge).
    /// Returns one row, the counts of `workPlan`.
    public var buildWork: SQL {
        let pipeline = projection(.pipeline, alias: "p")
        let crm = projection(.crm, alias: "c")
        let fields = module.fields.indices
        var inner: [SQL] = [
            "pr.link_id", "pr.p_id", "pr.c_id", "pr.origin",
            "(p.\(identifier: key(.pipeline).name) IS NOT NULL) AS p_exists",
            "(c.\(identifier: key(.crm).name) IS NOT NULL) AS c_exists",
            "coalesce(\(pipeline.waiting), false) AS p_wait", "coalesce(\(crm.waiting), false) AS c_wait",
            modified(.pipeline, alias: "p") + " AS p_mod", modified(.crm, alias: "c") + " AS c_mod",
            // The version of each record the merge read (`lockTargets`).
            "p.xmin AS p_xmin", "c.xmin AS c_xmin",
            // Once per statement: pasted into each field's decision, its two
            // subqueries became two InitPlans per field, every one of them
            // set up at the start of every pass.
            "\(policy) AS policy",
        ]
        // Each side's value of each field, and the hash of its canonical
        // value (the hash of a text or an integer needs no jsonb).
        for field in fields {
            let f = String(field)
            let p = pipeline.inputs[field], c = crm.inputs[field]
            inner += [
                "\(p.sql) AS p_v\(raw: f)", "\(c.sql) AS c_v\(raw: f)",
                "\(p.hash(of: p.sql)) AS ph_f\(raw: f)", "\(c.hash(of: c.sql)) AS ch_f\(raw: f)",
                "\(mirrorHash(.pipeline, field: field)) AS bp_f\(raw: f)",
                "\(mirrorHash(.crm, field: field)) AS bc_f\(raw: f)",
            ]
        }
        // Middle level: per field, the action ('c' write to CRM, 'p' write to the
        // pipeline app, 'x' conflict left alone) and whether it was a conflict.
        // A side changed a field when its hash differs from its mirror's; the
        // two sides differ when their hashes do (equal canonical values hash
        // alike, 10.5 and 10.50 too).
        var middle: [SQL] = ["s.*"]
        var dirty: [SQL] = []
        // The field records were matched on (B3): until it was first synced
        // (no mirror on either side: a pair just matched, or matched and then
        // deferred), spellings that differ only in case and spacing are the
        // same value, and each side keeps its own (no conflict is invented).
        let matchField = module.match.flatMap { rule in
            fields.first { module.fields[$0].pipeline.name == rule.pipeline.name && module.fields[$0].crm.name == rule.crm.name }
        }
        for field in fields {
            let f = String(field)
            let pChanged: SQL = "(s.ph_f\(raw: f) IS DISTINCT FROM s.bp_f\(raw: f))"
            let cChanged: SQL = "(s.ch_f\(raw: f) IS DISTINCT FROM s.bc_f\(raw: f))"
            var differ: SQL = "(s.ph_f\(raw: f) IS DISTINCT FROM s.ch_f\(raw: f))"
            if field == matchField {
                let p = Self.normalized(pipeline.inputs[field].text(of: "s.p_v\(raw: f)"))
                let c = Self.normalized(crm.inputs[field].text(of: "s.c_v\(raw: f)"))
                differ = """
                    (s.ph_f\(raw: f) IS DISTINCT FROM s.ch_f\(raw: f) AND NOT (s.bp_f\(raw: f) IS NULL AND s.bc_f\(raw: f) IS NULL\
                     AND \(p) = \(c)))
                    """
            }
            middle.append("""
                CASE WHEN NOT s.mergeable OR NOT \(differ) THEN NULL
                     WHEN \(pChanged) AND NOT \(cChanged) THEN 'c'
                     WHEN \(cChanged) AND NOT \(pChanged) THEN 'p'
                     WHEN \(pChanged) AND \(cChanged) THEN \(policyDecision)
                END::"char" AS act_f\(raw: f)
                """)
            middle.append("(s.mergeable AND \(pChanged) AND \(cChanged) AND \(differ)) AS conflict_f\(raw: f)")
            dirty.append("\(pChanged) OR \(cChanged)")
        }
        middle.append("(s.origin <> 'linked' OR \(dirty.isEmpty ? "false" : SQL.join(dirty, separator: " OR "))) AS dirty")
        // Top level: the canonical values the writes and the conflicts read
        // (`update`, `recordConflicts`); a field another field's value map
        // reads as its context (`assignments`) keeps both.
        let contexts = Set(module.fields.compactMap { field -> String? in
            if case .mapped(let map) = field.kind { return map.contextField }
            return nil
        })
        var values: [(String, SQL)] = []
        for field in fields {
            let f = String(field)
            let always = contexts.contains(module.fields[field].name)
            let p = pipeline.inputs[field].canonical(of: "d.p_v\(raw: f)")
            let c = crm.inputs[field].canonical(of: "d.c_v\(raw: f)")
            values += [
                ("p_f\(f)", always ? p : "CASE WHEN d.act_f\(raw: f) = 'c' OR d.conflict_f\(raw: f) THEN \(p) END"),
                ("c_f\(f)", always ? c : "CASE WHEN d.act_f\(raw: f) = 'p' OR d.conflict_f\(raw: f) THEN \(c) END"),
            ]
        }
        let acts: SQL = fields.isEmpty ? "ARRAY[]::\"char\"[]" : "ARRAY[\(raw: fields.map { "d.act_f\($0)" }.joined(separator: ", "))]::\"char\"[]"
        let conflicts: SQL = fields.isEmpty ? "false" : "\(raw: fields.map { "d.conflict_f\($0)" }.joined(separator: " OR "))"
        let copied = copiedWorkColumns
        let columns = copied + values.map(\.0) + ["to_pipeline", "to_crm", "has_conflict"]
        let selected: [SQL] = copied.map { "d.\(raw: $0)" } + values.map(\.1) + [
            "coalesce('p' = ANY (\(acts)), false)", "coalesce('c' = ANY (\(acts)), false)", "coalesce(\(conflicts), false)",
        ]
        let conflictCount = fields.isEmpty ? "0" : fields.map { "conflict_f\($0)::int" }.joined(separator: " + ")
        return """
            WITH w AS (
            INSERT INTO \(raw: workTable) (\(raw: columns.joined(separator: ", ")))
            SELECT \(SQL.join(selected, separator: ",\n       "))
              FROM (SELECT \(SQL.join(middle, separator: ",\n ")) FROM (
                      SELECT \(SQL.join(inner, separator: ",\n ")),
                             (pr.origin <> 'fresh' AND p.\(identifier: key(.pipeline).name) IS NOT NULL
                              AND c.\(identifier: key(.crm).name) IS NOT NULL
                              AND NOT coalesce(\(pipeline.waiting), false) AND NOT coalesce(\(crm.waiting), false)) AS mergeable
                        FROM \(raw: pairsTable) pr
                        LEFT JOIN \(table(.pipeline)) p ON p.\(identifier: key(.pipeline).name) = \(keyValue(.pipeline, "pr.p_id"))
                        LEFT JOIN \(table(.crm)) c ON c.\(identifier: key(.crm).name) = \(keyValue(.crm, "pr.c_id"))
                        LEFT JOIN tandem.mirrors m ON m.link_id = pr.link_id
                        LEFT JOIN \(layoutPositions) ml ON ml.layout_id = m.layout_id
                        \(pipeline.joins)
                        \(crm.joins)
                       WHERE pr.origin <> 'fresh'
                       OFFSET 0) s OFFSET 0) d
            RETURNING origin, to_pipeline, to_crm, \(raw: conflictCount) AS conflicts, dirty, p_exists, c_exists, p_wait, c_wait)
            \(workPlan)
            """
    }

    /// The mirror's hash of `field` on `side`, through its layout (`ml`).
    /// NULL: no mirror, no value, or a field its layout does not hold (or
    /// forgot).
    func mirrorHash(_ side: Side, field: Int) -> SQL {
        side == .pipeline ? "m.hashes[ml.pos[\(raw: String(field + 1))]]" : "m.hashes[ml.pos[\(raw: String(field + 1))] + ml.n]"
    }

    /// The module's mirror layouts, each with the position of every current
    /// field's pipeline-side hash in the mirrors that follow it (the CRM
    /// side's is that plus `n`, the layout's length); none for a field the
    /// layout does not hold or forgot.
    var layoutPositions: SQL {
        let positions = module.fields.map { field -> SQL in
            "CASE WHEN \(literal: field.name) = ANY (l.forgotten) THEN NULL ELSE array_position(l.fields, \(literal: field.name)) END"
        }
        return """
            (SELECT l.layout_id, ARRAY[\(SQL.join(positions, separator: ", "))]::int[] AS pos, cardinality(l.fields) AS n
               FROM tandem.mirror_layouts l WHERE l.integration_id = \(Self.integrationID) AND l.module = \(moduleName))
            """
    }

    /// A compact mirror: the hashes of the pipeline side's canonical values,
    /// then the CRM side's, in the order of the module's fields.
    func mirrorHashes(pipeline: [SQL], crm: [SQL]) -> SQL {
        "ARRAY[\(SQL.join(pipeline + crm, separator: ", "))]::bigint[]"
    }

    /// The hashes of the canonical values of a record read in `projection`.
    func hashes(_ projection: Projection) -> [SQL] {
        projection.inputs.map { $0.hash(of: $0.sql) }
    }

    /// The session's layout of this module's mirrors (bound by the engine).
    var currentLayout: SQL {
        "(SELECT t.layout_id FROM _tandem_layouts t WHERE t.module = \(moduleName))"
    }

    /// The work-table columns `buildWork` copies from the merge's rows as
    /// they are, in order (the values, `p_f`/`c_f`, it builds on the way).
    var copiedWorkColumns: [String] {
        var columns = ["link_id", "p_id", "c_id", "origin", "p_exists", "c_exists", "p_wait", "c_wait", "p_mod", "c_mod", "p_xmin", "c_xmin"]
        for field in module.fields.indices {
            columns += ["ph_f\(field)", "ch_f\(field)", "act_f\(field)", "conflict_f\(field)"]
        }
        return columns + ["dirty"]
    }

    func modified(_ side: Side, alias: String) -> SQL {
        guard let column = module.side(side).modified else { return "NULL::timestamptz" }
        return "\(raw: alias).\(identifier: column.name)::timestamptz"
    }

    /// The conflict policy as SQL over the middle level's row `s`, whose
    /// `policy` column the inner level computed once.
    /// latest: the later modified time wins; ties (and unknown times) go to the CRM app.
    var policyDecision: SQL {
        """
        CASE s.policy WHEN 'pipeline_wins' THEN 'c' WHEN 'crm_wins' THEN 'p' WHEN 'skip' THEN 'x'
             ELSE CASE WHEN s.p_mod > s.c_mod THEN 'c' ELSE 'p' END END
        """
    }

    /// Every decided conflict, with both values, the winner and why (B2).
    /// nil when the module maps no field.
    public var recordConflicts: SQL? {
        let rows = module.fields.indices.map { field -> SQL in
            "(\(literal: module.fields[field].name), w.p_f\(raw: String(field)), w.c_f\(raw: String(field)), w.act_f\(raw: String(field)), w.conflict_f\(raw: String(field)))"
        }
        guard !rows.isEmpty else { return nil }
        return """
            INSERT INTO tandem.conflict_decisions (integration_id, link_id, module, field, pipeline_value, crm_value, winner, policy, reason)
            SELECT \(Self.integrationID), w.link_id, \(moduleName), x.field, x.pv, x.cv,
                   CASE x.act WHEN 'c' THEN 'pipeline' WHEN 'p' THEN 'crm' ELSE 'none' END,
                   \(policy),
                   CASE \(policy)
                     WHEN 'latest' THEN format('latest: pipeline app modified %s, CRM app modified %s', coalesce(w.p_mod::text, 'unknown'), coalesce(w.c_mod::text, 'unknown'))
                     WHEN 'skip' THEN 'skip: both apps keep their versions'
                     ELSE \(policy) END
                   || CASE WHEN w.origin = 'matched' THEN ' (first sync of records matched on both sides)'
                           WHEN \(catchingUp) THEN ' (changed on both sides while inactive)' ELSE '' END
              FROM \(raw: workTable) w
             CROSS JOIN LATERAL (VALUES \(SQL.join(rows, separator: ", "))) x(field, pv, cv, act, conflict)
             WHERE w.has_conflict AND x.conflict
            """
    }

    /// Writes the merged fields into `target`, set-based (its `oneRecord` form: one link).
    public func update(_ target: Side) -> ApplyStatement {
        let action = target == .crm ? "c" : "p"
        let sourcePrefix = target == .crm ? "p" : "c"
        let targetKey = key(target).name
        let canonical = { (field: Int) -> SQL in "w.\(raw: sourcePrefix)_f\(raw: String(field))" }
        let setters = module.fields.indices.flatMap { field -> [SQL] in
            self.assignments(target, field: field, canonical: canonical(field), sibling: canonical).map { column, value -> SQL in
                "\(identifier: column.name) = CASE WHEN w.act_f\(raw: String(field)) = \(literal: action) THEN \(value) ELSE t.\(identifier: column.name) END"
            }
        }
        let sql: SQL = """
            UPDATE \(table(target)) t SET \(SQL.join(setters, separator: ",\n "))
              FROM \(raw: workTable) w
             WHERE w.to_\(raw: target == .crm ? "crm" : "pipeline") AND NOT w.failed
               AND t.\(identifier: targetKey) = \(keyValue(target, target == .crm ? "w.c_id" : "w.p_id"))
            """
        return ApplyStatement(sql: sql, oneRecord: sql + "\n   AND w.link_id = \(Self.oneRecord)::bigint",
                              workTable: workTable, workKey: "link_id", source: target.other, operation: "update")
    }

    /// Mirrors of pairs where nothing was written: the hashes the merge computed.
    public var mirrorUnwritten: SQL {
        let hashes = mirrorHashes(pipeline: module.fields.indices.map { "w.ph_f\(raw: String($0))" },
                                  crm: module.fields.indices.map { "w.ch_f\(raw: String($0))" })
        return """
            INSERT INTO tandem.mirrors (link_id, layout_id, hashes, synced_at)
            SELECT w.link_id, \(currentLayout), \(hashes), now()
              FROM \(raw: workTable) w
             WHERE w.dirty AND NOT w.failed AND w.p_exists AND w.c_exists AND NOT w.p_wait AND NOT w.c_wait
               AND NOT w.to_crm AND NOT w.to_pipeline
            \(Self.mirrorUpsert)
            """
    }

    static let mirrorUpsert: SQL = """
        ON CONFLICT (link_id) DO UPDATE
           SET layout_id = EXCLUDED.layout_id, hashes = EXCLUDED.hashes, synced_at = EXCLUDED.synced_at
        """

    /// Mirrors of the pairs this pass created record by record (`fresh`,
    /// after a record's data failed `createLinkAndMirror`), which are not
    /// merged: both records as they are now, the copy read back (rounding,
    /// owner fallback and the app's own triggers included).
    public var mirrorCreated: SQL {
        """
        \(mirrorFresh(link: "pr.link_id", from: """
            FROM \(raw: pairsTable) pr
              JOIN \(table(.pipeline)) p ON p.\(identifier: key(.pipeline).name) = \(keyValue(.pipeline, "pr.p_id"))
              JOIN \(table(.crm)) c ON c.\(identifier: key(.crm).name) = \(keyValue(.crm, "pr.c_id"))
            """, condition: "pr.origin = 'fresh'"))
        \(Self.mirrorUpsert)
        """
    }

    /// Inserts the mirrors of fresh pairs: `from` names the pipeline record
    /// `p` and the CRM record `c` of each, and its link id `link`. A pair
    /// whose record waits for a parent gets no mirror.
    func mirrorFresh(link: SQL, from source: SQL, condition: SQL) -> SQL {
        let pipeline = projection(.pipeline, alias: "p")
        let crm = projection(.crm, alias: "c")
        return """
            INSERT INTO tandem.mirrors (link_id, layout_id, hashes, synced_at)
            SELECT \(link), \(currentLayout), \(mirrorHashes(pipeline: hashes(pipeline), crm: hashes(crm))), now()
              \(source)
              \(pipeline.joins)
              \(crm.joins)
             WHERE \(condition) AND NOT (\(pipeline.waiting)) AND NOT (\(crm.waiting))
            """
    }

    /// Mirrors of pairs that were written: the written record read again, so
    /// the mirror is what the app holds now (rounding, owner fallback and the
    /// app's own triggers included), never what was meant to be written. The
    /// other record is as the merge read it: a change of it that commits
    /// later is logged, and the next pass merges it against this mirror.
    /// `only`: the one side this pass wrote (nil: either may have been),
    /// so that the statement reads nothing of the other side's table (a
    /// batch of 100,000 hashed all of it). `returned`: the name of a common
    /// table expression holding the rows the write of `only` returned (the
    /// pair's `link_id`, the row as `r`), read instead of the table
    /// (`updateAndMirror`).
    public func mirrorWritten(only: Side? = nil, returned: String? = nil) -> SQL {
        let fields = module.fields.indices
        var source: SQL = "FROM \(raw: workTable) w"
        var joins: SQL = ""
        var now: [Side: [SQL]] = [:]
        for side in Side.allCases {
            let prefix = side == .pipeline ? "p" : "c"
            let stored = fields.map { "w.\(raw: prefix)h_f\(raw: String($0))" as SQL }
            guard only == nil || only == side else {
                now[side] = stored
                continue
            }
            let projection = projection(side, alias: prefix)
            let read = hashes(projection)
            let written: SQL = "w.to_\(raw: side.rawValue)"
            now[side] = only == nil ? fields.map { "CASE WHEN \(written) THEN \(read[$0]) ELSE \(stored[$0]) END" } : read
            let record: SQL = "\(raw: prefix).\(identifier: key(side).name) = \(keyValue(side, "w.\(raw: prefix)_id"))"
            if let returned, only == side {
                // The returned rows carry what the mirror needs of the work
                // table: joined back to it, a small batch's cached plan (made
                // for a work table analyzed empty) scanned it once per row.
                source = """
                    FROM \(raw: returned) w
                      CROSS JOIN LATERAL (SELECT (w.r).*) \(raw: prefix)
                    """
                joins += "\(projection.joins)\n"
                continue
            }
            let gate: SQL = only == nil ? "\(written) AND " : ""
            joins += """
                  LEFT JOIN \(table(side)) \(raw: prefix) ON \(gate)\(record)
                  \(projection.joins)

                """
        }
        let written: SQL = only.map { "w.to_\(raw: $0.rawValue)" } ?? "(w.to_crm OR w.to_pipeline)"
        return """
            INSERT INTO tandem.mirrors (link_id, layout_id, hashes, synced_at)
            SELECT w.link_id, \(currentLayout), \(mirrorHashes(pipeline: now[.pipeline] ?? [], crm: now[.crm] ?? [])), now()
              \(source)
            \(joins) WHERE \(written) AND NOT w.failed
            \(Self.mirrorUpsert)
            """
    }

    /// Writes `target` for the whole batch and mirrors the pairs in the same
    /// statement, from the rows the update returned (as the app stored them,
    /// its BEFORE triggers included): the written records are not read again.
    /// For a pass that writes only `target`; if a record's data fails it, the
    /// pass writes record by record (`update`) and then mirrors
    /// (`mirrorWritten`).
    /// The row is returned as `t.*` cast to the table's type: a bare `t`
    /// would name an app column called `t` instead of the row.
    public func updateAndMirror(_ target: Side) -> SQL {
        """
        WITH written AS (
        \(update(target).sql)
        RETURNING \(raw: mirrorColumns), (t.*)::\(table(target)) AS r),
        mirrored AS (
        \(mirrorWritten(only: target, returned: "written")))
        SELECT count(*) FROM written
        """
    }

    /// The work table's columns `mirrorWritten` reads, returned by the
    /// write of `updateAndMirror` under their own names.
    var mirrorColumns: String {
        (["link_id", "to_pipeline", "to_crm", "failed"]
            + module.fields.indices.flatMap { ["ph_f\($0)", "ch_f\($0)"] }).map { "w.\($0)" }.joined(separator: ", ")
    }

    /// Deleted records are not propagated (R4); their links say so.
    public var markDeleted: SQL {
        """
        UPDATE tandem.links l
           SET pipeline_deleted_at = CASE WHEN NOT w.p_exists THEN coalesce(l.pipeline_deleted_at, now()) ELSE l.pipeline_deleted_at END,
               crm_deleted_at = CASE WHEN NOT w.c_exists THEN coalesce(l.crm_deleted_at, now()) ELSE l.crm_deleted_at END
          FROM \(raw: workTable) w
         WHERE w.link_id = l.link_id AND (NOT w.p_exists OR NOT w.c_exists)
        """
    }

    /// Linked records whose lookups point to parents not linked yet wait (R11).
    public func rememberWaitingPairs(_ side: Side) -> SQL? {
        let id = side == .pipeline ? "w.p_id" : "w.c_id"
        let waits = side == .pipeline ? "w.p_wait" : "w.c_wait"
        return rememberWaiting(side, from: "\(raw: workTable) w", id: "\(raw: id)", condition: "\(raw: waits) AND w.p_exists AND w.c_exists")
    }

    /// What the merge decided, in one row, from the rows it wrote into the
    /// work table (`w`, in `buildWork`: one statement fewer per pass), so
    /// that a pass runs only the statements that have something to do: rows,
    /// matched, to_pipeline, to_crm, conflicts, unwritten mirrors, deleted,
    /// waiting (pipeline, crm).
    var workPlan: SQL {
        """
        SELECT count(*), count(*) FILTER (WHERE origin = 'matched'),
               count(*) FILTER (WHERE to_pipeline), count(*) FILTER (WHERE to_crm),
               coalesce(sum(conflicts), 0),
               count(*) FILTER (WHERE dirty AND p_exists AND c_exists AND NOT p_wait AND NOT c_wait AND NOT to_crm AND NOT to_pipeline),
               count(*) FILTER (WHERE NOT p_exists OR NOT c_exists),
               count(*) FILTER (WHERE p_wait AND p_exists AND c_exists),
               count(*) FILTER (WHERE c_wait AND p_exists AND c_exists)
          FROM w
        """
    }
}
