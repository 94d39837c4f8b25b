import TandemCore
import TandemPostgres

/// Tandem as a guest in a shared database (B10): the privileges its own role
/// needs on the apps' objects (README, "Roles"), checked before they are used,
/// so that a missing grant is named with the statement that gives it instead
/// of surfacing as PostgreSQL's "permission denied for schema crm".
extension Engine {
    /// One privilege on one object: `object` is the schema's name for a
    /// schema, else a quoted qualified name.
    struct Requirement: Hashable {
        enum Kind: String { case schema, table, view, sequence }
        let kind: Kind
        let object: String
        let privilege: String
        /// Why Tandem needs it, for the message.
        let purpose: String
    }

    /// The role this connection runs as.
    func currentRole() throws -> String {
        try connection.execute("SELECT current_user::text").scalar ?? "?"
    }

    /// The requirements that are not met, each as a sentence naming the
    /// privilege, the object and the GRANT that gives it. Objects that do not
    /// exist are left to validation, which names them.
    func missingPrivileges(_ requirements: [Requirement]) throws -> [String] {
        var seen = Set<String>()
        let unique = requirements.filter { seen.insert("\($0.kind) \($0.object) \($0.privilege)").inserted }
        guard !unique.isEmpty else { return [] }
        let rows = SQL.join(unique.enumerated().map { index, requirement -> SQL in
            "(\(index), \(requirement.kind.rawValue), \(requirement.object), \(requirement.privilege))"
        }, separator: ", ")
        let missing = try connection.execute("""
            SELECT r.n::int FROM (VALUES \(rows)) AS r(n, kind, object, privilege)
             WHERE NOT CASE r.kind
                       WHEN 'schema' THEN NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = r.object)
                                          OR has_schema_privilege(r.object, r.privilege)
                       WHEN 'sequence' THEN to_regclass(r.object) IS NULL OR has_sequence_privilege(r.object, r.privilege)
                       ELSE to_regclass(r.object) IS NULL OR has_table_privilege(r.object, r.privilege) END
             ORDER BY 1
            """).rows.compactMap { $0[0].flatMap { Int($0) } }
        guard !missing.isEmpty else { return [] }
        let role = SQL.quote(identifier: try currentRole())
        return missing.map { index in
            let requirement = unique[index]
            switch requirement.kind {
            case .schema:
                let name = SQL.quote(identifier: requirement.object)
                return "\(requirement.privilege) on schema \(requirement.object) (\(requirement.purpose)): GRANT \(requirement.privilege) ON SCHEMA \(name) TO \(role)"
            case .sequence:
                return "USAGE on sequence \(requirement.object) (\(requirement.purpose)): GRANT USAGE ON SEQUENCE \(requirement.object) TO \(role)"
            case .table, .view:
                return "\(requirement.privilege) on \(requirement.kind.rawValue) \(requirement.object) (\(requirement.purpose)): GRANT \(requirement.privilege) ON \(requirement.object) TO \(role)"
            }
        }
    }

    /// Before reading anything of the apps: USAGE on their schemas, and SELECT
    /// on the field_settings tables that validation reads (R8).
    func schemaPrivilegeProblems(schemas: [String]) throws -> [String] {
        var requirements = Set(schemas).sorted().map {
            Requirement(kind: .schema, object: $0, privilege: "USAGE", purpose: "to read and write the app's tables")
        }
        let present = try missingPrivileges(requirements)
        if !present.isEmpty { return present }
        for schema in Set(schemas).sorted() {
            let settings = SQL.quote(identifier: schema) + "." + SQL.quote(identifier: "field_settings")
            if try connection.execute("SELECT to_regclass(\(settings)) IS NOT NULL").scalar == "t" {
                requirements.append(Requirement(kind: .table, object: settings, privilege: "SELECT", purpose: "mandatory and custom fields (R8)"))
            }
        }
        return try missingPrivileges(requirements)
    }

