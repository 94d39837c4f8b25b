/// What the live catalog says about the apps' schemas; read by the engine,
/// judged here.
public struct Catalog: Sendable {
    public struct Relation: Sendable {
        /// pg_class.relkind: r table, p partitioned table, v view, m materialized view.
        public let kind: Character
        public let columns: [String: Column]

        public init(kind: Character, columns: [String: Column]) {
            self.kind = kind
            self.columns = columns
        }

        public var isTable: Bool { kind == "r" || kind == "p" }
    }

    /// A field an app declares mandatory or custom (its `field_settings` table).
    public struct DeclaredField: Sendable {
        public let mandatory: Bool
        public let custom: Bool

        public init(mandatory: Bool, custom: Bool) {
            self.mandatory = mandatory
            self.custom = custom
        }
    }

    public var schemas: Set<String>
    public var relations: [TableName: Relation]
    public var declaredFields: [TableName: [String: DeclaredField]]

    public init(schemas: Set<String>, relations: [TableName: Relation], declaredFields: [TableName: [String: DeclaredField]]) {
        self.schemas = schemas
        self.relations = relations
        self.declaredFields = declaredFields
    }
}

/// Checks a configuration against the catalog (R7, R8) and resolves it into
/// an `Integration`. Every problem found is named in the one error thrown.
public struct Validator {
    let configuration: Configuration
    let catalog: Catalog
    var problems: [String] = []

    public static func validate(_ configuration: Configuration, against catalog: Catalog) throws -> Integration {
        var validator = Validator(configuration: configuration, catalog: catalog)
        let integration = validator.resolve()
        guard validator.problems.isEmpty, let integration else {
            throw TandemError(.config, summary: "configuration is not valid:", problems: validator.problems)
        }
        return integration
    }

    /// Where each app keeps its users and org, when those resolve, so that
    /// R5 and R6 can be checked even when other parts of the configuration
    /// are wrong (every problem is reported at once).
    public static func directories(_ configuration: Configuration, against catalog: Catalog) -> [Side: AppDirectory]? {
        var validator = Validator(configuration: configuration, catalog: catalog)
        guard let pipeline = validator.directory(.pipeline), let crm = validator.directory(.crm) else { return nil }
        return [.pipeline: pipeline, .crm: crm]
    }

    mutating func resolve() -> Integration? {
        let pipeline = directory(.pipeline)
        let crm = directory(.crm)
        var modules: [Module] = []
        for (position, entry) in configuration.modules.enumerated() {
            if let module = module(entry, position: position, resolvedSoFar: modules) { modules.append(module) }
        }
        guard let pipeline, let crm, modules.count == configuration.modules.count else { return nil }
        return Integration(name: configuration.integration, policy: configuration.policy, pipeline: pipeline, crm: crm,
                           modules: modules, tabs: configuration.tabs, initialSyncChunk: configuration.initialSyncChunk)
    }

    mutating func relation(_ table: TableName, what: String, wantTable: Bool) -> Catalog.Relation? {
        guard catalog.schemas.contains(table.schema) else {
            problems.append("\(what): schema \(table.schema) does not exist")
            return nil
        }
        guard let relation = catalog.relations[table] else {
            problems.append("\(what): \(wantTable ? "table" : "view") \(table) does not exist")
            return nil
        }
        if wantTable && !relation.isTable {
            problems.append("\(what): \(table) is not a table")
            return nil
        }
        return relation
    }

    mutating func column(_ name: String, of table: TableName, in relation: Catalog.Relation, what: String) -> Column? {
        guard let column = relation.columns[name] else {
            problems.append("\(what): column \(table).\(name) does not exist")
            return nil
        }
        return column
    }

    mutating func directory(_ side: Side) -> AppDirectory? {
        let app = configuration.app(side)
        let what = "\(side.rawValue) app"
        let usersName = TableName(schema: app.schema, name: app.usersTable)
        let orgName = TableName(schema: app.schema, name: app.orgTable)
        guard let users = relation(usersName, what: "\(what) users", wantTable: false),
              let org = relation(orgName, what: "\(what) org", wantTable: false) else { return nil }
        let key = column(app.usersKey, of: usersName, in: users, what: "\(what) users")
        let columns = [app.emailColumn, app.profileColumn, app.roleColumn].map { column($0, of: usersName, in: users, what: "\(what) users") }
        let edition = column(app.editionColumn, of: orgName, in: org, what: "\(what) org")
        guard let key, columns.allSatisfy({ $0 != nil }), edition != nil else { return nil }
        return AppDirectory(schema: app.schema, users: usersName, userKey: key, emailColumn: app.emailColumn,
                            profileColumn: app.profileColumn, roleColumn: app.roleColumn, org: orgName,
                            editionColumn: app.editionColumn, actingUser: app.actingUser)
    }

