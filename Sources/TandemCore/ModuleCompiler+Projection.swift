import TandemPostgres

/// How a record of one side looks in canonical form: the shape in which both
/// sides of a field can be compared and in which mirrors are kept.
///  - a value is `to_jsonb(value)` (so 10.50 and 10.5 are equal),
///  - a lookup is the link id of the referenced record (the same on both sides),
///  - an owner is the owner's email, lower-cased and trimmed (R13).
/// SQL NULL stands for "no value". A mirror keeps PostgreSQL's 64-bit hash
/// of each canonical value (migration 0012); no value hashes to NULL.
struct Projection {
    /// One input per field, in field order: what its canonical value is made of.
    var inputs: [CanonicalInput] = []
    /// One canonical expression per field, in field order.
    var canonical: [SQL] { inputs.map { $0.canonical(of: $0.sql) } }
    /// The joins the expressions need.
    var joins: SQL = ""
    /// True when the record refers to a parent that is not linked yet.
    var waiting: SQL = "false"
    /// Each parent the record may wait for: its module, its id on this side,
    /// and whether the record waits for it.
    var parents: [(module: String, id: SQL, waits: SQL)] = []
}

/// What a field's canonical value is made of, and how to hash it. Hashing a
/// text or an integer as it is gives the hash of its canonical jsonb without
/// building it: for a jsonb scalar, `jsonb_hash_extended` is the hash of the
/// string's bytes (or of the number) xor the mark of the one-element array a
/// scalar is stored as (`scalarMark`). Building the jsonb cost about 2 µs a
/// field in a one-record pass, most of the merge.
struct CanonicalInput {
    enum Kind { case text, integer, json, other }
    let sql: SQL
    let kind: Kind

    init(sql: SQL, kind: Kind) {
        self.sql = sql
        self.kind = kind
    }

    /// A column's value: text and integers are hashed as they are.
    init(sql: SQL, type column: Column) {
        switch column.baseType {
        case "text", "character varying": self.init(sql: sql, kind: .text)
        case "smallint", "integer", "bigint": self.init(sql: sql, kind: .integer)
        default: self.init(sql: sql, kind: .other)
        }
    }

    /// `jsonb_hash_extended` of a scalar: the element's hash xor the array
    /// mark rotated, (JB_FARRAY << 32 | JB_FARRAY) rotated left by one in
    /// each half: 0x8000000080000000.
    static let scalarMark = "-9223372034707292160"

    /// The canonical value (jsonb) of `input`, this input as another level of a statement names it.
    func canonical(of input: SQL) -> SQL { kind == .json ? input : "to_jsonb(\(input))" }

    /// A field's hash in a compact mirror (migration 0012): PostgreSQL's
    /// 64-bit hash of the canonical jsonb value of `input`,
    /// `jsonb_hash_extended(canonical, 0)` (equal values hash alike: 10.5 and
    /// 10.50 too); NULL for no value.
    func hash(of input: SQL) -> SQL {
        switch kind {
        case .text: "(hashtextextended((\(input))::text COLLATE \"C\", 0) # \(raw: Self.scalarMark))"
        case .integer: "(hash_numeric_extended((\(input))::numeric, 0) # \(raw: Self.scalarMark))"
        case .json: "jsonb_hash_extended(\(input), 0)"
        case .other: "jsonb_hash_extended(to_jsonb(\(input)), 0)"
        }
    }

    /// The canonical value of `input` as text (what the match of B3 compares).
    func text(of input: SQL) -> SQL {
        switch kind {
        case .text: "(\(input))::text"
        case .json: "(\(input) #>> '{}')"
        case .integer, .other: "(to_jsonb(\(input)) #>> '{}')"
        }
    }
}

