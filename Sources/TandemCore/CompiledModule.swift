import TandemPostgres

/// One value for each side. Unlike a `[Side: Value]` dictionary, reading it
/// cannot come back empty, so no lookup needs a force unwrap (nothing may trap
/// on a path the C ABI reaches).
public struct BySide<Value: Sendable>: Sendable {
    public let pipeline: Value
    public let crm: Value

    public init(_ make: (Side) -> Value) {
        pipeline = make(.pipeline)
        crm = make(.crm)
    }

    public subscript(side: Side) -> Value { side == .pipeline ? pipeline : crm }
}

/// Every statement a pass runs for one module, built once when an integration
/// is bound: a pass only sends them.
public struct CompiledModule: Sendable {
    public let compiler: ModuleCompiler
    public let linkedPairs: SQL
    public let matchedByScan: SQL
    public let clearWork: SQL
    public let forgetWaiting: SQL
    public let retryWaiting: SQL
    public let match: BySide<SQL?>
    public let prepareCreate: BySide<SQL>
    /// The same, for a large batch: whether a candidate is linked is asked
    /// of the pass's pairs.
    public let matchLarge: BySide<SQL?>
    public let prepareCreateLarge: BySide<SQL>
    /// The span of the candidates' keys, for the large merge.
    public let span: BySide<SQL?>
    public let create: BySide<ApplyStatement>
    /// The same, with owners by one join (for a large batch).
    public let createLarge: BySide<ApplyStatement>
    public let linkCreated: BySide<SQL>
    /// Creates, links and mirrors the copies in one statement (the fast
    /// path; `create` and `linkCreated` are the path record by record).
    public let createLinkAndMirror: BySide<SQL>
    public let createLinkAndMirrorLarge: BySide<SQL>
    public let rememberWaitingCreates: BySide<SQL?>
    /// Fills the work table and returns the counts of what it decided.
    public let buildWork: SQL
    public let recordConflicts: SQL?
    public let update: BySide<ApplyStatement>
    /// Writes one side and mirrors what it wrote in one statement (the fast
    /// path of a pass that writes only that side).
    public let updateAndMirror: BySide<SQL>
    public let mirrorUnwritten: SQL
    public let mirrorWritten: SQL
    /// The same, when the pass wrote only that side.
    public let mirrorWrittenOnly: BySide<SQL>
    public let mirrorCreated: SQL
    public let markDeleted: SQL
    public let rememberWaitingPairs: BySide<SQL?>
    /// Locks the records the merge decided to write, at the version it read.
    public let lockTargets: SQL
    /// Locks both records of every pair (when `lockTargets` missed one).
    public let lockRows: SQL
    /// The same lock, writing down what the pass holds (after a lock that missed some).
    public let recordLocked: BySide<SQL>
    public let deferContended: SQL

    public init(_ compiler: ModuleCompiler) {
        self.compiler = compiler
        linkedPairs = compiler.linkedPairs
        matchedByScan = compiler.matchedByScan
        clearWork = compiler.clearWork
        forgetWaiting = compiler.forgetWaiting
        retryWaiting = compiler.retryWaiting
        buildWork = compiler.buildWork
        recordConflicts = compiler.recordConflicts
        mirrorUnwritten = compiler.mirrorUnwritten
        mirrorWritten = compiler.mirrorWritten()
        mirrorWrittenOnly = BySide { compiler.mirrorWritten(only: $0) }
        mirrorCreated = compiler.mirrorCreated
        markDeleted = compiler.markDeleted
        deferContended = compiler.deferContended
        lockTargets = compiler.lockTargets
        lockRows = compiler.lockRows
        recordLocked = BySide { compiler.recordLocked($0) }
        match = BySide { compiler.match(from: $0) }
        prepareCreate = BySide { compiler.prepareCreate(from: $0) }
        matchLarge = BySide { compiler.match(from: $0, large: true) }
        prepareCreateLarge = BySide { compiler.prepareCreate(from: $0, large: true) }
        span = BySide { compiler.span($0) }
        create = BySide { compiler.create(from: $0) }
        createLarge = BySide { compiler.create(from: $0, ownersByJoin: true) }
        linkCreated = BySide { compiler.linkCreated(from: $0) }
        createLinkAndMirror = BySide { compiler.createLinkAndMirror(from: $0) }
        createLinkAndMirrorLarge = BySide { compiler.createLinkAndMirror(from: $0, ownersByJoin: true) }
        rememberWaitingCreates = BySide { compiler.rememberWaitingCreates(from: $0) }
        update = BySide { compiler.update($0) }
        updateAndMirror = BySide { compiler.updateAndMirror($0) }
        rememberWaitingPairs = BySide { compiler.rememberWaitingPairs($0) }
    }

    public var module: Module { compiler.module }
}
