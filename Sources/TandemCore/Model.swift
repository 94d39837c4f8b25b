/// The two apps of an integration.
public enum Side: String, Sendable, CaseIterable {
    case pipeline
    case crm

    public var other: Side { self == .pipeline ? .crm : .pipeline }

    /// For messages: "pipeline app", "CRM app".
    public var appName: String { self == .pipeline ? "pipeline app" : "CRM app" }
}

/// How a field changed differently on both sides is decided (R16, B2).
/// Mirrored by the CHECK constraint `integrations_conflict_policy_check`.
public enum ConflictPolicy: String, Sendable, CaseIterable {
    /// The side with the later modified time wins; ties go to the CRM app.
    case latest
    case crmWins = "crm_wins"
    case pipelineWins = "pipeline_wins"
    /// Neither side is written; both keep their versions.
    case skip
}

/// The four tab pairs (R1), in the order they may be set up (R2).
public enum Tab: String, Sendable, CaseIterable {
    case contactsCompanies = "contacts_companies"
    case pipelinesProducts = "pipelines_products"
    case activities
    case notes

    /// Tabs whose setup selects one CRM view per module and maps fields (R7, R8);
    /// the others are mapped by the system (R9).
    public var hasViewsAndMappings: Bool { self == .contactsCompanies || self == .pipelinesProducts }
}

/// What the states of a tab mean is written once, here.
public enum TabState: String, Sendable {
    /// Stored in the configuration, not syncing.
    case configured
    /// Activated; the existing data of both apps is being synced in chunks (R10).
    case initialSync = "initial_sync"
    /// Additions and changes sync automatically.
    case active
    /// Deactivated: nothing syncs, nothing is deleted (R15).
    case inactive
    /// The integration was removed (R17); its history stays for reporting.
    case removed

    public var isSyncing: Bool { self == .initialSync || self == .active }
}

/// A table of one app, checked against the catalog.
public struct TableName: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let schema: String
    public let name: String

    public init(schema: String, name: String) {
        self.schema = schema
        self.name = name
    }

    public var description: String { "\(schema).\(name)" }
}

/// One column as the catalog describes it.
public struct Column: Sendable, Equatable {
    public let name: String
    /// The type without modifiers ("character varying"), for casts that keep length checks.
    public let baseType: String
    /// The type with modifiers ("character varying(100)"), for messages.
    public let displayType: String
    /// pg_type.typcategory: S string, N numeric, D date/time, B boolean, U user, ...
    public let category: Character
    public let notNull: Bool
    public let hasDefault: Bool
    public let isGenerated: Bool
    /// The default as the catalog prints it (`nextval('...'::regclass)`), used to
    /// give new records their keys before they are written.
    public let defaultExpression: String?

    public init(name: String, baseType: String, displayType: String, category: Character,
                notNull: Bool, hasDefault: Bool, isGenerated: Bool, defaultExpression: String? = nil) {
        self.name = name
        self.baseType = baseType
        self.displayType = displayType
        self.category = category
        self.notNull = notNull
        self.hasDefault = hasDefault
        self.isGenerated = isGenerated
        self.defaultExpression = defaultExpression
    }

    /// Whether values of `source` can be written into this column without losing
    /// their meaning: the same type category, or any type into a string.
    public func accepts(_ source: Column) -> Bool {
        category == source.category || category == "S"
    }
}

/// One side of a module pair, resolved against the catalog.
public struct ModuleSide: Sendable, Equatable {
    public let table: TableName
    public let key: Column
    /// The column that tells when a record was last modified (for `latest`).
    public let modified: Column?
    /// The CRM view selected for the module (R7); only on the CRM side.
    public let view: TableName?
    /// Every column of the table, by name.
    public let columns: [String: Column]

    public init(table: TableName, key: Column, modified: Column?, view: TableName?, columns: [String: Column]) {
        self.table = table
        self.key = key
        self.modified = modified
        self.view = view
        self.columns = columns
    }
}