    mutating func moduleSide(_ entry: Configuration.ModuleEntry, _ side: Side) -> ModuleSide? {
        let schema = configuration.app(side).schema
        let table = TableName(schema: schema, name: side == .pipeline ? entry.pipelineTable : entry.crmTable)
        let what = "module \(entry.name) (\(side.appName))"
        guard let relation = relation(table, what: what, wantTable: true) else { return nil }
        let keyName = side == .pipeline ? entry.pipelineKey : entry.crmKey
        guard let key = column(keyName, of: table, in: relation, what: what) else { return nil }
        if key.defaultExpression == nil {
            problems.append("\(what): key column \(table).\(key.name) has no default or identity, so Tandem cannot create records there")
        }
        var modified: Column?
        if let name = side == .pipeline ? entry.pipelineModified : entry.crmModified {
            modified = column(name, of: table, in: relation, what: what)
            if let column = modified, column.category != "D" {
                problems.append("\(what): modified-time column \(table).\(name) is \(column.displayType), not a date/time type")
            }
        }
        var view: TableName?
        if side == .crm, let viewName = entry.crmView {
            let viewTable = TableName(schema: schema, name: viewName)
            if let viewRelation = self.relation(viewTable, what: "\(what) view", wantTable: false) {
                if viewRelation.columns[keyName] == nil {
                    problems.append("\(what) view: \(viewTable) has no column \(keyName) to identify the \(table) records it selects")
                }
                view = viewTable
            }
        } else if side == .crm && entry.viewRequired {
            problems.append("\(what): exactly one CRM view must be selected (R7): set configuration.tabs.\(entry.tab.rawValue).views.\(entry.name)")
        }
        return ModuleSide(table: table, key: key, modified: modified, view: view, columns: relation.columns)
    }

    /// A parent reference's options, resolved on both sides. Options whose
    /// module is not configured are left out: such a parent never syncs.
    mutating func parentReference(_ parent: ReferenceDefaults.ParentDefault, pipeline: ModuleSide, crm: ModuleSide,
                                  label: String, resolvedSoFar: [Module]) -> ParentReference? {
        var resolved: [Side: [ParentOption]] = [:]
        for side in Side.allCases {
            let moduleSide = side == .pipeline ? pipeline : crm
            var options: [ParentOption] = []
            for option in side == .pipeline ? parent.pipeline : parent.crm {
                guard resolvedSoFar.contains(where: { $0.name == option.module }) else { continue }
                guard let idColumn = moduleSide.columns[option.idColumn] else {
                    problems.append("\(label): column \(moduleSide.table).\(option.idColumn) does not exist")
                    continue
                }
                var discriminator: Column?
                if let name = option.discriminator {
                    discriminator = moduleSide.columns[name]
                    if discriminator == nil { problems.append("\(label): column \(moduleSide.table).\(name) does not exist") }
                }
                options.append(ParentOption(module: option.module, idColumn: idColumn, discriminator: discriminator,
                                            discriminatorValue: option.value))
            }
            resolved[side] = options
        }
        return ParentReference(pipeline: resolved[.pipeline] ?? [], crm: resolved[.crm] ?? [])
    }

    mutating func valueMap(_ map: ReferenceDefaults.ValueMapDefault, label: String) -> ValueMap? {
        var domains: [Side: ValueDomain] = [:]
        for side in Side.allCases {
            let names = side == .pipeline ? map.pipelineDomain : map.crmDomain
            guard names.count == 3 else { continue }
            let table = TableName(schema: configuration.app(side).schema, name: names[0])
            guard let relation = relation(table, what: "\(label) values", wantTable: false) else { continue }
            guard column(names[1], of: table, in: relation, what: "\(label) values") != nil,
                  column(names[2], of: table, in: relation, what: "\(label) values") != nil else { continue }
            domains[side] = ValueDomain(table: table, contextColumn: names[1], valueColumn: names[2])
        }
        guard let pipelineDomain = domains[.pipeline], let crmDomain = domains[.crm] else { return nil }
        return ValueMap(contextField: map.contextField, toCRM: map.toCRM, toPipeline: map.toPipeline,
                        pipelineDomain: pipelineDomain, crmDomain: crmDomain)
    }

    /// Every value a side allows must map to a value the other side allows
    /// (per context); each problem is named. The engine reads the domains.
    public static func valueMapProblems(field: String, module: String, map: ValueMap,
                                        domains: [Side: [(context: String, value: String)]]) -> [String] {
        var problems: [String] = []
        for side in Side.allCases {
            let target = side.other
            let allowed = Set((domains[target] ?? []).map { "\($0.context)\u{1F}\($0.value)" })
            for (context, value) in (domains[side] ?? []).sorted(by: { ($0.context, $0.value) < ($1.context, $1.value) }) {
                guard let mapped = map.map(to: target)[context]?[value] else {
                    problems.append("module \(module) field \(field): \(side.appName) value '\(value)' (\(context)) has no mapping to the \(target.appName)")
                    continue
                }
                if !allowed.contains("\(context)\u{1F}\(mapped)") {
                    problems.append("module \(module) field \(field): \(side.appName) value '\(value)' (\(context)) maps to '\(mapped)', which the \(target.appName) does not have in \(context)")
                }
            }
        }
        return problems
    }

