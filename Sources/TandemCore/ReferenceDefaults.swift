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

        public init(_ pipeline: String, _ crm: String, lookup: String? = nil, owner: Bool = false) {
            self.pipeline = pipeline
            self.crm = crm
            self.lookup = lookup
            self.owner = owner
        }
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
    ]
}
