/// What a change of configuration touches, for the lifecycle of a tab
/// (R14): which settings differ outside one tab, and, per module, which
/// fields became mapped or stopped being mapped.
extension Configuration {
    public func modules(of tab: Tab) -> [ModuleEntry] { modules.filter { $0.tab == tab } }

    public func module(named name: String) -> ModuleEntry? { modules.first { $0.name == name } }

    /// The settings that differ between `self` and `other` anywhere but in
    /// the views and field mappings of `tab`'s modules, named for a message.
    public func differences(outside tab: Tab, from other: Configuration) -> [String] {
        var differences: [String] = []
        if integration != other.integration { differences.append("the integration's name") }
        if policy != other.policy { differences.append("conflict_policy") }
        if initialSyncChunk != other.initialSyncChunk { differences.append("initial_sync_chunk") }
        if pipeline != other.pipeline { differences.append("the pipeline app's settings") }
        if crm != other.crm { differences.append("the CRM app's settings") }
        if tabs != other.tabs { differences.append("the tabs set up") }
        let names = Set(modules.map(\.name)).union(other.modules.map(\.name))
        for name in names.sorted() {
            let mine = module(named: name), theirs = other.module(named: name)
            if mine?.tab == tab && theirs?.tab == tab {
                // Only the view and the fields may change in the edited tab.
                if var adjusted = mine, let theirs {
                    adjusted.crmView = theirs.crmView
                    adjusted.fields = theirs.fields
                    if adjusted != theirs { differences.append("module \(name) beyond its view and fields") }
                }
            } else if mine != theirs {
                differences.append("module \(name)")
            }
        }
        return differences
    }
}

/// How the mapped fields of one module differ between two configurations.
public struct FieldChanges: Sendable, Equatable {
    /// Fields mapped now that were not, or whose mapping changed: brought into
    /// line for every linked record (R14).
    public var newlyMapped: [String] = []
    /// Fields no longer mapped (or whose mapping changed): they stop syncing,
    /// both apps keep their values.
    public var unmapped: [String] = []

    public init(before: Module?, after: Module?) {
        let old = Dictionary((before?.fields ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let new = Dictionary((after?.fields ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        newlyMapped = (after?.fields ?? []).map(\.name).filter { old[$0] != new[$0] }
        unmapped = (before?.fields ?? []).map(\.name).filter { old[$0] != new[$0] }
    }

    /// Fields whose mirrors no longer say anything true: their last-synced
    /// values are forgotten, so the next merge treats them as never synced.
    public var forgotten: [String] { Array(Set(newlyMapped).union(unmapped)).sorted() }
}
