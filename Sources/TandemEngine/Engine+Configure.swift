import Foundation
import TandemCore
import TandemPostgres

extension Engine {
    /// Validates a configuration against the live catalog and the apps' users
    /// and org (R5, R6, R7, R8) without storing anything.
    @discardableResult
    public func validate(_ json: String) throws -> (Integration, setupUsers: [Side: String]) {
        let configuration = try Configuration.parse(json)
        return try database {
            // Missing grants are named with the GRANT that gives them (B10),
            // before anything of the apps is read.
            let schemaProblems = try schemaPrivilegeProblems(schemas: [configuration.pipeline.schema, configuration.crm.schema])
            if !schemaProblems.isEmpty { throw try privilegeError(schemaProblems) }
            let catalog = try readCatalog(schemas: [configuration.pipeline.schema, configuration.crm.schema])
            var integration: Integration?
            var configurationError: TandemError?
            do {
                integration = try Validator.validate(configuration, against: catalog)
            } catch let error as TandemError {
                configurationError = error
            }
            var users: [Side: String] = [:]
            var permissionProblems: [String] = []
            let directories = Validator.directories(configuration, against: catalog)
            let privilegeProblems = try tablePrivilegeProblems(integration, directories: directories)
            if !privilegeProblems.isEmpty {
                let error = try privilegeError(privilegeProblems)
                guard let configurationError else { throw error }
                throw TandemError(.config, configurationError.message + "\n" + error.message)
            }
            if let directories {
                (users, permissionProblems) = try checkPermissions(directories)
            }
            if let configurationError {
                // One error names every problem: the configuration's and R5/R6.
                let extra = permissionProblems.map { "  - " + $0 }.joined(separator: "\n")
                throw TandemError(.config, configurationError.message + (extra.isEmpty ? "" : "\n" + extra))
            }
            // Value maps: every value either app allows must have a mapping (R8).
            var valueProblems: [String] = []
            for module in integration?.modules ?? [] {
                for field in module.fields {
                    guard case .mapped(let map) = field.kind else { continue }
                    var domains: [Side: [(context: String, value: String)]] = [:]
                    for side in Side.allCases {
                        let domain = map.domain(side)
                        domains[side] = try connection.execute("""
                            SELECT DISTINCT d.\(identifier: domain.contextColumn)::text, d.\(identifier: domain.valueColumn)::text
                              FROM \(qualified: domain.table.schema, domain.table.name) d
                            """).rows.compactMap { row in row[0].flatMap { context in row[1].map { (context, $0) } } }
                    }
                    valueProblems += Validator.valueMapProblems(field: field.name, module: module.name, map: map, domains: domains)
                }
            }
            if !valueProblems.isEmpty {
                let extra = permissionProblems.map { "  - " + $0 }
                throw TandemError(.config, summary: "configuration is not valid:", problems: valueProblems + extra)
            }
            if !permissionProblems.isEmpty {
                throw TandemError(.permission, summary: "the integration cannot be set up:", problems: permissionProblems)
            }
            guard let integration else {
                throw TandemError(.error, "validation found no problem but produced no integration")
            }
            return (integration, users)
        }
    }