extension ModuleCompiler {
    /// The canonical form of the row `alias` of `side`.
    func projection(_ side: Side, alias: String) -> Projection {
        var projection = Projection()
        var waiting: [SQL] = []
        let app = integration.app(side)
        for (index, field) in module.fields.enumerated() {
            let column: SQL = "\(raw: alias).\(identifier: field.column(side).name)"
            switch field.kind {
            case .value:
                projection.inputs.append(CanonicalInput(sql: column, type: field.column(side)))
            case .lookup(let parent):
                let link = "\(alias)_lk\(index)"
                projection.joins += """
                     LEFT JOIN tandem.links \(raw: link) ON \(raw: link).integration_id = \(Self.integrationID)\
                     AND \(raw: link).module = \(literal: parent) AND \(raw: link).\(raw: side.rawValue)_id = \(column)::text
                    """
                projection.inputs.append(CanonicalInput(sql: "CASE WHEN \(column) IS NULL THEN NULL ELSE \(raw: link).link_id END", kind: .integer))
                waiting.append("(\(column) IS NOT NULL AND \(raw: link).link_id IS NULL)")
                projection.parents.append((parent, "\(column)::text", "(\(column) IS NOT NULL AND \(raw: link).link_id IS NULL)"))
            case .owner:
                let user = "\(alias)_ow\(index)"
                projection.joins += """
                     LEFT JOIN \(qualified: app.users.schema, app.users.name) \(raw: user)\
                     ON \(raw: user).\(identifier: app.userKey.name) = \(column)
                    """
                projection.inputs.append(CanonicalInput(sql: "lower(btrim(\(raw: user).\(identifier: app.emailColumn)))", kind: .text))
            case .mapped(let map):
                guard side == .pipeline, let context = module.fields.first(where: { $0.name == map.contextField }) else {
                    // The canonical form of a mapped value is the CRM app's value.
                    projection.inputs.append(CanonicalInput(sql: column, type: field.column(side)))
                    continue
                }
                let entry = "\(alias)_vm\(index)"
                let contextColumn: SQL = "\(raw: alias).\(identifier: context.column(side).name)"
                projection.joins += """
                     LEFT JOIN tandem.value_maps \(raw: entry) ON \(raw: entry).integration_id = \(Self.integrationID)\
                     AND \(raw: entry).module = \(literal: module.name) AND \(raw: entry).field = \(literal: field.name)\
                     AND \(raw: entry).direction = 'to_crm' AND \(raw: entry).context = \(contextColumn)::text\
                     AND \(raw: entry).source_value = \(column)::text
                    """
                projection.inputs.append(CanonicalInput(sql: """
                    CASE WHEN \(column) IS NULL THEN NULL ELSE coalesce(to_jsonb(\(raw: entry).target_value),\
                     jsonb_build_object('unmapped', \(column)::text, 'context', \(contextColumn)::text)) END
                    """, kind: .json))
            case .parent(let reference):
                var cases: [SQL] = []
                for (number, option) in reference.options(side).enumerated() {
                    let link = "\(alias)_pl\(index)_\(number)"
                    let condition = parentCondition(option, alias: alias)
                    projection.joins += """
                         LEFT JOIN tandem.links \(raw: link) ON \(raw: link).integration_id = \(Self.integrationID)\
                         AND \(raw: link).module = \(literal: option.module) AND \(raw: link).\(raw: side.rawValue)_id = \(raw: alias).\(identifier: option.idColumn.name)::text\
                         AND \(condition)
                        """
                    cases.append("WHEN \(condition) THEN jsonb_build_array(\(literal: option.module), \(raw: link).link_id)")
                    waiting.append("(\(condition) AND \(raw: link).link_id IS NULL)")
                    projection.parents.append((option.module, "\(raw: alias).\(identifier: option.idColumn.name)::text", "(\(condition) AND \(raw: link).link_id IS NULL)"))
                }
                projection.inputs.append(CanonicalInput(sql: cases.isEmpty ? "NULL::jsonb" : "CASE \(SQL.join(cases, separator: " ")) END", kind: .json))
            }
        }
        if !waiting.isEmpty { projection.waiting = SQL.join(waiting, separator: " OR ") }
        return projection
    }

    /// A record of `alias` refers to its parent through `option`.
    func parentCondition(_ option: ParentOption, alias: String) -> SQL {
        var condition: SQL = "\(raw: alias).\(identifier: option.idColumn.name) IS NOT NULL"
        if let discriminator = option.discriminator, let value = option.discriminatorValue {
            condition += " AND \(raw: alias).\(identifier: discriminator.name)::text = \(literal: value)"
        }
        return "(\(condition))"
    }

    /// The columns to write into `side` for field `index`, from its canonical
    /// form; `sibling` gives the canonical form of another field of the same
    /// source record (a stage needs its pipeline).
    func assignments(_ side: Side, field index: Int, canonical: SQL, sibling: (Int) -> SQL) -> [(Column, SQL)] {
        let field = module.fields[index]
        let column = field.column(side)
        switch field.kind {
        case .value:
            return [(column, "(\(canonical) #>> '{}')::\(raw: column.baseType)")]
        case .lookup:
            return [(column, "(SELECT fl.\(raw: side.rawValue)_id FROM tandem.links fl WHERE fl.link_id = (\(canonical) #>> '{}')::bigint)::\(raw: column.baseType)")]
        case .owner:
            return [(column, owner(side, email: "\(canonical) #>> '{}'", column: column))]
        case .mapped(let map):
            if side == .crm {
                return [(column, "tandem._mapped_value(\(canonical))::\(raw: column.baseType)")]
            }
            let context = module.fields.firstIndex { $0.name == map.contextField }.map { sibling($0) } ?? "NULL::jsonb"
            return [(column, """
                tandem._map_value(\(Self.integrationID), \(literal: module.name), \(literal: field.name),\
                 \(context) #>> '{}', \(canonical) #>> '{}')::\(raw: column.baseType)
                """)]
        case .parent(let reference):
            let options = reference.options(side)
            return field.columns(side).map { column -> (Column, SQL) in
                var cases: [SQL] = []
                for option in options {
                    if option.discriminator?.name == column.name, let value = option.discriminatorValue {
                        cases.append("WHEN \(literal: option.module) THEN \(literal: value)")
                    } else if option.idColumn.name == column.name {
                        cases.append("WHEN \(literal: option.module) THEN (SELECT fl.\(raw: side.rawValue)_id FROM tandem.links fl WHERE fl.link_id = (\(canonical) ->> 1)::bigint)")
                    }
                }
                let value: SQL = cases.isEmpty ? "NULL" : "CASE \(canonical) ->> 0 \(SQL.join(cases, separator: " ")) END"
                return (column, "(\(value))::\(raw: column.baseType)")
            }
        }
    }

