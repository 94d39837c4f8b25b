import TandemPostgres

/// How a record of one side looks in canonical form: the shape in which both
/// sides of a field can be compared and in which mirrors are kept.
///  - a value is `to_jsonb(value)` (so 10.50 and 10.5 are equal),
///  - a lookup is the link id of the referenced record (the same on both sides),
///  - an owner is the owner's email, lower-cased and trimmed (R13).
/// SQL NULL stands for "no value"; mirrors strip nulls so that a missing key
/// reads back as NULL too.
struct Projection {
    /// One expression per field, in field order.
    var canonical: [SQL] = []
    /// The joins the expressions need.
    var joins: SQL = ""
    /// True when the record refers to a parent that is not linked yet.
    var waiting: SQL = "false"
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
                projection.canonical.append("to_jsonb(\(column))")
            case .lookup(let parent):
                let link = "\(alias)_lk\(index)"
                projection.joins += """
                     LEFT JOIN tandem.links \(raw: link) ON \(raw: link).integration_id = \(Self.integrationID)\
                     AND \(raw: link).module = \(literal: parent) AND \(raw: link).\(raw: side.rawValue)_id = \(column)::text
                    """
                projection.canonical.append("CASE WHEN \(column) IS NULL THEN NULL ELSE to_jsonb(\(raw: link).link_id) END")
                waiting.append("(\(column) IS NOT NULL AND \(raw: link).link_id IS NULL)")
            case .owner:
                let user = "\(alias)_ow\(index)"
                projection.joins += """
                     LEFT JOIN \(qualified: app.users.schema, app.users.name) \(raw: user)\
                     ON \(raw: user).\(identifier: app.userKey.name) = \(column)
                    """
                projection.canonical.append("to_jsonb(lower(btrim(\(raw: user).\(identifier: app.emailColumn))))")
            }
        }
        if !waiting.isEmpty { projection.waiting = SQL.join(waiting, separator: " OR ") }
        return projection
    }

    /// The value to write into `side` for field `index`, from its canonical form.
    func fromCanonical(_ side: Side, field index: Int, canonical: SQL) -> SQL {
        let field = module.fields[index]
        let column = field.column(side)
        switch field.kind {
        case .value:
            return "(\(canonical) #>> '{}')::\(raw: column.baseType)"
        case .lookup:
            return "(SELECT fl.\(raw: side.rawValue)_id FROM tandem.links fl WHERE fl.link_id = (\(canonical) #>> '{}')::bigint)::\(raw: column.baseType)"
        case .owner:
            return owner(side, email: "\(canonical) #>> '{}'", column: column)
        }
    }

    /// The value to write into `side` for field `index`, straight from the
    /// source row `alias` of the other side (used when creating records).
    func converted(_ target: Side, field index: Int, alias: String) -> SQL {
        let field = module.fields[index]
        let source = target.other
        let sourceColumn: SQL = "\(raw: alias).\(identifier: field.column(source).name)"
        let column = field.column(target)
        switch field.kind {
        case .value:
            return "CAST(\(sourceColumn) AS \(raw: column.baseType))"
        case .lookup:
            return "\(raw: "\(alias)_lk\(index)").\(raw: target.rawValue)_id::\(raw: column.baseType)"
        case .owner:
            let app = integration.app(source)
            return owner(target, email: "lower(btrim(\(raw: "\(alias)_ow\(index)").\(identifier: app.emailColumn)))", column: column)
        }
    }

    /// The user of `side` with this email, else the acting user (R13).
    func owner(_ side: Side, email: SQL, column: Column) -> SQL {
        let app = integration.app(side)
        let key = app.userKey.name
        return """
            coalesce((SELECT u.\(identifier: key) FROM \(qualified: app.users.schema, app.users.name) u\
             WHERE lower(btrim(u.\(identifier: app.emailColumn))) = \(email) ORDER BY u.\(identifier: key) LIMIT 1),\
             (SELECT s.\(raw: side.rawValue)_setup_user FROM _tandem_session s)::\(raw: app.userKey.baseType))::\(raw: column.baseType)
            """
    }

    /// `jsonb` object of the canonical values, nulls stripped (for mirrors).
    /// jsonb_build_object takes at most 100 arguments: build in slices.
    func mirrorObject(_ values: [SQL]) -> SQL {
        var slices: [SQL] = []
        var index = 0
        while index < values.count || slices.isEmpty {
            let end = min(index + 40, values.count)
            let pairs = (index..<end).map { "\(literal: module.fields[$0].name), \(values[$0])" as SQL }
            slices.append("jsonb_build_object(\(SQL.join(pairs, separator: ", ")))")
            index = end
            if values.isEmpty { break }
        }
        return "jsonb_strip_nulls(\(SQL.join(slices, separator: " || ")))"
    }

    /// The normalized form of a match column: case- and space-insensitive (B3).
    /// Activation creates an index on exactly this expression.
    public static func normalized(_ column: SQL) -> SQL {
        "lower(regexp_replace(btrim(\(column)::text), '\\s+', ' ', 'g'))"
    }
}
