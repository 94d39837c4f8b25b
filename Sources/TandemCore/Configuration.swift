import Foundation

/// The configuration as the host wrote it (JSON), with the reference defaults
/// filled in, before anything is checked against the catalog.
///
/// Format (every key optional unless marked; see README "Configuration"):
/// ```json
/// {
///   "integration": "default",
///   "conflict_policy": "latest",
///   "initial_sync_chunk": 50000,
///   "pipeline": {"schema": "pipeline", "acting_user": "admin@example.com",      (acting_user required)
///                "users": {"table": "users", "key": "id", "email": "email", "profile": "profile", "role": "role"},
///                "org": {"table": "org", "edition": "edition"}},
///   "crm":      {... the same ...},
///   "tabs": {"contacts_companies": {"views": {"companies": "all_accounts", "contacts": "all_contacts"}}},
///   "modules": {"contacts": {"pipeline": {"table": "contacts", "key": "id", "modified": "modified_time"},
///                            "crm": {...}, "match": {"pipeline": "email", "crm": "email"},
///                            "fields": [{"pipeline": "title", "crm": "title"},
///                                       {"pipeline": null, "crm": "lead_source"}]}}
/// }
/// ```
public struct Configuration: Sendable, Equatable {
    public struct App: Sendable, Equatable {
        public var schema: String
        public var actingUser: String
        public var usersTable: String
        public var usersKey: String
        public var emailColumn: String
        public var profileColumn: String
        public var roleColumn: String
        public var orgTable: String
        public var editionColumn: String
    }

    public struct FieldEntry: Sendable, Equatable {
        public var pipeline: String
        public var crm: String
        public var lookup: String?
        public var owner: Bool
        public var valueMap: ReferenceDefaults.ValueMapDefault? = nil
        public var parent: ReferenceDefaults.ParentDefault? = nil
        public var name: String? = nil
    }

    public struct ModuleEntry: Sendable, Equatable {
        public var name: String
        public var tab: Tab
        public var pipelineTable: String
        public var pipelineKey: String
        public var pipelineModified: String?
        public var crmTable: String
        public var crmKey: String
        public var crmModified: String?
        public var crmView: String?
        public var matchPipeline: String?
        public var matchCRM: String?
        public var fields: [FieldEntry]
        /// R7: the tab selects a CRM view for this module.
        public var viewRequired: Bool
        /// R11: records sync only with a linked parent.
        public var requiresParent: Bool
    }

    public var integration: String
    public var policy: ConflictPolicy
    public var initialSyncChunk: Int
    public var pipeline: App
    public var crm: App
    public var tabs: [Tab]
    public var modules: [ModuleEntry]

    public func app(_ side: Side) -> App { side == .pipeline ? pipeline : crm }

    /// The largest configuration accepted, in bytes of JSON: 4 MiB. The
    /// reference defaults are about 10 KB, and a table has at most 1,600
    /// columns, so this leaves room for any real mapping while a runaway
    /// file is refused before it is parsed.
    public static let maximumBytes = 4 * 1024 * 1024

    /// The most entries one module's `fields` may hold: field entries plus
    /// the value pairs under their `values`.
    public static let maximumEntriesPerModule = 10_000

    /// Whether JSONSerialization read `value` from `true` or `false`. Read
    /// from 1 or 0, a number casts to Bool as well (`value is Bool`), and a
    /// chunk of 1 was refused as a boolean.
    static func isJSONBoolean(_ value: Any) -> Bool {
        type(of: value) == type(of: NSNumber(value: true))
    }