    /// Validates, stores and binds an integration. Idempotent for the same JSON.
    public func configure(_ json: String) throws {
        let (integration, users) = try validate(json)
        try database {
            try requireSchema()
            try connection.execute("BEGIN")
            do {
                try checkTabsInUseAreKept(json, integration: integration.name)
                let id = try store(integration, json: json, users: users)
                try connection.execute("COMMIT")
                try bind(id: id, integration: integration, setupUsers: users)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Binds to an integration stored earlier (by this or another host).
    public func attach(_ name: String) throws {
        let stored = try database { () -> QueryResult in
            try requireSchema()
            return try connection.execute("SELECT integration_id, config::text FROM tandem.integrations WHERE name = \(name)")
        }
        guard let row = stored.rows.first, let id = row[0].flatMap({ Int64($0) }), let json = row[1] else {
            throw TandemError(.notFound, "no integration named '\(name)' is configured in this database")
        }
        let (integration, users) = try validate(json)
        try database { try bind(id: id, integration: integration, setupUsers: users) }
    }

    /// A configuration change never loses a tab's state: a tab that syncs,
    /// runs its initial sync or is inactive stays in the configuration, and
    /// its views and field mappings change only through edit sync (R14).
    /// A removed integration's name is taken until it is purged (R17).
    func checkTabsInUseAreKept(_ json: String, integration name: String) throws {
        let stored = try connection.execute("""
            SELECT integration_id, config::text, removed_at IS NOT NULL FROM tandem.integrations WHERE name = \(name) FOR UPDATE
            """).rows.first
        guard let stored, let id = stored[0].flatMap({ Int64($0) }), let storedJSON = stored[1] else { return }
        if stored[2] == "t" {
            throw TandemError(.state, "integration '\(name)' was removed (R17): remove it again with purge to set it up anew under this name, or choose another name", extended: ExtendedCode.stateRemoved)
        }
        let before = try Configuration.parse(storedJSON), after = try Configuration.parse(json)
        var problems: [String] = []
        for (tabName, row) in try tabStates(id).sorted(by: { $0.key < $1.key }) {
            guard let tab = Tab(rawValue: tabName), let state = TabState(rawValue: row.state), state != .configured, state != .removed else { continue }
            guard after.tabs.contains(tab) else {
                let instead = tab == .contactsCompanies ? "remove the integration to stop all sync (R17)" : "deactivate it to pause it (R15)"
                problems.append("the configuration leaves out tab \(tabName), which is \(state.rawValue): keep it in the configuration, or \(instead)")
                continue
            }
            for module in before.modules(of: tab) where module != after.module(named: module.name) {
                problems.append("tab \(tabName) is \(state.rawValue): the view and field mapping of module \(module.name) change only through edit sync (R14)")
            }
        }
        if !problems.isEmpty {
            throw TandemError(.state, summary: "the configuration would change tabs in use:", problems: problems, extended: ExtendedCode.stateNotAllowed)
        }
    }

    func requireSchema() throws {
        let installed = try connection.execute("SELECT to_regclass('tandem.integrations') IS NOT NULL").scalar
        if installed != "t" {
            throw TandemError(.state, "the tandem schema is not installed in this database: call install first", extended: ExtendedCode.stateNotInstalled)
        }
    }

    /// What the catalog says about the apps' schemas, in two queries.
    func readCatalog(schemas: [String]) throws -> Catalog {
        guard let first = schemas.first else { return Catalog(schemas: [], relations: [:], declaredFields: [:]) }
        let second = schemas.count > 1 ? schemas[1] : first
        let present = Set(try connection.execute("SELECT nspname FROM pg_namespace WHERE nspname IN (\(first), \(second))").rows.compactMap { $0[0] })
        let columns = try connection.execute("""
            SELECT n.nspname, c.relname, c.relkind::text, a.attname,
                   format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod), t.typcategory::text,
                   a.attnotnull, (a.atthasdef OR a.attidentity <> ''), a.attgenerated <> '',
                   CASE WHEN a.attidentity <> '' THEN
                             format('nextval(%L::regclass)', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
                        WHEN a.atthasdef AND a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              JOIN pg_type t ON t.oid = a.atttypid
              LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
             WHERE n.nspname IN (\(first), \(second)) AND c.relkind IN ('r', 'p', 'v', 'm')
            """)
        var kinds: [TableName: Character] = [:]
        var byTable: [TableName: [String: Column]] = [:]
        for row in columns.rows {
            guard let schema = row[0], let table = row[1], let kind = row[2]?.first, let name = row[3],
                  let base = row[4], let display = row[5], let category = row[6]?.first else { continue }
            let tableName = TableName(schema: schema, name: table)
            kinds[tableName] = kind
            byTable[tableName, default: [:]][name] = Column(
                name: name, baseType: base, displayType: display, category: category,
                notNull: row[7] == "t", hasDefault: row[8] == "t", isGenerated: row[9] == "t",
                defaultExpression: row[10])
        }
        var relations: [TableName: Catalog.Relation] = [:]
        for (table, kind) in kinds { relations[table] = Catalog.Relation(kind: kind, columns: byTable[table] ?? [:]) }

        // An app may declare mandatory and custom fields in <schema>.field_settings (R8).
        var declared: [TableName: [String: Catalog.DeclaredField]] = [:]
        for schema in Set(schemas) {
            guard let settings = relations[TableName(schema: schema, name: "field_settings")]?.columns else { continue }
            guard ["table_name", "column_name", "mandatory", "custom"].allSatisfy({ settings[$0] != nil }) else { continue }
            let rows = try connection.execute("SELECT table_name::text, column_name::text, mandatory, custom FROM \(qualified: schema, "field_settings")")
            for row in rows.rows {
                guard let table = row[0], let column = row[1] else { continue }
                declared[TableName(schema: schema, name: table), default: [:]][column] =
                    Catalog.DeclaredField(mandatory: row[2] == "t", custom: row[3] == "t")
            }
        }
        return Catalog(schemas: present, relations: relations, declaredFields: declared)
    }

    static let editions = ["Express", "Premier", "Bigin 360"]

    /// R5: the acting user is an Administrator with the CEO role in both apps.
    /// R6: the pipeline app's edition is Express, Premier or Bigin 360.
    /// Returns each acting user's key (owner of records whose owner has no user there, R13).
    func checkPermissions(_ directories: [Side: AppDirectory]) throws -> ([Side: String], [String]) {
        var problems: [String] = []
        var keys: [Side: String] = [:]
        for side in Side.allCases {
            guard let app = directories[side] else { continue }
            let rows = try connection.execute("""
                SELECT u.\(identifier: app.userKey.name)::text, u.\(identifier: app.profileColumn)::text, u.\(identifier: app.roleColumn)::text
                  FROM \(qualified: app.users.schema, app.users.name) u
                 WHERE lower(btrim(u.\(identifier: app.emailColumn)::text)) = lower(btrim(\(app.actingUser)))
                 ORDER BY 1 LIMIT 1
                """).rows
            guard let row = rows.first, let key = row[0] else {
                problems.append("the \(side.appName) has no user with email \(app.actingUser) (R5)")
                continue
            }
            let profile = row[1] ?? "", role = row[2] ?? ""
            if profile.caseInsensitiveCompare("Administrator") != .orderedSame || role.caseInsensitiveCompare("CEO") != .orderedSame {
                problems.append("\(app.actingUser) is '\(profile)' with role '\(role)' in the \(side.appName); setting up the integration needs the Administrator profile and the CEO role in both apps (R5)")
            }
            keys[side] = key
        }
        guard let org = directories[.pipeline] else { return (keys, problems) }
        let editions = try connection.execute("SELECT o.\(identifier: org.editionColumn)::text FROM \(qualified: org.org.schema, org.org.name) o").rows.map { $0[0] ?? "" }
        if editions.isEmpty {
            problems.append("the pipeline app's org table \(org.org) is empty: its edition decides whether the integration is available (R6)")
        }
        for edition in editions where !Self.editions.contains(where: { $0.caseInsensitiveCompare(edition) == .orderedSame }) {
            problems.append("the pipeline app's edition is '\(edition)'; the integration is available only in \(Self.editions.joined(separator: ", ")) (R6)")
        }
        return (keys, problems)
    }

    /// Stores the integration, its tabs, module pairs and field mappings.
    func store(_ integration: Integration, json: String, users: [Side: String]) throws -> Int64 {
        let row = try connection.execute("""
            INSERT INTO tandem.integrations (name, config, conflict_policy, pipeline_setup_user_id, crm_setup_user_id)
            VALUES (\(integration.name), \(json)::jsonb, \(integration.policy.rawValue), \(users[.pipeline]), \(users[.crm]))
            ON CONFLICT (name) DO UPDATE
               SET config = EXCLUDED.config, conflict_policy = EXCLUDED.conflict_policy,
                   pipeline_setup_user_id = EXCLUDED.pipeline_setup_user_id, crm_setup_user_id = EXCLUDED.crm_setup_user_id,
                   updated_at = CASE WHEN tandem.integrations.config = EXCLUDED.config THEN tandem.integrations.updated_at ELSE now() END,
                   config_version = tandem.integrations.config_version
                                    + CASE WHEN tandem.integrations.config = EXCLUDED.config THEN 0 ELSE 1 END
            RETURNING integration_id
            """)
        guard let id = row.scalar.flatMap({ Int64($0) }) else { throw TandemError(.error, "storing the integration returned no id") }
        try connection.execute("""
            INSERT INTO tandem.sync_cursors (integration_id, snapshot)
            VALUES (\(id), pg_current_snapshot()) ON CONFLICT DO NOTHING
            """)
        // One statement per table, whatever the size of the configuration:
        // the rows travel as one JSON array each (issue 8).
        try connection.execute("""
            INSERT INTO tandem.tabs (integration_id, tab)
            SELECT \(id), r.tab FROM jsonb_to_recordset(\(try Self.rows(integration.tabs.map { ["tab": $0.rawValue] }))::jsonb) AS r(tab text)
            ON CONFLICT DO NOTHING
            """)
        let modules: [[String: Any]] = integration.modules.map { module in
            [
                "module": module.name, "tab": module.tab.rawValue, "position": module.position,
                "pipeline_table": quoted(module.pipeline.table), "pipeline_key": module.pipeline.key.name,
                "crm_table": quoted(module.crm.table), "crm_key": module.crm.key.name,
                "crm_view": module.crm.view.map(quoted) ?? NSNull(),
            ]
        }
        try connection.execute("""
            DELETE FROM tandem.module_pairs m
             WHERE m.integration_id = \(id)
               AND m.module NOT IN (SELECT r.module FROM jsonb_to_recordset(\(try Self.rows(modules))::jsonb) AS r(module text))
            """)
        try connection.execute("""
            INSERT INTO tandem.module_pairs (integration_id, module, tab, position, pipeline_table, pipeline_key, crm_table, crm_key, crm_view)
            SELECT \(id), r.module, r.tab, r.position, r.pipeline_table::regclass, r.pipeline_key,
                   r.crm_table::regclass, r.crm_key, r.crm_view::regclass
              FROM jsonb_to_recordset(\(try Self.rows(modules))::jsonb)
                   AS r(module text, tab text, position int, pipeline_table text, pipeline_key text,
                        crm_table text, crm_key text, crm_view text)
            ON CONFLICT (integration_id, module) DO UPDATE
               SET tab = EXCLUDED.tab, position = EXCLUDED.position,
                   pipeline_table = EXCLUDED.pipeline_table, pipeline_key = EXCLUDED.pipeline_key,
                   crm_table = EXCLUDED.crm_table, crm_key = EXCLUDED.crm_key, crm_view = EXCLUDED.crm_view
            """)
        var fields: [[String: Any]] = []
        var values: [[String: Any]] = []
        for module in integration.modules {
            for field in module.fields {
                fields.append([
                    "module": module.name, "field": field.name, "pipeline_column": field.pipeline.name,
                    "crm_column": field.crm.name, "kind": field.kindName, "lookup_module": field.lookupModule ?? NSNull(),
                ])
                guard case .mapped(let map) = field.kind else { continue }
                for (direction, contexts) in [("to_crm", map.toCRM), ("to_pipeline", map.toPipeline)] {
                    for (context, pairs) in contexts {
                        for (source, target) in pairs {
                            values.append(["module": module.name, "field": field.name, "direction": direction,
                                           "context": context, "source_value": source, "target_value": target])
                        }
                    }
                }
            }
        }
        try connection.execute("DELETE FROM tandem.field_mappings WHERE integration_id = \(id)")
        try connection.execute("DELETE FROM tandem.value_maps WHERE integration_id = \(id)")
        try connection.execute("""
            INSERT INTO tandem.field_mappings (integration_id, module, field, pipeline_column, crm_column, kind, lookup_module)
            SELECT \(id), r.module, r.field, r.pipeline_column, r.crm_column, r.kind, r.lookup_module
              FROM jsonb_to_recordset(\(try Self.rows(fields))::jsonb)
                   AS r(module text, field text, pipeline_column text, crm_column text, kind text, lookup_module text)
            """)
        try connection.execute("""
            INSERT INTO tandem.value_maps (integration_id, module, field, direction, context, source_value, target_value)
            SELECT \(id), r.module, r.field, r.direction, r.context, r.source_value, r.target_value
              FROM jsonb_to_recordset(\(try Self.rows(values))::jsonb)
                   AS r(module text, field text, direction text, context text, source_value text, target_value text)
            """)
        return id
    }

    /// The layout of each module's compact mirrors (migration 0012): the
    /// list of its field names, added to tandem.mirror_layouts when new, and
    /// noted in the session table `_tandem_layouts` that the pass's mirror
    /// writes read.
    func bindMirrorLayouts(id: Int64, integration: Integration) throws {
        try connection.execute("CREATE TEMP TABLE IF NOT EXISTS _tandem_layouts (module text PRIMARY KEY, layout_id int NOT NULL)")
        try connection.execute("TRUNCATE _tandem_layouts")
        for module in integration.modules {
            let names = String(decoding: try JSONSerialization.data(withJSONObject: module.fields.map(\.name)), as: UTF8.self)
            let fields: SQL = "ARRAY(SELECT f FROM jsonb_array_elements_text(\(names)::jsonb) WITH ORDINALITY x(f, n) ORDER BY n)"
            // Two statements: a layout another host added meanwhile is seen
            // by the second (READ COMMITTED), after the first waited for it.
            try connection.execute("""
                INSERT INTO tandem.mirror_layouts (integration_id, module, fields) VALUES (\(id), \(module.name), \(fields))
                ON CONFLICT (integration_id, module, fields) WHERE forgotten = '{}' DO NOTHING
                """)
            try connection.execute("""
                INSERT INTO _tandem_layouts (module, layout_id)
                SELECT \(module.name), l.layout_id FROM tandem.mirror_layouts l
                 WHERE l.integration_id = \(id) AND l.module = \(module.name) AND l.fields = \(fields) AND l.forgotten = '{}'
                """)
        }
    }

    /// Rows as the text of a JSON array of objects, one bind parameter.
    static func rows(_ rows: [[String: Any]]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: rows)
        return String(decoding: data, as: UTF8.self)
    }

    func quoted(_ table: TableName) -> String {
        SQL.quote(identifier: table.schema) + "." + SQL.quote(identifier: table.name)
    }

    /// Prepares this connection for the integration: session settings, the
    /// temporary work tables of every module, and LISTEN.
    func bind(id: Int64, integration: Integration, setupUsers: [Side: String]) throws {
        if let previous = bound, previous.id != id, isActiveSyncer {
            try releaseSyncerLock(previous)
        }
        try connection.execute("""
            CREATE TEMP TABLE IF NOT EXISTS _tandem_session (
                integration_id bigint NOT NULL, policy text NOT NULL,
                pipeline_setup_user text NOT NULL, crm_setup_user text NOT NULL)
            """)
        try connection.execute("TRUNCATE _tandem_session")
        try connection.execute("""
            INSERT INTO _tandem_session VALUES (\(id), \(integration.policy.rawValue), \(setupUsers[.pipeline]), \(setupUsers[.crm]))
            """)
        binds += 1
        try connection.execute("CREATE TEMP TABLE IF NOT EXISTS _tandem_policies (module text PRIMARY KEY, policy text NOT NULL)")
        try bindMirrorLayouts(id: id, integration: integration)
        // The record id leads these keys: it tells rows apart at the first
        // column, where module and side are the same for a whole chunk
        // (queuing a 50,000-record chunk: 0.31 -> 0.20 s).
        try connection.execute("""
            CREATE TEMP TABLE IF NOT EXISTS _tandem_locked (module text, side text, record_id text, PRIMARY KEY (record_id, side, module))
            """)
        try connection.execute("""
            CREATE TEMP TABLE IF NOT EXISTS _tandem_candidates (
                module text, side text, record_id text, unlinked boolean NOT NULL DEFAULT false,
                scanned boolean NOT NULL DEFAULT false, matched boolean NOT NULL DEFAULT false,
                PRIMARY KEY (record_id, side, module))
            """)
        try connection.execute("CREATE TEMP TABLE IF NOT EXISTS _tandem_new_links (module text, link_id bigint)")
        try connection.execute("""
            CREATE TEMP TABLE IF NOT EXISTS _tandem_failed (
                module text, side text, record_id text, operation text, sqlstate text, message text)
            """)
        let compilers = integration.modules.map { ModuleCompiler(integration: integration, module: $0) }
        for compiler in compilers {
            for statement in compiler.temporaryTables { try connection.execute(statement) }
        }
        // Analyzed empty, the work tables are planned for the few rows a live
        // pass holds (index lookups into the apps, links and mirrors); a
        // large batch analyzes them again inside the pass.
        try connection.execute("ANALYZE \(raw: PassFunction.workTables(compilers).joined(separator: ", "))")
        let compiled = compilers.map(CompiledModule.init)
        guard let functions = PassFunction(integrationID: id, compiled: compiled, largeAbove: largeBatchAbove).definitions() else {
            throw TandemError(.error, "integration '\(integration.name)' compiled to a statement that carries a value; its pass cannot be built")
        }
        for function in functions { try connection.execute(SQL(raw: function)) }
        // A live pass is parsed and planned once per session (the version is
        // a parameter of it).
        try connection.prepare(PassFunction.livePassStatement, PassFunction.livePass(configVersion: 0))
        try connection.execute("LISTEN tandem")
        try joinFollowers()
        let version = try connection.execute("SELECT config_version FROM tandem.integrations WHERE integration_id = \(id)").scalar
        bound = Bound(id: id, integration: integration, compilers: compilers, compiled: compiled,
                      configVersion: version.flatMap { Int64($0) } ?? 0)
    }
}