    /// The columns to write into `target` for field `index`, straight from the
    /// source row `alias` of the other side (used when creating records).
    func converted(_ target: Side, field index: Int, alias: String) -> [(Column, SQL)] {
        let field = module.fields[index]
        let source = target.other
        let sourceColumn: SQL = "\(raw: alias).\(identifier: field.column(source).name)"
        let column = field.column(target)
        switch field.kind {
        case .value:
            return [(column, "CAST(\(sourceColumn) AS \(raw: column.baseType))")]
        case .lookup:
            return [(column, "\(raw: "\(alias)_lk\(index)").\(raw: target.rawValue)_id::\(raw: column.baseType)")]
        case .owner:
            let app = integration.app(source)
            return [(column, owner(target, email: "lower(btrim(\(raw: "\(alias)_ow\(index)").\(identifier: app.emailColumn)))", column: column))]
        case .mapped, .parent:
            let canonical = projection(source, alias: alias).canonical
            return assignments(target, field: index, canonical: canonical[index], sibling: { canonical[$0] })
        }
    }

    /// R11: a record of `side` whose module requires a parent syncs only when
    /// it refers to a parent the other side can hold.
    func hasParent(_ side: Side, alias: String) -> SQL {
        guard module.requiresParent else { return "true" }
        var conditions: [SQL] = []
        for field in module.fields {
            switch field.kind {
            case .lookup:
                conditions.append("\(raw: alias).\(identifier: field.column(side).name) IS NOT NULL")
            case .parent(let reference):
                let targetModules = Set(reference.options(side.other).map(\.module))
                for option in reference.options(side) where targetModules.contains(option.module) {
                    conditions.append(parentCondition(option, alias: alias))
                }
            default: break
            }
        }
        return conditions.isEmpty ? "false" : "(\(SQL.join(conditions, separator: " OR ")))"
    }

    /// The owner column of `target` for field `index` of a record copied from
    /// the source row `alias`, as a join: the target app's users by
    /// normalized email (the lowest key of each), else the acting user (R13).
    /// The same user `owner(_:email:column:)` finds, for a whole batch at once.
    func ownerByJoin(_ target: Side, field index: Int, alias: String) -> (join: SQL, value: (Column, SQL)) {
        let app = integration.app(target)
        let source = integration.app(target.other)
        let key = app.userKey.name
        let users = "\(alias)_ou\(index)"
        let join: SQL = """
             LEFT JOIN (SELECT DISTINCT ON (lower(btrim(u.\(identifier: app.emailColumn))))\
             lower(btrim(u.\(identifier: app.emailColumn))) AS email, u.\(identifier: key) AS id\
             FROM \(qualified: app.users.schema, app.users.name) u\
             ORDER BY lower(btrim(u.\(identifier: app.emailColumn))), u.\(identifier: key)) \(raw: users)\
             ON \(raw: users).email = lower(btrim(\(raw: "\(alias)_ow\(index)").\(identifier: source.emailColumn)))
            """
        let column = module.fields[index].column(target)
        return (join, (column, "coalesce(\(raw: users).id, \(actingUser(target)))::\(raw: column.baseType)"))
    }

    /// The acting user of `side`, the owner when no user has the email (R13).
    func actingUser(_ side: Side) -> SQL {
        "(SELECT s.\(raw: side.rawValue)_setup_user FROM _tandem_session s)::\(raw: integration.app(side).userKey.baseType)"
    }

    /// The user of `side` with this email, else the acting user (R13).
    func owner(_ side: Side, email: SQL, column: Column) -> SQL {
        let app = integration.app(side)
        let key = app.userKey.name
        return """
            coalesce((SELECT u.\(identifier: key) FROM \(qualified: app.users.schema, app.users.name) u\
             WHERE lower(btrim(u.\(identifier: app.emailColumn))) = \(email) ORDER BY u.\(identifier: key) LIMIT 1),\
             \(actingUser(side)))::\(raw: column.baseType)
            """
    }

    /// The normalized form of a match column: case- and space-insensitive (B3).
    /// Activation creates an index on exactly this expression.
    public static func normalized(_ column: SQL) -> SQL {
        "lower(regexp_replace(btrim(\(column)::text), '\\s+', ' ', 'g'))"
    }
}
