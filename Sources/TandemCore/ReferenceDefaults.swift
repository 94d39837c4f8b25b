/// The default mappings: how the reference schemas in `sql/apps/` pair up.
///
/// This is the only place the engine knows those schemas. A host whose tables
/// differ overrides any part of it in its configuration (README, "Configuration").
public enum ReferenceDefaults {
    public static let pipelineSchema = "pipeline"
    public static let crmSchema = "crm"

    public struct UsersTable: Sendable {
        public var table = "users"
        public var key = "id"
        public var email = "email"
        public var profile = "profile"
        public var role = "role"
    }

    public struct OrgTable: Sendable {
        public var table = "org"
        public var edition = "edition"
    }

    /// A default field mapping.
    public struct FieldDefault: Sendable, Equatable {
        public var pipeline: String
        public var crm: String
        public var lookup: String?
        public var owner: Bool
        public var valueMap: ValueMapDefault?
        public var parent: ParentDefault?
        /// The field's name when it is not derived from its columns.
        public var name: String?

        public init(_ pipeline: String, _ crm: String, lookup: String? = nil, owner: Bool = false,
                    valueMap: ValueMapDefault? = nil, parent: ParentDefault? = nil, name: String? = nil) {
            self.pipeline = pipeline
            self.crm = crm
            self.lookup = lookup
            self.owner = owner
            self.valueMap = valueMap
            self.parent = parent
            self.name = name
        }
    }

    /// A value map by names (see `ValueMap`).
    public struct ValueMapDefault: Sendable, Equatable {
        /// The name of the context field of the same module.
        public var contextField: String
        public var toCRM: [String: [String: String]]
        public var toPipeline: [String: [String: String]]
        /// (table, context column, value column) listing each side's allowed values.
        public var pipelineDomain: [String]
        public var crmDomain: [String]
    }

    /// One way of referring to a parent, by names (see `ParentOption`).
    public struct ParentOptionDefault: Sendable, Equatable {
        public var module: String
        public var idColumn: String
        public var discriminator: String?
        public var value: String?

        public init(_ module: String, _ idColumn: String, _ discriminator: String? = nil, _ value: String? = nil) {
            self.module = module
            self.idColumn = idColumn
            self.discriminator = discriminator
            self.value = value
        }
    }

    public struct ParentDefault: Sendable, Equatable {
        public var pipeline: [ParentOptionDefault]
        public var crm: [ParentOptionDefault]
    }

    public struct ModuleDefault: Sendable {
        public var name: String
        public var tab: Tab
        public var pipelineTable: String
        public var crmTable: String
        public var key = "id"
        public var modified = "modified_time"
        public var crmView: String?
        public var match: (pipeline: String, crm: String)?
        public var fields: [FieldDefault]
        /// Activities and notes sync only with a linked parent (R11).
        public var requiresParent = false
    }

    /// The modules of each tab, parents first (R1, and the order of a pass).
    public static func modules(of tab: Tab) -> [String] {
        switch tab {
        case .contactsCompanies: return ["companies", "contacts"]
        case .pipelinesProducts: return ["products", "deals", "deal_products"]
        case .activities: return ["tasks", "events", "calls"]
        case .notes: return ["notes"]
        }
    }

    public static func module(named name: String) -> ModuleDefault? {
        modules.first { $0.name == name }
    }

    static let address = ["street", "city", "state", "code", "country"]