    /// Parses the JSON text. Every problem is named in the one error thrown.
    /// Parsing and validation take time linear in the size of the text.
    public static func parse(_ text: String) throws -> Configuration {
        let size = text.utf8.count
        if size > maximumBytes {
            throw TandemError(.config, "configuration is \(size) bytes of JSON; at most \(maximumBytes) bytes (4 MiB) are accepted (see README, Configuration)")
        }
        guard let data = text.data(using: .utf8), !text.isEmpty else {
            throw TandemError(.config, "configuration is empty: expected a JSON object")
        }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw TandemError(.config, "configuration is not valid JSON: \(Configuration.describe(error))")
        }
        var reader = JSONReader()
        guard let object = reader.object(root, at: "configuration") else {
            throw TandemError(.config, summary: "configuration is not valid:", problems: reader.problems)
        }
        guard let configuration = reader.configuration(object), reader.problems.isEmpty else {
            throw TandemError(.config, summary: "configuration is not valid:", problems: reader.problems)
        }
        return configuration
    }

    static func describe(_ error: Error) -> String {
        let nsError = error as NSError
        if let detail = nsError.userInfo["NSDebugDescription"] as? String { return detail }
        return nsError.localizedDescription
    }
}

/// Reads the JSON tree, collecting every problem with the path where it is.
struct JSONReader {
    var problems: [String] = []

    mutating func object(_ value: Any?, at path: String) -> [String: Any]? {
        guard let value else { return nil }
        guard let object = value as? [String: Any] else {
            problems.append("\(path) must be a JSON object")
            return nil
        }
        return object
    }