/// How a mapped field travels between the apps.
public enum FieldKind: Sendable, Equatable {
    /// The value itself.
    case value
    /// A reference to a record of another module, translated through the links.
    case lookup(module: String)
    /// A user: matched by email, else the acting user of the integration (R13).
    case owner
    /// A value translated through a value map that depends on a context field
    /// of the same record (a stage depends on its pipeline). The canonical form
    /// is the CRM app's value.
    case mapped(ValueMap)
    /// A reference to a parent that may be one of several modules
    /// (a note's contact, company or deal).
    case parent(ParentReference)
}

/// A value map (R8 for stages): per context value, source value -> target value,
/// one map per direction, stored in tandem.value_maps.
public struct ValueMap: Sendable, Equatable {
    /// The field (of the same module) whose value is the context, e.g. the pipeline.
    public let contextField: String
    /// context -> (pipeline value -> CRM value)
    public let toCRM: [String: [String: String]]
    /// context -> (CRM value -> pipeline value)
    public let toPipeline: [String: [String: String]]
    /// Where each side lists its allowed (context, value) pairs, for validation.
    public let pipelineDomain: ValueDomain
    public let crmDomain: ValueDomain

    public init(contextField: String, toCRM: [String: [String: String]], toPipeline: [String: [String: String]],
                pipelineDomain: ValueDomain, crmDomain: ValueDomain) {
        self.contextField = contextField
        self.toCRM = toCRM
        self.toPipeline = toPipeline
        self.pipelineDomain = pipelineDomain
        self.crmDomain = crmDomain
    }

    public func map(to side: Side) -> [String: [String: String]] { side == .crm ? toCRM : toPipeline }

    public func domain(_ side: Side) -> ValueDomain { side == .pipeline ? pipelineDomain : crmDomain }
}

/// A table listing the allowed values of a mapped field per context.
public struct ValueDomain: Sendable, Equatable {
    public let table: TableName
    public let contextColumn: String
    public let valueColumn: String

    public init(table: TableName, contextColumn: String, valueColumn: String) {
        self.table = table
        self.contextColumn = contextColumn
        self.valueColumn = valueColumn
    }
}

/// One way a side can refer to a parent of module `module`: the id column,
/// and the discriminator column and value when several modules share it.
public struct ParentOption: Sendable, Equatable {
    public let module: String
    public let idColumn: Column
    public let discriminator: Column?
    public let discriminatorValue: String?

    public init(module: String, idColumn: Column, discriminator: Column?, discriminatorValue: String?) {
        self.module = module
        self.idColumn = idColumn
        self.discriminator = discriminator
        self.discriminatorValue = discriminatorValue
    }
}

/// How each side refers to a parent that may be one of several modules. The
/// canonical form is `[module, link id]`. A parent module one side cannot
/// hold is not written there.
public struct ParentReference: Sendable, Equatable {
    public let pipeline: [ParentOption]
    public let crm: [ParentOption]

    public init(pipeline: [ParentOption], crm: [ParentOption]) {
        self.pipeline = pipeline
        self.crm = crm
    }

    public func options(_ side: Side) -> [ParentOption] { side == .pipeline ? pipeline : crm }

    public var modules: Set<String> { Set((pipeline + crm).map(\.module)) }
}

/// A mapped field, checked against the catalog.
public struct Field: Sendable, Equatable {
    /// The name used in mirrors, conflicts and messages.
    public let name: String
    /// The column that names the field on each side (for a parent reference,
    /// the first option's id column).
    public let pipeline: Column
    public let crm: Column
    public let kind: FieldKind

    public init(name: String, pipeline: Column, crm: Column, kind: FieldKind) {
        self.name = name
        self.pipeline = pipeline
        self.crm = crm
        self.kind = kind
    }

    public func column(_ side: Side) -> Column { side == .pipeline ? pipeline : crm }

    /// Every column this field writes on `side`.
    public func columns(_ side: Side) -> [Column] {
        guard case .parent(let reference) = kind else { return [column(side)] }
        var columns: [Column] = []
        for option in reference.options(side) {
            for column in [option.discriminator, option.idColumn].compactMap({ $0 }) where !columns.contains(where: { $0.name == column.name }) {
                columns.append(column)
            }
        }
        return columns
    }