    /// What syncing the integration's tables needs: reading users and org
    /// (R5, R6, R13), reading, inserting and updating every synced table and
    /// putting the capture triggers on it, reading the CRM views (R7), and
    /// taking new keys from the key columns' sequences.
    func tablePrivilegeProblems(_ integration: Integration?, directories: [Side: AppDirectory]?) throws -> [String] {
        var requirements: [Requirement] = []
        for side in Side.allCases {
            guard let app = directories?[side] else { continue }
            requirements.append(Requirement(kind: .table, object: quoted(app.users), privilege: "SELECT", purpose: "acting user and owners (R5, R13)"))
            if side == .pipeline {
                requirements.append(Requirement(kind: .table, object: quoted(app.org), privilege: "SELECT", purpose: "the edition (R6)"))
            }
        }
        var keys: [(table: String, column: String)] = []
        for module in integration?.modules ?? [] {
            for side in Side.allCases {
                let table = quoted(module.side(side).table)
                for privilege in ["SELECT", "INSERT", "UPDATE"] {
                    requirements.append(Requirement(kind: .table, object: table, privilege: privilege, purpose: "synced table"))
                }
                requirements.append(Requirement(kind: .table, object: table, privilege: "TRIGGER", purpose: "change capture"))
                if let view = module.side(side).view {
                    requirements.append(Requirement(kind: .view, object: quoted(view), privilege: "SELECT", purpose: "the CRM view of \(module.name) (R7)"))
                }
                keys.append((table, module.side(side).key.name))
            }
            for field in module.fields {
                guard case .mapped(let map) = field.kind else { continue }
                for side in Side.allCases {
                    requirements.append(Requirement(kind: .table, object: quoted(map.domain(side).table), privilege: "SELECT",
                                                    purpose: "the values of \(module.name).\(field.name) (R8)"))
                }
            }
        }
        var problems = try missingPrivileges(requirements)
        if !keys.isEmpty && problems.isEmpty {
            // A key column whose default draws from a sequence: Tandem gives new
            // records their keys from it.
            let pairs = SQL.join(keys.map { "(\($0.table), \($0.column))" }, separator: ", ")
            let sequences = try connection.execute("""
                SELECT DISTINCT s.sequence FROM (VALUES \(pairs)) AS k(table_name, column_name),
                       LATERAL (SELECT pg_get_serial_sequence(k.table_name, k.column_name) AS sequence) s
                 WHERE s.sequence IS NOT NULL ORDER BY 1
                """).rows.compactMap { $0[0] }
            problems += try missingPrivileges(sequences.map {
                Requirement(kind: .sequence, object: $0, privilege: "USAGE", purpose: "keys of new records")
            })
        }
        return problems
    }

    /// The error for missing privileges: every one named, with its GRANT.
    func privilegeError(_ problems: [String]) throws -> TandemError {
        TandemError(.permission, summary: "the role \(try currentRole()) that runs Tandem lacks privileges on the apps' objects (README, \"Roles\"):",
                    problems: problems, sqlstate: "42501")
    }

    /// Creates a match index, which only the table's owner (or a member of the
    /// owner's role) can do. An index that exists is fine whoever made it;
    /// otherwise, for a table Tandem's role does not own, `MissingMatchIndex`
    /// gives the statement for the owner to run.
    func createIndexAsGuest(_ statement: SQL, table: TableName, name: String) throws {
        let index = SQL.quote(identifier: table.schema) + "." + SQL.quote(identifier: name)
        let row = try connection.execute("""
            SELECT to_regclass(\(index)) IS NOT NULL, pg_has_role(c.relowner, 'USAGE')
              FROM pg_class c WHERE c.oid = \(quoted(table))::regclass
            """).rows.first ?? []
        if row.first == "t" { return }
        if row.count > 1 && row[1] == "f" {
            throw MissingMatchIndex(table: table, statement: statement.render().text + ";")
        }
        try connection.execute(statement)
    }
}

/// A match index that Tandem's role may not create: the statement for the
/// table's owner to run.
struct MissingMatchIndex: Error {
    let table: TableName
    let statement: String
}