    mutating func string(_ object: [String: Any], _ key: String, at path: String) -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let text = value as? String, !text.isEmpty else {
            problems.append("\(path).\(key) must be a non-empty string")
            return nil
        }
        return text
    }

    mutating func rejectUnknownKeys(_ object: [String: Any], allowed: Set<String>, at path: String) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            problems.append("\(path).\(key) is not a known setting (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// Names that become SQL identifiers must look like ones; they are quoted
    /// and checked against the catalog later in any case.
    mutating func identifier(_ object: [String: Any], _ key: String, at path: String, default fallback: String?) -> String? {
        guard let text = string(object, key, at: path) else { return fallback }
        if text.utf8.count > 63 || text.contains("\0") {
            problems.append("\(path).\(key) is not a valid PostgreSQL identifier: \(text)")
            return nil
        }
        return text
    }

    mutating func configuration(_ root: [String: Any]) -> Configuration? {
        rejectUnknownKeys(root, allowed: ["integration", "conflict_policy", "initial_sync_chunk", "pipeline", "crm", "tabs", "modules"],
                          at: "configuration")
        let integration = string(root, "integration", at: "configuration") ?? "default"
        var policy = ConflictPolicy.latest
        if let name = string(root, "conflict_policy", at: "configuration") {
            if let known = ConflictPolicy(rawValue: name) { policy = known } else {
                problems.append("configuration.conflict_policy '\(name)' is not one of \(ConflictPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        var chunk = 50_000
        if let value = root["initial_sync_chunk"] {
            if let number = value as? Int, number >= 1, number <= 10_000_000, !Configuration.isJSONBoolean(value) { chunk = number } else {
                problems.append("configuration.initial_sync_chunk must be a whole number from 1 to 10000000")
            }
        }
        let pipeline = app(root["pipeline"], side: .pipeline)
        let crm = app(root["crm"], side: .crm)

        // Tabs: default is the first tab only.
        var tabs: [Tab] = []
        var views: [String: String] = [:]
        var tabsObject: [String: Any] = [Tab.contactsCompanies.rawValue: [String: Any]()]
        if root["tabs"] != nil { tabsObject = object(root["tabs"], at: "configuration.tabs") ?? [:] }
        for (name, value) in tabsObject.sorted(by: { $0.key < $1.key }) {
            let path = "configuration.tabs.\(name)"
            guard let tab = Tab(rawValue: name) else {
                problems.append("\(path): unknown tab (known: \(Tab.allCases.map(\.rawValue).joined(separator: ", ")))")
                continue
            }
            tabs.append(tab)
            guard let settings = object(value, at: path) else { continue }
            rejectUnknownKeys(settings, allowed: ["views"], at: path)
            if let viewObject = object(settings["views"], at: "\(path).views") {
                if !tab.hasViewsAndMappings {
                    problems.append("\(path).views: \(name) has no CRM view; its records are selected by their parents (R9)")
                }
                let tabModules = ReferenceDefaults.modules(of: tab)
                for (module, _) in viewObject where !tabModules.contains(module) {
                    problems.append("\(path).views.\(module): not a module of \(name) (modules: \(tabModules.joined(separator: ", ")))")
                }
                for module in tabModules {
                    if let view = identifier(viewObject, module, at: "\(path).views", default: nil) { views[module] = view }
                }
            }
        }
        tabs.sort { (Tab.allCases.firstIndex(of: $0) ?? 0) < (Tab.allCases.firstIndex(of: $1) ?? 0) }

        let overrides = root["modules"].flatMap { object($0, at: "configuration.modules") } ?? [:]
        let known = Set(ReferenceDefaults.modules.map(\.name))
        for name in overrides.keys.sorted() where !known.contains(name) {
            problems.append("configuration.modules.\(name): unknown module (known: \(known.sorted().joined(separator: ", ")))")
        }
        var modules: [Configuration.ModuleEntry] = []
        for tab in tabs {
            for name in ReferenceDefaults.modules(of: tab) {
                guard let defaults = ReferenceDefaults.module(named: name) else { continue }
                if let entry = module(defaults, override: overrides[name], view: views[name]) { modules.append(entry) }
            }
        }
        guard let pipeline, let crm else { return nil }
        return Configuration(integration: integration, policy: policy, initialSyncChunk: chunk,
                             pipeline: pipeline, crm: crm, tabs: tabs, modules: modules)
    }

    mutating func app(_ value: Any?, side: Side) -> Configuration.App? {
        let path = "configuration.\(side.rawValue)"
        guard let object = object(value, at: path) else {
            problems.append("\(path).acting_user is required: the \(side.appName) user (Administrator + CEO) who sets up the integration (R5)")
            return nil
        }
        rejectUnknownKeys(object, allowed: ["schema", "acting_user", "users", "org"], at: path)
        let schema = identifier(object, "schema", at: path, default: side == .pipeline ? ReferenceDefaults.pipelineSchema : ReferenceDefaults.crmSchema)
        let acting = string(object, "acting_user", at: path)
        if acting == nil && object["acting_user"] == nil {
            problems.append("\(path).acting_user is required: the \(side.appName) user (Administrator + CEO) who sets up the integration (R5)")
        }
        let usersDefault = ReferenceDefaults.UsersTable()
        let users = self.object(object["users"], at: "\(path).users") ?? [:]
        rejectUnknownKeys(users, allowed: ["table", "key", "email", "profile", "role"], at: "\(path).users")
        let orgDefault = ReferenceDefaults.OrgTable()
        let org = self.object(object["org"], at: "\(path).org") ?? [:]
        rejectUnknownKeys(org, allowed: ["table", "edition"], at: "\(path).org")
        guard let schema, let acting,
              let usersTable = identifier(users, "table", at: "\(path).users", default: usersDefault.table),
              let usersKey = identifier(users, "key", at: "\(path).users", default: usersDefault.key),
              let email = identifier(users, "email", at: "\(path).users", default: usersDefault.email),
              let profile = identifier(users, "profile", at: "\(path).users", default: usersDefault.profile),
              let role = identifier(users, "role", at: "\(path).users", default: usersDefault.role),
              let orgTable = identifier(org, "table", at: "\(path).org", default: orgDefault.table),
              let edition = identifier(org, "edition", at: "\(path).org", default: orgDefault.edition)
        else { return nil }
        return Configuration.App(schema: schema, actingUser: acting, usersTable: usersTable, usersKey: usersKey,
                                 emailColumn: email, profileColumn: profile, roleColumn: role,
                                 orgTable: orgTable, editionColumn: edition)
    }

    mutating func module(_ defaults: ReferenceDefaults.ModuleDefault, override: Any?, view: String?) -> Configuration.ModuleEntry? {
        let path = "configuration.modules.\(defaults.name)"
        var entry = Configuration.ModuleEntry(
            name: defaults.name, tab: defaults.tab,
            pipelineTable: defaults.pipelineTable, pipelineKey: defaults.key, pipelineModified: defaults.modified,
            crmTable: defaults.crmTable, crmKey: defaults.key, crmModified: defaults.modified,
            crmView: defaults.crmView == nil ? nil : (view ?? defaults.crmView),
            matchPipeline: defaults.match?.pipeline, matchCRM: defaults.match?.crm,
            fields: defaults.fields.map { .init(pipeline: $0.pipeline, crm: $0.crm, lookup: $0.lookup, owner: $0.owner,
                                                valueMap: $0.valueMap, parent: $0.parent, name: $0.name) },
            viewRequired: defaults.crmView != nil, requiresParent: defaults.requiresParent)
        guard let override else { return entry }
        guard let object = object(override, at: path) else { return nil }
        rejectUnknownKeys(object, allowed: ["pipeline", "crm", "match", "fields"], at: path)
        for side in Side.allCases {
            guard let table = self.object(object[side.rawValue], at: "\(path).\(side.rawValue)") else { continue }
            let sidePath = "\(path).\(side.rawValue)"
            rejectUnknownKeys(table, allowed: ["table", "key", "modified"], at: sidePath)
            let name = identifier(table, "table", at: sidePath, default: nil)
            let key = identifier(table, "key", at: sidePath, default: nil)
            let modified = identifier(table, "modified", at: sidePath, default: nil)
            if side == .pipeline {
                entry.pipelineTable = name ?? entry.pipelineTable
                entry.pipelineKey = key ?? entry.pipelineKey
                if table.keys.contains("modified") { entry.pipelineModified = modified }
            } else {
                entry.crmTable = name ?? entry.crmTable
                entry.crmKey = key ?? entry.crmKey
                if table.keys.contains("modified") { entry.crmModified = modified }
            }
        }
        if let match = self.object(object["match"], at: "\(path).match") {
            rejectUnknownKeys(match, allowed: ["pipeline", "crm"], at: "\(path).match")
            entry.matchPipeline = identifier(match, "pipeline", at: "\(path).match", default: nil)
            entry.matchCRM = identifier(match, "crm", at: "\(path).match", default: nil)
        }
        if let fields = object["fields"] {
            guard let list = fields as? [Any] else {
                problems.append("\(path).fields must be a JSON array")
                return entry
            }
            if !defaults.tab.hasViewsAndMappings {
                let columns = list.compactMap { $0 as? [String: Any] }.flatMap { [$0["pipeline"], $0["crm"]] }.compactMap { $0 as? String }
                for column in columns where ReferenceDefaults.isReminderOrRecurrence(column) {
                    problems.append("\(path).fields: \(column) holds a reminder or recurrence, which is never synced (R12): only the app that created an activity sends its reminders")
                }
                problems.append("\(path).fields: \(defaults.tab.rawValue) is mapped by the system and takes no field mapping (R9)")
                return entry
            }
            let valuePairs = list.reduce(0) { count, item in count + Self.valuePairCount(item) }
            if list.count + valuePairs > Configuration.maximumEntriesPerModule {
                problems.append("\(path).fields has \(list.count + valuePairs) entries (\(list.count) fields, \(valuePairs) value pairs); a module takes at most \(Configuration.maximumEntriesPerModule) (see README, Configuration)")
                return entry
            }
            var fields = FieldList(entry.fields)
            for (index, item) in list.enumerated() {
                let itemPath = "\(path).fields[\(index)]"
                guard let field = self.object(item, at: itemPath) else { continue }
                rejectUnknownKeys(field, allowed: ["pipeline", "crm", "lookup", "owner", "values"], at: itemPath)
                let pipeline = identifier(field, "pipeline", at: itemPath, default: nil)
                let crm = identifier(field, "crm", at: itemPath, default: nil)
                let lookup = identifier(field, "lookup", at: itemPath, default: nil)
                var owner = false
                if let flag = field["owner"] {
                    if let value = flag as? Bool { owner = value } else { problems.append("\(itemPath).owner must be true or false") }
                }
                switch (pipeline, crm) {
                case (nil, nil):
                    problems.append("\(itemPath) names neither a pipeline nor a crm column")
                case (let column?, nil):
                    fields.remove(.pipeline, column)
                case (nil, let column?):
                    fields.remove(.crm, column)
                case (let pipelineColumn?, let crmColumn?):
                    let previous = fields.first(pipeline: pipelineColumn, crm: crmColumn)
                    var valueMap = previous?.valueMap
                    if let values = field["values"] {
                        if valueMap == nil {
                            problems.append("\(itemPath).values: \(pipelineColumn) <-> \(crmColumn) has no value map to change")
                        } else if var changed = valueMap, let maps = self.object(values, at: "\(itemPath).values") {
                            rejectUnknownKeys(maps, allowed: ["to_crm", "to_pipeline"], at: "\(itemPath).values")
                            for (direction, keyPath) in [("to_crm", \ReferenceDefaults.ValueMapDefault.toCRM),
                                                         ("to_pipeline", \ReferenceDefaults.ValueMapDefault.toPipeline)] {
                                guard let contexts = self.object(maps[direction], at: "\(itemPath).values.\(direction)") else { continue }
                                for (context, pairs) in contexts {
                                    guard let pairs = pairs as? [String: String] else {
                                        problems.append("\(itemPath).values.\(direction).\(context) must map values to values (strings)")
                                        continue
                                    }
                                    changed[keyPath: keyPath][context, default: [:]].merge(pairs) { _, new in new }
                                }
                            }
                            valueMap = changed
                        }
                    }
                    fields.remove(.pipeline, pipelineColumn)
                    fields.remove(.crm, crmColumn)
                    fields.append(.init(pipeline: pipelineColumn, crm: crmColumn, lookup: lookup, owner: owner,
                                        valueMap: valueMap, parent: nil, name: previous?.name))
                }
            }
            entry.fields = fields.entries
        }
        return entry
    }

    /// How many value pairs a `fields` entry brings under `values` (0 when
    /// it has none or they are not shaped as expected: that is reported later).
    static func valuePairCount(_ item: Any) -> Int {
        guard let field = item as? [String: Any], let maps = field["values"] as? [String: Any] else { return 0 }
        var count = 0
        for direction in ["to_crm", "to_pipeline"] {
            guard let contexts = maps[direction] as? [String: Any] else { continue }
            for case let pairs as [String: Any] in contexts.values { count += pairs.count }
        }
        return count
    }
}

/// A module's field entries while overrides replace them by column: every
/// lookup and removal by column costs the same however many entries there
/// are, so applying n overrides is linear in n (issue 8), and the order of
/// the entries that remain is kept.
struct FieldList {
    private var slots: [Configuration.FieldEntry?] = []
    /// The slots holding each column, in slot order; slots removed since
    /// are skipped when read.
    private var pipelineSlots: [String: [Int]] = [:]
    private var crmSlots: [String: [Int]] = [:]

    init(_ entries: [Configuration.FieldEntry]) {
        for entry in entries { append(entry) }
    }

    var entries: [Configuration.FieldEntry] { slots.compactMap { $0 } }

    mutating func append(_ entry: Configuration.FieldEntry) {
        pipelineSlots[entry.pipeline, default: []].append(slots.count)
        crmSlots[entry.crm, default: []].append(slots.count)
        slots.append(entry)
    }

    /// Removes every entry that maps `column` on `side`.
    mutating func remove(_ side: Side, _ column: String) {
        let held = side == .pipeline ? pipelineSlots.removeValue(forKey: column) : crmSlots.removeValue(forKey: column)
        for slot in held ?? [] { slots[slot] = nil }
    }

    /// The first entry mapping exactly these two columns.
    func first(pipeline: String, crm: String) -> Configuration.FieldEntry? {
        for slot in pipelineSlots[pipeline] ?? [] {
            if let entry = slots[slot], entry.crm == crm { return entry }
        }
        return nil
    }
}