    mutating func module(_ entry: Configuration.ModuleEntry, position: Int, resolvedSoFar: [Module]) -> Module? {
        let pipeline = moduleSide(entry, .pipeline)
        let crm = moduleSide(entry, .crm)
        guard let pipeline, let crm else { return nil }
        let what = "module \(entry.name)"

        var match: MatchRule?
        if let pipelineColumn = entry.matchPipeline, let crmColumn = entry.matchCRM {
            let left = pipeline.columns[pipelineColumn]
            let right = crm.columns[crmColumn]
            if left == nil { problems.append("\(what) match: column \(pipeline.table).\(pipelineColumn) does not exist") }
            if right == nil { problems.append("\(what) match: column \(crm.table).\(crmColumn) does not exist") }
            if let left, let right { match = MatchRule(pipeline: left, crm: right) }
        }

        var fields: [Field] = []
        var seen: [Side: Set<String>] = [.pipeline: [], .crm: []]
        for entryField in entry.fields {
            let left = pipeline.columns[entryField.pipeline]
            let right = crm.columns[entryField.crm]
            let label = "\(what) field \(entryField.pipeline) <-> \(entryField.crm)"
            if left == nil { problems.append("\(label): column \(pipeline.table).\(entryField.pipeline) does not exist") }
            if right == nil { problems.append("\(label): column \(crm.table).\(entryField.crm) does not exist") }
            guard let left, let right else { continue }
            if left.isGenerated || right.isGenerated {
                problems.append("\(label): a generated column cannot be written")
            }
            let name = entryField.name ?? (entryField.crm == entryField.pipeline ? entryField.crm : "\(entryField.pipeline):\(entryField.crm)")
            var kind = FieldKind.value
            if entryField.owner {
                kind = .owner
            } else if let target = entryField.lookup {
                guard let parent = resolvedSoFar.first(where: { $0.name == target }) else {
                    let known = resolvedSoFar.map(\.name)
                    problems.append("\(label): lookup module \(target) is not configured before \(entry.name) (parents come first; available: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
                    continue
                }
                kind = .lookup(module: target)
                if !left.accepts(parent.pipeline.key) || !right.accepts(parent.crm.key) {
                    problems.append("\(label): lookup columns (\(left.displayType), \(right.displayType)) cannot hold the keys of \(target) (\(parent.pipeline.key.displayType), \(parent.crm.key.displayType))")
                }
            } else if let parent = entryField.parent {
                guard let reference = parentReference(parent, pipeline: pipeline, crm: crm, label: label, resolvedSoFar: resolvedSoFar) else { continue }
                kind = .parent(reference)
            } else if let map = entryField.valueMap {
                guard let valueMap = valueMap(map, label: label) else { continue }
                kind = .mapped(valueMap)
            } else if !right.accepts(left) || !left.accepts(right) {
                problems.append("\(label): incompatible types \(left.displayType) and \(right.displayType)")
            }
            let field = Field(name: name, pipeline: left, crm: right, kind: kind)
            for side in Side.allCases {
                for column in field.columns(side) {
                    if seen[side, default: []].contains(column.name) { problems.append("\(label): \(side.rawValue) column \(column.name) is mapped twice") }
                    seen[side, default: []].insert(column.name)
                    if column.name == (side == .pipeline ? pipeline.key.name : crm.key.name) {
                        problems.append("\(label): the key column \(column.name) cannot be mapped; records are paired by links")
                    }
                    if ReferenceDefaults.isReminderOrRecurrence(column.name) {
                        problems.append("\(label): \(column.name) holds a reminder or recurrence, which is never synced (R12)")
                    }
                }
            }
            fields.append(field)
        }
        let fieldNames = Set(fields.map(\.name))
        for field in fields {
            if case .mapped(let map) = field.kind, !fieldNames.contains(map.contextField) {
                problems.append("\(what) field \(field.name): its value map depends on field \(map.contextField), which is not mapped")
            }
        }

        // R8: every mandatory target field must be mapped, on both sides, since
        // records are created in both directions.
        for side in Side.allCases {
            let moduleSide = side == .pipeline ? pipeline : crm
            let mapped = Set(fields.flatMap { $0.columns(side).map(\.name) })
            let declared = catalog.declaredFields[moduleSide.table] ?? [:]
            for column in moduleSide.columns.values.sorted(by: { $0.name < $1.name }) {
                if column.name == moduleSide.key.name || mapped.contains(column.name) || column.isGenerated { continue }
                if column.name == moduleSide.modified?.name && column.hasDefault { continue }
                var reason: String?
                if column.notNull && !column.hasDefault { reason = "NOT NULL without a default" }
                if let settings = declared[column.name], settings.mandatory {
                    reason = settings.custom ? "a required custom field" : "declared mandatory"
                }
                if let reason {
                    problems.append("\(what): \(moduleSide.table).\(column.name) is mandatory (\(reason)) but not mapped")
                }
            }
        }
        return Module(name: entry.name, tab: entry.tab, position: position, pipeline: pipeline, crm: crm,
                      match: match, fields: fields, requiresParent: entry.requiresParent)
    }
}