    public static let modules: [ModuleDefault] = [
        ModuleDefault(
            name: "companies", tab: .contactsCompanies,
            pipelineTable: "companies", crmTable: "accounts", crmView: "all_accounts",
            match: ("company_name", "account_name"),
            fields: [
                FieldDefault("company_name", "account_name"),
                FieldDefault("phone", "phone"),
                FieldDefault("website", "website"),
                FieldDefault("description", "description"),
            ] + address.map { FieldDefault("billing_\($0)", "billing_\($0)") } + [
                FieldDefault("owner_id", "owner_id", owner: true),
            ]),
        ModuleDefault(
            name: "contacts", tab: .contactsCompanies,
            pipelineTable: "contacts", crmTable: "contacts", crmView: "all_contacts",
            match: ("email", "email"),
            fields: [
                FieldDefault("first_name", "first_name"),
                FieldDefault("last_name", "last_name"),
                FieldDefault("email", "email"),
                FieldDefault("phone", "phone"),
                FieldDefault("mobile", "mobile"),
                FieldDefault("title", "title"),
                FieldDefault("description", "description"),
                FieldDefault("mailing_street", "mailing_street"),
                FieldDefault("mailing_city", "mailing_city"),
                FieldDefault("mailing_state", "mailing_state"),
                FieldDefault("mailing_zip", "mailing_zip"),
                FieldDefault("mailing_country", "mailing_country"),
                FieldDefault("company_id", "account_id", lookup: "companies"),
                FieldDefault("owner_id", "owner_id", owner: true),
            ]),
        ModuleDefault(
            name: "products", tab: .pipelinesProducts,
            pipelineTable: "products", crmTable: "products", crmView: "all_products",
            match: ("product_code", "product_code"),
            fields: [
                FieldDefault("product_name", "product_name"),
                FieldDefault("product_code", "product_code"),
                FieldDefault("unit_price", "unit_price"),
                FieldDefault("description", "description"),
                FieldDefault("active", "product_active"),
                FieldDefault("owner_id", "owner_id", owner: true),
            ]),
        ModuleDefault(
            name: "deals", tab: .pipelinesProducts,
            pipelineTable: "pipeline_records", crmTable: "deals", crmView: "all_deals",
            match: nil,
            fields: [
                FieldDefault("record_name", "deal_name"),
                FieldDefault("sub_pipeline", "pipeline"),
                FieldDefault("stage", "stage", valueMap: stageMap),
                FieldDefault("amount", "amount"),
                FieldDefault("closing_date", "closing_date"),
                FieldDefault("description", "description"),
                FieldDefault("company_id", "account_id", lookup: "companies"),
                FieldDefault("contact_id", "contact_id", lookup: "contacts"),
                FieldDefault("owner_id", "owner_id", owner: true),
            ]),
        ModuleDefault(
            name: "deal_products", tab: .pipelinesProducts,
            pipelineTable: "pipeline_record_products", crmTable: "deal_products", crmView: nil,
            match: nil,
            fields: [
                FieldDefault("pipeline_record_id", "deal_id", lookup: "deals"),
                FieldDefault("product_id", "product_id", lookup: "products"),
                FieldDefault("quantity", "quantity"),
                FieldDefault("list_price", "list_price"),
            ]),
        ModuleDefault(
            name: "tasks", tab: .activities,
            pipelineTable: "tasks", crmTable: "tasks", crmView: nil, match: nil,
            fields: [
                FieldDefault("subject", "subject"),
                FieldDefault("due_date", "due_date"),
                FieldDefault("status", "status"),
                FieldDefault("priority", "priority"),
                FieldDefault("description", "description"),
            ] + activityParents,
            requiresParent: true),
        ModuleDefault(
            name: "events", tab: .activities,
            pipelineTable: "events", crmTable: "events", crmView: nil, match: nil,
            fields: [
                FieldDefault("title", "title"),
                FieldDefault("start_time", "start_time"),
                FieldDefault("end_time", "end_time"),
                FieldDefault("venue", "venue"),
                FieldDefault("description", "description"),
            ] + activityParents,
            requiresParent: true),
        ModuleDefault(
            name: "calls", tab: .activities,
            pipelineTable: "calls", crmTable: "calls", crmView: nil, match: nil,
            fields: [
                FieldDefault("subject", "subject"),
                FieldDefault("call_type", "call_type"),
                FieldDefault("call_start_time", "call_start_time"),
                FieldDefault("call_duration_seconds", "call_duration_seconds"),
                FieldDefault("description", "description"),
            ] + activityParents,
            requiresParent: true),
        ModuleDefault(
            name: "notes", tab: .notes,
            pipelineTable: "notes", crmTable: "notes", crmView: nil, match: nil,
            fields: [
                FieldDefault("note_title", "note_title"),
                FieldDefault("note_content", "note_content"),
                FieldDefault("parent_module", "parent_module", parent: ParentDefault(
                    pipeline: [ParentOptionDefault("contacts", "contact_id", "parent_module", "contacts"),
                               ParentOptionDefault("companies", "company_id", "parent_module", "companies"),
                               ParentOptionDefault("deals", "pipeline_record_id", "parent_module", "pipeline_records")],
                    crm: [ParentOptionDefault("contacts", "parent_id", "parent_module", "contacts"),
                          ParentOptionDefault("companies", "parent_id", "parent_module", "accounts"),
                          ParentOptionDefault("deals", "parent_id", "parent_module", "deals")]),
                             name: "parent"),
                FieldDefault("owner_id", "owner_id", owner: true),
            ],
            requiresParent: true),
    ]

    /// An activity's contact, its related deal (or, in the CRM app, account),
    /// and its owner. Reminder and recurrence columns are never mapped (R12).
    static let activityParents: [FieldDefault] = [
        FieldDefault("contact_id", "who_id", lookup: "contacts"),
        FieldDefault("pipeline_record_id", "what_id", parent: ParentDefault(
            pipeline: [ParentOptionDefault("deals", "pipeline_record_id")],
            crm: [ParentOptionDefault("deals", "what_id", "what_module", "deals"),
                  ParentOptionDefault("companies", "what_id", "what_module", "accounts")]),
                     name: "related_to"),
        FieldDefault("owner_id", "owner_id", owner: true),
    ]

    /// Bigin's stages and Zoho CRM's, per pipeline (the same names in both apps).
    static let stageMap: ValueMapDefault = {
        let toCRM = ["Qualification": "Qualification", "Needs Identified": "Needs Analysis",
                     "Proposal/Price Quote": "Proposal/Price Quote", "Negotiation/Review": "Negotiation/Review",
                     "Closed Won": "Closed Won", "Closed Lost": "Closed Lost"]
        let toPipeline = ["Qualification": "Qualification", "Needs Analysis": "Needs Identified",
                          "Value Proposition": "Needs Identified", "Id. Decision Makers": "Needs Identified",
                          "Proposal/Price Quote": "Proposal/Price Quote", "Negotiation/Review": "Negotiation/Review",
                          "Closed Won": "Closed Won", "Closed Lost": "Closed Lost", "Closed Lost to Competition": "Closed Lost"]
        return ValueMapDefault(contextField: "sub_pipeline:pipeline",
                               toCRM: ["Standard": toCRM, "Renewals": toCRM],
                               toPipeline: ["Standard": toPipeline, "Renewals": toPipeline],
                               pipelineDomain: ["stages", "sub_pipeline", "stage"],
                               crmDomain: ["stages", "pipeline", "stage"])
    }()

    /// Column names that hold reminders or recurrence: never synced (R12).
    public static func isReminderOrRecurrence(_ column: String) -> Bool {
        let name = column.lowercased()
        return name.contains("reminder") || name.contains("recurr")
    }
}