    public var kindName: String {
        switch kind {
        case .value: return "value"
        case .lookup: return "lookup"
        case .owner: return "owner"
        case .mapped: return "value_map"
        case .parent: return "parent"
        }
    }

    public var lookupModule: String? {
        if case .lookup(let module) = kind { return module }
        return nil
    }

    /// Modules whose records this field refers to.
    public var parentModules: Set<String> {
        switch kind {
        case .lookup(let module): return [module]
        case .parent(let reference): return reference.modules
        default: return []
        }
    }

    /// Whether the field refers to a parent record (R11).
    public var isReference: Bool { !parentModules.isEmpty }
}

/// A pair of columns whose normalized values pair up records that exist in
/// both apps on first sight (B3): contacts by email, companies by name.
public struct MatchRule: Sendable, Equatable {
    public let pipeline: Column
    public let crm: Column

    public init(pipeline: Column, crm: Column) {
        self.pipeline = pipeline
        self.crm = crm
    }

    public func column(_ side: Side) -> Column { side == .pipeline ? pipeline : crm }
}

/// A module pair (companies <-> accounts, ...), resolved and valid.
public struct Module: Sendable, Equatable {
    public let name: String
    public let tab: Tab
    /// Parents first: a module's lookups point only to modules of lower position.
    public let position: Int
    public let pipeline: ModuleSide
    public let crm: ModuleSide
    public let match: MatchRule?
    public let fields: [Field]
    /// Records sync only when they refer to a linked parent the other side can
    /// hold (activities and notes, R11).
    public let requiresParent: Bool

    public init(name: String, tab: Tab, position: Int, pipeline: ModuleSide, crm: ModuleSide,
                match: MatchRule?, fields: [Field], requiresParent: Bool = false) {
        self.name = name
        self.tab = tab
        self.position = position
        self.pipeline = pipeline
        self.crm = crm
        self.match = match
        self.fields = fields
        self.requiresParent = requiresParent
    }

    public func side(_ side: Side) -> ModuleSide { side == .pipeline ? pipeline : crm }
}

/// Where an app keeps its users and its org (R5, R6, R13).
public struct AppDirectory: Sendable, Equatable {
    public let schema: String
    public let users: TableName
    public let userKey: Column
    public let emailColumn: String
    public let profileColumn: String
    public let roleColumn: String
    public let org: TableName
    public let editionColumn: String
    public let actingUser: String

    public init(schema: String, users: TableName, userKey: Column, emailColumn: String, profileColumn: String,
                roleColumn: String, org: TableName, editionColumn: String, actingUser: String) {
        self.schema = schema
        self.users = users
        self.userKey = userKey
        self.emailColumn = emailColumn
        self.profileColumn = profileColumn
        self.roleColumn = roleColumn
        self.org = org
        self.editionColumn = editionColumn
        self.actingUser = actingUser
    }
}

/// A whole integration, resolved against the catalog and valid.
public struct Integration: Sendable, Equatable {
    public let name: String
    public let policy: ConflictPolicy
    public let pipeline: AppDirectory
    public let crm: AppDirectory
    /// Every configured module, parents first.
    public let modules: [Module]
    /// Tabs the configuration sets up.
    public let tabs: [Tab]
    /// Records per side handled by one chunk of the initial sync.
    public let initialSyncChunk: Int

    public init(name: String, policy: ConflictPolicy, pipeline: AppDirectory, crm: AppDirectory,
                modules: [Module], tabs: [Tab], initialSyncChunk: Int) {
        self.name = name
        self.policy = policy
        self.pipeline = pipeline
        self.crm = crm
        self.modules = modules
        self.tabs = tabs
        self.initialSyncChunk = initialSyncChunk
    }

    public func app(_ side: Side) -> AppDirectory { side == .pipeline ? pipeline : crm }

    public func modules(of tab: Tab) -> [Module] { modules.filter { $0.tab == tab } }

    public func module(named name: String) -> Module? { modules.first { $0.name == name } }
}
